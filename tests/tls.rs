//! HTTPS: certificates are verified, a private CA can be trusted with
//! `ca_file` (Rust) or `modelapi_set_ca_file` (C), and nothing is sent to a
//! server that fails verification.

mod common;

use std::ffi::{CStr, CString};
use std::ptr;

use common::server::{head, Reply, TestServer};
use common::tls::TlsRelay;
use common::{completion_body, stream_events, user};
use modelapi::ffi::*;
use modelapi::{Error, ModelApi};

fn server() -> TestServer {
    TestServer::start(|request| {
        if request.body_json()["stream"] == true {
            let events = stream_events(&["sec", "ure"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("secure"))
        }
    })
}

fn ca_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

#[test]
fn a_self_signed_server_is_refused_by_default() {
    let server = server();
    let relay = TlsRelay::start(server.addr());
    let api = ModelApi::builder("m", relay.url())
        .api_key("sk-must-not-leave")
        .mock_responses(vec![])
        .build()
        .unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    match &err {
        Error::Transport(m) => {
            assert!(m.contains("certificate") && m.contains("ca_file"), "{m}");
        }
        other => panic!("expected a TLS transport error, got {other:?}"),
    }
    assert!(!err.to_string().contains("sk-must-not-leave"));
    assert!(server.requests().is_empty(), "nothing reached the server");
    assert_eq!(
        relay.wait_handshakes_failed(1, std::time::Duration::from_secs(2)),
        1
    );
}

#[test]
fn a_trusted_ca_file_makes_it_work() {
    let server = server();
    let relay = TlsRelay::start(server.addr());
    let api = ModelApi::builder("m", relay.url())
        .ca_file(relay.write_ca_file(&ca_dir()))
        .api_key("sk-tls")
        .mock_responses(vec![])
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            api.complete(&user("hi"), None).unwrap().content(),
            Some("secure")
        );
        let text: String = api
            .stream(&user("hi"), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(text, "secure");
    }
    assert_eq!(relay.accepted(), 1, "TLS connections are pooled too");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-tls")
    );
}

#[test]
fn a_bad_ca_file_is_an_invalid_argument() {
    let err = ModelApi::builder("m", "https://localhost:1")
        .ca_file("/no/such/ca.pem")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("/no/such/ca.pem")),
        "{err}"
    );
    let not_pem = ca_dir().join("not-a-certificate.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let err = ModelApi::builder("m", "https://localhost:1")
        .ca_file(&not_pem)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("no PEM certificate")),
        "{err}"
    );
}

#[test]
fn the_c_api_trusts_a_ca_file() {
    let server = server();
    let relay = TlsRelay::start(server.addr());
    let ca = CString::new(relay.write_ca_file(&ca_dir()).to_str().unwrap()).unwrap();
    let url = CString::new(relay.url()).unwrap();
    let model = CString::new("m").unwrap();
    let messages = CString::new(r#"[{"role":"user","content":"hi"}]"#).unwrap();
    unsafe {
        let api = modelapi_new(model.as_ptr(), url.as_ptr(), ptr::null());
        assert!(!api.is_null());
        let mut content: *mut std::ffi::c_char = ptr::null_mut();
        let status = modelapi_complete_json(
            api,
            messages.as_ptr(),
            ptr::null(),
            ptr::null_mut(),
            &mut content,
        );
        assert_eq!(status, ModelApiStatus::MODELAPI_TRANSPORT_ERROR);
        assert!(CStr::from_ptr(modelapi_last_error())
            .to_str()
            .unwrap()
            .contains("certificate"));

        let missing = CString::new("/no/such/file.pem").unwrap();
        assert_eq!(
            modelapi_set_ca_file(api, missing.as_ptr()),
            ModelApiStatus::MODELAPI_INVALID_ARGUMENT
        );
        assert_eq!(
            modelapi_set_ca_file(api, ptr::null()),
            ModelApiStatus::MODELAPI_INVALID_ARGUMENT
        );
        assert_eq!(
            modelapi_set_ca_file(ptr::null_mut(), ca.as_ptr()),
            ModelApiStatus::MODELAPI_INVALID_ARGUMENT
        );
        assert_eq!(
            modelapi_set_ca_file(api, ca.as_ptr()),
            ModelApiStatus::MODELAPI_OK
        );

        let status = modelapi_complete_json(
            api,
            messages.as_ptr(),
            ptr::null(),
            ptr::null_mut(),
            &mut content,
        );
        assert_eq!(status, ModelApiStatus::MODELAPI_OK);
        assert_eq!(CStr::from_ptr(content).to_str().unwrap(), "secure");
        modelapi_string_free(content);
        modelapi_close(api);
    }
}

#[test]
fn https_is_never_redirected_to_plain_http() {
    let plain = server();
    let target = format!("{}/v1/chat/completions", plain.url());
    let redirecting = TestServer::start(move |_| {
        Reply::raw(head(
            307,
            &[("Location", target.clone()), ("Content-Length", "0".into())],
        ))
    });
    let relay = TlsRelay::start(redirecting.addr());
    let api = ModelApi::builder("m", relay.url())
        .ca_file(relay.write_ca_file(&ca_dir()))
        .api_key("sk-stays-encrypted")
        .mock_responses(vec![])
        .build()
        .unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(
        matches!(&err, Error::Transport(m) if m.contains("https to plain http")),
        "{err:?}"
    );
    assert!(
        plain.requests().is_empty(),
        "nothing went out in clear text"
    );
}
