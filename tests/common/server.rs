//! A scripted HTTP/1.1 test server for integration tests.
//!
//! Only std (plus `libc` for the abortive close and `serde_json` for
//! [`Request::body_json`]); it listens on loopback only, and every wait in it
//! is bounded.
//!
//! All of its threads (one accept thread and a fixed pool of [`WORKERS`]
//! connection workers, all named `testserver`) are created in
//! [`TestServer::start`] and never later, so a test may count the threads of
//! the process while a client call is in flight. With [`WORKERS`] workers, at
//! most that many connections are served at the same time; further accepted
//! connections wait in a queue until a worker is free.
//!
//! Each request is parsed (head up to 64 KiB, then a `Content-Length` or
//! `Transfer-Encoding: chunked` body), recorded (see [`TestServer::requests`])
//! and passed to the handler, whose [`Reply`] is a script of [`Step`]s played
//! on the socket. After the script, a `keep_alive` reply leaves the connection
//! open for the next request (unless the client asked for `Connection: close`
//! or spoke HTTP/1.0); otherwise the connection is closed gracefully.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Number of connection worker threads (fixed, all created by `start`).
pub const WORKERS: usize = 8;
/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest request body accepted.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// Read and write timeout on accepted sockets.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `Step::Sleep` and `Step::Drip` look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

const THREAD_NAME: &str = "testserver";

/// One request received by the server.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent, query string included.
    pub path: String,
    /// Header names lowercased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it came with `Transfer-Encoding: chunked`.
    pub body: Vec<u8>,
    /// 0-based index of the accepted connection the request came on.
    pub connection: usize,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics if it is not JSON.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as (lossy) UTF-8 text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One step of a scripted reply.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these raw bytes.
    Write(Vec<u8>),
    /// Write `piece` bytes at a time (at least 1), with `delay` between pieces.
    Drip {
        bytes: Vec<u8>,
        piece: usize,
        delay: Duration,
    },
    /// Write `bytes` `times` times over (large bodies without holding them
    /// in memory); stops early when the server stops or the client leaves.
    Repeat { bytes: Vec<u8>, times: usize },
    /// Wait (interrupted when the server stops).
    Sleep(Duration),
    /// Graceful close: shut down the write side (the client reads EOF), then
    /// drop the connection. Later steps are not played.
    Close,
    /// Abortive close (SO_LINGER 0, then drop): the client sees ECONNRESET.
    /// Later steps are not played.
    Reset,
}

/// A scripted reply: its steps are played in order on the connection.
///
/// After the steps, if `keep_alive` (and no `Close`/`Reset` step ran, and the
/// client did not ask to close), the server reads the next request on the
/// same connection; otherwise it closes the connection gracefully.
#[derive(Clone, Debug)]
pub struct Reply {
    pub steps: Vec<Step>,
    pub keep_alive: bool,
}

