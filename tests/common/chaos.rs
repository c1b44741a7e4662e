//! A seeded chaos relay on loopback: a TCP relay in front of a target that
//! does to each connection what real networks do (splits writes, delays
//! pieces, stalls, resets, closes at a random byte offset), so that a
//! soak test can show every request still ends with the right answer or a
//! clean error.
//!
//! Every choice comes from a small PRNG (splitmix64) seeded by
//! [`ChaosRelay::start`]'s `seed`: the fault of connection `n` depends on
//! the seed and `n` only, so a failing seed shows the same mix of faults
//! again (which request meets which connection depends on the threads'
//! timing; run the soak with one thread to replay closely).
//!
//! Std threads only, all named `chaos`: one accept thread, and two per
//! connection (one per direction, so a stall one way never blocks the
//! other). Every wait is bounded: reads wake every [`POLL`] to look at
//! the stop and "connection over" flags, writes give up after
//! [`WRITE_TIMEOUT`], a stall sleeps in slices of [`POLL`], and a connection
//! with no byte either way for [`IDLE_LIMIT`] is closed. Dropping the relay
//! ends every connection (both sockets closed) and joins every thread.
//!
//! The relay records when a fault that can end a request (a reset, a
//! close, a stall longer than the client's timeout) fired, so the soak can
//! tell an error the chaos explains from one it does not.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a blocked read waits before looking at the flags again.
const POLL: Duration = Duration::from_millis(20);
/// The longest a write to either side may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no byte relayed either way for this long is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// Timeout to connect to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Disruptions older than this are forgotten (the log stays bounded on a
/// long soak; no request lives that long).
const DISRUPTION_MEMORY: Duration = Duration::from_secs(120);
/// And at most this many are kept.
const MAX_DISRUPTIONS: usize = 100_000;

const THREAD_NAME: &str = "chaos";

