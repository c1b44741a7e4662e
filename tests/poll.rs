//! Non-blocking streams (`stream_start`, `poll_event`, `waits_on`) against
//! real local HTTP(S) servers: a poll never blocks longer than its wait,
//! the network work (connect, request, retries and their backoff,
//! redirects, TLS) progresses inside polls, the per-wait timeout counts
//! time without progress across polls, cancel works between polls, and a
//! host that waits on the descriptor itself is woken once per arrival, not
//! busy-looping.
//!
//! Timing assertions compare ratios or use generous bounds: the machine is
//! shared. The one exact kind of bound used is "not before": a deadline the
//! library computes from the monotonic clock cannot fire early.

mod common;
#[path = "common/lazy.rs"]
mod lazy;
#[path = "common/v6relay.rs"]
mod v6relay;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use common::server::{chunked, head, Reply, Step, TestServer};
use common::tls::TlsRelay;
use common::{builder, client, completion_body, content_event, finish_event, stream_events, user};
use modelapi::{CancelToken, ChatStream, Error, ModelApi, StreamEvent, WaitsOn};
use serde_json::json;

const ZERO: Duration = Duration::ZERO;
/// The pause between two polls of a "frame loop" (keeps the loops from
/// hogging a CPU of a shared machine).
const FRAME: Duration = Duration::from_millis(1);
/// No test loop runs longer than this: a hang fails instead.
const LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------
// Driving a stream by polls
// ---------------------------------------------------------------------

/// One poll's outcome, owned.
#[derive(Debug)]
enum Got {
    Pending,
    Content(String),
    /// A non-content event.
    Other,
    End,
    Failed(Error),
}

fn poll_once(stream: &mut ChatStream, wait: Duration) -> Got {
    match stream.poll_event(wait) {
        Poll::Pending => Got::Pending,
        Poll::Ready(Some(Ok(StreamEvent::Content(piece)))) => Got::Content(piece.to_string()),
        Poll::Ready(Some(Ok(_))) => Got::Other,
        Poll::Ready(Some(Err(error))) => Got::Failed(error),
        Poll::Ready(None) => Got::End,
    }
}

/// What a loop of polls saw.
#[derive(Debug, Default)]
struct Run {
    text: String,
    /// Content pieces, in order.
    pieces: Vec<String>,
    events: usize,
    polls: usize,
    pendings: usize,
    /// Pending polls after which the stream waited on a socket.
    pendings_on_socket: usize,
    /// Pending polls after which it waited on no socket (backoff).
    pendings_on_no_socket: usize,
    /// Pending polls after which it waited to write.
    pendings_wanting_write: usize,
    /// How long each Pending poll took.
    pending_costs: Vec<Duration>,
    /// The longest single `poll_event` call.
    longest_poll: Duration,
    /// The longest stretch of consecutive Pending polls that waited on no
    /// socket, from the first of them to the last.
    longest_no_socket: Duration,
    /// When the first event came.
    first_event_at: Option<Instant>,
    /// When the poll that returned the last event started.
    last_event_poll_started: Option<Instant>,
    /// When the run ended (end or error).
    ended_at: Option<Instant>,
    error: Option<Error>,
}

impl Run {
    fn median_pending_cost(&self) -> Duration {
        let mut costs = self.pending_costs.clone();
        costs.sort();
        costs.get(costs.len() / 2).copied().unwrap_or_default()
    }
}

/// Polls `stream` with `wait` until it ends or fails, sleeping `pause`
/// after each Pending (a frame). Panics after [`LIMIT`].
fn drive(stream: &mut ChatStream, wait: Duration, pause: Duration) -> Run {
    let mut run = Run::default();
    let started = Instant::now();
    let mut no_socket_since: Option<Instant> = None;
    loop {
        assert!(
            started.elapsed() < LIMIT,
            "the stream did not end within {LIMIT:?}: {run:?}"
        );
        let before = Instant::now();
        let got = poll_once(stream, wait);
        let cost = before.elapsed();
        run.polls += 1;
        run.longest_poll = run.longest_poll.max(cost);
        match got {
            Got::Pending => {
                run.pendings += 1;
                run.pending_costs.push(cost);
                match stream.waits_on() {
                    Some(WaitsOn { wants_write, .. }) => {
                        run.pendings_on_socket += 1;
                        run.pendings_wanting_write += usize::from(wants_write);
                        no_socket_since = None;
                    }
                    None => {
                        run.pendings_on_no_socket += 1;
                        let since = *no_socket_since.get_or_insert(before);
                        run.longest_no_socket = run.longest_no_socket.max(since.elapsed());
                    }
                }
                if !pause.is_zero() {
                    thread::sleep(pause);
                }
            }
            other => {
                no_socket_since = None;
                match other {
                    Got::Content(piece) => {
                        run.text.push_str(&piece);
                        run.pieces.push(piece);
                    }
                    Got::Other => {}
                    Got::End => {
                        run.ended_at = Some(Instant::now());
                        return run;
                    }
                    Got::Failed(error) => {
                        run.ended_at = Some(Instant::now());
                        run.error = Some(error);
                        return run;
                    }
                    Got::Pending => unreachable!(),
                }
                run.events += 1;
                run.first_event_at.get_or_insert_with(Instant::now);
                run.last_event_poll_started = Some(before);
            }
        }
    }
}

/// A host loop that waits on the stream's descriptor with poll(2): after
/// each wake-up it polls the stream until Pending, then waits again for
/// what [`ChatStream::waits_on`] asks (POLLIN | POLLOUT while it writes: an
/// answer may come before the request is sent whole; POLLIN to read);
/// with no socket to wait on it just polls again after a frame.
#[derive(Debug, Default)]
struct HostRun {
    text: String,
    /// Returns from poll(2).
    wakeups: usize,
    /// poll(2) calls that ended by their own timeout, nothing ready.
    idle_waits: usize,
    /// Waits while the stream writes (POLLIN | POLLOUT).
    write_waits: usize,
    /// Turns with no socket to wait on.
    no_socket_turns: usize,
    /// The longest single `poll_event(ZERO)` call.
    longest_poll: Duration,
    error: Option<Error>,
}

