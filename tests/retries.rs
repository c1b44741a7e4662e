//! Retries: which failures are retried, how long the client waits, and
//! that nothing is retried once a stream has begun.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{Reply, Step, TestServer};
use common::{builder, client, completion_body, stream_events, user};
use modelapi::Error;

/// A server whose first `failures` requests get `failure()`, then success.
fn flaky(failures: usize, failure: impl Fn() -> Reply + Send + Sync + 'static) -> TestServer {
    let count = Arc::new(AtomicUsize::new(0));
    TestServer::start(move |request| {
        if count.fetch_add(1, Ordering::SeqCst) < failures {
            return failure();
        }
        if request.body_json()["stream"] == true {
            let events = stream_events(&["ok"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("ok"))
        }
    })
}

#[test]
fn retryable_statuses_are_retried_then_succeed() {
    for status in [408, 409, 429, 500, 502, 503, 504] {
        let server = flaky(2, move || {
            Reply::json(status, r#"{"error":{"message":"again"}}"#)
        });
        let answer = client(&server.url()).complete(&user("hi"), None).unwrap();
        assert_eq!(answer.content(), Some("ok"), "status {status}");
        assert_eq!(server.requests().len(), 3, "status {status}");
    }
}

#[test]
fn retries_stop_at_max_retries() {
    let server = flaky(usize::MAX, || {
        Reply::json(500, r#"{"error":{"message":"down"}}"#)
    });
    let api = builder(&server.url()).max_retries(4).build().unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(matches!(&err, Error::Http { status: 500, message, .. } if message == "down"));
    assert_eq!(server.requests().len(), 5);

    let server = flaky(usize::MAX, || Reply::json(429, "{}"));
    let api = builder(&server.url()).max_retries(0).build().unwrap();
    assert_eq!(
        api.complete(&user("hi"), None).unwrap_err().status(),
        Some(429)
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn client_errors_are_not_retried() {
    for status in [400, 401, 403, 404, 422] {
        let server = flaky(usize::MAX, move || {
            Reply::json(status, r#"{"error":{"message":"no"}}"#)
        });
        let err = client(&server.url())
            .complete(&user("hi"), None)
            .unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(server.requests().len(), 1, "status {status}");
    }
}

#[test]
fn retry_after_headers_are_honoured() {
    let server = flaky(1, || {
        Reply::json(429, "{}").with_header("retry-after-ms", "300")
    });
    let started = Instant::now();
    client(&server.url()).complete(&user("hi"), None).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    let server = flaky(1, || Reply::json(503, "{}").with_header("Retry-After", "1"));
    let started = Instant::now();
    client(&server.url()).complete(&user("hi"), None).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn default_backoff_waits_about_half_a_second() {
    let server = flaky(1, || Reply::json(500, "{}"));
    let api = modelapi::ModelApi::builder("m", server.url())
        .mock_responses(vec![])
        .build()
        .unwrap();
    let started = Instant::now();
    api.complete(&user("hi"), None).unwrap();
    // 0.5 s less at most 25 % jitter.
    assert!(
        started.elapsed() >= Duration::from_millis(375),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn connection_failures_are_retried() {
    // Reset before any response byte: the server never acted on it.
    let server = flaky(2, || Reply::script(vec![Step::Reset]));
    assert_eq!(
        client(&server.url())
            .complete(&user("hi"), None)
            .unwrap()
            .content(),
        Some("ok")
    );
    assert_eq!(server.requests().len(), 3);

    // Nothing listening at all: a transport error after the retries.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = client(&format!("http://127.0.0.1:{port}"))
        .complete(&user("hi"), None)
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
}

#[test]
fn streams_are_retried_before_they_begin() {
    let server = flaky(2, || Reply::json(503, r#"{"error":{"message":"busy"}}"#));
    let chunks: Vec<String> = client(&server.url())
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks, ["ok"]);
    assert_eq!(server.requests().len(), 3);
}