impl Reply {
    /// A complete response with `Content-Type: application/json` and
    /// `Content-Length`; keep-alive.
    ///
    /// Its steps are `[Write(head), Write(body)]`.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::full(status, "application/json", body.as_bytes())
    }

    /// A complete response with the given content type and `Content-Length`;
    /// keep-alive. Its steps are `[Write(head), Write(body)]`.
    pub fn full(status: u16, content_type: &str, body: &[u8]) -> Reply {
        let head = head(
            status,
            &[
                ("Content-Type", content_type.to_string()),
                ("Content-Length", body.len().to_string()),
            ],
        );
        let mut steps = vec![Step::Write(head)];
        if !body.is_empty() {
            steps.push(Step::Write(body.to_vec()));
        }
        Reply {
            steps,
            keep_alive: true,
        }
    }

    /// A 200 response with `Content-Type: text/event-stream` and chunked
    /// transfer encoding: one chunk per element of `events`, written as-is
    /// (the caller writes `"data: {...}\n\n"` itself; empty elements are
    /// skipped, since an empty chunk would end the body), then the
    /// terminating 0-chunk; keep-alive.
    ///
    /// Its steps are `[Write(head), Write(chunk)..., Write(b"0\r\n\r\n")]`.
    pub fn sse(events: &[&str]) -> Reply {
        let head = head(
            200,
            &[
                ("Content-Type", "text/event-stream".to_string()),
                ("Cache-Control", "no-cache".to_string()),
                ("Transfer-Encoding", "chunked".to_string()),
            ],
        );
        let mut steps = vec![Step::Write(head)];
        steps.extend(
            events
                .iter()
                .filter(|e| !e.is_empty())
                .map(|e| Step::Write(chunked(e.as_bytes()))),
        );
        steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
        Reply {
            steps,
            keep_alive: true,
        }
    }

    /// Write exactly these bytes, then close (not keep-alive).
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            steps: vec![Step::Write(bytes.into())],
            keep_alive: false,
        }
    }

    /// Play these steps, then close (not keep-alive).
    pub fn script(steps: Vec<Step>) -> Reply {
        Reply {
            steps,
            keep_alive: false,
        }
    }

    /// Add a response header. Meant for the `json`/`sse`/`full` constructors,
    /// whose first step is the response head alone; it works on any reply
    /// whose first step is a `Write` of a complete HTTP response head (status
    /// line, headers, blank line), and panics on any other.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        let head = match self.steps.first_mut() {
            Some(Step::Write(bytes)) if bytes.starts_with(b"HTTP/") => bytes,
            _ => panic!("Reply::with_header: the reply does not start with a response head"),
        };
        let end = find(head, b"\r\n\r\n")
            .expect("Reply::with_header: the first step is not a complete response head");
        let line = format!("{name}: {value}\r\n");
        // Insert after the last header line's CRLF, before the blank line.
        head.splice(end + 2..end + 2, line.into_bytes());
        self
    }

    /// Set `keep_alive`.
    pub fn keep_alive(mut self, keep_alive: bool) -> Reply {
        self.keep_alive = keep_alive;
        self
    }

    /// Append a step to the script.
    pub fn then(mut self, step: Step) -> Reply {
        self.steps.push(step);
        self
    }
}