fn host_loop(stream: &mut ChatStream, fd_timeout: Duration) -> HostRun {
    let mut run = HostRun::default();
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < LIMIT,
            "the host loop did not end within {LIMIT:?}: {run:?}"
        );
        // Drain: everything the stream can give now.
        loop {
            let before = Instant::now();
            let got = poll_once(stream, ZERO);
            run.longest_poll = run.longest_poll.max(before.elapsed());
            match got {
                Got::Pending => break,
                Got::Content(piece) => run.text.push_str(&piece),
                Got::Other => {}
                Got::End => return run,
                Got::Failed(error) => {
                    run.error = Some(error);
                    return run;
                }
            }
        }
        match stream.waits_on() {
            Some(WaitsOn { fd, wants_write }) => {
                let events = if wants_write {
                    run.write_waits += 1;
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                let ready = wait_fd(fd, events, fd_timeout);
                run.wakeups += 1;
                if ready == 0 {
                    run.idle_waits += 1;
                }
            }
            None => {
                run.no_socket_turns += 1;
                thread::sleep(FRAME);
            }
        }
    }
}

/// poll(2) on one descriptor: what poll returned (0: timed out).
fn wait_fd(fd: std::os::fd::RawFd, events: libc::c_short, timeout: Duration) -> libc::c_int {
    let mut fds = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    loop {
        // SAFETY: `fds` is a live array of one pollfd; the descriptor is
        // only polled, never read, written or closed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout.as_millis() as libc::c_int) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        assert!(n >= 0, "poll(2): {}", std::io::Error::last_os_error());
        return n;
    }
}

// ---------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------

