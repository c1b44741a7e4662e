//! An explicit HTTP proxy (`ModelApiBuilder::proxy`, `modelapi_set_proxy`)
//! against a local proxy (tests/common/proxy.rs): HTTPS goes through a
//! CONNECT tunnel with TLS verified end to end and the API key seen by the
//! server only; plain HTTP is forwarded; proxy credentials go to the proxy
//! only; polled streams go through it too; environment proxies are never
//! used.

mod common;

use std::ffi::CString;
use std::task::Poll;
use std::time::Duration;

use common::proxy::TestProxy;
use common::server::{Reply, TestServer};
use common::tls::TlsRelay;
use common::{completion_body, stream_events, user};
use modelapi::{Error, ModelApi, StreamEvent};

const KEY: &str = "sk-proxy-test-key-4242";

fn server() -> TestServer {
    TestServer::start(|request| {
        if request.body_json()["stream"] == true {
            let events = stream_events(&["through ", "the proxy"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("through the proxy"))
        }
    })
}

fn ca_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn https_goes_through_a_connect_tunnel_and_the_key_reaches_only_the_server() {
    let server = server();
    let relay = TlsRelay::start(server.addr());
    let proxy = TestProxy::start(None);
    let api = ModelApi::builder("m", relay.url())
        .api_key(KEY)
        .ca_file(relay.write_ca_file(&ca_dir()))
        .proxy(proxy.url())
        .mock_responses(vec![])
        .build()
        .unwrap();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("through the proxy"));
    let text = api.stream(&user("hi"), None).unwrap().into_text().unwrap();
    assert_eq!(text, "through the proxy");

    let heads = proxy.heads();
    let port = relay.url().rsplit(':').next().unwrap().to_string();
    assert!(!heads.is_empty());
    for head in &heads {
        assert!(
            head.starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
            "{head}"
        );
    }
    // The proxy saw the server's name and encrypted bytes: never the key,
    // nor the request's JSON.
    let seen = proxy.bytes_from_clients();
    assert!(
        !contains(&seen, KEY),
        "the key went through the proxy in clear"
    );
    assert!(!contains(&seen, "chat/completions") && !contains(&seen, "\"messages\""));
    // The server got the key, over TLS.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(request.header("proxy-authorization"), None);
    }
}

#[test]
fn tls_is_verified_end_to_end_through_the_proxy() {
    let server = server();
    let relay = TlsRelay::start(server.addr());
    let proxy = TestProxy::start(None);
    // No ca_file: the relay's certificate is not trusted, proxy or not.
    let api = ModelApi::builder("m", relay.url())
        .api_key(KEY)
        .proxy(proxy.url())
        .mock_responses(vec![])
        .build()
        .unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(
        matches!(&err, Error::Transport(m) if m.contains("certificate")),
        "{err:?}"
    );
    assert_eq!(proxy.heads().len(), 1, "the tunnel was opened, once");
    assert!(server.requests().is_empty(), "nothing reached the server");
    assert!(!contains(&proxy.bytes_from_clients(), KEY));
}

#[test]
fn plain_http_is_forwarded_with_the_whole_url() {
    let server = server();
    let proxy = TestProxy::start(None);
    let api = ModelApi::builder("m", server.url())
        .proxy(proxy.url())
        .mock_responses(vec![])
        .build()
        .unwrap();
    let text = api.stream(&user("hi"), None).unwrap().into_text().unwrap();
    assert_eq!(text, "through the proxy");
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with(&format!(
            "POST {}/v1/chat/completions HTTP/1.1\r\n",
            server.url()
        )),
        "{}",
        heads[0]
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body_json()["stream"], true);
}

