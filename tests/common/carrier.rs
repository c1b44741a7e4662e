//! A test-side host that carries a detached stream's bytes: it sends the
//! stream's [`HostRequest`] itself over a std `TcpStream` (HTTP/1.1, its own
//! `Host`, `Content-Length` and `Connection: close`), parses the status line
//! and `Content-Type`, removes the transfer framing (chunked, or
//! `Content-Length`, or to the close) and feeds the body to the stream in the
//! pieces the socket delivers, optionally cut again at random sizes by a
//! seeded generator. A real host carrying real HTTP, as a game engine's
//! HTTP module would, with loopback servers only.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use modelapi::{ChatStream, HostRequest};

/// The longest a carried exchange may take, and any one read.
pub const CARRY_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest response head read.
const MAX_HEAD: usize = 64 * 1024;

/// How the response body is framed.
#[derive(Debug)]
enum Framing {
    /// `Transfer-Encoding: chunked`, with the decoder's state.
    Chunked(Chunked),
    /// `Content-Length`: the bytes still to come.
    Length(u64),
    /// Read to the close.
    Close,
}

/// An incremental decoder of chunked transfer coding.
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    /// The size line being read.
    line: Vec<u8>,
    /// Data bytes left in the current chunk.
    left: u64,
}

#[derive(Debug, Default, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailers after the last chunk, up to the blank line.
    Trailers,
    Done,
}

impl Chunked {
    /// Removes the framing from `input`, appending the data to `out`.
    fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() && self.state != ChunkState::Done {
            match self.state {
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailers => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        assert!(self.line.len() < 4096, "chunk framing line too long");
                        return;
                    };
                    self.line.extend_from_slice(&input[..nl]);
                    input = &input[nl + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = String::from_utf8(line).expect("framing line is ASCII");
                    let line = line.trim_end_matches('\r');
                    match self.state {
                        ChunkState::DataEnd => {
                            assert!(line.is_empty(), "no CRLF after a chunk: {line:?}");
                            self.state = ChunkState::Size;
                        }
                        ChunkState::Trailers => {
                            if line.is_empty() {
                                self.state = ChunkState::Done;
                            }
                        }
                        _ => {
                            let hex = line.split(';').next().unwrap_or("").trim();
                            let size = u64::from_str_radix(hex, 16)
                                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                            if size == 0 {
                                self.state = ChunkState::Trailers;
                            } else {
                                self.left = size;
                                self.state = ChunkState::Data;
                            }
                        }
                    }
                }
                ChunkState::Data => {
                    let n = (self.left as usize).min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.left -= n as u64;
                    if self.left == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::Done => {}
            }
        }
    }
}

/// A small seeded generator (splitmix64) for re-splitting.
#[derive(Debug, Clone)]
pub struct Splitter(u64);