fn sse_head() -> Vec<u8> {
    head(
        200,
        &[
            ("Content-Type", "text/event-stream".into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
    )
}

/// An SSE reply of `pieces` (then a finish and `[DONE]`).
fn sse_reply(pieces: &[&str]) -> Reply {
    let events = stream_events(pieces);
    Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A server whose first `failures` requests get `failure()`, then an SSE
/// answer of "ok".
fn flaky(failures: usize, failure: impl Fn() -> Reply + Send + Sync + 'static) -> TestServer {
    let count = Arc::new(AtomicUsize::new(0));
    TestServer::start(move |_| {
        if count.fetch_add(1, Ordering::SeqCst) < failures {
            return failure();
        }
        sse_reply(&["o", "k"])
    })
}

/// A port on 127.0.0.1 with nothing listening.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn ca_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A server that sends the head and one chunk ("first"), then stays
/// silent for 10 s.
fn stalling_after_first_chunk() -> TestServer {
    TestServer::start(|_| {
        Reply::script(vec![
            Step::Write(sse_head()),
            Step::Write(chunked(content_event("first").as_bytes())),
            Step::Sleep(Duration::from_secs(10)),
        ])
    })
}

// ---------------------------------------------------------------------
// 1. A late response head
// ---------------------------------------------------------------------

#[test]
fn a_late_head_is_pending_polls_then_every_event() {
    let delay = Duration::from_millis(500);
    let server = TestServer::start(move |_| {
        let mut reply = sse_reply(&["late ", "but ", "whole"]);
        reply.steps.insert(0, Step::Sleep(delay));
        reply
    });
    let api = client(&server.url());

    let called = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let start_took = called.elapsed();
    assert!(
        start_took < delay / 4,
        "stream_start took {start_took:?}, against a server {delay:?} late"
    );
    assert!(
        matches!(poll_once(&mut stream, ZERO), Got::Pending),
        "the first poll cannot have the answer of a server {delay:?} late"
    );

    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "late but whole");
    assert_eq!(run.pieces, ["late ", "but ", "whole"]);
    // The server's delay began when the request came, after `called`.
    let first_event = run.first_event_at.expect("events came") - called;
    assert!(
        first_event >= delay,
        "the first event came {first_event:?} after stream_start, before the server's \
         delay of {delay:?} was over"
    );
    assert!(run.pendings >= 10, "{} Pending polls", run.pendings);
    assert!(
        run.pendings_on_socket >= run.pendings * 9 / 10,
        "waiting for the head, the stream waits on its socket: {run:?}"
    );
    assert_eq!(
        run.pendings_wanting_write, 0,
        "the small request was sent at once; the stream waits to read"
    );
    assert!(
        run.longest_poll < delay / 4,
        "a poll with wait ZERO took {:?}",
        run.longest_poll
    );
    // "A few microseconds" per the contract; a generous bound on a shared
    // machine, on the median so one preemption does not count.
    assert!(
        run.median_pending_cost() < Duration::from_millis(2),
        "median Pending poll(ZERO): {:?}",
        run.median_pending_cost()
    );
    eprintln!(
        "late head: {} Pending polls, median {:?}, longest poll {:?}",
        run.pendings,
        run.median_pending_cost(),
        run.longest_poll
    );
    let answer = stream.completion();
    assert_eq!(answer.content(), Some("late but whole"));
    assert_eq!(answer.finish_reason(), Some("stop"));
    assert!(stream.is_finished());
    assert!(matches!(poll_once(&mut stream, ZERO), Got::End));
    assert_eq!(
        stream.waits_on(),
        None,
        "a finished stream waits on nothing"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_poll_with_a_wait_returns_at_the_first_event_or_after_the_wait() {
    let delay = Duration::from_millis(400);
    let server = TestServer::start(move |_| {
        let mut reply = sse_reply(&["a", "b"]);
        reply.steps.insert(0, Step::Sleep(delay));
        reply
    });
    let api = client(&server.url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();

    // Nothing within 100 ms: Pending, and not before the 100 ms passed.
    let wait = Duration::from_millis(100);
    let before = Instant::now();
    assert!(matches!(poll_once(&mut stream, wait), Got::Pending));
    let took = before.elapsed();
    assert!(
        took >= wait && took < wait + Duration::from_secs(1),
        "a Pending poll with a wait of {wait:?} took {took:?}"
    );

    // A long wait ends with the first event, not at the end of the wait.
    let long = Duration::from_secs(8);
    let before = Instant::now();
    let got = poll_once(&mut stream, long);
    let took = before.elapsed();
    assert!(
        matches!(&got, Got::Content(piece) if piece == "a"),
        "{got:?}"
    );
    assert!(
        took < long / 4,
        "the poll returned {took:?} after it began, although the event came after about {:?}",
        delay - wait
    );
    let run = drive(&mut stream, Duration::from_millis(50), ZERO);
    assert_eq!(run.text, "b");
    assert!(run.error.is_none(), "{:?}", run.error);
}

// ---------------------------------------------------------------------
// 2. Slow drips
// ---------------------------------------------------------------------

#[test]
fn a_dripped_response_is_assembled_exactly_by_zero_polls() {
    let pieces = [
        "Drip",
        "ping ",
        "slowly, ",
        "byte by byte ",
        "— ünïcode too",
    ];
    let body: Vec<u8> = stream_events(&pieces)
        .iter()
        .flat_map(|event| chunked(event.as_bytes()))
        .chain(b"0\r\n\r\n".iter().copied())
        .collect();
    // The head too comes a few bytes at a time.
    let whole = [sse_head(), body].concat();
    let server = TestServer::start(move |_| {
        Reply::script(vec![
            Step::Drip {
                bytes: whole.clone(),
                piece: 7,
                delay: Duration::from_millis(2),
            },
            Step::Close,
        ])
    });
    // The drip lasts much longer than the timeout: only silence counts.
    let timeout = Duration::from_millis(250);
    let api = builder(&server.url()).timeout(timeout).build().unwrap();
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    let took = started.elapsed();
    assert!(run.error.is_none(), "{:?} after {took:?}", run.error);
    assert_eq!(run.text, pieces.concat());
    assert_eq!(run.pieces, pieces);
    assert!(
        run.pendings >= 50,
        "a drip of ~{} pieces gave only {} Pending polls",
        pieces.len(),
        run.pendings
    );
    assert!(
        took > timeout,
        "the drip ({took:?}) should outlast the timeout for this test to mean anything"
    );
    let answer = stream.completion();
    assert_eq!(answer.content(), Some(pieces.concat().as_str()));
    assert_eq!(answer.finish_reason(), Some("stop"));
    assert!(stream.is_finished());
}

#[test]
fn a_plain_json_answer_dripped_to_a_stream_request_is_read_by_polls() {
    let body = completion_body("a whole answer at once");
    let whole = [
        head(
            200,
            &[
                ("Content-Type", "application/json".into()),
                ("Content-Length", body.len().to_string()),
            ],
        ),
        body.into_bytes(),
    ]
    .concat();
    let server = TestServer::start(move |_| {
        Reply::script(vec![Step::Drip {
            bytes: whole.clone(),
            piece: 16,
            delay: Duration::from_millis(2),
        }])
    });
    let api = client(&server.url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "a whole answer at once");
    assert!(run.pendings > 5, "{run:?}");
    assert_eq!(stream.completion().usage.map(|u| u.total_tokens), Some(5));
}

// ---------------------------------------------------------------------
// 3. Retries and their backoff, spent Pending
// ---------------------------------------------------------------------

/// Drives a stream of `api` against `server` (whose first answer is a
/// failure to retry after about `backoff`, at least `min_backoff`) and
/// checks the retry happened inside polls, none of which blocked.
fn assert_retried_inside_polls(
    api: &ModelApi,
    server: &TestServer,
    min_backoff: Duration,
    what: &str,
) {
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    assert!(
        started.elapsed() < min_backoff / 4,
        "{what}: stream_start took {:?}",
        started.elapsed()
    );
    let run = drive(&mut stream, ZERO, FRAME);
    let took = started.elapsed();
    eprintln!(
        "{what}: {took:?} in all, {} polls, longest {:?}, {} Pending on no socket \
         (longest stretch {:?})",
        run.polls, run.longest_poll, run.pendings_on_no_socket, run.longest_no_socket
    );
    assert!(run.error.is_none(), "{what}: {:?}", run.error);
    assert_eq!(run.text, "ok", "{what}");
    assert_eq!(server.requests().len(), 2, "{what}: one retry");
    assert!(
        took >= min_backoff,
        "{what}: done in {took:?}, before the backoff of at least {min_backoff:?}"
    );
    assert!(
        run.longest_no_socket >= min_backoff / 2,
        "{what}: during the backoff the stream waits on no socket; the longest such \
         stretch was {:?}",
        run.longest_no_socket
    );
    assert!(
        run.longest_poll < min_backoff / 4,
        "{what}: one poll(ZERO) took {:?}, against a backoff of {min_backoff:?}",
        run.longest_poll
    );
    assert!(stream.is_finished());
}

#[test]
fn a_500_is_retried_after_a_backoff_spent_pending() {
    let server = flaky(1, || {
        Reply::json(500, r#"{"error":{"message":"try again"}}"#)
    });
    let backoff = Duration::from_millis(800);
    let api = builder(&server.url())
        .retry_backoff(backoff)
        .build()
        .unwrap();
    // Up to 25 % jitter off the backoff.
    assert_retried_inside_polls(&api, &server, backoff * 3 / 4, "500");
}

#[test]
fn a_429_with_retry_after_is_retried_after_it_spent_pending() {
    let server = flaky(1, || {
        Reply::json(429, r#"{"error":{"message":"slow down"}}"#).with_header("Retry-After", "1")
    });
    let api = client(&server.url());
    assert_retried_inside_polls(&api, &server, Duration::from_secs(1), "429 Retry-After: 1");
}

#[test]
fn a_429_with_retry_after_ms_is_retried_after_it_spent_pending() {
    let server = flaky(1, || {
        Reply::json(429, "{}").with_header("retry-after-ms", "600")
    });
    let api = client(&server.url());
    assert_retried_inside_polls(
        &api,
        &server,
        Duration::from_millis(600),
        "429 retry-after-ms: 600",
    );
}

#[test]
fn an_error_status_that_is_not_retried_comes_from_a_poll() {
    let server = flaky(usize::MAX, || {
        Reply::json(
            400,
            r#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#,
        )
    });
    let api = client(&server.url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    match &run.error {
        Some(Error::Http {
            status: 400,
            message,
            error_type,
            ..
        }) => {
            assert_eq!(message, "bad model");
            assert_eq!(error_type.as_deref(), Some("invalid_request_error"));
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1);
    assert!(matches!(poll_once(&mut stream, ZERO), Got::End));
}

#[test]
fn a_pooled_connection_the_server_dropped_is_replaced_inside_polls() {
    // The second request on the first connection finds it closed.
    let seen = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(move |request| {
        if request.connection == 0 && seen.fetch_add(1, Ordering::SeqCst) == 1 {
            return Reply::script(vec![Step::Close]);
        }
        sse_reply(&["fresh"])
    });
    let api = builder(&server.url()).max_retries(0).build().unwrap();
    for _ in 0..2 {
        let mut stream = api.stream_start(&user("hi"), None).unwrap();
        let run = drive(&mut stream, ZERO, FRAME);
        assert!(run.error.is_none(), "{:?}", run.error);
        assert_eq!(run.text, "fresh");
    }
    assert_eq!(
        server.accepted(),
        2,
        "the dead pooled connection was replaced"
    );
}

// ---------------------------------------------------------------------
// 4. Refused and reset connections
// ---------------------------------------------------------------------

#[test]
fn a_refused_connection_fails_at_a_poll() {
    let url = format!("http://127.0.0.1:{}", dead_port());
    let api = builder(&url).max_retries(0).build().unwrap();
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    match &run.error {
        Some(Error::Transport(message)) => {
            assert!(message.contains("refused"), "{message}")
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(run.text.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(poll_once(&mut stream, ZERO), Got::End));
    assert_eq!(stream.waits_on(), None);
}

#[test]
fn a_refused_connection_is_retried_with_the_backoff_spent_pending() {
    let url = format!("http://127.0.0.1:{}", dead_port());
    let backoff = Duration::from_millis(300);
    let api = builder(&url)
        .max_retries(2)
        .retry_backoff(backoff)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    let took = started.elapsed();
    assert!(
        matches!(&run.error, Some(Error::Transport(m)) if m.contains("refused")),
        "{:?}",
        run.error
    );
    // Two backoffs: 300 ms and 600 ms, each less at most 25 %.
    let min_total = (backoff + backoff * 2) * 3 / 4;
    assert!(
        took >= min_total,
        "failed after {took:?}, before the backoffs"
    );
    assert!(
        run.longest_no_socket >= backoff * 3 / 4 / 2,
        "the backoff is spent waiting on no socket: {:?}",
        run.longest_no_socket
    );
    assert!(
        run.longest_poll < backoff * 3 / 4 / 4,
        "one poll(ZERO) took {:?}",
        run.longest_poll
    );
}

#[test]
fn a_reset_mid_stream_fails_after_the_events_that_came() {
    let server = TestServer::start(|_| {
        Reply::script(vec![
            Step::Write(sse_head()),
            Step::Write(chunked(content_event("par").as_bytes())),
            Step::Write(chunked(content_event("tial").as_bytes())),
            // Let the client read both before the reset.
            Step::Sleep(Duration::from_millis(200)),
            Step::Reset,
        ])
    });
    let api = client(&server.url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    assert_eq!(run.pieces, ["par", "tial"]);
    assert!(
        matches!(&run.error, Some(Error::Transport(m)) if m.contains("reset")),
        "{:?}",
        run.error
    );
    let answer = stream.completion();
    assert_eq!(answer.content(), Some("partial"));
    assert_eq!(answer.finish_reason(), None);
    assert!(!stream.is_finished());
    assert!(matches!(poll_once(&mut stream, ZERO), Got::End));
    assert_eq!(server.requests().len(), 1, "a begun stream is not retried");
}

// ---------------------------------------------------------------------
// 5. A stall: the timeout counts time without progress across polls
// ---------------------------------------------------------------------

/// Polls a stalling stream with `wait` (and `pause` after Pending) and
/// checks it times out after the timeout, counted from its last byte.
fn assert_stall_times_out(wait: Duration, pause: Duration) {
    let server = stalling_after_first_chunk();
    let timeout = Duration::from_millis(300);
    let api = builder(&server.url()).timeout(timeout).build().unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, wait, pause);
    assert_eq!(run.pieces, ["first"], "wait {wait:?}");
    assert!(
        matches!(run.error, Some(Error::Timeout(_))),
        "wait {wait:?}: {:?}",
        run.error
    );
    // The last byte was read by the poll that returned "first", at the
    // earliest when that poll began.
    let last_byte_at_most = run.last_event_poll_started.unwrap();
    let failed_at = run.ended_at.unwrap();
    let silence = failed_at - last_byte_at_most;
    assert!(
        silence >= timeout,
        "wait {wait:?}: timed out {silence:?} after the last byte, before the {timeout:?} timeout"
    );
    assert!(
        silence < timeout + Duration::from_secs(2),
        "wait {wait:?}: timed out only {silence:?} after the last byte"
    );
    // Waiting counted across polls: no poll took the whole timeout (unless
    // it was asked to wait that long).
    if wait < timeout / 4 {
        assert!(
            run.longest_poll < timeout / 2,
            "wait {wait:?}: one poll took {:?}",
            run.longest_poll
        );
        assert!(run.pendings >= 3, "wait {wait:?}: {run:?}");
    }
    // The timed-out stream is over, and its text is kept.
    assert_eq!(stream.completion().content(), Some("first"));
    assert!(matches!(poll_once(&mut stream, ZERO), Got::End));
    eprintln!(
        "stall, wait {wait:?}: timed out {silence:?} after the last byte, {} Pending",
        run.pendings
    );
}

#[test]
fn a_stall_times_out_under_zero_polls() {
    assert_stall_times_out(ZERO, FRAME);
}

#[test]
fn a_stall_times_out_under_short_waits() {
    assert_stall_times_out(Duration::from_millis(20), ZERO);
}

#[test]
fn a_stall_times_out_under_a_wait_longer_than_the_timeout() {
    // A poll asked to wait 5 s still ends at the timeout.
    assert_stall_times_out(Duration::from_secs(5), ZERO);
}

#[test]
fn no_head_at_all_times_out_under_polls_without_a_retry() {
    let server = TestServer::start(|_| Reply::script(vec![Step::Sleep(Duration::from_secs(10))]));
    let timeout = Duration::from_millis(300);
    let api = builder(&server.url()).timeout(timeout).build().unwrap();
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    let took = started.elapsed();
    assert!(
        matches!(run.error, Some(Error::Timeout(_))),
        "{:?}",
        run.error
    );
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "timed out after {took:?}"
    );
    assert!(run.longest_poll < timeout / 2, "{:?}", run.longest_poll);
    assert_eq!(server.requests().len(), 1, "a timeout is not retried");
}

#[test]
fn a_host_pause_longer_than_the_timeout_counts_only_the_network_silence() {
    // "first" at once, "second" 100 ms later, the end 100 ms after that.
    let server = TestServer::start(|_| {
        Reply::script(vec![
            Step::Write(sse_head()),
            Step::Write(chunked(content_event("first").as_bytes())),
            Step::Sleep(Duration::from_millis(100)),
            Step::Write(chunked(content_event("second").as_bytes())),
            Step::Sleep(Duration::from_millis(100)),
            Step::Write(chunked(finish_event("stop").as_bytes())),
            Step::Write(chunked(common::DONE.as_bytes())),
            Step::Write(b"0\r\n\r\n".to_vec()),
        ])
    });
    let timeout = Duration::from_millis(300);
    let api = builder(&server.url()).timeout(timeout).build().unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let first = loop {
        match poll_once(&mut stream, ZERO) {
            Got::Pending => thread::sleep(FRAME),
            other => break other,
        }
    };
    assert!(
        matches!(&first, Got::Content(p) if p == "first"),
        "{first:?}"
    );
    // The host does not poll for twice the timeout; meanwhile the rest of
    // the answer arrives. Bytes waiting in the socket are progress.
    thread::sleep(timeout * 2);
    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "second");
    assert!(stream.is_finished());

    // The same pause against a server that sent nothing meanwhile: the
    // next poll fails at once with a timeout.
    let server = stalling_after_first_chunk();
    let api = builder(&server.url()).timeout(timeout).build().unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    loop {
        match poll_once(&mut stream, ZERO) {
            Got::Pending => thread::sleep(FRAME),
            Got::Content(_) => break,
            other => panic!("{other:?}"),
        }
    }
    thread::sleep(timeout * 2);
    let before = Instant::now();
    let got = poll_once(&mut stream, ZERO);
    assert!(matches!(got, Got::Failed(Error::Timeout(_))), "{got:?}");
    assert!(before.elapsed() < timeout / 2, "{:?}", before.elapsed());
}

// ---------------------------------------------------------------------
// 6. TLS
// ---------------------------------------------------------------------

fn tls_backend() -> TestServer {
    TestServer::start(|_| sse_reply(&["sec", "ure"]))
}

#[test]
fn a_tls_stream_works_by_polls_and_by_a_host_loop() {
    let server = tls_backend();
    let relay = TlsRelay::start(server.addr());
    let api = ModelApi::builder("m", relay.url())
        .ca_file(relay.write_ca_file(&ca_dir()))
        .api_key("sk-tls-poll")
        .mock_responses(vec![])
        .build()
        .unwrap();

    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "secure");
    assert!(run.pendings > 0, "a handshake takes more than one poll");
    assert!(
        run.longest_poll < Duration::from_millis(250),
        "one poll(ZERO) took {:?}",
        run.longest_poll
    );

    assert_eq!(relay.accepted(), 1);

    // A fresh client, so that the host loop drives a whole handshake too.
    let api = ModelApi::builder("m", relay.url())
        .ca_file(relay.write_ca_file(&ca_dir()))
        .api_key("sk-tls-poll")
        .mock_responses(vec![])
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let host = host_loop(&mut stream, Duration::from_secs(2));
    eprintln!("TLS host loop: {host:?}");
    assert!(host.error.is_none(), "{:?}", host.error);
    assert_eq!(host.text, "secure");
    assert_eq!(relay.accepted(), 2, "a new connection, a new handshake");
    assert_eq!(host.idle_waits, 0, "{host:?}");
    // The handshake's round trips and the answer: a few wake-ups (a poll
    // that keeps finding bytes reads on without waiting, so it may be just
    // one), no spinning, and no poll(ZERO) that blocked.
    assert!(host.wakeups >= 1, "{host:?}");
    assert!(host.wakeups < 30, "the host loop spun: {host:?}");
    assert!(
        host.longest_poll < Duration::from_millis(250),
        "one poll(ZERO) took {:?}",
        host.longest_poll
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.header("authorization"), Some("Bearer sk-tls-poll"));
    }
}

#[test]
fn an_untrusted_certificate_fails_at_a_poll() {
    let server = tls_backend();
    let relay = TlsRelay::start(server.addr());
    let api = ModelApi::builder("m", relay.url())
        .api_key("sk-must-not-leave")
        .mock_responses(vec![])
        .build()
        .unwrap();
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    assert!(started.elapsed() < Duration::from_millis(250));
    let run = drive(&mut stream, ZERO, FRAME);
    let err = run.error.expect("the handshake fails");
    match &err {
        Error::Transport(m) => assert!(m.contains("certificate"), "{m}"),
        other => panic!("expected a TLS transport error, got {other:?}"),
    }
    assert!(!err.to_string().contains("sk-must-not-leave"));
    assert!(run.text.is_empty());
    assert!(server.requests().is_empty(), "nothing reached the server");
    assert_eq!(relay.wait_handshakes_failed(1, Duration::from_secs(2)), 1);
}

// ---------------------------------------------------------------------
// 7. Cancel
// ---------------------------------------------------------------------

#[test]
fn cancel_between_polls_aborts_at_the_next_poll() {
    let server = stalling_after_first_chunk();
    let api = client(&server.url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    loop {
        match poll_once(&mut stream, ZERO) {
            Got::Pending => thread::sleep(FRAME),
            Got::Content(piece) => {
                assert_eq!(piece, "first");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    stream.cancel_token().cancel();
    let before = Instant::now();
    let got = poll_once(&mut stream, ZERO);
    assert!(matches!(got, Got::Failed(Error::Aborted(_))), "{got:?}");
    assert!(before.elapsed() < Duration::from_millis(100));
    assert!(matches!(poll_once(&mut stream, ZERO), Got::End));
    assert_eq!(stream.waits_on(), None);
    assert_eq!(stream.completion().content(), Some("first"));
}

#[test]
fn a_token_given_to_stream_start_cancels_while_the_head_is_awaited() {
    let count = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(move |_| {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::script(vec![Step::Sleep(Duration::from_secs(10))]);
        }
        sse_reply(&["after"])
    });
    let api = client(&server.url());
    let token = CancelToken::new();
    let mut stream = api
        .with_cancel(&token)
        .stream_start(&user("hi"), None)
        .unwrap();
    // Poll until the request has reached the server.
    let deadline = Instant::now() + LIMIT;
    while server.requests().is_empty() {
        assert!(matches!(poll_once(&mut stream, ZERO), Got::Pending));
        assert!(Instant::now() < deadline);
        thread::sleep(FRAME);
    }
    assert!(stream.waits_on().is_some());
    token.cancel();
    let got = poll_once(&mut stream, ZERO);
    assert!(matches!(got, Got::Failed(Error::Aborted(_))), "{got:?}");
    assert!(matches!(poll_once(&mut stream, ZERO), Got::End));
    assert_eq!(
        server.requests().len(),
        1,
        "a cancelled stream is not retried"
    );

    // A cancelled token refuses new streams at once; the client goes on.
    assert!(matches!(
        api.with_cancel(&token).stream_start(&user("hi"), None),
        Err(Error::Aborted(_))
    ));
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    assert_eq!(run.text, "after");
    assert!(run.error.is_none(), "{:?}", run.error);
}

#[test]
fn cancel_during_a_backoff_aborts_at_the_next_poll() {
    let server = TestServer::start(|_| Reply::json(503, "{}").with_header("Retry-After", "30"));
    let api = client(&server.url());
    let token = CancelToken::new();
    let mut stream = api
        .with_cancel(&token)
        .stream_start(&user("hi"), None)
        .unwrap();
    // Poll until the 503 has been read and the backoff begun: the stream
    // then waits on no socket.
    let deadline = Instant::now() + LIMIT;
    let mut in_backoff = 0;
    while in_backoff < 20 {
        assert!(Instant::now() < deadline, "no backoff seen");
        let got = poll_once(&mut stream, ZERO);
        assert!(matches!(got, Got::Pending), "{got:?}");
        if stream.waits_on().is_none() && server.requests().len() == 1 {
            in_backoff += 1;
        }
        thread::sleep(FRAME);
    }
    token.cancel();
    let before = Instant::now();
    let got = poll_once(&mut stream, ZERO);
    assert!(matches!(got, Got::Failed(Error::Aborted(_))), "{got:?}");
    assert!(before.elapsed() < Duration::from_millis(100));
    assert!(matches!(poll_once(&mut stream, ZERO), Got::End));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.requests().len(), 1, "no retry after the cancel");
}

#[test]
fn cancel_from_another_thread_wakes_a_host_waiting_on_the_fd() {
    let server = stalling_after_first_chunk();
    let api = client(&server.url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    loop {
        match poll_once(&mut stream, ZERO) {
            Got::Pending => thread::sleep(FRAME),
            Got::Content(_) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(poll_once(&mut stream, ZERO), Got::Pending));
    let WaitsOn { fd, wants_write } = stream.waits_on().expect("waits on its socket");
    assert!(!wants_write);
    let token = stream.cancel_token();
    let (tx, rx) = std::sync::mpsc::channel();
    let canceller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        let at = Instant::now();
        token.cancel();
        tx.send(at).unwrap();
    });
    let ready = wait_fd(fd, libc::POLLIN, Duration::from_secs(5));
    let woke_at = Instant::now();
    canceller.join().unwrap();
    let cancelled_at = rx.recv().unwrap();
    assert_eq!(ready, 1, "the cancel wakes the host's poll(2)");
    assert!(
        woke_at.saturating_duration_since(cancelled_at) < Duration::from_secs(1),
        "woke {:?} after the cancel",
        woke_at.saturating_duration_since(cancelled_at)
    );
    let got = poll_once(&mut stream, ZERO);
    assert!(matches!(got, Got::Failed(Error::Aborted(_))), "{got:?}");
}

// ---------------------------------------------------------------------
// 8. A host loop waiting on the descriptor
// ---------------------------------------------------------------------

#[test]
fn a_host_loop_on_the_fd_wakes_once_per_arrival() {
    const N: usize = 10;
    let gap = Duration::from_millis(60);
    let server = TestServer::start(move |_| {
        let mut steps = vec![Step::Write(sse_head())];
        for i in 0..N {
            steps.push(Step::Sleep(gap));
            steps.push(Step::Write(chunked(
                content_event(&format!("{i} ")).as_bytes(),
            )));
        }
        steps.push(Step::Sleep(gap));
        let tail = [
            chunked(finish_event("stop").as_bytes()),
            chunked(common::DONE.as_bytes()),
            b"0\r\n\r\n".to_vec(),
        ]
        .concat();
        steps.push(Step::Write(tail));
        Reply {
            steps,
            keep_alive: true,
        }
    });
    let api = client(&server.url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let host = host_loop(&mut stream, Duration::from_secs(2));
    eprintln!("host loop, {N} chunks: {host:?}");
    assert!(host.error.is_none(), "{:?}", host.error);
    let expected: String = (0..N).map(|i| format!("{i} ")).collect();
    assert_eq!(host.text, expected);
    assert_eq!(host.idle_waits, 0, "every wait ended with the socket ready");
    assert!(host.wakeups >= 1);
    // One wake-up per arrival: the head, N chunks, the tail, and a couple
    // for connecting; never a busy loop.
    assert!(
        host.wakeups <= N + 4,
        "{} wake-ups for {N} chunks: {host:?}",
        host.wakeups
    );
    assert!(
        host.no_socket_turns <= 1,
        "nothing here waits on a clock: {host:?}"
    );
    // And no poll(ZERO) waited for a chunk itself (which would also keep
    // the wake-ups low).
    assert!(
        host.longest_poll < gap,
        "one poll(ZERO) took {:?}, against gaps of {gap:?}",
        host.longest_poll
    );
    assert!(stream.is_finished());
    assert_eq!(stream.completion().content(), Some(expected.as_str()));
}

#[test]
fn a_host_loop_waits_to_write_a_large_request() {
    // 8 MiB of request against a server that reads nothing for 300 ms: the
    // socket fills and the stream must wait to write.
    let events = stream_events(&["big ", "ask"]).concat();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{events}",
        events.len()
    );
    let server = lazy::LazyServer::start(Duration::from_millis(300), response.into_bytes());
    let api = client(&server.url());
    let long = "x".repeat(8 * 1024 * 1024);
    let mut stream = api.stream_start(&user(&long), None).unwrap();

    // Zero polls until the stream asks to write.
    let deadline = Instant::now() + LIMIT;
    let mut longest = Duration::ZERO;
    loop {
        let before = Instant::now();
        let got = poll_once(&mut stream, ZERO);
        longest = longest.max(before.elapsed());
        assert!(matches!(got, Got::Pending), "{got:?}");
        if stream.waits_on().is_some_and(|w| w.wants_write) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream never waited to write"
        );
        thread::sleep(FRAME);
    }
    assert!(
        longest < Duration::from_millis(150),
        "a poll(ZERO) writing to a full socket took {longest:?}"
    );
    let host = host_loop(&mut stream, Duration::from_secs(2));
    eprintln!("host loop, large request: {host:?}");
    assert!(host.error.is_none(), "{:?}", host.error);
    assert_eq!(host.text, "big ask");
    assert!(host.write_waits >= 1, "{host:?}");
    assert_eq!(host.idle_waits, 0, "{host:?}");
    let received = server.received(Duration::from_secs(5)).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(
        body["messages"][0]["content"].as_str().map(str::len),
        Some(long.len()),
        "the whole request arrived"
    );
}

#[test]
fn a_host_loop_goes_through_a_backoff_on_no_socket() {
    let server = flaky(1, || {
        Reply::json(429, "{}").with_header("retry-after-ms", "300")
    });
    let api = client(&server.url());
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let host = host_loop(&mut stream, Duration::from_secs(2));
    eprintln!("host loop through a backoff: {host:?}");
    assert!(host.error.is_none(), "{:?}", host.error);
    assert_eq!(host.text, "ok");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        host.no_socket_turns >= 10,
        "the backoff waits on no socket: {host:?}"
    );
    assert_eq!(host.idle_waits, 0, "{host:?}");
    assert!(host.wakeups <= 8, "{host:?}");
    assert_eq!(server.requests().len(), 2);
}

// ---------------------------------------------------------------------
// 9. Redirects
// ---------------------------------------------------------------------

#[test]
fn a_307_is_followed_inside_polls_with_credentials_for_the_same_origin() {
    let server = TestServer::start(|request| {
        if request.path == "/v1/chat/completions" {
            let head = head(
                307,
                &[
                    ("Location", "/moved/v1/chat/completions".into()),
                    ("Content-Length", "0".into()),
                ],
            );
            Reply::raw(head).keep_alive(true)
        } else {
            sse_reply(&["moved ", "here"])
        }
    });
    let api = builder(&server.url())
        .api_key("sk-same-origin")
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "moved here");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].path, "/moved/v1/chat/completions");
    assert_eq!(requests[1].body, requests[0].body);
    assert_eq!(
        requests[1].header("authorization"),
        Some("Bearer sk-same-origin")
    );
}

#[test]
fn a_307_to_another_origin_inside_polls_drops_the_credentials() {
    let elsewhere = TestServer::start(|_| sse_reply(&["else", "where"]));
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
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "elsewhere");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-never-elsewhere")
    );
    let moved = elsewhere.requests();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].method, "POST");
    assert_eq!(moved[0].header("authorization"), None);
    assert_eq!(moved[0].header("x-api-key"), None);
    assert_eq!(moved[0].header("x-trace"), Some("kept"));
}