#[test]
fn proxy_credentials_go_to_the_proxy_only_and_never_show() {
    let server = server();
    let relay = TlsRelay::start(server.addr());
    let proxy = TestProxy::start(Some("alice:pr0xy-pa55word"));
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = std::sync::Arc::clone(&lines);
    let builder = |credentials: &str| {
        let seen = std::sync::Arc::clone(&seen);
        ModelApi::builder("m", relay.url())
            .api_key(KEY)
            .ca_file(relay.write_ca_file(&ca_dir()))
            .proxy(
                proxy
                    .url()
                    .replace("http://", &format!("http://{credentials}@")),
            )
            .trace(move |_, line| seen.lock().unwrap().push(line.to_string()))
            .mock_responses(vec![])
    };
    let api = builder("alice:pr0xy-pa55word").build().unwrap();
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("through the proxy")
    );
    assert!(proxy.heads()[0].contains("Proxy-Authorization: Basic YWxpY2U6cHIweHktcGE1NXdvcmQ="));
    assert_eq!(server.requests()[0].header("proxy-authorization"), None);

    // Wrong credentials: a clear error, not retried, without the password.
    let api = builder("alice:wr0ng-pa55word").build().unwrap();
    let before = proxy.heads().len();
    let err = api.complete(&user("hi"), None).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Transport(m) if m.contains("407")),
        "{err:?}"
    );
    assert!(text.contains("proxy"), "{text}");
    assert_eq!(
        proxy.heads().len(),
        before + 1,
        "a refused tunnel is not retried"
    );
    let debug = format!("{api:?}");
    for secret in ["pr0xy-pa55word", "wr0ng-pa55word", "YWxpY2U6"] {
        assert!(!text.contains(secret), "{text}");
        assert!(!debug.contains(secret), "{debug}");
        for line in lines.lock().unwrap().iter() {
            assert!(!line.contains(secret), "{line}");
        }
    }
    assert!(!lines.lock().unwrap().is_empty());
}

#[test]
fn a_polled_stream_opens_its_tunnel_without_blocking() {
    let server = server();
    let relay = TlsRelay::start(server.addr());
    let proxy = TestProxy::start(None);
    let api = ModelApi::builder("m", relay.url())
        .ca_file(relay.write_ca_file(&ca_dir()))
        .proxy(proxy.url())
        .mock_responses(vec![])
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let (mut text, mut pending) = (String::new(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream never ended"
        );
        match stream.poll_event(Duration::ZERO) {
            Poll::Pending => {
                pending += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Poll::Ready(Some(Ok(StreamEvent::Content(piece)))) => text.push_str(piece),
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(err))) => panic!("{err}"),
            Poll::Ready(None) => break,
        }
    }
    assert_eq!(text, "through the proxy");
    assert!(pending > 0, "the tunnel and the handshake took some polls");
    assert_eq!(proxy.heads().len(), 1);
}

#[test]
fn proxies_from_the_environment_are_never_used() {
    let server = server();
    let proxy = TestProxy::start(None);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ] {
        std::env::set_var(name, proxy.url());
    }
    let api = ModelApi::builder("m", server.url())
        .mock_responses(vec![])
        .build()
        .unwrap();
    let answer = api.complete(&user("hi"), None);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ] {
        std::env::remove_var(name);
    }
    assert_eq!(answer.unwrap().content(), Some("through the proxy"));
    assert!(proxy.heads().is_empty(), "an environment proxy was used");
}

#[test]
fn bad_proxy_settings_say_what_is_wrong() {
    for (url, expect) in [
        ("https://proxy:3128", "only http://"),
        ("socks5://proxy:1080", "only http://"),
        ("proxy:3128", "only http://"),
        ("http://", "host"),
        ("http://proxy:3128/path", "no path"),
    ] {
        let err = ModelApi::builder("m", "http://localhost:8000")
            .proxy(url)
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains(expect) && m.contains("proxy")),
            "{url}: {err}"
        );
    }
    // From C, too: NULL or "" removes the proxy.
    let model = CString::new("m").unwrap();
    let base = CString::new("http://localhost:8000").unwrap();
    unsafe {
        use modelapi::ffi::*;
        let api = modelapi_new(model.as_ptr(), base.as_ptr(), std::ptr::null());
        let bad = CString::new("ftp://proxy").unwrap();
        assert_eq!(
            modelapi_set_proxy(api, bad.as_ptr()),
            ModelApiStatus::MODELAPI_INVALID_ARGUMENT
        );
        let good = CString::new("http://127.0.0.1:3128").unwrap();
        assert_eq!(
            modelapi_set_proxy(api, good.as_ptr()),
            ModelApiStatus::MODELAPI_OK
        );
        assert_eq!(
            modelapi_set_proxy(api, std::ptr::null()),
            ModelApiStatus::MODELAPI_OK
        );
        assert_eq!(
            modelapi_set_proxy(std::ptr::null_mut(), good.as_ptr()),
            ModelApiStatus::MODELAPI_INVALID_ARGUMENT
        );
        modelapi_close(api);
    }
}

#[test]
fn a_proxy_that_is_down_is_a_transport_error_retried_like_a_server() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let api = common::builder("https://localhost:1")
        .proxy(url)
        .max_retries(1)
        .build()
        .unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(
        matches!(&err, Error::Transport(m) if m.contains("refused")),
        "{err:?}"
    );
}
