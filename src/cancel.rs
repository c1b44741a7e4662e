//! Cancelling a call from another thread, without a thread of our own.
//!
//! A [`CancelToken`] is shared between the thread making a call and any
//! thread that may want to stop it. While the call does I/O, the
//! connection it uses is attached to the token (see [`crate::net`]);
//! [`CancelToken::cancel`] sets a flag and shuts the attached socket down,
//! which wakes a wait on it at once.
//! The call then returns [`Error::Aborted`](crate::Error::Aborted), and the
//! connection, closed, never goes back to the pool.

use std::fmt;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Stops a call from any thread: the blocking call returns
/// [`Error::Aborted`](crate::Error::Aborted) within milliseconds, also while
/// it waits for the server, and its connection is closed (so the server
/// stops generating).
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
    /// The socket of the connection the call is using right now.
    connection: Mutex<Option<Weak<TcpStream>>>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels the calls using this token. Safe from any thread, at any
    /// time, as often as wanted.
    pub fn cancel(&self) {
        self.state.cancelled.store(true, Ordering::SeqCst);
        let connection = self.state.lock().take();
        if let Some(socket) = connection.and_then(|weak| weak.upgrade()) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
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
        let end = Instant::now() + duration;
        while !self.is_cancelled() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(SLICE));
        }
    }
}

impl CancelToken {
    /// Attaches the socket a call is about to use; a cancel that came
    /// first shuts it down.
    pub(crate) fn attach(&self, socket: &Arc<TcpStream>) {
        *self.state.lock() = Some(Arc::downgrade(socket));
        if self.is_cancelled() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Detaches `socket`, if it is the attached one: it may go back to the
    /// pool, and a late cancel must not reach whoever uses it next.
    pub(crate) fn detach(&self, socket: &Arc<TcpStream>) {
        let mut attached = self.state.lock();
        if attached
            .as_ref()
            .is_some_and(|a| std::ptr::eq(a.as_ptr(), Arc::as_ptr(socket)))
        {
            *attached = None;
        }
    }
}

impl CancelState {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Weak<TcpStream>>> {
        // Only a pointer is kept under this lock: never in a broken state.
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
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