// ---------------------------------------------------------------------
// 10. Streams opened otherwise; canned replies; whole request bodies
// ---------------------------------------------------------------------

#[test]
fn polls_work_on_a_stream_opened_by_the_blocking_call() {
    let server = TestServer::start(|_| sse_reply(&["blocking ", "then ", "polled"]));
    let api = client(&server.url());
    let mut stream = api.stream(&user("hi"), None).unwrap();
    // Open: the head has come; the stream reads its body next.
    let waits = stream
        .waits_on()
        .expect("an open stream waits on its socket");
    assert!(!waits.wants_write);
    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "blocking then polled");

    // And the other way: started, then read by the blocking calls, mixed.
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let first = loop {
        match poll_once(&mut stream, ZERO) {
            Got::Pending => thread::sleep(FRAME),
            Got::Content(piece) => break piece,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(first, "blocking ");
    assert_eq!(stream.next_chunk().unwrap().unwrap(), "then ");
    let rest: String = stream.collect::<Result<_, _>>().unwrap();
    assert_eq!(rest, "polled");
}

#[test]
fn canned_replies_are_polled_at_once_and_wait_on_no_socket() {
    let text = "Hello from a canned reply, long enough to come in several pieces.";
    let api = ModelApi::builder("m", "http://127.0.0.1:9")
        .mock_responses(vec![text.into(), "Exception: mock_streaming_error".into()])
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    assert_eq!(stream.waits_on(), None);
    let run = drive(&mut stream, ZERO, ZERO);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, text);
    assert!(run.pieces.len() > 1, "{:?}", run.pieces);
    assert_eq!(run.pendings, 0, "a canned reply never makes a poll wait");
    assert_eq!(stream.waits_on(), None);

    // A canned failure after some text: the text, then the error, by polls.
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, ZERO);
    assert_eq!(run.text, modelapi::MOCK_TEXT_BEFORE_ERROR);
    assert!(
        matches!(run.error, Some(Error::Server { .. })),
        "{:?}",
        run.error
    );
    assert_eq!(run.pendings, 0);

    // A canned reply with reasoning and a tool call: every kind of event.
    let api = ModelApi::builder("m", "http://127.0.0.1:9")
        .mock_replies(vec![json!({
            "reasoning_content": "Think first.",
            "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
        })])
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, ZERO);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert!(run.events >= 2, "{run:?}");
    let answer = stream.completion();
    assert_eq!(answer.finish_reason(), Some("tool_calls"));
    assert_eq!(
        answer.choices[0].message.extra["tool_calls"][0]["function"]["arguments"],
        r#"{"x":1}"#
    );
}