/// Encode one HTTP chunk: `"{len:x}\r\n{data}\r\n"`. Note that an empty
/// `data` gives `"0\r\n\r\n"`, the terminating chunk.
pub fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A response head: status line, the given headers, blank line.
pub fn head(status: u16, headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync + 'static;

struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    /// Whether requests are kept for `requests()` (load tests turn it off
    /// so the server's memory does not grow with the calls).
    record: bool,
    /// Clones of the sockets being served, so that `Drop` can shut them down
    /// and wake workers blocked reading or writing them.
    live: Mutex<Vec<(usize, TcpStream)>>,
    handler: Box<Handler>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scripted HTTP/1.1 server on 127.0.0.1; dropping it stops it.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl TestServer {
    /// Bind 127.0.0.1 on a free port and start serving: every request is
    /// answered with the script `handler` returns for it. Creates all of the
    /// server's threads (1 accept thread + [`WORKERS`] workers) now.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> TestServer {
        TestServer::start_with_workers(WORKERS, handler)
    }

    /// Like [`start`](Self::start), with `workers` worker threads: one per
    /// connection a test keeps open at once.
    pub fn start_with_workers(
        workers: usize,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start_with(workers, true, handler)
    }

    /// Like [`start_with_workers`](Self::start_with_workers); `record: false`
    /// keeps no requests (`requests()` stays empty).
    pub fn start_with(
        workers: usize,
        record: bool,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        let worker_count = workers;
        let listener = TcpListener::bind("127.0.0.1:0").expect("test server: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("test server: local_addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            record,
            live: Mutex::new(Vec::new()),
            handler: Box::new(handler),
        });
        let (tx, rx) = mpsc::channel::<(usize, TcpStream)>();
        let rx = Arc::new(Mutex::new(rx));
        // `start` returns only once every thread runs (and so carries its
        // name), so that a test sees the final set of threads right away.
        let ready = Arc::new(Barrier::new(worker_count + 2));

        let workers = (0..worker_count)
            .map(|_| {
                let shared = Arc::clone(&shared);
                let rx = Arc::clone(&rx);
                let ready = Arc::clone(&ready);
                thread::Builder::new()
                    .name(THREAD_NAME.into())
                    .spawn(move || {
                        ready.wait();
                        worker(&shared, &rx)
                    })
                    .expect("test server: spawn worker")
            })
            .collect();

        let accept_shared = Arc::clone(&shared);
        let accept_ready = Arc::clone(&ready);
        let accept_thread = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let shared = accept_shared;
                accept_ready.wait();
                for conn in listener.incoming() {
                    if shared.stopping() {
                        break;
                    }
                    match conn {
                        Ok(stream) => {
                            let index = shared.accepted.fetch_add(1, Ordering::SeqCst);
                            if tx.send((index, stream)).is_err() {
                                break;
                            }
                        }
                        // E.g. EMFILE or ECONNABORTED: back off a little.
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
                // Dropping `tx` here ends the workers once the queue is empty.
            })
            .expect("test server: spawn accept thread");
        ready.wait();

        TestServer {
            addr,
            shared,
            accept_thread: Some(accept_thread),
            workers,
        }
    }

    /// `"http://127.0.0.1:PORT"`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order. A request is recorded once
    /// its body has been read, before the handler is called.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// Wait (at most `timeout`) until at least `n` requests were received;
    /// returns all requests received by then.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag and returns.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).is_ok();
        // Wake workers blocked on a socket. A worker registers its socket
        // under this lock after checking the flag, so none is missed.
        for (_, stream) in lock(&self.shared.live).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if !woke {
            // The accept thread cannot be woken (should not happen on
            // loopback): leave the threads detached rather than hang.
            return;
        }
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for t in self.workers.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(shared: &Shared, rx: &Mutex<Receiver<(usize, TcpStream)>>) {
    loop {
        // Hold the lock only while waiting; the accept thread dropping the
        // sender ends this wait for every worker in turn.
        let next = lock(rx).recv();
        let Ok((index, stream)) = next else { return };
        if shared.stopping() {
            continue;
        }
        // A bug in here must not kill the worker: catch and drop the socket.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| serve(shared, index, stream)));
    }
}

/// Serve one connection, registering it so that `Drop` can shut it down.
fn serve(shared: &Shared, index: usize, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    {
        let mut live = lock(&shared.live);
        if shared.stopping() {
            return;
        }
        if let Ok(clone) = stream.try_clone() {
            live.push((index, clone));
        }
    }
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    let _ = conn.run(shared, index);
    // Drop our registered clone first, so that dropping `conn` closes the
    // socket (both are file descriptors of the same socket).
    lock(&shared.live).retain(|(i, _)| *i != index);
    drop(conn);
}

