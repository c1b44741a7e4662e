//! Wire-level faults of real networks (issue #20), against real HTTP(S)
//! servers on loopback: long header lines, absurd `Retry-After` values and
//! timeouts, interim (1xx) answers, answers that come while the request is
//! still being uploaded, SIGPIPE in a C host, and TLS connections that end
//! without `close_notify`. Each is checked blocking and by polls where both
//! apply.
//!
//! Timing assertions use generous bounds (a call that must not wait for
//! its timeout of 20 s or more must return within 5 s): the machine is
//! shared.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use common::server::{head, Reply, Step, TestServer};
use common::{builder, completion_body, content_event, finish_event, user, DONE};
use modelapi::{ChatStream, Error, ModelApi, StreamEvent};

/// No test loop runs longer than this: a hang fails instead.
const LIMIT: Duration = Duration::from_secs(15);
/// A client timeout long enough that reaching it means a hang.
const LONG_TIMEOUT: Duration = Duration::from_secs(20);
/// How fast a call that must not wait for its timeout has to return.
const QUICK: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// Drives a polled stream to its end with `poll_event(wait)`: the text of
/// its content events, and the error that ended it, if any.
fn poll_all(mut stream: ChatStream, wait: Duration) -> (String, Option<Error>) {
    let started = Instant::now();
    let mut text = String::new();
    while started.elapsed() < LIMIT {
        match stream.poll_event(wait) {
            Poll::Pending => {
                if wait.is_zero() {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            Poll::Ready(Some(Ok(StreamEvent::Content(piece)))) => text.push_str(piece),
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(error))) => return (text, Some(error)),
            Poll::Ready(None) => return (text, None),
        }
    }
    panic!("the polled stream did not end within {LIMIT:?} (text so far: {text:?})");
}

/// Pulls a blocking stream to its end.
fn pull_all(stream: ChatStream) -> (String, Option<Error>) {
    let mut text = String::new();
    for item in stream {
        match item {
            Ok(piece) => text.push_str(&piece),
            Err(error) => return (text, Some(error)),
        }
    }
    (text, None)
}

