//! Endpoints that accept a request and then stall, for the first-token
//! deadline, fallback and hedging tests: each connection gets its own
//! thread, which answers as its [`Behaviour`] says and then watches the
//! socket, so the test can see when the client closed it (a hedge's loser
//! cancelled). Only std; loopback only; every wait bounded.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How an endpoint answers each request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Reads the request, then sends nothing (a queue, a cold start).
    StallBeforeHead,
    /// Sends the head of an event stream, then an SSE comment every
    /// `every` (keep-alive bytes), and nothing else.
    KeepAliveComments { every: Duration },
    /// Sends the head and a role-only delta, then nothing.
    RoleThenStall,
    /// Answers 503 with an OpenAI error body.
    Unavailable,
    /// Waits `delay`, then streams `text` in one content event, a finish
    /// and `[DONE]`.
    Answer { delay: Duration, text: String },
}

/// One connection as the endpoint saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request head and body, as text.
    pub request: String,
    /// When the request had been read.
    pub at: Instant,
    /// When the client closed the connection (read end or reset), if it
    /// did while the endpoint watched.
    pub closed: Option<Instant>,
}

/// A stalling endpoint on 127.0.0.1; dropping it stops it.
pub struct StallServer {
    url: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// How long a connection is watched at most.
const WATCH_LIMIT: Duration = Duration::from_secs(30);

impl StallServer {
    pub fn start(behaviour: Behaviour) -> StallServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        thread::spawn(move || {
            let started = Instant::now();
            while !stop2.load(Ordering::SeqCst) && started.elapsed() < WATCH_LIMIT * 2 {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (stop, seen, behaviour) =
                            (Arc::clone(&stop2), Arc::clone(&seen2), behaviour.clone());
                        thread::spawn(move || serve(conn, &behaviour, &stop, &seen));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        StallServer { url, stop, seen }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every connection that brought a request, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) until `n` requests came.
    pub fn wait_requests(&self, n: usize, limit: Duration) -> Vec<Seen> {
        let start = Instant::now();
        while self.seen().len() < n && start.elapsed() < limit {
            thread::sleep(Duration::from_millis(5));
        }
        self.seen()
    }

    /// Waits (at most `limit`) until the client closed the connection of
    /// request `i`: when it did.
    pub fn wait_closed(&self, i: usize, limit: Duration) -> Option<Instant> {
        let start = Instant::now();
        loop {
            if let Some(closed) = self.seen().get(i).and_then(|s| s.closed) {
                return Some(closed);
            }
            if start.elapsed() > limit {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for StallServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads a request (head, then a `Content-Length` body).
fn read_request(conn: &mut TcpStream) -> Option<String> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut bytes = Vec::new();
    let mut piece = [0; 4096];
    loop {
        let n = conn.read(&mut piece).ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&piece[..n]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return Some(text);
            }
        }
        if bytes.len() > 1 << 20 {
            return None;
        }
    }
}

const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                           Cache-Control: no-cache\r\nConnection: close\r\n\r\n";

fn chunk(model: &str, delta: &str, finish: &str) -> String {
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\
         \"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{delta},\
         \"finish_reason\":{finish}}}]}}\n\n"
    )
}

fn serve(mut conn: TcpStream, behaviour: &Behaviour, stop: &AtomicBool, seen: &Mutex<Vec<Seen>>) {
    let Some(request) = read_request(&mut conn) else {
        return;
    };
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            request,
            at: Instant::now(),
            closed: None,
        });
        seen.len() - 1
    };
    let mut keep_alive = None;
    match behaviour {
        Behaviour::StallBeforeHead => {}
        Behaviour::KeepAliveComments { every } => {
            let _ = conn.write_all(STREAM_HEAD.as_bytes());
            keep_alive = Some(*every);
        }
        Behaviour::RoleThenStall => {
            let _ = conn.write_all(STREAM_HEAD.as_bytes());
            let _ = conn
                .write_all(chunk("m", r#"{"role":"assistant","content":""}"#, "null").as_bytes());
        }
        Behaviour::Unavailable => {
            let body = r#"{"error":{"message":"overloaded, try later","type":"server_error"}}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.shutdown(Shutdown::Write);
        }
        Behaviour::Answer { delay, text } => {
            let _ = conn.write_all(STREAM_HEAD.as_bytes());
            let until = Instant::now() + *delay;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                if closed_by_client(&mut conn, Duration::from_millis(2)) {
                    seen.lock().unwrap()[index].closed = Some(Instant::now());
                    return;
                }
            }
            let text = serde_json::to_string(text).unwrap();
            let body = format!(
                "{}{}data: [DONE]\n\n",
                chunk("m", &format!("{{\"content\":{text}}}"), "null"),
                chunk("m", "{}", "\"stop\"")
            );
            let _ = conn.write_all(body.as_bytes());
            let _ = conn.shutdown(Shutdown::Write);
        }
    }
    // Watch the socket: the client closing it is a read of 0 (or a reset).
    let start = Instant::now();
    let mut last_comment = Instant::now();
    while start.elapsed() < WATCH_LIMIT && !stop.load(Ordering::SeqCst) {
        if closed_by_client(&mut conn, Duration::from_millis(2)) {
            seen.lock().unwrap()[index].closed = Some(Instant::now());
            return;
        }
        if let Some(every) = keep_alive {
            if last_comment.elapsed() >= every {
                last_comment = Instant::now();
                if conn.write_all(b": keep-alive\n\n").is_err() {
                    seen.lock().unwrap()[index].closed = Some(Instant::now());
                    return;
                }
            }
        }
    }
}

/// Whether the client closed the connection, waiting up to `wait` to see.
fn closed_by_client(conn: &mut TcpStream, wait: Duration) -> bool {
    let _ = conn.set_read_timeout(Some(wait));
    let mut byte = [0; 64];
    match conn.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}
