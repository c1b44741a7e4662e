//! A TLS-terminating relay on loopback, to test HTTPS against the plaintext
//! [`TestServer`](super::server::TestServer).
//!
//! [`TlsRelay::start`] makes a fresh self-signed test CA (rcgen) and a
//! certificate for `localhost` and `127.0.0.1` signed by it, listens on
//! 127.0.0.1, and for each accepted connection does the TLS handshake
//! (rustls, ring provider) and then relays the plaintext both ways to the
//! target. A client trusts the relay only if it is given [`TlsRelay::ca_pem`]
//! (or the file from [`TlsRelay::write_ca_file`]).
//!
//! Std threads only, all named `tlsrelay`: one accept thread, created by
//! `start`, and one thread per accepted connection, created when it is
//! accepted (unlike the test server's fixed pool). A connection thread polls
//! both sockets with short read timeouts, so slow streams (SSE) and
//! keep-alive connections pass through (each direction may lag by up to one
//! poll, 20 ms). When the target closes, the TLS side is closed with a
//! `close_notify` alert; when the client closes, the target connection is
//! closed. Dropping the relay shuts both sockets of every connection down
//! without a `close_notify`, so a client in the middle of a body sees an
//! abrupt disconnect. Every wait is bounded (handshake 10 s, writes 10 s, a
//! connection idle for 60 s is closed).
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};

/// How long one read waits before the connection thread looks at the other
/// socket (and at the stop flag).
const POLL: Duration = Duration::from_millis(20);
/// Longest time a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Write timeout on both sockets.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no byte relayed either way for this long is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Timeout to connect to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const THREAD_NAME: &str = "tlsrelay";

/// Distinguishes the CA files of the relays of one process.
static CA_FILES: AtomicUsize = AtomicUsize::new(0);

struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    handshakes_failed: AtomicUsize,
    /// Clones of the sockets in use, so that `Drop` can shut them down and
    /// wake a thread blocked writing to one.
    live: Mutex<Vec<(usize, TcpStream)>>,
    /// The connection threads, joined by `Drop`.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Register a socket under connection `index`; `false` if stopping (the
    /// caller then drops the connection).
    fn register(&self, index: usize, stream: &TcpStream) -> bool {
        let mut live = lock(&self.live);
        if self.stopping() {
            return false;
        }
        if let Ok(clone) = stream.try_clone() {
            live.push((index, clone));
        }
        true
    }

    fn unregister(&self, index: usize) {
        lock(&self.live).retain(|(i, _)| *i != index);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TLS-terminating relay on 127.0.0.1 in front of a plaintext server;
/// dropping it stops it.
pub struct TlsRelay {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TlsRelay {
    /// Listen on 127.0.0.1:0 with a certificate for "localhost" and
    /// "127.0.0.1" signed by a fresh self-signed test CA; decrypt each
    /// connection and relay the plaintext both ways to `target` (e.g. a
    /// `TestServer`'s address).
    pub fn start(target: SocketAddr) -> TlsRelay {
        let (ca_pem, config) = make_config();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("tls relay: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("tls relay: local_addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            handshakes_failed: AtomicUsize::new(0),
            live: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || accept_loop(&accept_shared, listener, &config, target))
            .expect("tls relay: spawn accept thread");
        TlsRelay {
            addr,
            ca_pem,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// `"https://localhost:PORT"`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The listening address (127.0.0.1:PORT).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The test CA's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Write the CA certificate (PEM) to a new file in `dir`, named
    /// `ca-<pid>-<n>.pem` (unique per relay in the process), and return its
    /// path. Panics if the file cannot be written.
    pub fn write_ca_file(&self, dir: &Path) -> PathBuf {
        let n = CA_FILES.fetch_add(1, Ordering::SeqCst);
        let path = dir.join(format!("ca-{}-{n}.pem", std::process::id()));
        std::fs::write(&path, &self.ca_pem)
            .unwrap_or_else(|e| panic!("tls relay: write {}: {e}", path.display()));
        path
    }

    /// TLS handshakes that failed so far (e.g. the client refused the
    /// certificate, or closed the connection before finishing the handshake).
    ///
    /// The client may see its error a moment before the relay counts the
    /// failure; see [`TlsRelay::wait_handshakes_failed`].
    pub fn handshakes_failed(&self) -> usize {
        self.shared.handshakes_failed.load(Ordering::SeqCst)
    }

    /// Wait (at most `timeout`) until at least `n` handshakes failed; returns
    /// the count by then.
    pub fn wait_handshakes_failed(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let failed = self.handshakes_failed();
            if failed >= n || Instant::now() >= deadline {
                return failed;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag and returns.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).is_ok();
        // Wake connection threads blocked writing. (Reads poll the flag.)
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
        // The accept thread has ended: no more connection threads appear.
        let threads: Vec<_> = lock(&self.shared.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The CA certificate (PEM) and a server config presenting a certificate for
/// "localhost" and "127.0.0.1" signed by a fresh test CA: for a test that
/// runs its own TLS server (e.g. one that misbehaves below HTTP).
pub fn server_config() -> (String, ServerConfig) {
    make_config()
}

/// The CA certificate (PEM) and a server config presenting a certificate for
/// "localhost" and "127.0.0.1" signed by that CA.
fn make_config() -> (String, ServerConfig) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("tls relay: CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "modelapi test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("tls relay: CA key");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("tls relay: CA certificate");

    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("tls relay: server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::NoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("tls relay: server key");
    let cert = params
        .signed_by(&key, &ca)
        .expect("tls relay: server certificate");

    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls relay: protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("tls relay: server certificate and key");
    (ca.pem(), config)
}

fn accept_loop(
    shared: &Arc<Shared>,
    listener: TcpListener,
    config: &Arc<ServerConfig>,
    target: SocketAddr,
) {
    for conn in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let client = match conn {
            Ok(client) => client,
            // E.g. EMFILE or ECONNABORTED: back off a little.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let index = shared.accepted.fetch_add(1, Ordering::SeqCst);
        let conn_shared = Arc::clone(shared);
        let config = Arc::clone(config);
        let spawned = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || serve(&conn_shared, index, client, config, target));
        if let Ok(handle) = spawned {
            let mut threads = lock(&shared.threads);
            // Forget the threads that are done, so the list stays short.
            threads.retain(|t| !t.is_finished());
            threads.push(handle);
        }
    }
}

/// Serve one accepted connection: handshake, then relay.
fn serve(
    shared: &Shared,
    index: usize,
    client: TcpStream,
    config: Arc<ServerConfig>,
    target: SocketAddr,
) {
    if !shared.register(index, &client) {
        return;
    }
    let _ = client.set_read_timeout(Some(POLL));
    let _ = client.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = client.set_nodelay(true);
    let mut conn = Conn {
        client,
        tls: match ServerConnection::new(config) {
            Ok(tls) => tls,
            Err(_) => {
                shared.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                shared.unregister(index);
                return;
            }
        },
    };
    if conn.handshake(shared).is_err() {
        shared.handshakes_failed.fetch_add(1, Ordering::SeqCst);
        shared.unregister(index);
        return;
    }
    let target = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(target) if shared.register(index, &target) => target,
        // The target is down (or we are stopping): close the TLS side.
        _ => {
            conn.close();
            shared.unregister(index);
            return;
        }
    };
    let _ = target.set_read_timeout(Some(POLL));
    let _ = target.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = target.set_nodelay(true);
    conn.relay(shared, target);
    shared.unregister(index);
}

struct Conn {
    client: TcpStream,
    tls: ServerConnection,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// What reading the TLS side gave.
enum TlsRead {
    /// Nothing arrived within the poll interval.
    Nothing,
    /// Some records arrived (possibly without application data).
    Some,
    /// The client closed (close_notify or EOF).
    Closed,
}

impl Conn {
    /// Write out every TLS record rustls has queued.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.client)?;
        }
        Ok(())
    }

    /// Read what the client sent (waiting at most [`POLL`]) and process it.
    /// `Closed` once the client sent close_notify with no data left to read,
    /// or closed the TCP connection.
    fn read_tls(&mut self) -> io::Result<TlsRead> {
        match self.tls.read_tls(&mut self.client) {
            Ok(0) => Ok(TlsRead::Closed),
            Ok(_) => match self.tls.process_new_packets() {
                Ok(state) => {
                    let closed = state.peer_has_closed();
                    // Handshake messages, tickets, key updates.
                    self.flush_tls()?;
                    Ok(if closed && state.plaintext_bytes_to_read() == 0 {
                        TlsRead::Closed
                    } else {
                        TlsRead::Some
                    })
                }
                Err(e) => {
                    // Send the alert describing the error, if any.
                    let _ = self.flush_tls();
                    Err(io::Error::new(io::ErrorKind::InvalidData, e))
                }
            },
            Err(e) if is_timeout(&e) => Ok(TlsRead::Nothing),
            Err(e) => Err(e),
        }
    }

    fn handshake(&mut self, shared: &Shared) -> io::Result<()> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        while self.tls.is_handshaking() {
            if shared.stopping() || Instant::now() >= deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.flush_tls()?;
            if !self.tls.is_handshaking() {
                break;
            }
            if let TlsRead::Closed = self.read_tls()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        self.flush_tls()
    }

    /// Move the plaintext rustls has decrypted to `target`. `Ok(true)` once
    /// the client has sent close_notify.
    fn drain_plaintext(&mut self, target: &mut TcpStream) -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => target.write_all(&buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Encrypt `data` and send it to the client.
    fn send(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.tls.writer().write(data)?;
            data = &data[n..];
            self.flush_tls()?;
        }
        Ok(())
    }

    /// Relay until either side closes, an error, the idle limit or stop.
    /// When the client closes (close_notify or EOF), the target connection is
    /// closed too, as a reverse proxy would.
    fn relay(&mut self, shared: &Shared, mut target: TcpStream) {
        let mut buf = [0u8; 16 * 1024];
        let mut last_activity = Instant::now();
        // Bytes the client sent with its last handshake flight.
        let mut client_closed = match self.drain_plaintext(&mut target) {
            Ok(closed) => closed,
            Err(_) => return self.abort(&target),
        };
        while !client_closed && !shared.stopping() && last_activity.elapsed() < IDLE_LIMIT {
            // Client → target.
            match self.read_tls() {
                Ok(TlsRead::Nothing) => {}
                Ok(TlsRead::Some) => {
                    last_activity = Instant::now();
                    match self.drain_plaintext(&mut target) {
                        Ok(closed) => client_closed = closed,
                        Err(_) => return self.abort(&target),
                    }
                }
                Ok(TlsRead::Closed) => client_closed = true,
                Err(_) => return self.abort(&target),
            }
            if client_closed {
                break;
            }
            // Target → client.
            match target.read(&mut buf) {
                Ok(0) => break, // the target closed: close the TLS side
                Ok(n) => {
                    last_activity = Instant::now();
                    if self.send(&buf[..n]).is_err() {
                        return self.abort(&target);
                    }
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
        let _ = target.shutdown(Shutdown::Both);
        self.close();
    }

    /// The connection failed: drop both sockets without a close_notify.
    fn abort(&mut self, target: &TcpStream) {
        let _ = target.shutdown(Shutdown::Both);
        let _ = self.client.shutdown(Shutdown::Both);
    }

    /// Close the TLS side cleanly: close_notify, FIN, then drain what the
    /// client already sent (unread data at close would make the kernel send
    /// RST instead), without waiting.
    fn close(&mut self) {
        self.tls.send_close_notify();
        let _ = self.flush_tls();
        let _ = self.client.shutdown(Shutdown::Write);
        if self.client.set_nonblocking(true).is_ok() {
            let mut scratch = [0u8; 16 * 1024];
            let mut drained = 0usize;
            while drained < 64 * 1024 * 1024 {
                match self.client.read(&mut scratch) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        }
    }
}
