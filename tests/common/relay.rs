//! A TCP relay on loopback that counts the connections and the requests
//! passing through it, to see what a client does to a server we did not
//! write (connection reuse, retries).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    posts: Arc<AtomicUsize>,
}

impl Relay {
    /// Relays every connection made to the returned relay to `target`.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let posts = Arc::new(AtomicUsize::new(0));
        let (accepted2, posts2) = (accepted.clone(), posts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                accepted2.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
                    continue;
                };
                let posts = posts2.clone();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(client, server, Some(posts)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        Relay {
            addr,
            accepted,
            posts,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `POST ` request lines seen going to the server so far.
    pub fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` until EOF, counting `POST /` on the way.
fn pump(mut from: TcpStream, mut to: TcpStream, posts: Option<Arc<AtomicUsize>>) {
    const NEEDLE: &[u8] = b"POST /";
    let mut buf = [0u8; 16 * 1024];
    // The tail of the previous read, so a request line split between two
    // reads is still seen.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(posts) = &posts {
            carry.extend_from_slice(&buf[..n]);
            let found = carry.windows(NEEDLE.len()).filter(|w| *w == NEEDLE).count();
            posts.fetch_add(found, Ordering::SeqCst);
            let keep = carry.len().min(NEEDLE.len() - 1);
            carry.drain(..carry.len() - keep);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