#[test]
fn stream_request_start_sends_the_whole_body_and_is_polled() {
    let server = TestServer::start(|_| sse_reply(&["with ", "options"]));
    let api = client(&server.url());
    let mut request = serde_json::Map::new();
    request.insert(
        "messages".into(),
        json!([{"role": "user", "content": "hi"}]),
    );
    request.insert("temperature".into(), json!(0.25));
    request.insert("stream_options".into(), json!({"include_usage": true}));
    let token = CancelToken::new();
    let mut stream = api
        .with_cancel(&token)
        .stream_request_start(request, None)
        .unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "with options");
    let body = server.requests()[0].body_json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["model"], "test-model");
}

// ---------------------------------------------------------------------
// 11. An address that fails, then the next one: `localhost` where only
// [::1] answers (127.0.0.1 refuses), so the stream's socket changes while
// it connects.
// ---------------------------------------------------------------------

/// A relay on [::1] in front of `server`, or `None` (and a note) on a
/// machine without IPv6 loopback.
fn v6_only(server: &TestServer) -> Option<v6relay::V6Relay> {
    let relay = v6relay::V6Relay::start(server.addr());
    if relay.is_none() {
        eprintln!("no IPv6 loopback here: the fallback is not tested");
    }
    relay
}

#[test]
fn a_fallback_to_the_next_address_is_made_inside_polls() {
    let server = TestServer::start(|_| sse_reply(&["via ", "::1"]));
    let Some(relay) = v6_only(&server) else {
        return;
    };
    let api = client(&relay.localhost_url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = drive(&mut stream, ZERO, FRAME);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "via ::1");

    let api = client(&relay.localhost_url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let host = host_loop(&mut stream, Duration::from_secs(2));
    assert!(host.error.is_none(), "{:?}", host.error);
    assert_eq!(host.text, "via ::1");
    assert_eq!(host.idle_waits, 0, "{host:?}");
    assert_eq!(relay.accepted(), 2);
}

#[test]
fn after_an_address_fallback_a_cancel_wakes_the_host_waiting_on_the_fd() {
    let server = stalling_after_first_chunk();
    let Some(relay) = v6_only(&server) else {
        return;
    };
    let api = client(&relay.localhost_url());
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    loop {
        match poll_once(&mut stream, ZERO) {
            Got::Pending => thread::sleep(FRAME),
            Got::Content(_) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(poll_once(&mut stream, ZERO), Got::Pending));
    let WaitsOn { fd, wants_write } = stream.waits_on().expect("waits on its socket");
    assert!(!wants_write);
    let token = stream.cancel_token();
    let canceller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        let at = Instant::now();
        token.cancel();
        at
    });
    let ready = wait_fd(fd, libc::POLLIN, Duration::from_secs(3));
    let woke_at = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    let late = woke_at.saturating_duration_since(cancelled_at);
    // The poll still ends the stream: the flag is seen.
    let got = poll_once(&mut stream, ZERO);
    assert!(matches!(got, Got::Failed(Error::Aborted(_))), "{got:?}");
    assert!(
        ready == 1 && late < Duration::from_secs(1),
        "the cancel did not wake the host's poll(2) on the stream's descriptor \
         (poll returned {ready}, {late:?} after the cancel): the token shut down \
         the socket of the first address tried, not the one in use"
    );
}

