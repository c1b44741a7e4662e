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

// ---------------------------------------------------------------------
// One token shared by several calls: a cancel stops every one of them.
// ---------------------------------------------------------------------

/// The client's timeout in the shared-token tests: far longer than the
/// 2 s within which every call must return after the cancel.
const LONG_TIMEOUT: Duration = Duration::from_secs(20);

/// How soon after the cancel every call must have returned: generous for
/// a noisy shared machine, and a tenth of [`LONG_TIMEOUT`].
const PROMPT: Duration = Duration::from_secs(2);

/// A server that answers nothing to a request whose first message is
/// "silent", streams one chunk then stalls on "stall", answers 503 with
/// `Retry-After: 30` on "busy", and at once otherwise.
fn shared_token_server() -> TestServer {
    TestServer::start_with_workers(12, |request| {
        let content = request.body_json()["messages"][0]["content"].clone();
        let stalled = Duration::from_secs(30);
        if content == "silent" {
            return Reply::script(vec![Step::Sleep(stalled)]);
        }
        if content == "stall" {
            return Reply::script(vec![
                Step::Write(head(
                    200,
                    &[
                        ("Content-Type", "text/event-stream".into()),
                        ("Transfer-Encoding", "chunked".into()),
                    ],
                )),
                Step::Write(chunked(content_event("first").as_bytes())),
                Step::Sleep(stalled),
            ]);
        }
        if content == "busy" {
            return Reply::json(503, "{}").with_header("Retry-After", "30");
        }
        if request.body_json()["stream"] == true {
            let events = stream_events(&["ok"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("ok"))
        }
    })
}

/// Waits (bounded) until `server` has received `n` requests.
fn await_requests(server: &TestServer, n: usize) {
    let got = server.wait_requests(n, Duration::from_secs(10)).len();
    assert!(got >= n, "only {got} of {n} requests reached the server");
}

fn assert_all_prompt(cancelled_at: Instant, returns: &[(String, Instant)]) {
    let took: Vec<_> = returns
        .iter()
        .map(|(what, at)| (what, at.saturating_duration_since(cancelled_at)))
        .collect();
    eprintln!("returned after the cancel: {took:?}");
    for (what, took) in took {
        assert!(
            took < PROMPT,
            "{what} returned {took:?} after the cancel (timeout {LONG_TIMEOUT:?})"
        );
    }
}

#[test]
fn one_token_stops_every_complete_call_that_shares_it() {
    let server = shared_token_server();
    let api = common::builder(&server.url())
        .timeout(LONG_TIMEOUT)
        .build()
        .unwrap();
    let token = CancelToken::new();
    const CALLS: usize = 4;
    let (cancelled_at, returns) = thread::scope(|scope| {
        let calls: Vec<_> = (0..CALLS)
            .map(|i| {
                let (api, token) = (&api, &token);
                scope.spawn(move || {
                    let result = api.with_cancel(token).complete(&user("silent"), None);
                    (format!("complete {i}"), Instant::now(), result)
                })
            })
            .collect();
        await_requests(&server, CALLS);
        let cancelled_at = Instant::now();
        token.cancel();
        let returns: Vec<_> = calls
            .into_iter()
            .map(|call| {
                let (what, at, result) = call.join().unwrap();
                assert!(
                    matches!(result, Err(Error::Aborted(_))),
                    "{what}: {result:?}"
                );
                (what, at)
            })
            .collect();
        (cancelled_at, returns)
    });
    assert_all_prompt(cancelled_at, &returns);
    assert_eq!(server.requests().len(), CALLS, "no call was retried");
}

#[test]
fn one_token_stops_streams_backoffs_and_polled_streams_alike() {
    use std::task::Poll;

    let server = shared_token_server();
    // The trace tells when the busy call has begun its backoff.
    let (retry_tx, retry_rx) = mpsc::channel();
    let retry_tx = std::sync::Mutex::new(retry_tx);
    let api = common::builder(&server.url())
        .timeout(LONG_TIMEOUT)
        .trace(move |_, line| {
            if line.contains("retry 1 of") {
                let _ = retry_tx.lock().unwrap().send(());
            }
        })
        .build()
        .unwrap();
    let token = CancelToken::new();
    let (cancelled_at, returns) = thread::scope(|scope| {
        let (api, token) = (&api, &token);
        // A blocking stream waiting for its head.
        let opening = scope.spawn(move || {
            let result = api.with_cancel(token).stream(&user("silent"), None);
            ("stream opening".to_string(), Instant::now(), result.err())
        });
        // A blocking stream mid-body, between two chunks.
        let (first_tx, first_rx) = mpsc::channel();
        let mid_body = scope.spawn(move || {
            let mut stream = api.with_cancel(token).stream(&user("stall"), None).unwrap();
            assert_eq!(stream.next().unwrap().unwrap(), "first");
            first_tx.send(()).unwrap();
            let result = stream.next();
            (
                "stream mid-body".to_string(),
                Instant::now(),
                result.and_then(Result::err),
            )
        });
        // A call asleep in a retry's backoff (the server asked for 30 s).
        let backoff = scope.spawn(move || {
            let result = api.with_cancel(token).complete(&user("busy"), None);
            (
                "complete in a backoff".to_string(),
                Instant::now(),
                result.err(),
            )
        });
        // A polled stream mid-body, whose host waits on its socket (as
        // long as the timeout) between polls.
        let (polled_tx, polled_rx) = mpsc::channel();
        let polled = scope.spawn(move || {
            let mut stream = api
                .with_cancel(token)
                .stream_start(&user("stall"), None)
                .unwrap();
            let started = Instant::now();
            let mut told = false;
            loop {
                assert!(
                    started.elapsed() < 2 * LONG_TIMEOUT,
                    "the polled stream never ended"
                );
                match stream.poll_event(Duration::ZERO) {
                    Poll::Pending => {}
                    Poll::Ready(Some(Ok(_))) => {
                        if !told {
                            told = true;
                            polled_tx.send(()).unwrap();
                        }
                        continue;
                    }
                    Poll::Ready(Some(Err(error))) => {
                        return ("polled stream".to_string(), Instant::now(), Some(error));
                    }
                    Poll::Ready(None) => {
                        return ("polled stream".to_string(), Instant::now(), None);
                    }
                }
                let Some(waits_on) = stream.waits_on() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let events = if waits_on.wants_write {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                let wait = stream.wake_in().unwrap_or_default();
                let mut fd = libc::pollfd {
                    fd: waits_on.fd,
                    events,
                    revents: 0,
                };
                let ms = wait.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: one live pollfd, of the count passed.
                unsafe { libc::poll(&mut fd, 1, ms) };
            }
        });
        // Every call has reached the server (the backoff's 503 is answered
        // at once), and both streams are mid-body.
        await_requests(&server, 4);
        first_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        polled_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        retry_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let cancelled_at = Instant::now();
        token.cancel();
        let returns: Vec<_> = [opening, mid_body, backoff, polled]
            .into_iter()
            .map(|call| {
                let (what, at, error) = call.join().unwrap();
                assert!(
                    matches!(error, Some(Error::Aborted(_))),
                    "{what}: {error:?}"
                );
                (what, at)
            })
            .collect();
        (cancelled_at, returns)
    });
    assert_all_prompt(cancelled_at, &returns);
    assert_eq!(server.requests().len(), 4, "no call was retried");
}
