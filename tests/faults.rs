//! Faults and hostile servers: each ends in the documented error, never a
//! crash or a hang, and the client stays usable afterwards.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::server::{chunked, head, Reply, Step, TestServer};
use common::{builder, client, collect, completion_body, content_event, stream_events, user};
use modelapi::Error;

/// A server answering the first `bad` requests with `fault()`, then well.
fn faulty(bad: usize, fault: impl Fn() -> Reply + Send + Sync + 'static) -> TestServer {
    let count = Arc::new(AtomicUsize::new(0));
    TestServer::start(move |request| {
        if count.fetch_add(1, Ordering::SeqCst) < bad {
            return fault();
        }
        good_reply(request)
    })
}

fn good_reply(request: &common::server::Request) -> Reply {
    if request.body_json()["stream"] == true {
        let events = stream_events(&["fine"]);
        Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
    } else {
        Reply::json(200, &completion_body("fine"))
    }
}

/// The client answers well after whatever happened before.
fn still_usable(api: &modelapi::ModelApi) {
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("fine")
    );
    let text: String = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(text, "fine");
}

fn sse_head() -> Vec<u8> {
    head(
        200,
        &[
            ("Content-Type", "text/event-stream".into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
    )
}

#[test]
fn reset_during_the_head_is_retried() {
    let server = faulty(1, || {
        Reply::script(vec![
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Ty".to_vec()),
            Step::Reset,
        ])
    });
    let api = client(&server.url());
    still_usable(&api);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_kept_alive_connection_the_server_dropped_is_replaced_transparently() {
    // The second request on the first connection finds it closed.
    let seen = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(move |request| {
        if request.connection == 0 && seen.fetch_add(1, Ordering::SeqCst) == 1 {
            return Reply::script(vec![Step::Close]);
        }
        good_reply(request)
    });
    let api = builder(&server.url()).max_retries(0).build().unwrap();
    assert_eq!(
        api.complete(&user("1"), None).unwrap().content(),
        Some("fine")
    );
    // No retries are allowed, yet the dead pooled connection costs nothing.
    assert_eq!(
        api.complete(&user("2"), None).unwrap().content(),
        Some("fine")
    );
    assert_eq!(server.accepted(), 2);

    // A fresh connection that fails is not retried with max_retries(0).
    let server = faulty(usize::MAX, || Reply::script(vec![Step::Reset]));
    let api = builder(&server.url()).max_retries(0).build().unwrap();
    assert!(matches!(
        api.complete(&user("hi"), None),
        Err(Error::Transport(_))
    ));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn http_1_0_and_connection_close_servers() {
    let body = completion_body("fine");
    let events = stream_events(&["fi", "ne"]).concat();
    let server = TestServer::start(move |request| {
        let (kind, content) = if request.body_json()["stream"] == true {
            ("text/event-stream", events.clone())
        } else {
            ("application/json", body.clone())
        };
        if request.body_json()["messages"][0]["content"] == "1.0" {
            // HTTP/1.0: no length, the body ends when the connection closes.
            Reply::raw(format!(
                "HTTP/1.0 200 OK\r\nContent-Type: {kind}\r\n\r\n{content}"
            ))
        } else {
            Reply::raw(format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{content}",
                content.len()
            ))
        }
    });
    let api = client(&server.url());
    for version in ["1.0", "close", "1.0", "close"] {
        assert_eq!(
            api.complete(&user(version), None).unwrap().content(),
            Some("fine")
        );
        let text: String = api
            .stream(&user(version), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(text, "fine");
    }
    assert_eq!(server.accepted(), 8, "each answer closed its connection");
}

#[test]
fn an_endless_head_fails_at_the_cap() {
    let server = faulty(1, || {
        Reply::script(vec![
            Step::Write(b"HTTP/1.1 200 OK\r\nX-Endless: ".to_vec()),
            Step::Repeat {
                bytes: vec![b'a'; 4096],
                times: 1024,
            },
        ])
    });
    let api = client(&server.url());
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(
        matches!(err, Error::InvalidResponse(_) | Error::Transport(_)),
        "{err:?}"
    );
    still_usable(&api);
}

#[test]
fn lying_lengths_and_encodings() {
    let json = completion_body("fine");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Content-Length longer than the body, then the connection closes.
        ("long content-length", format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len() + 100
        ).into_bytes()),
        // A chunk that promises more than it brings.
        ("lying chunk", [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            format!("{:x}\r\n", json.len() + 50).into_bytes(),
            json.clone().into_bytes(),
        ].concat()),
        // A chunk size that is not hex.
        ("bad chunk size", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n".to_vec()),
    ];
    for (name, bytes) in cases {
        let server = faulty(1, move || Reply::raw(bytes.clone()));
        let api = builder(&server.url()).max_retries(0).build().unwrap();
        let err = api.complete(&user("hi"), None).unwrap_err();
        assert!(
            matches!(err, Error::Transport(_) | Error::InvalidResponse(_)),
            "{name}: {err:?}"
        );
        still_usable(&api);
    }
}

#[test]
fn a_short_content_length_cuts_the_json() {
    let json = completion_body("fine");
    let server = faulty(1, move || {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            json.len() - 10
        );
        Reply::raw([head.into_bytes(), json.clone().into_bytes()].concat())
    });
    let api = client(&server.url());
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(matches!(err, Error::InvalidResponse(_)), "{err:?}");
    still_usable(&api);
}

#[test]
fn truncated_json_and_a_gzip_body_nobody_asked_for() {
    let server = faulty(1, || {
        Reply::json(200, r#"{"id":"x","choices":[{"message":{"content":"fi"#)
    });
    let api = client(&server.url());
    assert!(matches!(
        api.complete(&user("hi"), None),
        Err(Error::InvalidResponse(_))
    ));
    still_usable(&api);

    // No Accept-Encoding is sent, so a compressed body is never inflated.
    let server = faulty(1, || {
        let gzip = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff,
        ];
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gzip.len()
        );
        Reply::raw([head.as_bytes(), &gzip].concat())
    });
    let api = client(&server.url());
    assert!(matches!(
        api.complete(&user("hi"), None),
        Err(Error::InvalidResponse(_))
    ));
    assert!(server.requests()[0].header("accept-encoding").is_none());
    still_usable(&api);
}

#[test]
fn invalid_utf8_in_content_becomes_replacement_characters() {
    let server = TestServer::start(|request| {
        if request.body_json()["stream"] == true {
            let mut event = content_event("AB").into_bytes();
            let at = event.windows(2).position(|w| w == b"AB").unwrap() + 1;
            event.insert(at, 0xff);
            Reply::script(vec![
                Step::Write(sse_head()),
                Step::Write(chunked(&event)),
                Step::Write(chunked(common::DONE.as_bytes())),
                Step::Write(b"0\r\n\r\n".to_vec()),
            ])
        } else {
            let mut body = completion_body("AB").into_bytes();
            let at = body.windows(2).position(|w| w == b"AB").unwrap() + 1;
            body.insert(at, 0xff);
            Reply::full(200, "application/json", &body)
        }
    });
    let api = client(&server.url());
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("A\u{fffd}B")
    );
    let text: String = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(text, "A\u{fffd}B");
}