#[test]
fn after_an_address_fallback_a_cancel_stops_a_blocking_open_promptly() {
    // The same socket swap, seen through the blocking call the poll
    // pipeline also serves: it must return within milliseconds of the
    // cancel, not at the timeout.
    let server = TestServer::start(|_| Reply::script(vec![Step::Sleep(Duration::from_secs(10))]));
    let Some(relay) = v6_only(&server) else {
        return;
    };
    let timeout = Duration::from_secs(3);
    let api = builder(&relay.localhost_url())
        .timeout(timeout)
        .build()
        .unwrap();
    let token = CancelToken::new();
    let canceller = {
        let token = token.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let at = Instant::now();
            token.cancel();
            at
        })
    };
    let err = api
        .with_cancel(&token)
        .stream(&user("hi"), None)
        .unwrap_err();
    let returned_at = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    let late = returned_at.saturating_duration_since(cancelled_at);
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    assert!(
        late < Duration::from_secs(1),
        "the blocking open returned {late:?} after the cancel (the timeout is {timeout:?})"
    );
}

// ---------------------------------------------------------------------
// wake_in: how long a host may wait before it must poll anyway
// ---------------------------------------------------------------------

/// A host loop that waits only on what the stream says: its socket (if
/// any) with `wake_in` as the timeout. Returns the run and the number of
/// waits.
fn deadline_host_loop(stream: &mut ChatStream) -> (HostRun, usize) {
    let mut run = HostRun::default();
    let mut waits = 0;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < LIMIT,
            "no end within {LIMIT:?}: {run:?}"
        );
        loop {
            match poll_once(stream, ZERO) {
                Got::Pending => break,
                Got::Content(piece) => run.text.push_str(&piece),
                Got::Other => {}
                Got::End => return (run, waits),
                Got::Failed(error) => {
                    run.error = Some(error);
                    return (run, waits);
                }
            }
        }
        let wake = stream.wake_in().expect("a pending stream has a deadline");
        waits += 1;
        match stream.waits_on() {
            Some(WaitsOn { fd, wants_write }) => {
                let events = if wants_write {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                // Rounded up, as modelapi_stream_wake_ms does.
                let ms = Duration::from_micros(wake.as_micros().div_ceil(1000) as u64 * 1000);
                if wait_fd(fd, events, ms) == 0 {
                    run.idle_waits += 1;
                }
            }
            None => {
                run.no_socket_turns += 1;
                thread::sleep(wake);
            }
        }
    }
}