/// A small, fast, seedable PRNG (splitmix64): good enough to pick faults,
/// and the same sequence for the same seed on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for item `n` of a stream seeded by `seed`, independent
    /// of how many numbers the others drew.
    pub fn derive(seed: u64, n: u64) -> Rng {
        let mut mixer = Rng(seed ^ n.wrapping_mul(0xA076_1D64_78BD_642F));
        Rng(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high` (`low` when `high < low`).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        let span = high - low + 1;
        low + self.next_u64() % span
    }

    /// `usize` uniform in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        self.range(low as u64, high as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// Spread over orders of magnitude: uniform in `0..=high` after a
    /// uniform choice of the number of bits, so small offsets (inside a
    /// head) are as likely as large ones (deep in a body).
    pub fn log_uniform(&mut self, high: u64) -> u64 {
        let bits = 64 - high.leading_zeros() as u64;
        let cap = if bits == 0 {
            0
        } else {
            1u64.checked_shl(self.range(0, bits) as u32)
                .unwrap_or(u64::MAX)
                .saturating_sub(1)
        };
        self.range(0, cap.min(high))
    }

    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(self.range(low, high))
    }
}

/// Which way bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the client to the target (the request).
    Up,
    /// From the target to the client (the answer).
    Down,
}

/// What the relay does to one connection.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Relays the bytes as they come.
    Pass,
    /// Writes every read in pieces of 1..=`max_piece` bytes, each its own
    /// write (Nagle off, so pieces tend to arrive apart).
    Split { max_piece: usize },
    /// The first `pieces` pieces (1..=`max_piece` bytes) of each direction
    /// are each delayed by up to `max_delay`; the rest passes.
    Delay {
        pieces: usize,
        max_piece: usize,
        max_delay: Duration,
    },
    /// Once `at` bytes went `dir`, nothing more goes that way for `pause`
    /// (`long`: longer than the client's timeout).
    Stall {
        dir: Dir,
        at: u64,
        pause: Duration,
        long: bool,
    },
    /// Once `at` bytes went `dir`, both sides are reset (SO_LINGER 0).
    Reset { dir: Dir, at: u64 },
    /// Once `at` bytes went `dir`, both sides are closed cleanly (FIN).
    Close { dir: Dir, at: u64 },
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Split { .. } => "split",
            Fault::Delay { .. } => "delay",
            Fault::Stall { long: false, .. } => "short stall",
            Fault::Stall { long: true, .. } => "long stall",
            Fault::Reset { .. } => "reset",
            Fault::Close { .. } => "close",
        }
    }

    /// The trigger of a one-off fault: its direction and offset.
    fn trigger(&self) -> Option<(Dir, u64)> {
        match self {
            Fault::Stall { dir, at, .. } | Fault::Reset { dir, at } | Fault::Close { dir, at } => {
                Some((*dir, *at))
            }
            _ => None,
        }
    }
}

/// The names of every kind of fault, in the order of [`Mix`]'s fields.
pub const FAULT_NAMES: [&str; 7] = [
    "pass",
    "split",
    "delay",
    "short stall",
    "long stall",
    "reset",
    "close",
];

/// How often each fault is chosen, in percent of connections (the rest
/// passes through), and the client timeout the stalls are measured
/// against.
#[derive(Clone, Debug)]
pub struct Mix {
    pub split: u64,
    pub delay: u64,
    pub short_stall: u64,
    pub long_stall: u64,
    pub reset: u64,
    pub close: u64,
    /// The clients' per-wait timeout: a short stall stays well under it
    /// (at most half), a long one goes 1 to 2 s over it.
    pub client_timeout: Duration,
    /// Offsets of the faults of the answer direction are spread over
    /// `0..=down_span` bytes (pooled connections carry several answers),
    /// those of the request direction over `0..=up_span`.
    pub down_span: u64,
    pub up_span: u64,
}

impl Mix {
    /// The fault of one connection.
    pub fn choose(&self, rng: &mut Rng) -> Fault {
        let roll = rng.range(0, 99);
        let dir = if rng.chance(50) { Dir::Up } else { Dir::Down };
        let at = match dir {
            Dir::Up => rng.log_uniform(self.up_span),
            Dir::Down => rng.log_uniform(self.down_span),
        };
        let timeout_ms = self.client_timeout.as_millis() as u64;
        let mut bound = 0;
        let mut next = |share: u64| {
            bound += share;
            roll < bound
        };
        if next(self.split) {
            let max_piece = *[1usize, 2, 7, 64, 1500]
                .get(rng.between(0, 4))
                .unwrap_or(&1);
            Fault::Split { max_piece }
        } else if next(self.delay) {
            Fault::Delay {
                pieces: rng.between(1, 40),
                max_piece: rng.between(1, 2048),
                max_delay: rng.millis(1, 25),
            }
        } else if next(self.short_stall) {
            Fault::Stall {
                dir,
                at,
                pause: rng.millis(10, timeout_ms / 2),
                long: false,
            }
        } else if next(self.long_stall) {
            Fault::Stall {
                dir,
                at,
                pause: rng.millis(timeout_ms + 1000, timeout_ms + 2000),
                long: true,
            }
        } else if next(self.reset) {
            Fault::Reset { dir, at }
        } else if next(self.close) {
            Fault::Close { dir, at }
        } else {
            Fault::Pass
        }
    }
}

/// A fault that fired and can end a request: when, and what.
#[derive(Clone, Debug)]
pub struct Disruption {
    pub at: Instant,
    /// The connection's index on its relay.
    pub connection: usize,
    pub fault: Fault,
}

impl fmt::Display for Disruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}: {:?}", self.connection, self.fault)
    }
}

struct Shared {
    name: String,
    stop: AtomicBool,
    accepted: AtomicUsize,
    live: AtomicUsize,
    /// The most connections live at once.
    peak_live: AtomicUsize,
    /// Connections per fault, in [`FAULT_NAMES`] order.
    chosen: Mutex<[usize; 7]>,
    /// Faults that fired, per kind, in [`FAULT_NAMES`] order.
    fired: Mutex<[usize; 7]>,
    disruptions: Mutex<VecDeque<Disruption>>,
    /// The sockets of live connections, so that `Drop` can shut them down.
    sockets: Mutex<Vec<(usize, Arc<TcpStream>)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn fault_index(fault: &Fault) -> usize {
    FAULT_NAMES
        .iter()
        .position(|n| *n == fault.name())
        .unwrap_or(0)
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn record(&self, connection: usize, fault: &Fault) {
        lock(&self.fired)[fault_index(fault)] += 1;
        let ends_requests = match fault {
            Fault::Stall { long, .. } => *long,
            Fault::Reset { .. } | Fault::Close { .. } => true,
            _ => false,
        };
        if !ends_requests {
            return;
        }
        let now = Instant::now();
        let mut log = lock(&self.disruptions);
        while log.front().is_some_and(|d| {
            log.len() >= MAX_DISRUPTIONS || now.duration_since(d.at) > DISRUPTION_MEMORY
        }) {
            log.pop_front();
        }
        log.push_back(Disruption {
            at: now,
            connection,
            fault: fault.clone(),
        });
    }
}

/// A chaos relay on 127.0.0.1 in front of `target`; dropping it stops it.
pub struct ChaosRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl ChaosRelay {
    /// Listens on 127.0.0.1:0 and relays every connection to `target`,
    /// with a fault chosen by `mix` from `seed` and the connection's index.
    /// `name` labels the relay in reports.
    pub fn start(name: &str, target: SocketAddr, seed: u64, mix: Mix) -> ChaosRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("chaos relay: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("chaos relay: local_addr");
        let shared = Arc::new(Shared {
            name: name.to_string(),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            peak_live: AtomicUsize::new(0),
            chosen: Mutex::new([0; 7]),
            fired: Mutex::new([0; 7]),
            disruptions: Mutex::new(VecDeque::new()),
            sockets: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || accept_loop(&accept_shared, listener, target, seed, &mix))
            .expect("chaos relay: spawn accept thread");
        ChaosRelay {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections not yet over (both directions done, sockets closed).
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// The most connections that were live at once.
    pub fn peak_live(&self) -> usize {
        self.shared.peak_live.load(Ordering::SeqCst)
    }

    /// Connections per fault, in [`FAULT_NAMES`] order.
    pub fn chosen(&self) -> [usize; 7] {
        *lock(&self.shared.chosen)
    }

    /// One-off faults (stalls, resets, closes) that fired: their offset
    /// was reached. In [`FAULT_NAMES`] order.
    pub fn fired(&self) -> [usize; 7] {
        *lock(&self.shared.fired)
    }

    /// The disruptions (resets, closes, long stalls) that fired between
    /// `from` and `to`, for which `keep` holds.
    pub fn disruptions(
        &self,
        from: Instant,
        to: Instant,
        keep: impl Fn(&Fault) -> bool,
    ) -> Vec<Disruption> {
        lock(&self.shared.disruptions)
            .iter()
            .filter(|d| d.at >= from && d.at <= to && keep(&d.fault))
            .cloned()
            .collect()
    }
}

impl Drop for ChaosRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag and returns.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).is_ok();
        // Wake pumps blocked writing (reads look at the flag every POLL).
        for (_, socket) in lock(&self.shared.sockets).drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
        if !woke {
            // Cannot happen on loopback; rather leave threads than hang.
            return;
        }
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        let threads: Vec<_> = lock(&self.shared.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    shared: &Arc<Shared>,
    listener: TcpListener,
    target: SocketAddr,
    seed: u64,
    mix: &Mix,
) {
    for client in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let client = match client {
            Ok(client) => client,
            // E.g. EMFILE or ECONNABORTED: back off a little.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let index = shared.accepted.fetch_add(1, Ordering::SeqCst);
        let fault = mix.choose(&mut Rng::derive(seed, index as u64));
        lock(&shared.chosen)[fault_index(&fault)] += 1;
        let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
            // The target is down: the client sees its connection closed.
            continue;
        };
        let conn = Arc::new(Connection {
            index,
            client: Arc::new(client),
            upstream: Arc::new(upstream),
            fault,
            over: AtomicBool::new(false),
            reset: AtomicBool::new(false),
            pumps_left: AtomicUsize::new(2),
            last_activity: Mutex::new(Instant::now()),
            rng: Mutex::new(Rng::derive(seed ^ 0x5EED, index as u64)),
        });
        for socket in [&conn.client, &conn.upstream] {
            let _ = socket.set_read_timeout(Some(POLL));
            let _ = socket.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = socket.set_nodelay(true);
        }
        {
            let mut sockets = lock(&shared.sockets);
            if shared.stopping() {
                break;
            }
            sockets.push((index, Arc::clone(&conn.client)));
            sockets.push((index, Arc::clone(&conn.upstream)));
        }
        let live = shared.live.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_live.fetch_max(live, Ordering::SeqCst);
        let mut threads = lock(&shared.threads);
        // Forget the threads that are done, so the list stays short.
        threads.retain(|t| !t.is_finished());
        for dir in [Dir::Up, Dir::Down] {
            let (pump_shared, pump_conn) = (Arc::clone(shared), Arc::clone(&conn));
            let spawned = thread::Builder::new()
                .name(THREAD_NAME.into())
                .spawn(move || pump(&pump_shared, &pump_conn, dir));
            match spawned {
                Ok(handle) => threads.push(handle),
                // No thread for this direction: end the connection.
                Err(_) => {
                    conn.over.store(true, Ordering::SeqCst);
                    conn.pump_done(shared);
                }
            }
        }
    }
}

/// One relayed connection, shared by its two pumps.
struct Connection {
    index: usize,
    client: Arc<TcpStream>,
    upstream: Arc<TcpStream>,
    fault: Fault,
    /// The connection is over: both pumps stop.
    over: AtomicBool,
    /// It ends with a reset: SO_LINGER 0 is set on both sockets.
    reset: AtomicBool,
    pumps_left: AtomicUsize,
    last_activity: Mutex<Instant>,
    /// Piece sizes and delays.
    rng: Mutex<Rng>,
}

impl Connection {
    fn is_over(&self, shared: &Shared) -> bool {
        self.over.load(Ordering::SeqCst) || shared.stopping()
    }

    /// Both sockets are reset (RST, not FIN) when they are closed.
    fn reset_both(&self) {
        self.reset.store(true, Ordering::SeqCst);
        set_linger_zero(&self.client);
        set_linger_zero(&self.upstream);
        self.over.store(true, Ordering::SeqCst);
    }

    /// Both sides get a FIN.
    fn close_both(&self) {
        let _ = self.client.shutdown(Shutdown::Write);
        let _ = self.upstream.shutdown(Shutdown::Write);
        self.over.store(true, Ordering::SeqCst);
    }

    /// The last pump out takes the sockets off the list: they are closed
    /// when the connection is dropped.
    fn pump_done(&self, shared: &Shared) {
        if self.pumps_left.fetch_sub(1, Ordering::SeqCst) == 1 {
            lock(&shared.sockets).retain(|(i, _)| *i != self.index);
            shared.live.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    fn idle_too_long(&self) -> bool {
        lock(&self.last_activity).elapsed() > IDLE_LIMIT
    }
}

/// Copies one direction of `conn`, applying its fault.
fn pump(shared: &Shared, conn: &Connection, dir: Dir) {
    let (from, to) = match dir {
        Dir::Up => (&conn.client, &conn.upstream),
        Dir::Down => (&conn.upstream, &conn.client),
    };
    let trigger = conn
        .fault
        .trigger()
        .filter(|(d, _)| *d == dir)
        .map(|(_, at)| at);
    let mut moved: u64 = 0;
    let mut fired = false;
    let mut delayed_pieces = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if conn.is_over(shared) {
            break;
        }
        let n = match (&**from).read(&mut buf) {
            Ok(0) => {
                // The end of this direction: pass the FIN on.
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                if conn.idle_too_long() {
                    conn.close_both();
                    break;
                }
                continue;
            }
            // Reset (or worse) on one side: the other side is reset too.
            Err(_) => {
                conn.reset_both();
                break;
            }
        };
        conn.touch();
        let mut data = &buf[..n];
        // A one-off fault at `at` bytes: what comes before it goes first.
        if let Some(at) = trigger.filter(|_| !fired) {
            if moved + (data.len() as u64) > at {
                let before = (at - moved) as usize;
                if !forward(shared, conn, to, &data[..before], &mut delayed_pieces) {
                    break;
                }
                moved += before as u64;
                data = &data[before..];
                fired = true;
                shared.record(conn.index, &conn.fault);
                match &conn.fault {
                    Fault::Stall { pause, .. } if !pause_for(shared, conn, *pause) => break,
                    Fault::Reset { .. } => {
                        conn.reset_both();
                        break;
                    }
                    Fault::Close { .. } => {
                        conn.close_both();
                        break;
                    }
                    _ => {}
                }
            }
        }
        if !forward(shared, conn, to, data, &mut delayed_pieces) {
            break;
        }
        moved += data.len() as u64;
    }
    conn.pump_done(shared);
}

/// Writes `data` to `to` as the connection's fault says; `false` when the
/// connection is over.
fn forward(
    shared: &Shared,
    conn: &Connection,
    to: &TcpStream,
    mut data: &[u8],
    delayed_pieces: &mut usize,
) -> bool {
    while !data.is_empty() {
        if conn.is_over(shared) {
            return false;
        }
        let piece = match &conn.fault {
            Fault::Split { max_piece } => lock(&conn.rng).between(1, *max_piece),
            Fault::Delay {
                pieces,
                max_piece,
                max_delay,
            } if *delayed_pieces < *pieces => {
                *delayed_pieces += 1;
                let (piece, delay) = {
                    let mut rng = lock(&conn.rng);
                    let delay = rng.range(0, max_delay.as_millis() as u64);
                    (rng.between(1, *max_piece), Duration::from_millis(delay))
                };
                if !pause_for(shared, conn, delay) {
                    return false;
                }
                piece
            }
            _ => data.len(),
        };
        let piece = piece.clamp(1, data.len());
        let mut writer = to;
        if writer.write_all(&data[..piece]).is_err() {
            // The receiver is gone (or stuck past WRITE_TIMEOUT): the
            // sender is reset.
            conn.reset_both();
            return false;
        }
        data = &data[piece..];
        conn.touch();
    }
    true
}

/// Sleeps `pause`, in slices; `false` when the connection ended meanwhile.
fn pause_for(shared: &Shared, conn: &Connection, pause: Duration) -> bool {
    let deadline = Instant::now() + pause;
    loop {
        if conn.is_over(shared) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep((deadline - now).min(POLL));
        // A stalled direction is not idle: the stall is the point.
        conn.touch();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// SO_LINGER with a zero timeout: closing the socket then sends RST.
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