impl Splitter {
    pub fn new(seed: u64) -> Splitter {
        Splitter(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A piece size: mostly small (inside lines, CRLFs and characters),
    /// sometimes large.
    fn piece(&mut self) -> usize {
        let r = self.next_u64();
        match r % 4 {
            0 => 1,
            1 | 2 => 1 + (r >> 8) as usize % 16,
            _ => 1 + (r >> 8) as usize % 512,
        }
    }
}

/// One exchange carried by the test host.
pub struct Carrier {
    socket: TcpStream,
    status: u16,
    content_type: Option<String>,
    framing: Framing,
    /// Body bytes that came with the head.
    early: Vec<u8>,
    split: Option<Splitter>,
    /// Body pieces fed, each as fed.
    pub pieces: usize,
    ended: bool,
    deadline: Instant,
}

impl Carrier {
    /// Sends `request` to its URL (a loopback `http://` one) and reads the
    /// head of the answer. Feeds nothing yet.
    pub fn send(request: &HostRequest) -> Carrier {
        let url = request.url();
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the test host carries http:// only: {url}"));
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        assert!(
            host == "127.0.0.1" || host == "::1" || host == "localhost",
            "the test host carries to loopback only: {url}"
        );
        let mut socket = TcpStream::connect(authority).expect("connect to the test server");
        socket.set_read_timeout(Some(CARRY_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(CARRY_TIMEOUT)).unwrap();
        socket.set_nodelay(true).unwrap();
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\n");
        for (name, value) in request.headers() {
            assert!(
                !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length"),
                "the request names a framing header: {name}"
            );
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            request.body().len()
        ));
        let mut message = head.into_bytes();
        message.extend_from_slice(request.body());
        socket.write_all(&message).expect("send the request");

        // The head: read until the blank line (1xx heads skipped).
        let deadline = Instant::now() + CARRY_TIMEOUT;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let (status, headers, used) = loop {
                if let Some(end) = find(&got, b"\r\n\r\n") {
                    let (status, headers) = parse_head(&got[..end]);
                    break (status, headers, end + 4);
                }
                assert!(got.len() < MAX_HEAD, "response head too long");
                assert!(Instant::now() < deadline, "no response head in time");
                let n = socket.read(&mut buf).expect("read the response head");
                assert!(n > 0, "the server closed before its head: {got:?}");
                got.extend_from_slice(&buf[..n]);
            };
            let early = got.split_off(used);
            if (100..200).contains(&status) {
                got = early;
                continue;
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let framing = if header("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
            {
                Framing::Chunked(Chunked::default())
            } else if let Some(length) = header("content-length") {
                Framing::Length(length.trim().parse().expect("Content-Length"))
            } else {
                Framing::Close
            };
            return Carrier {
                socket,
                status,
                content_type: header("content-type"),
                framing,
                early,
                split: None,
                pieces: 0,
                ended: false,
                deadline,
            };
        }
    }

    /// Cut every piece again at random sizes from `seed`.
    pub fn resplit(mut self, seed: u64) -> Carrier {
        self.split = Some(Splitter::new(seed));
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Feeds the head to `stream`.
    pub fn feed_head(&self, stream: &mut ChatStream) {
        stream
            .feed_head(self.status, self.content_type.as_deref())
            .expect("feed_head in order");
    }

    /// One step of the transfer: one read of the socket, its body bytes
    /// fed (the end too, once the body is over). `false` once the end was
    /// fed.
    pub fn pump(&mut self, stream: &mut ChatStream) -> bool {
        if self.ended {
            return false;
        }
        assert!(
            Instant::now() < self.deadline,
            "the carried exchange took too long"
        );
        let mut raw = std::mem::take(&mut self.early);
        let mut finished = false;
        if raw.is_empty() {
            let mut buf = [0u8; 16 * 1024];
            match self.socket.read(&mut buf) {
                Ok(0) => finished = true,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A transfer that failed (a reset): the host ends the body.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => finished = true,
                Err(e) => panic!("the test host's read failed: {e}"),
            }
        }
        let mut body = Vec::new();
        match &mut self.framing {
            Framing::Chunked(chunked) => {
                chunked.decode(&raw, &mut body);
                if chunked.state == ChunkState::Done {
                    finished = true;
                }
            }
            Framing::Length(left) => {
                let n = (*left as usize).min(raw.len());
                body.extend_from_slice(&raw[..n]);
                *left -= n as u64;
                if *left == 0 {
                    finished = true;
                }
            }
            Framing::Close => body = raw,
        }
        self.feed(stream, &body);
        if finished {
            stream.feed_end().expect("feed_end in order");
            self.ended = true;
        }
        !self.ended
    }

    fn feed(&mut self, stream: &mut ChatStream, mut body: &[u8]) {
        while !body.is_empty() {
            let n = match &mut self.split {
                Some(split) => split.piece().min(body.len()),
                None => body.len(),
            };
            stream.feed(&body[..n]).expect("feed in order");
            self.pieces += 1;
            body = &body[n..];
        }
    }

    /// Feeds the head and the whole body, then the end.
    pub fn carry_all(mut self, stream: &mut ChatStream) {
        self.feed_head(stream);
        let mut steps = 0;
        while self.pump(stream) {
            steps += 1;
            assert!(steps < 10_000_000, "the carried exchange did not end");
        }
    }
}

/// Carries `stream`'s whole exchange: sends its request, feeds the head,
/// the body as it comes (cut again from `split` when given), the end.
pub fn carry(stream: &mut ChatStream, split: Option<u64>) {
    let request = stream.host_request().expect("a detached stream");
    let carrier = Carrier::send(request);
    let carrier = match split {
        Some(seed) => carrier.resplit(seed),
        None => carrier,
    };
    carrier.carry_all(stream);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status and headers of a response head (without its blank line).
fn parse_head(head: &[u8]) -> (u16, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    assert!(
        version.starts_with("HTTP/1."),
        "not HTTP/1.x: {status_line:?}"
    );
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    (status, headers)
}
