//! Keep-alive: one client reuses one connection, a stream dropped early
//! closes its own connection without poisoning the pool, and so does a
//! request the server answered before it was sent whole.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::server::{chunked, head, Reply, Step, TestServer};
use common::{client, completion_body, content_event, stream_events, user};
use modelapi::Error;

fn server() -> TestServer {
    TestServer::start(|request| {
        if request.body_json()["stream"] == true {
            let events = stream_events(&["a", "b", "c"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("ok"))
        }
    })
}

#[test]
fn sequential_calls_reuse_one_connection() {
    let server = server();
    let api = client(&server.url());
    for _ in 0..10 {
        assert_eq!(
            api.complete(&user("hi"), None).unwrap().content(),
            Some("ok")
        );
        let text: String = api
            .stream(&user("hi"), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(text, "abc");
    }
    assert_eq!(server.requests().len(), 20);
    assert_eq!(server.accepted(), 1);
    assert!(server.requests().iter().all(|r| r.connection == 0));
}

#[test]
fn a_stream_dropped_early_does_not_poison_the_pool() {
    // Streams that would run for seconds; the client drops each after one chunk.
    let server = TestServer::start(|request| {
        if request.body_json()["stream"] == false {
            return Reply::json(200, &completion_body("ok"));
        }
        let head = head(
            200,
            &[
                ("Content-Type", "text/event-stream".into()),
                ("Transfer-Encoding", "chunked".into()),
            ],
        );
        let mut steps = vec![Step::Write(head)];
        for _ in 0..50 {
            steps.push(Step::Write(chunked(content_event("x").as_bytes())));
            steps.push(Step::Sleep(Duration::from_millis(100)));
        }
        Reply {
            steps,
            keep_alive: true,
        }
    });
    let api = client(&server.url());
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let mut stream = api.stream(&user("hi"), None).unwrap();
        assert_eq!(stream.next().unwrap().unwrap(), "x");
        drop(stream);
        // The next call works, on a healthy connection.
        assert_eq!(
            api.complete(&user("hi"), None).unwrap().content(),
            Some("ok")
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "dropping must not read the rest"
    );
    // Each dropped stream closed its connection; each complete reused none
    // of them (a fresh connection, then pooled for the next stream).
    let reqs = server.requests();
    assert_eq!(reqs.len(), 6);
    for pair in reqs.chunks(2) {
        assert_ne!(
            pair[0].connection, pair[1].connection,
            "a dropped stream's connection is never reused"
        );
    }
}

#[test]
fn close_releases_and_refuses_later_calls() {
    let server = server();
    let api = client(&server.url());
    api.complete(&user("hi"), None).unwrap();
    let open_stream = api.stream(&user("hi"), None).unwrap();
    api.close();
    api.close();
    assert!(api.is_closed());
    assert!(matches!(
        api.complete(&user("hi"), None),
        Err(Error::Closed)
    ));
    assert!(matches!(api.stream(&user("hi"), None), Err(Error::Closed)));
    // A stream opened before close goes on to its end.
    let text: String = open_stream.collect::<Result<_, _>>().unwrap();
    assert_eq!(text, "abc");
    assert!(Error::Closed.to_string().contains("closed"));
}

#[test]
fn many_threads_share_one_client() {
    let server = server();
    let api = client(&server.url());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(
                        api.complete(&user("hi"), None).unwrap().content(),
                        Some("ok")
                    );
                    let text: String = api
                        .stream(&user("hi"), None)
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    assert_eq!(text, "abc");
                }
            });
        }
    });
    assert_eq!(server.requests().len(), 200);
    assert!(
        server.accepted() <= 4,
        "{} connections for 4 threads",
        server.accepted()
    );
}

// ---------------------------------------------------------------------
// A connection is pooled only once its request went out whole.
// ---------------------------------------------------------------------

/// What the early-answering server saw.
#[derive(Default)]
struct Seen {
    /// Request lines, with the index of the connection each came on.
    requests: Vec<(usize, String)>,
    /// Bytes a non-draining server took for a next request on the first
    /// connection, after answering early: the end of the old body, then
    /// whatever followed it.
    garbage: Vec<String>,
}

