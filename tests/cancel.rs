//! Cancelling from another thread: the blocked call returns `Aborted`
//! promptly (measured from the moment of the cancel), its connection is
//! closed, and the client goes on working.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::server::{chunked, head, Reply, Step, TestServer};
use common::{client, completion_body, content_event, stream_events, user};
use modelapi::{CancelToken, Error};

/// A server that stalls for `stall` before answering the first request,
/// and answers every later one at once.
fn stalling_server(stall: Duration, streaming_first_chunk: bool) -> TestServer {
    let first = std::sync::atomic::AtomicBool::new(true);
    TestServer::start(move |request| {
        let stream = request.body_json()["stream"] == true;
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let mut steps = Vec::new();
            if streaming_first_chunk {
                steps.push(Step::Write(head(
                    200,
                    &[
                        ("Content-Type", "text/event-stream".into()),
                        ("Transfer-Encoding", "chunked".into()),
                    ],
                )));
                steps.push(Step::Write(chunked(content_event("first").as_bytes())));
            }
            steps.push(Step::Sleep(stall));
            return Reply::script(steps);
        }
        if stream {
            let events = stream_events(&["ok"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("ok"))
        }
    })
}

/// Cancels `token` after `delay` on another thread; returns when it did.
fn cancel_later(token: &CancelToken, delay: Duration) -> mpsc::Receiver<Instant> {
    let token = token.clone();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        thread::sleep(delay);
        let at = Instant::now();
        token.cancel();
        tx.send(at).unwrap();
    });
    rx
}

fn assert_prompt(cancelled_at: mpsc::Receiver<Instant>, returned_at: Instant, what: &str) {
    let cancelled_at = cancelled_at.recv().unwrap();
    let took = returned_at.saturating_duration_since(cancelled_at);
    eprintln!("{what}: returned {took:?} after the cancel");
    assert!(
        took < Duration::from_millis(500),
        "{what}: took {took:?} after the cancel"
    );
}

#[test]
fn cancel_while_waiting_for_the_response() {
    let server = stalling_server(Duration::from_secs(10), false);
    let api = client(&server.url());
    let token = CancelToken::new();
    let cancelled_at = cancel_later(&token, Duration::from_millis(200));
    let err = api
        .with_cancel(&token)
        .complete(&user("hi"), None)
        .unwrap_err();
    let returned_at = Instant::now();
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    assert_prompt(cancelled_at, returned_at, "complete");
    assert_eq!(
        server.requests().len(),
        1,
        "a cancelled call is not retried"
    );

    // The client goes on, on a new connection: the cancelled one was closed.
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("ok")
    );
    assert_eq!(server.accepted(), 2);
    // The token stays cancelled until reset.
    assert!(matches!(
        api.with_cancel(&token).complete(&user("hi"), None),
        Err(Error::Aborted(_))
    ));
    token.reset();
    assert_eq!(
        api.with_cancel(&token)
            .complete(&user("hi"), None)
            .unwrap()
            .content(),
        Some("ok")
    );
}

#[test]
fn cancel_while_opening_a_stream() {
    let server = stalling_server(Duration::from_secs(10), false);
    let api = client(&server.url());
    let token = CancelToken::new();
    let cancelled_at = cancel_later(&token, Duration::from_millis(200));
    let err = api
        .with_cancel(&token)
        .stream(&user("hi"), None)
        .unwrap_err();
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    assert_prompt(cancelled_at, Instant::now(), "stream open");
}

#[test]
fn cancel_a_stream_blocked_in_next_chunk() {
    let server = stalling_server(Duration::from_secs(10), true);
    let api = client(&server.url());
    let mut stream = api.stream(&user("hi"), None).unwrap();
    assert_eq!(stream.next().unwrap().unwrap(), "first");
    let cancelled_at = cancel_later(&stream.cancel_token(), Duration::from_millis(200));
    let err = stream.next().unwrap().unwrap_err();
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    assert_prompt(cancelled_at, Instant::now(), "stream next");
    assert!(stream.next().is_none());
    let text: String = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(text, "ok");
}

#[test]
fn cancel_during_a_retry_backoff() {
    let server = TestServer::start(|_| Reply::json(503, "{}").with_header("Retry-After", "30"));
    let api = client(&server.url());
    let token = CancelToken::new();
    let cancelled_at = cancel_later(&token, Duration::from_millis(200));
    let err = api
        .with_cancel(&token)
        .complete(&user("hi"), None)
        .unwrap_err();
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    assert_prompt(cancelled_at, Instant::now(), "backoff");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn cancel_a_canned_stream_and_a_token_cancelled_before_the_call() {
    let api = modelapi::ModelApi::builder("m", "http://127.0.0.1:9")
        .mock_responses(vec!["one two three four".into(), "next".into()])
        .build()
        .unwrap();
    let mut stream = api.stream(&user("hi"), None).unwrap();
    assert!(stream.next().unwrap().is_ok());
    stream.cancel_token().cancel();
    assert!(matches!(stream.next(), Some(Err(Error::Aborted(_)))));
    assert!(stream.next().is_none());

    let token = CancelToken::new();
    token.cancel();
    assert!(matches!(
        api.with_cancel(&token).stream(&user("hi"), None),
        Err(Error::Aborted(_))
    ));
    assert_eq!(
        api.mock_responses_left(),
        1,
        "a cancelled call uses no canned reply"
    );
}
