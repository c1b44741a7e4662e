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

// ---------------------------------------------------------------------
// Resends: when a request goes out again without counting as a retry.
// ---------------------------------------------------------------------

/// How a test drives a stream: blocking reads, or polls.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Blocking,
    Polled,
}

/// One streamed call, driven as `mode` says: its text, or its error.
fn stream_text(api: &modelapi::ModelApi, mode: Mode) -> Result<String, Error> {
    use std::task::Poll;
    match mode {
        Mode::Blocking => api.stream(&user("hi"), None)?.collect(),
        Mode::Polled => {
            let mut stream = api.stream_start(&user("hi"), None)?;
            let mut text = String::new();
            let started = Instant::now();
            loop {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "the polled stream did not end"
                );
                match stream.poll_event(Duration::from_millis(20)) {
                    Poll::Pending => {}
                    Poll::Ready(Some(Ok(modelapi::StreamEvent::Content(piece)))) => {
                        text.push_str(piece)
                    }
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(error))) => return Err(error),
                    Poll::Ready(None) => return Ok(text),
                }
            }
        }
    }
}

/// A server whose first two connections are served at the same time, then
/// die: the next request on either is read and met with a close, as when
/// a server drops idle keep-alive connections. Every other request is
/// answered.
fn server_dropping_its_first_two_connections() -> TestServer {
    use std::collections::HashMap;
    let served = std::sync::Mutex::new(HashMap::<usize, usize>::new());
    TestServer::start(move |request| {
        let earlier = {
            let mut served = served.lock().unwrap();
            let count = served.entry(request.connection).or_default();
            *count += 1;
            *count - 1
        };
        if request.connection < 2 {
            if earlier > 0 {
                return Reply::script(vec![Step::Close]);
            }
            // Slow enough that the two first calls overlap, each on a
            // connection of its own.
            std::thread::sleep(Duration::from_millis(300));
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
fn a_dead_pooled_connection_is_replaced_by_a_new_one_not_another_pooled_one() {
    for mode in [Mode::Blocking, Mode::Polled] {
        let server = server_dropping_its_first_two_connections();
        // No retries: the resend of a request on a dead pooled connection
        // is not one.
        let api = builder(&server.url()).max_retries(0).build().unwrap();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| assert_eq!(stream_text(&api, mode).unwrap(), "ok"));
            }
        });
        assert_eq!(server.accepted(), 2, "{mode:?}: two pooled connections");

        assert_eq!(stream_text(&api, mode).unwrap(), "ok", "{mode:?}");
        let requests = server.requests();
        assert_eq!(
            requests.len(),
            4,
            "{mode:?}: the request went once to a dead pooled connection, once more to a new one"
        );
        assert!(
            requests[2].connection < 2,
            "{mode:?}: {:?}",
            requests[2].connection
        );
        assert_eq!(
            requests[3].connection, 2,
            "{mode:?}: the resend went on a new connection, not the other dead pooled one"
        );
        assert_eq!(server.accepted(), 3, "{mode:?}");
    }
}

#[test]
fn a_reset_after_the_whole_request_is_retried_only_as_max_retries_allows() {
    // A new connection: the server reads the whole request, then resets.
    // It may have acted on it, so only max_retries sends it again.
    for mode in [Mode::Blocking, Mode::Polled] {
        for (max_retries, sent) in [(0, 1), (2, 3)] {
            let server = flaky(usize::MAX, || Reply::script(vec![Step::Reset]));
            let api = builder(&server.url())
                .max_retries(max_retries)
                .build()
                .unwrap();
            let err = stream_text(&api, mode).unwrap_err();
            assert!(
                matches!(&err, Error::Transport(m) if m.contains("reset")),
                "{mode:?}, max_retries {max_retries}: {err:?}"
            );
            // Give a wrong extra attempt the time to arrive.
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(
                server.requests().len(),
                sent,
                "{mode:?}, max_retries {max_retries}"
            );
            assert_eq!(
                server.accepted(),
                sent,
                "{mode:?}: each on a new connection"
            );

            let err = api.complete(&user("hi"), None).unwrap_err();
            assert!(matches!(&err, Error::Transport(_)), "{err:?}");
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(
                server.requests().len(),
                2 * sent,
                "complete, max_retries {max_retries}"
            );
        }
    }
}

#[test]
fn a_pooled_connection_that_said_processing_before_it_died_is_not_resent() {
    // Keep-alive first; then the second request on the connection gets a
    // 102 Processing (the server is at work on it) and a close. The server
    // may have acted: no resend for free, and with max_retries(0) none.
    for mode in [Mode::Blocking, Mode::Polled] {
        let seen = Arc::new(AtomicUsize::new(0));
        let server = TestServer::start(move |request| {
            if seen.fetch_add(1, Ordering::SeqCst) == 1 {
                return Reply::script(vec![
                    Step::Write(b"HTTP/1.1 102 Processing\r\n\r\n".to_vec()),
                    Step::Close,
                ]);
            }
            if request.body_json()["stream"] == true {
                let events = stream_events(&["ok"]);
                Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
            } else {
                Reply::json(200, &completion_body("ok"))
            }
        });
        let api = builder(&server.url()).max_retries(0).build().unwrap();
        assert_eq!(stream_text(&api, mode).unwrap(), "ok", "{mode:?}");
        let err = stream_text(&api, mode).unwrap_err();
        assert!(matches!(&err, Error::Transport(_)), "{mode:?}: {err:?}");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.requests().len(), 2, "{mode:?}: sent once each");
        assert_eq!(server.accepted(), 1, "{mode:?}");
    }
}

#[test]
fn pooled_connections_closed_while_idle_cost_no_request() {
    // Both first calls overlap, each on a connection of its own, which the
    // server closes after its keep-alive answer: the pool holds two dead
    // connections, found dead before anything is sent on them.
    let count = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(move |_| {
        if count.fetch_add(1, Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(300));
            return Reply::json(200, &completion_body("ok")).then(Step::Close);
        }
        Reply::json(200, &completion_body("ok"))
    });
    let api = builder(&server.url()).max_retries(0).build().unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| api.complete(&user("hi"), None).unwrap());
        }
    });
    assert_eq!(server.accepted(), 2);
    // The closes have reached the client by now.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("ok")
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "the request was sent exactly once");
    assert_eq!(requests[2].connection, 2, "on a new connection");
}