/// A keep-alive HTTP/1.1 server that answers a request with a large body
/// (over 1 MiB) with a 401 as soon as its head has come, without reading
/// the body, and then, like a server that does not drain, reads the next
/// request from what follows on the connection. Every other request gets
/// a 200 (an event stream when it asks for one).
struct EarlyAnswerServer {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Seen>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// The longest any step of the early-answering server may take.
const SERVER_LIMIT: Duration = Duration::from_secs(20);

impl EarlyAnswerServer {
    fn start() -> EarlyAnswerServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (seen, accepted, stop) = (seen.clone(), accepted.clone(), stop.clone());
            thread::spawn(move || {
                let started = Instant::now();
                let mut served = Vec::new();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < SERVER_LIMIT {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            let index = accepted.fetch_add(1, Ordering::SeqCst);
                            let seen = seen.clone();
                            served.push(thread::spawn(move || serve(tcp, index, &seen)));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
                for t in served {
                    let _ = t.join();
                }
            })
        };
        EarlyAnswerServer {
            addr,
            seen,
            accepted,
            stop,
            threads: vec![accept],
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for EarlyAnswerServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Reads up to the end of a head (`\r\n\r\n`) into `buf`; returns its
/// length, or `None` at the end of the connection or its time.
fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut piece = [0u8; 64 * 1024];
    let mut scanned = 0;
    loop {
        if let Some(at) = buf[scanned..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(scanned + at + 4);
        }
        scanned = buf.len().saturating_sub(3);
        match tcp.read(&mut piece) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    }
}

fn serve(mut tcp: TcpStream, index: usize, seen: &Mutex<Seen>) {
    tcp.set_read_timeout(Some(SERVER_LIMIT)).unwrap();
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_head(&mut tcp, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let line = head.lines().next().unwrap_or_default().to_string();
        if !line.starts_with("POST /") {
            // The tail of what was taken for a request line.
            let tail: String = line
                .chars()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            seen.lock().unwrap().garbage.push(tail);
            let _ = tcp.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        seen.lock().unwrap().requests.push((index, line));
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        buf.drain(..end);
        if length > 1 << 20 {
            // Answer early, keep the connection open, and do not read the
            // body: the next "request" starts with what comes next.
            let body = r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#;
            let answer = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(answer.as_bytes());
            // Read nothing for a while: the client cannot send the rest of
            // the body meanwhile, and so knows it did not.
            thread::sleep(Duration::from_secs(1));
            buf.clear();
            continue;
        }
        let mut body = std::mem::take(&mut buf);
        let mut piece = [0u8; 16 * 1024];
        while body.len() < length {
            match tcp.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&piece[..n]),
            }
        }
        buf = body.split_off(length);
        let text = String::from_utf8_lossy(&body);
        let answer = if text.contains(r#""stream":true"#) {
            let mut sse = String::new();
            for event in stream_events(&["ok"]) {
                sse.push_str(&format!("{:x}\r\n{event}\r\n", event.len()));
            }
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{sse}0\r\n\r\n"
            )
        } else {
            let body = completion_body("ok");
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if tcp.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_connection_answered_before_its_request_was_sent_is_not_pooled() {
    // Far more than the socket buffers of both ends hold, so that most of
    // it is still unsent when the 401 has come.
    let big = "x".repeat(16 << 20);
    for polled in [false, true] {
        let server = EarlyAnswerServer::start();
        let api = common::builder(&server.url())
            .max_retries(0)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let (first, second) = if polled {
            let run = |text: &str| -> Result<String, Error> {
                let mut stream = api.stream_start(&user(text), None)?;
                let started = Instant::now();
                let mut out = String::new();
                loop {
                    assert!(
                        started.elapsed() < SERVER_LIMIT,
                        "the polled stream did not end"
                    );
                    match stream.poll_event(Duration::from_millis(20)) {
                        std::task::Poll::Pending => {}
                        std::task::Poll::Ready(Some(Ok(modelapi::StreamEvent::Content(p)))) => {
                            out.push_str(p)
                        }
                        std::task::Poll::Ready(Some(Ok(_))) => {}
                        std::task::Poll::Ready(Some(Err(e))) => return Err(e),
                        std::task::Poll::Ready(None) => return Ok(out),
                    }
                }
            };
            (run(&big), run("hi"))
        } else {
            let complete = |text: &str| {
                api.complete(&user(text), None)
                    .map(|a| a.content().unwrap_or_default().to_string())
            };
            (complete(&big), complete("hi"))
        };
        assert_eq!(first.unwrap_err().status(), Some(401), "polled: {polled}");
        assert_eq!(
            second.as_deref().ok(),
            Some("ok"),
            "polled: {polled}: {second:?}"
        );
        // Let the first connection's server thread see what came after.
        thread::sleep(Duration::from_millis(1500));
        let seen = server.seen.lock().unwrap();
        assert!(
            seen.garbage.is_empty(),
            "polled: {polled}: {:?}",
            seen.garbage
        );
        assert_eq!(
            seen.requests.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            [0, 1],
            "polled: {polled}: the second call went on a new connection"
        );
        assert_eq!(
            server.accepted.load(Ordering::SeqCst),
            2,
            "polled: {polled}"
        );
    }
}
