//! A one-connection HTTP server that lets the request wait unread for a
//! while before it reads it, so that a client sending a large body finds
//! the socket full and has to wait to write (see `tests/poll.rs`).
//!
//! Std only, one thread named `lazyserver`, created by [`LazyServer::start`].
//! It accepts one connection, waits `delay` without reading, then reads the
//! request head and its `Content-Length` body, writes the given response,
//! and closes the connection gracefully. Every socket wait is bounded
//! (10 s); a thread never connected to stays blocked in `accept` and is
//! left detached (it ends with the process).
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the lazy server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request head, through the blank line.
    pub head: String,
    /// The request body.
    pub body: Vec<u8>,
}

pub struct LazyServer {
    addr: SocketAddr,
    received: Receiver<io::Result<Received>>,
}

impl LazyServer {
    /// Serves one connection on 127.0.0.1: `delay` without reading, then
    /// the request is read and `response` written.
    pub fn start(delay: Duration, response: Vec<u8>) -> LazyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("lazy server: bind");
        let addr = listener.local_addr().expect("lazy server: local_addr");
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name("lazyserver".into())
            .spawn(move || {
                let result = listener
                    .accept()
                    .and_then(|(stream, _)| serve(stream, delay, &response));
                let _ = tx.send(result);
            })
            .expect("lazy server: spawn");
        LazyServer { addr, received: rx }
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was received, once the response has been written (waits at
    /// most `timeout`).
    pub fn received(&self, timeout: Duration) -> io::Result<Received> {
        self.received
            .recv_timeout(timeout)
            .map_err(|e| io::Error::new(io::ErrorKind::TimedOut, e.to_string()))?
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn serve(mut stream: TcpStream, delay: Duration, response: &[u8]) -> io::Result<Received> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    thread::sleep(delay);
    let mut buf = Vec::new();
    let mut scratch = vec![0u8; 256 * 1024];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut scratch)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&scratch[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        let n = stream.read(&mut scratch)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&scratch[..n]);
    }
    stream.write_all(response)?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(Received { head, body })
}