/// An SSE answer (chunked) of `pieces`, as raw bytes after a head.
fn sse_bytes(pieces: &[&str]) -> Vec<u8> {
    let mut out = head(
        200,
        &[
            ("Content-Type", "text/event-stream".into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
    );
    let mut events: Vec<String> = pieces.iter().map(|p| content_event(p)).collect();
    events.push(finish_event("stop"));
    events.push(DONE.to_string());
    for event in events {
        out.extend(common::server::chunked(event.as_bytes()));
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A JSON answer (sized) of `body`.
fn json_bytes(status: u16, body: &str) -> Vec<u8> {
    let mut out = head(
        status,
        &[
            ("Content-Type", "application/json".into()),
            ("Content-Length", body.len().to_string()),
        ],
    );
    out.extend_from_slice(body.as_bytes());
    out
}

// ---------------------------------------------------------------------
// 1. Long header lines
// ---------------------------------------------------------------------

fn echo_server() -> TestServer {
    TestServer::start(|_| Reply::json(200, &completion_body("ok")))
}

#[test]
fn a_12_kb_api_key_and_a_20_kb_header_reach_the_server_intact() {
    let server = echo_server();
    let key = format!("eyJ{}", "k".repeat(12 * 1024));
    let custom = "v".repeat(20 * 1024);
    let api = builder(&server.url())
        .api_key(key.clone())
        .header("X-Long", custom.clone())
        .timeout(LONG_TIMEOUT)
        .build()
        .unwrap();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("ok"));
    let stream = api.stream_start(&user("hi"), None).unwrap();
    // A JSON answer to a stream request is one piece: the content.
    let (text, error) = poll_all(stream, Duration::from_millis(50));
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, "ok");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in requests {
        let expected_auth = format!("Bearer {key}");
        assert_eq!(
            request.header("authorization"),
            Some(expected_auth.as_str())
        );
        assert_eq!(request.header("x-long"), Some(custom.as_str()));
    }
}

// ---------------------------------------------------------------------
// 2. Absurd Retry-After values and timeouts
// ---------------------------------------------------------------------

/// A server that answers 429 with `name: value` once, then `ok`.
fn once_429(name: &'static str, value: &'static str) -> TestServer {
    let calls = Arc::new(Mutex::new(0usize));
    TestServer::start(move |_| {
        let mut calls = calls.lock().unwrap();
        *calls += 1;
        if *calls == 1 {
            Reply::json(429, r#"{"error": {"message": "slow down"}}"#).with_header(name, value)
        } else {
            Reply::json(200, &completion_body("ok"))
        }
    })
}

#[test]
fn absurd_retry_after_values_fall_back_to_backoff() {
    for (name, value) in [
        ("Retry-After", "Sun, 06 Nov 99999999999999 08:49:37 GMT"),
        ("Retry-After", "Sun, 06 Nov 584554051223 08:49:37 GMT"),
        (
            "Retry-After",
            "Sun, 06 Nov 2030 08:49:10000000000000000000 GMT",
        ),
        (
            "Retry-After",
            "Sun, 06 Nov 2030 08:49:18446744073709551615 GMT",
        ),
        ("Retry-After", "10000000000000000000"),
        ("retry-after-ms", "99999999999999999999999"),
        ("retry-after-ms", "18446744073709551615"),
    ] {
        let server = once_429(name, value);
        let api = builder(&server.url())
            .timeout(LONG_TIMEOUT)
            .build()
            .unwrap();
        let started = Instant::now();
        let answer = api.complete(&user("hi"), None);
        assert_eq!(
            answer.map(|a| a.content().map(str::to_string)).ok(),
            Some(Some("ok".to_string())),
            "{name}: {value}"
        );
        assert!(started.elapsed() < QUICK, "{name}: {value}");
        assert_eq!(server.requests().len(), 2, "{name}: {value}");
    }
}

#[test]
fn a_timeout_of_u64_max_milliseconds_means_practically_forever() {
    let server = once_429("Retry-After", "0.01");
    let api = builder(&server.url())
        .timeout(Duration::from_millis(u64::MAX))
        .build()
        .unwrap();
    // The first call is refused with a 429 and retried; the second succeeds.
    for _ in 0..2 {
        let answer = api.complete(&user("hi"), None).unwrap();
        assert_eq!(answer.content(), Some("ok"));
    }
    let api = builder(&server.url())
        .timeout(Duration::MAX)
        .build()
        .unwrap();
    let stream = api.stream_start(&user("hi"), None).unwrap();
    assert!(stream.wake_in().is_some());
    let (text, error) = poll_all(stream, Duration::from_millis(20));
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, "ok");
}

// ---------------------------------------------------------------------
// 3. Interim (1xx) answers
// ---------------------------------------------------------------------

const EARLY_HINTS: &[u8] =
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n";
const PROCESSING: &[u8] = b"HTTP/1.1 102 Processing\r\n\r\n";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn interim_heads() -> Vec<u8> {
    [CONTINUE, PROCESSING, EARLY_HINTS, EARLY_HINTS].concat()
}

/// Answers with interim heads then `answer`, in one write or in one write
/// per head (`split`).
fn interim_server(split: bool) -> TestServer {
    TestServer::start(move |request| {
        let answer = if request.body_text().contains("\"stream\":true") {
            sse_bytes(&["Hel", "lo"])
        } else {
            json_bytes(200, &completion_body("Hello"))
        };
        let mut steps = Vec::new();
        if split {
            for interim in [CONTINUE, PROCESSING, EARLY_HINTS, EARLY_HINTS] {
                steps.push(Step::Write(interim.to_vec()));
                steps.push(Step::Sleep(Duration::from_millis(30)));
            }
            steps.push(Step::Write(answer));
        } else {
            steps.push(Step::Write([interim_heads(), answer].concat()));
        }
        Reply {
            steps,
            keep_alive: true,
        }
    })
}

#[test]
fn interim_answers_before_the_final_head_do_not_stall() {
    for split in [false, true] {
        let server = interim_server(split);
        let api = builder(&server.url())
            .timeout(LONG_TIMEOUT)
            .build()
            .unwrap();
        let started = Instant::now();
        let answer = api.complete(&user("hi"), None).unwrap();
        assert_eq!(answer.content(), Some("Hello"), "split {split}");
        let (text, error) = pull_all(api.stream(&user("hi"), None).unwrap());
        assert!(error.is_none(), "split {split}: {error:?}");
        assert_eq!(text, "Hello");
        for wait in [Duration::ZERO, Duration::from_millis(50)] {
            let (text, error) = poll_all(api.stream_start(&user("hi"), None).unwrap(), wait);
            assert!(error.is_none(), "split {split}: {error:?}");
            assert_eq!(text, "Hello");
        }
        assert!(
            started.elapsed() < QUICK,
            "split {split}: took {:?}",
            started.elapsed()
        );
    }
}