#[test]
fn a_host_waiting_with_wake_in_gets_the_timeout_of_a_silent_server() {
    // The socket never becomes readable: only the deadline wakes the host.
    let server = stalling_after_first_chunk();
    let api = builder(&server.url())
        .timeout(Duration::from_millis(300))
        .max_retries(0)
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let started = Instant::now();
    let (run, waits) = deadline_host_loop(&mut stream);
    assert_eq!(run.text, "first");
    assert!(matches!(run.error, Some(Error::Timeout(_))), "{run:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        waits <= 8,
        "{waits} waits: the host must not spin ({run:?})"
    );
    assert!(run.idle_waits >= 1, "the deadline, not the socket, woke it");
    assert_eq!(stream.wake_in(), None, "over");
}

#[test]
fn a_host_sleeping_for_wake_in_goes_through_a_backoff_in_one_turn() {
    let server = flaky(1, || {
        Reply::json(503, r#"{"error": {"message": "busy"}}"#).with_header("retry-after-ms", "400")
    });
    let api = builder(&server.url()).build().unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let started = Instant::now();
    let (run, waits) = deadline_host_loop(&mut stream);
    assert!(run.error.is_none(), "{run:?}");
    assert_eq!(run.text, "ok");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(
        (1..=3).contains(&run.no_socket_turns),
        "the backoff is one long sleep, not a spin: {run:?}"
    );
    assert!(waits <= 12, "{waits} waits ({run:?})");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn wake_in_is_zero_when_events_are_in_hand_and_none_at_the_end() {
    let api = common::builder("http://127.0.0.1:9")
        .mock_responses(vec!["canned".into()])
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    assert_eq!(stream.wake_in(), Some(ZERO));
    let run = drive(&mut stream, ZERO, FRAME);
    assert_eq!(run.text, "canned");
    assert_eq!(stream.wake_in(), None);
    // From C: -1 for over and for NULL.
    assert_eq!(
        unsafe { modelapi::ffi::modelapi_stream_wake_ms(std::ptr::null()) },
        -1
    );
}
