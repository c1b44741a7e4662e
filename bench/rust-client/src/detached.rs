//! Scenario `detached CHUNKS ROUNDS`: one stream of CHUNKS content chunks
//! read three ways in the same process, in alternating rounds:
//!
//! - `network`: the library's own connection (`stream_request`,
//!   `next_chunk`), as scenario (b);
//! - `fed`: a detached stream (`stream_request_detached`) fed the same
//!   answer's body from memory (recorded once, before the rounds) in 16 KiB
//!   pieces, the ready chunks read (`next_chunk` until `Error::Pending`)
//!   after each piece: the library's own cost of a detached stream;
//! - `carried`: a detached stream whose bytes this program carries itself
//!   over its own socket (HTTP/1.1, `Connection: close`, chunked framing
//!   removed here, the data fed in place from the read buffer), each
//!   read's data fed as it comes and the ready chunks read: what a host
//!   with a simple HTTP stack sees.
//!
//! Prints one JSON line: per way the median seconds and chunks/s over the
//! rounds, and the medians of the per-round ratios to `network`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use modelapi::{ChatStream, Error, ModelApi};

use crate::{cpu_seconds, request};

/// The piece a host feeds from memory: the library's read size.
const PIECE: usize = 16 * 1024;

/// Reads every chunk ready now: (content bytes, non-empty chunks, ended).
fn read_ready(stream: &mut ChatStream, bytes: &mut u64, chunks: &mut u64) -> bool {
    loop {
        match stream.next_chunk() {
            Some(Ok(chunk)) => {
                if !chunk.is_empty() {
                    *bytes += chunk.len() as u64;
                    *chunks += 1;
                }
            }
            Some(Err(Error::Pending(_))) => return false,
            Some(Err(error)) => panic!("detached: {error}"),
            None => return true,
        }
    }
}

/// The network way: (content bytes, chunks).
fn network(api: &ModelApi, n: u64) -> (u64, u64) {
    let mut stream = api.stream_request(request(n), None).expect("stream");
    let (mut bytes, mut chunks) = (0, 0);
    while let Some(chunk) = stream.next_chunk() {
        let chunk = chunk.expect("chunk");
        if !chunk.is_empty() {
            bytes += chunk.len() as u64;
            chunks += 1;
        }
    }
    (bytes, chunks)
}

/// The fed way, from `body` in memory.
fn fed(api: &ModelApi, n: u64, content_type: &str, body: &[u8]) -> (u64, u64) {
    let mut stream = api
        .stream_request_detached(request(n), None)
        .expect("detached");
    stream.feed_head(200, Some(content_type)).expect("head");
    let (mut bytes, mut chunks) = (0, 0);
    for piece in body.chunks(PIECE) {
        stream.feed(piece).expect("feed");
        read_ready(&mut stream, &mut bytes, &mut chunks);
    }
    stream.feed_end().expect("end");
    assert!(read_ready(&mut stream, &mut bytes, &mut chunks), "ended");
    assert!(stream.is_finished());
    (bytes, chunks)
}

/// A detached stream's request, owned: (URL, headers, body).
type Owned = (String, Vec<(String, String)>, Vec<u8>);

fn owned_request(stream: &ChatStream) -> Owned {
    let request = stream.host_request().expect("detached");
    (
        request.url().to_string(),
        request.headers().to_vec(),
        request.body().to_vec(),
    )
}

/// A minimal host: sends a detached stream's request over its own socket,
/// reads the answer, removes the chunked framing, and hands each read's
/// body bytes to `on_body` with the content type as they come: the pieces
/// of data between the chunk framing, in place in the read buffer.
fn carry(request: &Owned, mut on_body: impl FnMut(&str, &[&[u8]])) {
    let (url, headers, request_body) = request;
    let rest = url.strip_prefix("http://").expect("http://");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut socket = TcpStream::connect(authority).expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        request_body.len()
    ));
    let mut message = head.into_bytes();
    message.extend_from_slice(request_body);
    socket.write_all(&message).expect("send");

    let mut buf = vec![0u8; 16 * 1024];
    let mut got = Vec::new();
    let end = loop {
        let n = socket.read(&mut buf).expect("head");
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type:"))
        .expect("content-type")
        .trim()
        .to_string();
    let mut dechunk = Dechunk::default();
    let mut pieces = Vec::new();
    dechunk.decode(&got[end + 4..], &mut pieces);
    on_body(&content_type, &pieces);
    while !dechunk.done {
        let n = socket.read(&mut buf).expect("body");
        if n == 0 {
            break;
        }
        let mut pieces = Vec::with_capacity(64);
        dechunk.decode(&buf[..n], &mut pieces);
        on_body(&content_type, &pieces);
    }
    assert!(dechunk.done, "the body ended before its last chunk");
}

/// Chunked transfer coding, removed incrementally.
#[derive(Default)]
struct Dechunk {
    /// Data left in the current chunk.
    left: usize,
    /// The CRLF after a chunk's data is next.
    data_end: bool,
    line: Vec<u8>,
    done: bool,
}

