//! A TCP relay listening on IPv6 loopback only (`[::1]`), in front of a
//! server on 127.0.0.1 (e.g. a `TestServer`), so that a client of
//! `http://localhost:PORT` finds 127.0.0.1:PORT refusing and has to fall
//! back to `[::1]:PORT` (see `tests/poll.rs`).
//!
//! Std only. One accept thread, and two pump threads per connection, all
//! detached (they end when their sockets close, at the latest with the
//! process); dropping the relay stops accepting.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub struct V6Relay {
    port: u16,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl V6Relay {
    /// Listens on `[::1]` on a port that nothing on 127.0.0.1 answers
    /// (checked: a connect there is refused), relaying to `target`.
    /// `None` when this machine has no IPv6 loopback.
    pub fn start(target: SocketAddr) -> Option<V6Relay> {
        for _ in 0..20 {
            let listener = TcpListener::bind("[::1]:0").ok()?;
            let addr = listener.local_addr().ok()?;
            let port = addr.port();
            let v4 = SocketAddr::from(([127, 0, 0, 1], port));
            match TcpStream::connect_timeout(&v4, Duration::from_secs(1)) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                // Something answers on 127.0.0.1 at that port: try another.
                _ => continue,
            }
            let stop = Arc::new(AtomicBool::new(false));
            let accepted = Arc::new(AtomicUsize::new(0));
            let (stop2, accepted2) = (Arc::clone(&stop), Arc::clone(&accepted));
            thread::Builder::new()
                .name("v6relay".into())
                .spawn(move || {
                    for client in listener.incoming() {
                        if stop2.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(client) = client else { continue };
                        accepted2.fetch_add(1, Ordering::SeqCst);
                        let Ok(server) =
                            TcpStream::connect_timeout(&target, Duration::from_secs(5))
                        else {
                            continue;
                        };
                        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                            (Ok(c2), Ok(s2)) => (c2, s2),
                            _ => continue,
                        };
                        thread::spawn(move || pump(client, server));
                        thread::spawn(move || pump(s2, c2));
                    }
                })
                .ok()?;
            return Some(V6Relay {
                port,
                addr,
                stop,
                accepted,
            });
        }
        None
    }

    /// `"http://localhost:PORT"`: 127.0.0.1 refuses, `[::1]` answers.
    pub fn localhost_url(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for V6Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Copies `from` to `to` until EOF or an error, then closes `to`'s write side.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
