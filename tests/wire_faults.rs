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

use common::cbuild;
use common::server::{head, Reply, Step, TestServer};
use common::{builder, completion_body, content_event, finish_event, user, DONE};
use modelapi::{ChatStream, Error, StreamEvent};

/// No test loop runs longer than this: a hang fails instead.
const LIMIT: Duration = Duration::from_secs(15);
/// A client timeout long enough that reaching it means a hang.
const LONG_TIMEOUT: Duration = Duration::from_secs(20);
/// How fast a call that must not wait for its timeout has to return.
const QUICK: Duration = Duration::from_secs(5);
/// The timeout of the 16 MB uploads: a debug build on a shared machine
/// takes seconds to serialize, copy and encrypt them.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How fast a 16 MB upload the server answers early has to fail: well
/// under [`UPLOAD_TIMEOUT`].
const UPLOAD_QUICK: Duration = Duration::from_secs(20);

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

/// Drives a polled stream as a host's event loop does: polls with a wait
/// of zero until Pending, then waits in poll(2) on what
/// [`ChatStream::waits_on`] names (`POLLIN | POLLOUT` while it writes, as
/// the header asks, so that an answer before the request went out whole
/// wakes it), for at most [`ChatStream::wake_in`].
fn host_all(mut stream: ChatStream) -> (String, Option<Error>) {
    let started = Instant::now();
    let mut text = String::new();
    while started.elapsed() < LIMIT {
        match stream.poll_event(Duration::ZERO) {
            Poll::Ready(Some(Ok(StreamEvent::Content(piece)))) => {
                text.push_str(piece);
                continue;
            }
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(Some(Err(error))) => return (text, Some(error)),
            Poll::Ready(None) => return (text, None),
            Poll::Pending => {}
        }
        // None: the stream is over; the next poll says so.
        let wake = stream.wake_in().unwrap_or(Duration::ZERO).min(LIMIT);
        match stream.waits_on() {
            Some(on) => {
                let events = if on.wants_write {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                let mut fd = libc::pollfd {
                    fd: on.fd,
                    events,
                    revents: 0,
                };
                let ms = wake.as_millis().clamp(1, 60_000) as libc::c_int;
                // SAFETY: one valid pollfd, for the length given.
                unsafe { libc::poll(&mut fd, 1, ms) };
            }
            None => thread::sleep(wake.clamp(Duration::from_millis(1), Duration::from_millis(50))),
        }
    }
    panic!("the host loop did not end within {LIMIT:?} (text so far: {text:?})");
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
        // By polls: the retry's backoff is spent pending, then the answer.
        let server = once_429(name, value);
        let api = builder(&server.url())
            .timeout(LONG_TIMEOUT)
            .build()
            .unwrap();
        let stream = api.stream_start(&user("hi"), None).unwrap();
        let (text, error) = poll_all(stream, Duration::ZERO);
        assert!(error.is_none(), "{name}: {value}, polled: {error:?}");
        assert_eq!(text, "ok", "{name}: {value}, polled");
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

// ---------------------------------------------------------------------
// A raw server (plain or TLS) that misbehaves below HTTP
// ---------------------------------------------------------------------

/// What a [`RawServer`] does with each connection.
#[derive(Clone)]
struct Script {
    /// Read the whole request body (by its `Content-Length`) before
    /// answering; `false`: answer right after the head, the body unread.
    read_body: bool,
    /// How long to wait (after the head, or the body) before answering:
    /// long enough for the client to have filled the socket's buffers and
    /// to wait for it to drain.
    pause: Duration,
    /// The bytes of the answer.
    answer: Vec<u8>,
    /// What follows the answer.
    after: After,
}

#[derive(Clone, Copy, Debug)]
enum After {
    /// Drop the connection at once: plain TCP with request bytes unread
    /// makes the kernel reset it; TLS ends without `close_notify`.
    Drop,
    /// End cleanly: TLS sends `close_notify`; both shut the write side
    /// down, then drop the connection.
    CloseNotify,
    /// Keep the connection open, never reading from it again, for this
    /// long (or until the server is dropped).
    Hold(Duration),
}

/// One accepted connection's streams: plain, or TLS over it.
enum Link {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Link {
    fn tcp(&self) -> &TcpStream {
        match self {
            Link::Plain(tcp) => tcp,
            Link::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(tcp) => tcp.read(buf),
            Link::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(tcp) => tcp.write(buf),
            Link::Tls(tls) => tls.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Link::Plain(tcp) => tcp.flush(),
            Link::Tls(tls) => tls.flush(),
        }
    }
}

/// The longest a [`RawServer`] accepts connections, should a test forget
/// to drop it.
const SERVER_LIFETIME: Duration = Duration::from_secs(120);

/// A server on 127.0.0.1 that plays a [`Script`] on every connection,
/// each in its own thread; dropping it stops it (every wait in it is
/// bounded).
struct RawServer {
    addr: std::net::SocketAddr,
    tls_ca: Option<String>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RawServer {
    fn start(tls: bool, script: Script) -> RawServer {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tls_ca, config) = if tls {
            let (ca, config) = common::tls::server_config();
            (Some(ca), Some(Arc::new(config)))
        } else {
            (None, None)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (Arc::clone(&stop), Arc::clone(&accepted));
        let thread = thread::spawn(move || {
            let mut workers = Vec::new();
            let started = Instant::now();
            while !stop2.load(Ordering::SeqCst) && started.elapsed() < SERVER_LIFETIME {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        accepted2.fetch_add(1, Ordering::SeqCst);
                        let (script, config, stop) =
                            (script.clone(), config.clone(), Arc::clone(&stop2));
                        workers.push(thread::spawn(move || serve(tcp, config, &script, &stop)));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        RawServer {
            addr,
            tls_ca,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The CA to trust (TLS), as a file.
    fn ca_file(&self) -> Option<PathBuf> {
        let ca = self.tls_ca.as_ref()?;
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wire_faults");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("ca-{}.pem", self.addr.port()));
        std::fs::write(&path, ca).unwrap();
        Some(path)
    }

    /// A client of this server (trusting its CA), with `timeout`.
    fn client(&self, timeout: Duration) -> modelapi::ModelApiBuilder {
        let mut client = builder(&self.url()).timeout(timeout);
        if let Some(ca) = self.ca_file() {
            client = client.ca_file(ca);
        }
        client
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    script: &Script,
    stop: &std::sync::atomic::AtomicBool,
) {
    let _ = tcp.set_nonblocking(false);
    // Each write goes out at once: a close that resets the connection
    // discards what Nagle's algorithm would still be holding back.
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
    let mut link = match tls {
        Some(config) => {
            let Ok(conn) = rustls::ServerConnection::new(config) else {
                return;
            };
            Link::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        }
        None => Link::Plain(tcp),
    };
    // The head, and the body's length.
    let mut seen = Vec::new();
    let mut piece = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match link.read(&mut piece) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&piece[..n]),
        }
        if seen.len() > 1 << 20 {
            return;
        }
    };
    if script.read_body {
        let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut left = length.saturating_sub(seen.len() - head_end);
        while left > 0 {
            match link.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }
    thread::sleep(script.pause);
    if link.write_all(&script.answer).is_err() || link.flush().is_err() {
        return;
    }
    match script.after {
        After::Drop => wait_sent(link.tcp()),
        After::CloseNotify => {
            if let Link::Tls(tls) = &mut link {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            let _ = link.tcp().shutdown(Shutdown::Write);
            // Read what the client still sends, so that closing does not
            // reset the connection (bounded by the read timeout).
            let _ = link
                .tcp()
                .set_read_timeout(Some(Duration::from_millis(500)));
            let mut sink = [0u8; 16 * 1024];
            while let Ok(n) = link.tcp().read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
        }
        After::Hold(hold) => {
            let started = Instant::now();
            while started.elapsed() < hold && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Waits (up to 2 s) until the kernel has sent everything written to
/// `tcp` and the client has acknowledged it: a close with request bytes
/// unread resets the connection and throws away what is still queued, so
/// the answer would otherwise never leave (the reason real servers linger
/// before closing, RFC 9112 §9.6). The test is about the client, given an
/// answer followed by a reset.
fn wait_sent(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int to the pointer given.
        let rc = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        if rc != 0 || queued == 0 {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// A 16 MB user message.
fn big_message() -> Vec<modelapi::Message> {
    user(&"x".repeat(16 << 20))
}

// ---------------------------------------------------------------------
// 4. Early answers during an upload
// ---------------------------------------------------------------------

const TOO_LARGE: &str = r#"{"error": {"message": "request too large: 16 MB is over the 1 MB limit", "type": "invalid_request_error"}}"#;
const NO_KEY: &str = r#"{"error": {"message": "invalid api key", "type": "authentication_error"}}"#;

/// Checks that a 16 MB request to a server that answers `status` with
/// `message` after reading only the head (then `after`) fails with that
/// status and message, quickly, blocking and by polls, plain and TLS, and
/// is not uploaded again.
fn early_answer(status: u16, body: &str, message: &str, after: After) {
    for tls in [false, true] {
        let script = Script {
            read_body: false,
            pause: Duration::ZERO,
            answer: json_bytes(status, body),
            after,
        };
        let server = RawServer::start(tls, script);
        let api = server.client(UPLOAD_TIMEOUT).build().unwrap();
        let what = format!("{status}, {after:?}, tls {tls}");
        let message_16_mb = big_message();
        let started = Instant::now();
        let error = api.complete(&message_16_mb, None).unwrap_err();
        let took = started.elapsed();
        match &error {
            Error::Http {
                status: s,
                message: m,
                ..
            } => {
                assert_eq!((*s, m.as_str()), (status, message), "{what}");
            }
            other => panic!("{what}: expected HTTP {status}, got {other:?}"),
        }
        assert!(took < UPLOAD_QUICK, "{what}: took {took:?}");
        let started = Instant::now();
        let stream = api.stream_start(&message_16_mb, None).unwrap();
        let (_, error) = poll_all(stream, Duration::from_millis(20));
        let took = started.elapsed();
        match &error {
            Some(Error::Http {
                status: s,
                message: m,
                ..
            }) => {
                assert_eq!((*s, m.as_str()), (status, message), "{what}, polled");
            }
            other => panic!("{what}, polled: expected HTTP {status}, got {other:?}"),
        }
        assert!(took < UPLOAD_QUICK, "{what}, polled: took {took:?}");
        // A host waiting on the descriptor: the answer wakes it, although
        // the socket never becomes writable again.
        let started = Instant::now();
        let stream = api.stream_start(&message_16_mb, None).unwrap();
        let (_, error) = host_all(stream);
        let took = started.elapsed();
        match &error {
            Some(Error::Http {
                status: s,
                message: m,
                ..
            }) => {
                assert_eq!((*s, m.as_str()), (status, message), "{what}, host loop");
            }
            other => panic!("{what}, host loop: expected HTTP {status}, got {other:?}"),
        }
        assert!(took < UPLOAD_QUICK, "{what}, host loop: took {took:?}");
        // Not retried: one connection per call.
        assert_eq!(server.accepted(), 3, "{what}");
    }
}

#[test]
fn a_413_before_the_upload_is_read_then_a_close_is_reported_as_413() {
    early_answer(
        413,
        TOO_LARGE,
        "request too large: 16 MB is over the 1 MB limit",
        After::Drop,
    );
}

#[test]
fn a_413_before_the_upload_is_read_then_a_clean_close_is_reported_as_413() {
    early_answer(
        413,
        TOO_LARGE,
        "request too large: 16 MB is over the 1 MB limit",
        After::CloseNotify,
    );
}

#[test]
fn a_401_from_a_server_that_never_reads_the_upload_is_reported_as_401() {
    early_answer(401, NO_KEY, "invalid api key", After::Hold(UPLOAD_TIMEOUT));
}

#[test]
fn an_early_401_wakes_a_host_that_waits_on_the_descriptor_while_the_upload_is_stuck() {
    // The answer comes after a pause, when the client has filled the
    // socket's buffers and waits for room that never comes (the server
    // reads no more): only a wait that includes POLLIN sees it before the
    // timeout.
    for tls in [false, true] {
        let script = Script {
            read_body: false,
            pause: Duration::from_millis(700),
            answer: json_bytes(401, NO_KEY),
            after: After::Hold(UPLOAD_TIMEOUT),
        };
        let server = RawServer::start(tls, script);
        let api = server.client(UPLOAD_TIMEOUT).build().unwrap();
        let started = Instant::now();
        let stream = api.stream_start(&big_message(), None).unwrap();
        let (_, error) = host_all(stream);
        let took = started.elapsed();
        match &error {
            Some(Error::Http {
                status: 401,
                message,
                ..
            }) => assert_eq!(message, "invalid api key", "tls {tls}"),
            other => panic!("tls {tls}: expected HTTP 401, got {other:?}"),
        }
        assert!(took < UPLOAD_QUICK, "tls {tls}: took {took:?}");
    }
}

#[test]
fn an_early_503_is_retried_by_the_usual_rule_on_a_new_connection() {
    for tls in [false, true] {
        let script = Script {
            read_body: false,
            pause: Duration::ZERO,
            answer: json_bytes(503, r#"{"error": {"message": "overloaded"}}"#),
            after: After::Hold(UPLOAD_TIMEOUT),
        };
        let server = RawServer::start(tls, script);
        let api = server
            .client(UPLOAD_TIMEOUT)
            .max_retries(1)
            .build()
            .unwrap();
        let message_16_mb = big_message();
        let started = Instant::now();
        let error = api.complete(&message_16_mb, None).unwrap_err();
        assert!(
            matches!(&error, Error::Http { status: 503, message, .. } if message == "overloaded"),
            "tls {tls}: {error:?}"
        );
        let took = started.elapsed();
        assert!(took < UPLOAD_QUICK, "tls {tls}: took {took:?}");
        assert_eq!(
            server.accepted(),
            2,
            "tls {tls}: one retry, on a new connection"
        );
    }
}

// ---------------------------------------------------------------------
// The same from C, and SIGPIPE in a C host
// ---------------------------------------------------------------------

/// A C host of the library: `wire_faults URL MODE [CA_FILE]` makes one
/// `modelapi_complete` call and prints its status. MODE `upload` sends a
/// 16 MB message (no retries), `header` sets a 20 KB header, `forever` a
/// timeout of UINT64_MAX ms, anything else (`plain`) none of these. SIGPIPE is at its default action (killing the process),
/// as in a C program that never heard of it.
const C_HOST: &str = r#"
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelapi.h"

static char *filled(size_t size, char with) {
    char *text = malloc(size + 1);
    if (text) {
        memset(text, with, size);
        text[size] = '\0';
    }
    return text;
}

int main(int argc, char **argv) {
    struct ModelApi *api;
    struct ModelApiMessage message;
    char *content = NULL, *value = NULL, *json = NULL, *text = NULL;
    const char *mode;
    enum ModelApiStatus status;

    if (argc < 3) {
        fprintf(stderr, "usage: wire_faults URL MODE [CA_FILE]\n");
        return 64;
    }
    /* The test harness ignores SIGPIPE, and exec keeps that: put back the
       default action a C host has, which kills the process. */
    if (signal(SIGPIPE, SIG_DFL) == SIG_ERR) {
        return 65;
    }
    mode = argv[2];
    api = modelapi_new("test-model", argv[1], NULL);
    if (!api) {
        fprintf(stderr, "modelapi_new: %s\n", modelapi_last_error());
        return 66;
    }
    if (argc > 3 && modelapi_set_ca_file(api, argv[3]) != MODELAPI_OK) {
        fprintf(stderr, "modelapi_set_ca_file: %s\n", modelapi_last_error());
        return 67;
    }
    if (strcmp(mode, "upload") == 0) {
        /* One upload per run: a retry would only do the same again. */
        if (modelapi_set_max_retries(api, 0) != MODELAPI_OK) {
            return 70;
        }
        content = filled((size_t)16 << 20, 'x');
    } else if (strcmp(mode, "header") == 0) {
        value = filled(20 * 1024, 'v');
        if (!value || modelapi_set_header(api, "X-Long", value) != MODELAPI_OK) {
            fprintf(stderr, "modelapi_set_header: %s\n", modelapi_last_error());
            return 68;
        }
    } else if (strcmp(mode, "forever") == 0) {
        if (modelapi_set_timeout_ms(api, UINT64_MAX) != MODELAPI_OK) {
            fprintf(stderr, "modelapi_set_timeout_ms: %s\n", modelapi_last_error());
            return 69;
        }
    }
    message.role = "user";
    message.content = content ? content : "hi";
    status = modelapi_complete(api, &message, 1, NULL, &json, &text);
    printf("status %d http %d content %s\n", (int)status, modelapi_last_http_status(),
           text ? text : "");
    if (status != MODELAPI_OK) {
        printf("error %s\n", modelapi_last_error());
    }
    modelapi_string_free(json);
    modelapi_string_free(text);
    modelapi_close(api);
    free(content);
    free(value);
    return 0;
}
"#;

/// The C host, built once (linked with the static library).
fn c_host() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = cbuild::target_dir().join("wire_faults");
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("wire_faults.c");
        std::fs::write(&source, C_HOST).unwrap();
        cbuild::compile_static(&source, "wire_faults")
    })
}

/// Runs the C host: its output, which must be a normal exit (never a
/// signal), and the status it printed.
fn run_c_host(url: &str, mode: &str, ca_file: Option<&Path>) -> (Output, i32, String) {
    use std::os::unix::process::ExitStatusExt;
    let mut command = Command::new(c_host());
    command.arg(url).arg(mode);
    if let Some(ca) = ca_file {
        command.arg(ca);
    }
    for var in cbuild::MODEL_ENV {
        command.env_remove(var);
    }
    let out = command.output().unwrap();
    let stdout = cbuild::text(&out.stdout);
    assert_eq!(
        out.status.signal(),
        None,
        "the C host was killed by signal {:?} ({mode}, {url}; SIGPIPE is {})\nstdout: \
         {stdout}\nstderr: {}",
        out.status.signal(),
        libc::SIGPIPE,
        cbuild::text(&out.stderr)
    );
    cbuild::assert_ok(&out, mode);
    let status = stdout
        .strip_prefix("status ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no status printed: {stdout}"));
    (out, status, stdout)
}

const MODELAPI_OK: i32 = 0;
const MODELAPI_HTTP_ERROR: i32 = 3;
const MODELAPI_TRANSPORT_ERROR: i32 = 4;

#[test]
fn c_a_20_kb_header_a_timeout_of_uint64_max_and_an_absurd_retry_after_work() {
    c_host();
    let server = echo_server();
    let (_, status, stdout) = run_c_host(&server.url(), "header", None);
    assert_eq!(status, MODELAPI_OK, "{stdout}");
    assert!(stdout.contains("content ok"), "{stdout}");
    let long = "v".repeat(20 * 1024);
    assert_eq!(server.requests()[0].header("x-long"), Some(long.as_str()));

    // Succeeds at once; then a 429 retried (the server's first answer).
    let server = once_429("Retry-After", "0.01");
    for _ in 0..2 {
        let (_, status, stdout) = run_c_host(&server.url(), "forever", None);
        assert_eq!(status, MODELAPI_OK, "{stdout}");
        assert!(stdout.contains("content ok"), "{stdout}");
    }
    assert_eq!(server.requests().len(), 3);

    // A Retry-After date past what the clock counts: a backoff, not a
    // MODELAPI_INTERNAL.
    let server = once_429("Retry-After", "Sun, 06 Nov 99999999999999 08:49:37 GMT");
    let (_, status, stdout) = run_c_host(&server.url(), "plain", None);
    assert_eq!(status, MODELAPI_OK, "{stdout}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn c_host_with_sigpipe_at_its_default_survives_a_reset_mid_upload() {
    // Built before any server starts (a server accepts for a bounded time).
    c_host();
    for tls in [false, true] {
        for answer in [json_bytes(413, TOO_LARGE), Vec::new()] {
            let answered = !answer.is_empty();
            let script = Script {
                read_body: false,
                pause: Duration::ZERO,
                answer,
                after: After::Drop,
            };
            let server = RawServer::start(tls, script);
            let ca = server.ca_file();
            let (_, status, stdout) = run_c_host(&server.url(), "upload", ca.as_deref());
            let expected = if answered {
                MODELAPI_HTTP_ERROR
            } else {
                MODELAPI_TRANSPORT_ERROR
            };
            assert_eq!(status, expected, "tls {tls}: {stdout}");
        }
    }
}

// ---------------------------------------------------------------------
// 9. TLS connections that end without close_notify
// ---------------------------------------------------------------------

/// A close-delimited answer (no `Content-Length`, not chunked).
fn close_delimited(content_type: &str, body: &str) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n")
            .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn tls_server(answer: Vec<u8>, after: After) -> RawServer {
    RawServer::start(
        true,
        Script {
            read_body: true,
            pause: Duration::ZERO,
            answer,
            after,
        },
    )
}

#[test]
fn a_close_delimited_body_cut_without_close_notify_is_truncated() {
    // Whole JSON: only the missing close_notify tells the body was cut.
    let body = completion_body("Hello");
    let answer = close_delimited("application/json", &body);
    let server = tls_server(answer.clone(), After::Drop);
    let api = server.client(LONG_TIMEOUT).max_retries(0).build().unwrap();
    let started = Instant::now();
    match api.complete(&user("hi"), None) {
        Err(Error::Transport(message)) => {
            assert!(message.contains("close_notify"), "{message}")
        }
        other => panic!("expected a truncated answer, got {other:?}"),
    }
    let (_, error) = poll_all(api.stream_start(&user("hi"), None).unwrap(), Duration::ZERO);
    match error {
        Some(Error::Transport(message)) => {
            assert!(message.contains("close_notify"), "{message}")
        }
        other => panic!("expected a truncated answer, polled, got {other:?}"),
    }
    assert!(started.elapsed() < QUICK, "{:?}", started.elapsed());

    // With close_notify, the same answer is whole.
    let server = tls_server(answer, After::CloseNotify);
    let api = server.client(LONG_TIMEOUT).max_retries(0).build().unwrap();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("Hello"));
    let (text, error) = poll_all(api.stream_start(&user("hi"), None).unwrap(), Duration::ZERO);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, "Hello");
}

#[test]
fn a_close_delimited_stream_cut_without_close_notify_after_done_is_whole() {
    let mut events: String = ["Hel", "lo"].iter().map(|p| content_event(p)).collect();
    events.push_str(&finish_event("stop"));
    events.push_str(DONE);
    let answer = close_delimited("text/event-stream", &events);
    for after in [After::Drop, After::CloseNotify] {
        let server = tls_server(answer.clone(), after);
        let api = server.client(LONG_TIMEOUT).max_retries(0).build().unwrap();
        let (text, error) = pull_all(api.stream(&user("hi"), None).unwrap());
        assert!(error.is_none(), "{after:?}: {error:?}");
        assert_eq!(text, "Hello", "{after:?}");
        let (text, error) = poll_all(api.stream_start(&user("hi"), None).unwrap(), Duration::ZERO);
        assert!(error.is_none(), "{after:?}, polled: {error:?}");
        assert_eq!(text, "Hello", "{after:?}, polled");
    }
    // Cut before [DONE] and any finish_reason: truncated, after the text.
    let cut = close_delimited("text/event-stream", &content_event("Hel"));
    let server = tls_server(cut, After::Drop);
    let api = server.client(LONG_TIMEOUT).max_retries(0).build().unwrap();
    let (text, error) = pull_all(api.stream(&user("hi"), None).unwrap());
    assert_eq!(text, "Hel");
    assert!(matches!(error, Some(Error::Transport(_))), "{error:?}");
}
