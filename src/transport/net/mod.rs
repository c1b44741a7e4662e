//! The network edge: connections that never block, and one exchange on
//! one of them driven by polls.
//!
//! # Design: one pipeline, driven by polls
//!
//! Every request — a blocking `complete`, a blocking stream, a stream
//! polled from a game loop — runs through the same code: a state machine
//! ([`crate::transport::request::Request`], then [`Transfer`]) that each call moves as
//! far as the network allows *now*, and that says when it is stuck. A
//! blocking call is that machine plus a wait: "poll until something comes",
//! with the wait in poll(2) on the socket (or a sleep during a retry's
//! backoff). A non-blocking poll is the same machine with a wait of zero.
//! So retries, redirects, credential scoping, caps, timeouts and cancel
//! exist once, whichever way a stream is driven.
//!
//! That needs protocol code that does no I/O of its own: ureq's sans-IO
//! core (`ureq-proto`) writes requests and parses responses, rustls'
//! `ClientConnection` does TLS, and this module moves their bytes over
//! non-blocking sockets. ureq's blocking agent could not serve here: a
//! call, once in it, returns only when the response head has come.
//!
//! The per-wait timeout is the longest time without progress (a byte moved,
//! a connection made), counted across polls: a poll after a silence longer
//! than that fails with a timeout, however the waiting was split.

mod conn;
mod connect;
mod pool;
mod socket;
mod tls;

use std::io;
use std::net::TcpStream;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq_proto::http::Response;

pub(crate) use crate::until::Until;
pub(crate) use conn::Conn;
pub(crate) use pool::Pool;
pub(crate) use socket::{ready_any, Interest};
pub(crate) use tls::{config as tls_config, load_ca_file, TlsConfig};

use crate::cancel::CancelToken;
use crate::error::Oversized;
use crate::transport::http::Exchange;

/// The input buffer holds a response head (up to 64 KiB, which must fit
/// with room to spare) and then each read of the body.
const INPUT_BYTES: usize = 80 * 1024;

/// The longest single wait when the timeout is too long for the clock to
/// count (`Duration::MAX`): a wait is cut into slices of this length.
const FOREVER_SLICE: Duration = Duration::from_secs(24 * 60 * 60);

/// The largest response head accepted.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One request and its response on one connection.
pub(crate) struct Transfer {
    conn: Conn,
    exchange: Exchange,
    /// Bytes read and not yet parsed are `input[start..end]`.
    input: Box<[u8]>,
    start: usize,
    end: usize,
    /// The connection has no more bytes to give.
    eof: bool,
    /// A byte of the answer has arrived (it may have been parsed away
    /// since, as a 1xx interim answer is).
    heard: bool,
    /// When bytes last moved: the per-wait timeout runs from here.
    last_progress: Instant,
    timeout: Duration,
    /// The connection came from the pool (a failure before any answer may
    /// be the server having closed it meanwhile).
    pub(crate) reused: bool,
    cancel: CancelToken,
    /// The socket attached to `cancel`: a connect that falls back to the
    /// next address changes the connection's socket.
    attached: Arc<TcpStream>,
}

impl Transfer {
    /// Sends `request` (the bytes of [`crate::transport::http::post`]) on `conn` and
    /// expects the answer `exchange` describes.
    pub(crate) fn new(
        mut conn: Conn,
        reused: bool,
        request: &[u8],
        exchange: Exchange,
        timeout: Duration,
        cancel: CancelToken,
    ) -> Transfer {
        conn.send(request);
        cancel.attach(conn.socket());
        // A pooled connection brings the buffer of its last transfer.
        let input = conn
            .take_buffer()
            .unwrap_or_else(|| vec![0; INPUT_BYTES].into_boxed_slice());
        Transfer {
            attached: Arc::clone(conn.socket()),
            conn,
            exchange,
            input,
            start: 0,
            end: 0,
            eof: false,
            heard: false,
            last_progress: Instant::now(),
            timeout,
            reused,
            cancel,
        }
    }

    /// The socket and what it waits for.
    pub(crate) fn waits_on(&self) -> (RawFd, Interest) {
        (self.conn.fd(), self.conn.interest())
    }

