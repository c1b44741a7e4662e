//! A small HTTP proxy on loopback, for the proxy tests: `CONNECT` tunnels
//! (for https) and forwarding of absolute-form requests (for plain http),
//! optionally requiring `Proxy-Authorization: Basic`.
//!
//! It records what it was asked (each request head) and every byte the
//! client sent through it, so tests can show what a proxy gets to see.
//! Std threads only: an accept thread, and per connection one thread that
//! reads the head and then two that copy bytes each way.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct Seen {
    /// The head of each request the proxy got (CONNECT or forwarded).
    heads: Vec<String>,
    /// Every byte clients sent to the proxy, tunnels included.
    from_clients: Vec<u8>,
    /// Nothing is recorded (a soak's proxy must not grow with the calls).
    unrecorded: bool,
}

pub struct TestProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl TestProxy {
    /// A proxy; with `credentials` ("user:password"), one that answers 407
    /// to requests without them.
    pub fn start(credentials: Option<&str>) -> TestProxy {
        TestProxy::start_with(credentials, true)
    }

    /// A proxy without credentials that records nothing: its memory does
    /// not grow with the requests (for soak tests).
    pub fn start_unrecorded() -> TestProxy {
        TestProxy::start_with(None, false)
    }

    fn start_with(credentials: Option<&str>, record: bool) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen {
            unrecorded: !record,
            ..Seen::default()
        }));
        let expected = credentials.map(|c| format!("Basic {}", base64(c.as_bytes())));
        let shared = Arc::clone(&seen);
        thread::Builder::new()
            .name("testproxy".into())
            .spawn(move || {
                for client in listener.incoming().flatten() {
                    let seen = Arc::clone(&shared);
                    let expected = expected.clone();
                    thread::spawn(move || serve(client, &seen, expected.as_deref()));
                }
            })
            .unwrap();
        TestProxy { addr, seen }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heads(&self) -> Vec<String> {
        self.seen.lock().unwrap().heads.clone()
    }

    pub fn bytes_from_clients(&self) -> Vec<u8> {
        self.seen.lock().unwrap().from_clients.clone()
    }
}

fn serve(mut client: TcpStream, seen: &Mutex<Seen>, expected: Option<&str>) {
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The head, a byte at a time: what follows it is not the proxy's.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    {
        let mut seen = seen.lock().unwrap();
        if !seen.unrecorded {
            seen.heads.push(text.clone());
            seen.from_clients.extend_from_slice(&head);
        }
    }
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let authorization = headers
        .iter()
        .find(|(n, _)| n == "proxy-authorization")
        .map(|(_, v)| v.as_str());
    if expected.is_some() && authorization != expected {
        let _ = client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\
              Connection: close\r\n\r\n",
        );
        return;
    }
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    if method == "CONNECT" {
        let Some(server) = connect(&target) else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            return;
        }
        relay(client, server, seen);
        return;
    }
    // Forwarding: `POST http://host:port/path HTTP/1.1`.
    let Some(rest) = target.strip_prefix("http://") else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(mut server) = connect(authority) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    // The request as the server expects it: origin-form, without the
    // proxy's own credentials.
    let mut forwarded = format!(
        "{method} {} HTTP/1.1\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for line in text.split("\r\n").skip(1) {
        let lower = line.to_ascii_lowercase();
        if !line.is_empty()
            && !lower.starts_with("proxy-authorization:")
            && !lower.starts_with("connection:")
        {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    // One request per forwarded connection: the next one names its URL.
    forwarded.push_str("Connection: close\r\n\r\n");
    if server.write_all(forwarded.as_bytes()).is_err() {
        return;
    }
    relay(client, server, seen);
}

fn connect(authority: &str) -> Option<TcpStream> {
    let authority = authority.replace("localhost", "127.0.0.1");
    let addr = authority.to_socket_addrs().ok()?.next()?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()
}

/// Copies bytes both ways until either side closes; records the client's.
fn relay(client: TcpStream, server: TcpStream, seen: &Mutex<Seen>) {
    let _ = client.set_read_timeout(None);
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut server_read, mut client_write) = (server, client);
    let downstream = thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        while let Ok(n) = server_read.read(&mut buffer) {
            if n == 0 || client_write.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = client_write.shutdown(Shutdown::Both);
        let _ = server_read.shutdown(Shutdown::Both);
    });
    let mut buffer = [0u8; 16 * 1024];
    while let Ok(n) = client_read.read(&mut buffer) {
        if n == 0 {
            break;
        }
        let mut seen = seen.lock().unwrap();
        if !seen.unrecorded {
            seen.from_clients.extend_from_slice(&buffer[..n]);
        }
        drop(seen);
        if server_write.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = server_write.shutdown(Shutdown::Write);
    let _ = downstream.join();
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
