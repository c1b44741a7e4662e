//! Cancelling a call from another thread, without a thread of our own.
//!
//! A [`CancelToken`] is shared between the thread making a call and any
//! thread that may want to stop it. While the call does I/O, the
//! connection it uses is attached to the token (see [`crate::transport::net`]);
//! [`CancelToken::cancel`] sets a flag and shuts every attached socket
//! down, which wakes a wait on each at once. One token may serve several
//! calls at the same time (threads, polled streams): each attaches its own
//! socket, and one cancel stops them all.
//! Each call then returns [`Error::Aborted`](crate::Error::Aborted), and its
//! connection, closed, never goes back to the pool.

use std::fmt;
#[cfg(feature = "net")]
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
#[cfg(feature = "net")]
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Stops calls from any thread: every blocking call using the token returns
/// [`Error::Aborted`](crate::Error::Aborted) within milliseconds, also while
/// it waits for the server, and its connection is closed (so the server
/// stops generating). One token may be shared by any number of calls and
/// streams, on any threads: a cancel stops every one of them.
///
/// Pass a token to [`ModelApi::with_cancel`](crate::ModelApi::with_cancel),
/// or take the one of a stream with
/// [`ChatStream::cancel_token`](crate::ChatStream::cancel_token). A
/// cancelled token stays cancelled (later calls with it fail at once) until
/// [`reset`](Self::reset).
///
/// ```
/// use modelapi::{CancelToken, Message, ModelApi};
///
/// let api = ModelApi::builder("m", "http://localhost:8000")
///     .mock_responses(vec!["a long canned answer".into()])
///     .build()?;
/// let cancel = CancelToken::new();
/// let mut stream = api.with_cancel(&cancel).stream(&[Message::user("hi")], None)?;
/// assert!(stream.next().unwrap().is_ok());
/// // From any thread, e.g. a UI thread:
/// cancel.cancel();
/// assert!(matches!(stream.next(), Some(Err(modelapi::Error::Aborted(_)))));
/// # Ok::<(), modelapi::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    state: Arc<CancelState>,
}

/// What a token and the transports attached to it share.
#[derive(Default)]
pub(crate) struct CancelState {
    cancelled: AtomicBool,
    /// The sockets of the connections the calls using the token are on
    /// right now: one per call (a call attaches its socket, and detaches
    /// it when the connection goes back to the pool). Weak: a connection
    /// dropped without a detach (a failed call) leaves a dead entry, which
    /// the next attach prunes, so the list stays as long as the number of
    /// calls under way.
    #[cfg(feature = "net")]
    connections: Mutex<Vec<Weak<TcpStream>>>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels every call using this token. Safe from any thread, at any
    /// time, as often as wanted.
    pub fn cancel(&self) {
        // The flag first: a call attaching after the list was taken sees
        // it and shuts its own socket down (see `attach`).
        self.state.cancelled.store(true, Ordering::SeqCst);
        #[cfg(feature = "net")]
        self.shut_down_attached();
    }

    /// Whether [`cancel`](Self::cancel) was called (since the last reset).
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancelled()
    }

    /// Makes the token usable again for new calls.
    pub fn reset(&self) {
        self.state.cancelled.store(false, Ordering::SeqCst);
    }

    /// Sleeps for `duration`, or less when the token is cancelled meanwhile.
    pub(crate) fn sleep(&self, duration: Duration) {
        const SLICE: Duration = Duration::from_millis(5);
        // Callers' waits are bounded (a backoff, at most a minute); the
        // cap keeps the sum within what the clock can count.
        const LONGEST: Duration = Duration::from_secs(24 * 3600);
        let end = Instant::now() + duration.min(LONGEST);
        while !self.is_cancelled() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(SLICE));
        }
    }
}

#[cfg(feature = "net")]
impl CancelToken {
    /// Shuts down every attached socket, under the lock (shutdown never
    /// blocks): a call that detaches its socket to pool it waits for this,
    /// so a socket handed to the pool (and perhaps to another call) is
    /// never shut down.
    fn shut_down_attached(&self) {
        let mut connections = self.state.lock();
        for socket in connections.drain(..).filter_map(|weak| weak.upgrade()) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Attaches the socket a call is about to use, next to those of the
    /// other calls on this token; a cancel that came first shuts it down.
    pub(crate) fn attach(&self, socket: &Arc<TcpStream>) {
        {
            let mut attached = self.state.lock();
            // Sockets already closed are no one's to wake.
            attached.retain(|weak| weak.strong_count() > 0);
            attached.push(Arc::downgrade(socket));
        }
        if self.is_cancelled() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Detaches `socket` (and only it: the other calls' stay attached):
    /// it may go back to the pool, and a late cancel must not reach
    /// whoever uses it next.
    pub(crate) fn detach(&self, socket: &Arc<TcpStream>) {
        let mut attached = self.state.lock();
        // The entry's Weak keeps its allocation, so no other socket can
        // have the same address while it is listed.
        if let Some(at) = attached
            .iter()
            .position(|weak| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(socket)))
        {
            attached.swap_remove(at);
        }
    }
}

impl CancelState {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    #[cfg(feature = "net")]
    fn lock(&self) -> MutexGuard<'_, Vec<Weak<TcpStream>>> {
        // Only pointers are kept under this lock, each pushed or removed
        // whole: never in a broken state.
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.state.fmt(f)
    }
}

impl fmt::Debug for CancelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(all(test, feature = "net"))]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn socket(listener: &TcpListener) -> Arc<TcpStream> {
        Arc::new(TcpStream::connect(listener.local_addr().unwrap()).unwrap())
    }

    fn attached(token: &CancelToken) -> usize {
        token.state.lock().len()
    }

    #[test]
    fn every_attached_socket_is_kept_and_detached_alone() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let token = CancelToken::new();
        let (a, b, c) = (socket(&listener), socket(&listener), socket(&listener));
        for s in [&a, &b, &c] {
            token.attach(s);
        }
        assert_eq!(attached(&token), 3);
        token.detach(&b);
        token.detach(&b);
        assert_eq!(attached(&token), 2, "only b was detached");
        token.cancel();
        assert_eq!(attached(&token), 0);
        // Shut down: a read gives the end at once instead of blocking.
        for s in [&a, &c] {
            use std::io::Read;
            assert_eq!((&**s).read(&mut [0u8; 1]).unwrap(), 0);
        }
    }

    #[test]
    fn sockets_dropped_without_a_detach_are_pruned() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let token = CancelToken::new();
        let kept = socket(&listener);
        token.attach(&kept);
        for _ in 0..100 {
            // A failed call drops its connection without detaching it.
            token.attach(&socket(&listener));
        }
        assert_eq!(attached(&token), 2, "the kept one and the last one");
    }
}