    /// The TLS version in use, once the handshake is done.
    pub(crate) fn tls_version(&self) -> Option<&'static str> {
        self.conn.tls_version()
    }

    /// Whether any byte of the answer has arrived (a `102 Processing`
    /// counts: the server is at work on the request).
    pub(crate) fn heard_back(&self) -> bool {
        self.heard || !matches!(self.exchange, Exchange::Head(_))
    }

    /// The response head, once it has come: `Ok(None)` when it has not by
    /// `until` (see [`Until`]).
    pub(crate) fn poll_head(&mut self, until: Until) -> io::Result<Option<Response<()>>> {
        loop {
            if self.start < self.end {
                let (used, head) = self.exchange.head(&self.input[self.start..self.end])?;
                self.start += used;
                if let Some(head) = head {
                    if head.status().as_u16() >= 300 {
                        // A refusal before the server took the whole
                        // request (a 413, a 401): the rest is not sent.
                        self.conn.stop_sending();
                    }
                    return Ok(Some(head));
                }
                if used > 0 {
                    // An interim head (100 Continue, 102, 103 Early Hints)
                    // was consumed: the final head may already be in the
                    // buffer, right behind it. Parse it before reading.
                    continue;
                }
                if self.end - self.start >= MAX_HEAD_BYTES {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        Oversized(format!(
                            "response head of more than {MAX_HEAD_BYTES} bytes is larger than \
                             the cap of {MAX_HEAD_BYTES} bytes"
                        )),
                    ));
                }
            }
            if self.eof {
                // A reset during the upload leaves reads only the end to
                // see: the failed write says what happened.
                return Err(self.conn.take_write_error().unwrap_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection without answering",
                    )
                }));
            }
            if !self.fill(until)? {
                return Ok(None);
            }
        }
    }

    /// Reads body bytes into `out`: `Ok(Some(0))` at the end of the body,
    /// `Ok(None)` when none came by `until` (as in
    /// [`poll_head`](Self::poll_head)).
    pub(crate) fn poll_body(&mut self, out: &mut [u8], until: Until) -> io::Result<Option<usize>> {
        loop {
            if self.start < self.end {
                let (used, written) = self.exchange.body(&self.input[self.start..self.end], out)?;
                self.start += used;
                if written > 0 {
                    return Ok(Some(written));
                }
                if used > 0 {
                    continue;
                }
            }
            if self.exchange.is_ended() {
                return Ok(Some(0));
            }
            if self.eof {
                self.exchange.at_eof()?;
                return Ok(Some(0));
            }
            if !self.fill(until)? {
                return Ok(None);
            }
        }
    }

    /// How long until the per-wait timeout would expire, if nothing moves;
    /// while connecting, until the next attempt is due (or the racing
    /// attempts must be looked at), if that is sooner.
    pub(crate) fn wake_in(&self) -> Duration {
        let now = Instant::now();
        let timeout = match self.timeout_at() {
            Some(at) => at.saturating_duration_since(now),
            // A timeout past what the clock can count: never.
            None => self.timeout,
        };
        match self.conn.wake_at() {
            Some(at) => timeout.min(at.saturating_duration_since(now)),
            None => timeout,
        }
    }

    /// When the per-wait timeout expires if nothing moves: `None` when that
    /// is past what the clock can count (a timeout of `u64::MAX` ms means
    /// "practically forever", not an overflow).
    fn timeout_at(&self) -> Option<Instant> {
        self.last_progress.checked_add(self.timeout)
    }

    /// Whether the whole body has been read.
    pub(crate) fn is_complete(&self) -> bool {
        self.exchange.is_ended()
    }

    /// The connection, when it can serve another request: the request
    /// went out whole, the body was read to its end, and the server keeps
    /// it open. (A server may answer before it has read the request, e.g.
    /// a 401: the rest of the request would reach it ahead of the next
    /// one, which it may then read as garbage.)
    pub(crate) fn into_reusable(mut self) -> Option<Conn> {
        let reusable = self.exchange.keeps_alive()
            && self.start == self.end
            && !self.eof
            && self.conn.sent_all();
        self.cancel.detach(self.conn.socket());
        self.conn.keep_buffer(self.input);
        reusable.then_some(self.conn)
    }

    /// Reads more bytes into the input buffer: `Ok(true)` when some came
    /// (or the end did), `Ok(false)` when none by `until`. Fails once the
    /// connection has been silent for the timeout, or the call is
    /// cancelled.
    fn fill(&mut self, until: Until) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.input.len() {
            if self.start == 0 {
                // Nothing of a full buffer could be parsed: no HTTP/1.1
                // line is that long (a head's lines are capped below it).
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Oversized(format!(
                        "the response holds a line longer than {INPUT_BYTES} bytes"
                    )),
                ));
            }
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            if self.cancel.is_cancelled() {
                return Err(cancelled());
            }
            if self.conn.flush()? {
                self.last_progress = Instant::now();
            }
            match self.conn.read(&mut self.input[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(true);
                }
                Ok(n) => {
                    self.end += n;
                    self.heard = true;
                    self.last_progress = Instant::now();
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !Arc::ptr_eq(&self.attached, self.conn.socket()) {
                // The connect moved on to another address: a cancel must
                // reach the socket waited on (here or by the host).
                self.cancel.detach(&self.attached);
                self.attached = Arc::clone(self.conn.socket());
                self.cancel.attach(&self.attached);
            }
            let now = Instant::now();
            let timeout_at = self.timeout_at();
            if timeout_at.is_some_and(|at| now >= at) {
                return Err(self
                    .conn
                    .connect_timed_out(self.timeout)
                    .unwrap_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "no progress on the network for the client's timeout of {:?}",
                                self.timeout
                            ),
                        )
                    }));
            }
            let wait_until = match (until, timeout_at) {
                (Until::Now, _) => return Ok(false),
                (Until::At(at), Some(timeout_at)) => at.min(timeout_at),
                (Until::At(at), None) => at,
                (Until::Forever, Some(timeout_at)) => timeout_at,
                // No timeout the clock can count: wait in long slices (a
                // wait ends early anyway when the socket is ready).
                (Until::Forever, None) => now.checked_add(FOREVER_SLICE).unwrap_or(now),
            };
            if wait_until <= now {
                return Ok(false);
            }
            self.conn.wait(wait_until)?;
        }
    }
}

/// The error of a cancelled transfer.
pub(crate) fn cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the call was cancelled")
}