#[test]
fn redirects_307_and_308_keep_the_post_and_its_body() {
    for status in [307, 308] {
        let server = TestServer::start(move |request| {
            if request.path == "/v1/chat/completions" {
                let head = head(
                    status,
                    &[
                        ("Location", "/moved/v1/chat/completions".into()),
                        ("Content-Length", "0".into()),
                    ],
                );
                // Kept alive, so the count of requests below is exact.
                Reply::raw(head).keep_alive(true)
            } else {
                good_reply(request)
            }
        });
        let api = builder(&server.url())
            .api_key("sk-same-origin-key")
            .build()
            .unwrap();
        still_usable(&api);
        let requests = server.requests();
        assert_eq!(requests.len(), 4);
        let moved = &requests[1];
        assert_eq!(moved.method, "POST");
        assert_eq!(moved.path, "/moved/v1/chat/completions");
        assert_eq!(
            moved.body, requests[0].body,
            "the body follows the redirect"
        );
        assert_eq!(
            moved.header("authorization"),
            Some("Bearer sk-same-origin-key")
        );
    }
}

#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    let elsewhere = TestServer::start(good_reply);
    let target = format!("{}/v1/chat/completions", elsewhere.url());
    let server = TestServer::start(move |_| {
        Reply::raw(head(
            307,
            &[("Location", target.clone()), ("Content-Length", "0".into())],
        ))
    });
    let api = builder(&server.url())
        .api_key("sk-never-elsewhere")
        .header("X-Api-Key", "also-secret")
        .header("X-Trace", "kept")
        .build()
        .unwrap();
    still_usable(&api);
    for request in elsewhere.requests() {
        assert_eq!(request.header("authorization"), None);
        assert_eq!(request.header("x-api-key"), None);
        assert_eq!(request.header("x-trace"), Some("kept"));
        assert_eq!(request.method, "POST");
    }
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-never-elsewhere")
    );
}