impl Dechunk {
    fn decode<'a>(&mut self, mut input: &'a [u8], out: &mut Vec<&'a [u8]>) {
        while !input.is_empty() && !self.done {
            if self.left > 0 {
                let n = self.left.min(input.len());
                out.push(&input[..n]);
                self.left -= n;
                input = &input[n..];
                self.data_end = self.left == 0;
                continue;
            }
            let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(input);
                return;
            };
            // The line, without a copy unless it came in two reads.
            let line: &[u8] = if self.line.is_empty() {
                &input[..nl]
            } else {
                self.line.extend_from_slice(&input[..nl]);
                &self.line
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (data_end, size) = (self.data_end, hex_size(line));
            input = &input[nl + 1..];
            self.line.clear();
            if data_end {
                assert_eq!(size, None, "CRLF after a chunk");
                self.data_end = false;
                continue;
            }
            let size = size.expect("chunk size");
            if size == 0 {
                self.done = true; // (trailers are not read: the server sends none)
            } else {
                self.left = size;
            }
        }
    }
}

/// A chunk size line's size; `None` for an empty line.
fn hex_size(line: &[u8]) -> Option<usize> {
    let digits = line.split(|&b| b == b';').next().unwrap_or(b"");
    if digits.is_empty() {
        return None;
    }
    let mut size = 0usize;
    for &b in digits {
        let d = (b as char).to_digit(16).expect("hex chunk size") as usize;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .expect("chunk size");
    }
    Some(size)
}

/// The carried way.
fn carried(api: &ModelApi, n: u64) -> (u64, u64) {
    let mut stream = api
        .stream_request_detached(request(n), None)
        .expect("detached");
    let (mut bytes, mut chunks) = (0, 0);
    let mut head_fed = false;
    let request = owned_request(&stream);
    carry(&request, |content_type, pieces| {
        if !head_fed {
            stream.feed_head(200, Some(content_type)).expect("head");
            head_fed = true;
        }
        for piece in pieces {
            stream.feed(piece).expect("feed");
        }
        read_ready(&mut stream, &mut bytes, &mut chunks);
    });
    stream.feed_end().expect("end");
    assert!(read_ready(&mut stream, &mut bytes, &mut chunks), "ended");
    assert!(stream.is_finished());
    (bytes, chunks)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

pub fn run(api: &ModelApi, n: u64, rounds: u64) {
    // The answer's body, recorded once by the host.
    let mut body = Vec::new();
    let probe = api
        .stream_request_detached(request(n), None)
        .expect("detached");
    let mut content_type = String::new();
    carry(&owned_request(&probe), |kind, pieces| {
        content_type = kind.to_string();
        pieces
            .iter()
            .for_each(|piece| body.extend_from_slice(piece));
    });
    drop(probe);
    let names = ["network", "fed", "carried"];
    let mut secs: [Vec<f64>; 3] = Default::default();
    let mut cpus: [Vec<f64>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 3] = Default::default();
    let mut cpu_ratios: [Vec<f64>; 3] = Default::default();
    let mut expected = None;
    for round in 0..rounds {
        let mut this = [0.0; 3];
        let mut this_cpu = [0.0; 3];
        // Alternate the order from round to round.
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for way in order {
            let t0 = Instant::now();
            let c0 = cpu_seconds();
            let got = match way {
                0 => network(api, n),
                1 => fed(api, n, &content_type, &body),
                _ => carried(api, n),
            };
            this_cpu[way] = cpu_seconds() - c0;
            this[way] = t0.elapsed().as_secs_f64();
            assert_eq!(got.1, n, "{}: chunks", names[way]);
            match expected {
                None => expected = Some(got),
                Some(e) => assert_eq!(got, e, "{}: the same content", names[way]),
            }
        }
        for way in 0..3 {
            secs[way].push(this[way]);
            cpus[way].push(this_cpu[way]);
            // chunks/s of the way over chunks/s of the network.
            ratios[way].push(this[0] / this[way]);
            cpu_ratios[way].push(this_cpu[0] / this_cpu[way]);
        }
    }
    let (bytes, chunks) = expected.expect("a round");
    let mut fields = vec![
        format!("\"client\":\"modelapi-rs-detached\",\"scenario\":\"detached\""),
        format!(
            "\"chunks\":{chunks},\"content_bytes\":{bytes},\"body_bytes\":{}",
            body.len()
        ),
        format!("\"rounds\":{rounds}"),
    ];
    for (way, name) in names.iter().enumerate() {
        let s = median(secs[way].clone());
        let c = median(cpus[way].clone());
        fields.push(format!(
            "\"{name}_seconds\":{s:.6},\"{name}_chunks_per_s\":{:.0},\"{name}_cpu_seconds\":{c:.6},\
             \"{name}_ratio\":{:.3},\"{name}_cpu_ratio\":{:.3}",
            chunks as f64 / s,
            median(ratios[way].clone()),
            median(cpu_ratios[way].clone()),
        ));
    }
    println!("{{{}}}", fields.join(","));
}