struct Conn {
    stream: TcpStream,
    /// Bytes read from the socket and not consumed yet.
    buf: Vec<u8>,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    fn run(&mut self, shared: &Shared, index: usize) -> io::Result<()> {
        loop {
            let Some(head) = self.read_head()? else {
                return Ok(()); // clean EOF between requests
            };
            let (mut request, client_keep_alive) = parse_head(&head, index)?;
            if request
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            {
                self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            request.body = self.read_body(&request)?;
            if shared.record {
                lock(&shared.requests).push(request.clone());
            }

            let handler = &shared.handler;
            let reply = match panic::catch_unwind(AssertUnwindSafe(|| handler(&request))) {
                Ok(reply) => reply,
                Err(_) => return Ok(()), // handler panicked: drop the connection
            };
            if !self.play(shared, reply.steps)? {
                return Ok(()); // closed or reset by a step, or stopping
            }
            if !(reply.keep_alive && client_keep_alive) || shared.stopping() {
                self.close_gracefully();
                return Ok(());
            }
        }
    }

    /// Play the steps; `Ok(false)` if the connection was closed by a step or
    /// the server is stopping, `Err` if the client went away.
    fn play(&mut self, shared: &Shared, steps: Vec<Step>) -> io::Result<bool> {
        for step in steps {
            match step {
                Step::Write(bytes) => {
                    self.stream.write_all(&bytes)?;
                    self.stream.flush()?;
                }
                Step::Drip {
                    bytes,
                    piece,
                    delay,
                } => {
                    for (i, piece) in bytes.chunks(piece.max(1)).enumerate() {
                        if i > 0 && !pause(shared, delay) {
                            return Ok(false);
                        }
                        self.stream.write_all(piece)?;
                        self.stream.flush()?;
                    }
                }
                Step::Repeat { bytes, times } => {
                    for _ in 0..times {
                        if shared.stop.load(Ordering::SeqCst) {
                            return Ok(false);
                        }
                        self.stream.write_all(&bytes)?;
                    }
                    self.stream.flush()?;
                }
                Step::Sleep(d) => {
                    if !pause(shared, d) {
                        return Ok(false);
                    }
                }
                Step::Close => {
                    self.close_gracefully();
                    return Ok(false);
                }
                Step::Reset => {
                    set_linger_zero(&self.stream);
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Send FIN, then drain what the client already sent (unread data at
    /// close would make the kernel send RST instead), without waiting.
    fn close_gracefully(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        if self.stream.set_nonblocking(true).is_ok() {
            let mut scratch = [0u8; 8192];
            let mut drained = 0usize;
            while drained < MAX_BODY {
                match self.stream.read(&mut scratch) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        }
    }

    /// Read more bytes into `buf`; returns how many (0 at EOF).
    fn fill(&mut self) -> io::Result<usize> {
        let mut scratch = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(n) => {
                    self.buf.extend_from_slice(&scratch[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next request head (through the blank line), or `None` at a clean
    /// EOF before any byte of it.
    fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = find(&self.buf[scanned..], b"\r\n\r\n") {
                let end = scanned + pos + 4;
                if end > MAX_HEAD {
                    return Err(invalid("request head too large"));
                }
                let rest = self.buf.split_off(end);
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("request head too large"));
            }
            scanned = self.buf.len().saturating_sub(3);
            if self.fill()? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// One CRLF-terminated line, without the CRLF.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = find(&self.buf[scanned..], b"\r\n") {
                let mut line = self.take(scanned + pos + 2)?;
                line.truncate(line.len() - 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long"));
            }
            scanned = self.buf.len().saturating_sub(1);
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn read_body(&mut self, request: &Request) -> io::Result<Vec<u8>> {
        let chunked = request
            .headers
            .iter()
            .filter(|(n, _)| n == "transfer-encoding")
            .any(|(_, v)| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("chunked"))
            });
        if chunked {
            return self.read_chunked();
        }
        match request.header("content-length") {
            None => Ok(Vec::new()),
            Some(v) => {
                let n: usize = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid("bad content-length"))?;
                if n > MAX_BODY {
                    return Err(invalid("body too large"));
                }
                self.take(n)
            }
        }
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let line = String::from_utf8_lossy(&line);
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the blank line.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("body too large"));
            }
            body.extend_from_slice(&self.take(size)?);
            if !self.line()?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
    }
}

/// Parse a request head; also returns whether the client allows keep-alive.
fn parse_head(head: &[u8], connection: usize) -> io::Result<(Request, bool)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid("not HTTP/1.x"));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("bad header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let tokens = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(name))
    };
    let keep_alive = if version == "HTTP/1.0" {
        tokens("keep-alive")
    } else {
        !tokens("close")
    };
    let request = Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body: Vec::new(),
        connection,
    };
    Ok((request, keep_alive))
}

/// Sleep for `d`, looking at the stop flag at least every 50 ms; `false` if
/// the server is stopping.
fn pause(shared: &Shared, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if shared.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep((deadline - now).min(STOP_POLL));
    }
}

/// SO_LINGER with a zero timeout: closing the socket then sends RST.
#[cfg(unix)]
fn set_linger_zero(stream: &TcpStream) {
    use std::os::unix::io::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is a valid open socket owned by `stream`, and the
    // option value points to a live `linger` of the length passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[cfg(not(unix))]
fn set_linger_zero(_stream: &TcpStream) {}