#[test]
fn redirects_that_would_change_the_method_or_loop_are_errors() {
    let server = TestServer::start(|_| {
        Reply::raw(head(
            302,
            &[
                ("Location", "/elsewhere".into()),
                ("Content-Length", "0".into()),
            ],
        ))
        .keep_alive(true)
    });
    let err = client(&server.url())
        .complete(&user("hi"), None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Http { status: 302, message, .. } if message.contains("307")),
        "{err:?}"
    );

    let server = TestServer::start(|_| {
        Reply::raw(head(
            308,
            &[
                ("Location", "/v1/chat/completions".into()),
                ("Content-Length", "0".into()),
            ],
        ))
        .keep_alive(true)
    });
    let err = client(&server.url())
        .complete(&user("hi"), None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport(m) if m.contains("redirects")),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 6);
}

#[test]
fn a_stream_cut_mid_event_is_truncated_not_garbled() {
    let event = content_event("whole");
    let cut = &event.as_bytes()[..20];
    // Chunked, and HTTP/1.0 (the body ends where the connection does): the
    // half event is a truncation (TRANSPORT_ERROR), not invalid JSON.
    let chunked_cut = [sse_head(), chunked(event.as_bytes()), chunked(cut)].concat();
    let close_cut = [
        b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n".as_slice(),
        event.as_bytes(),
        cut,
    ]
    .concat();
    for body in [chunked_cut, close_cut] {
        let server = faulty(1, move || {
            Reply::script(vec![Step::Write(body.clone()), Step::Close])
        });
        let api = client(&server.url());
        let (chunks, err) = collect(api.stream(&user("hi"), None).unwrap());
        assert_eq!(chunks, ["whole"]);
        assert!(matches!(err, Some(Error::Transport(_))), "{err:?}");
        still_usable(&api);
    }
}

#[test]
fn a_body_held_open_after_done_does_not_hold_the_caller() {
    let events = stream_events(&["held"]).concat();
    let server = TestServer::start(move |request| {
        if request.body_json()["stream"] != true {
            return Reply::json(200, &completion_body("fine"));
        }
        // `[DONE]`, then the end of the chunked body only 3 s later.
        Reply::script(vec![
            Step::Write(sse_head()),
            Step::Write(chunked(events.as_bytes())),
            Step::Sleep(std::time::Duration::from_secs(3)),
            Step::Write(b"0\r\n\r\n".to_vec()),
        ])
    });
    let api = client(&server.url());
    let start = std::time::Instant::now();
    let (chunks, err) = collect(api.stream(&user("hi"), None).unwrap());
    let took = start.elapsed();
    assert_eq!(
        (chunks, err.map(|e| e.to_string())),
        (vec!["held".to_string()], None)
    );
    assert!(
        took < std::time::Duration::from_millis(2500),
        "the stream ended {took:?} after it began: it waited for the body's end"
    );
    // The connection was closed rather than waited for; the next call is fine.
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("fine")
    );
}

#[test]
fn the_library_never_prints() {
    // Output belongs to the host program: no print macro in the library.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Code only: doc examples and the unit tests may print.
            let code = text.split("#[cfg(test)]").next().unwrap();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for macro_name in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                    assert!(!line.contains(macro_name), "{}: {line}", path.display());
                }
            }
        }
    }
}
