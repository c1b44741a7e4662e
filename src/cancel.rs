//! Cancelling a call from another thread, without a thread of our own.
//!
//! A [`CancelToken`] is shared between the thread making a call and any
//! thread that may want to stop it. While the call does I/O, the
//! connection it uses is attached to the token (see
//! [`crate::transport`]); [`CancelToken::cancel`] sets a flag and shuts the
//! attached socket down, which wakes a read or write blocked on it at once.
//! The call then returns [`Error::Aborted`](crate::Error::Aborted), and the
//! connection, closed, never goes back to the pool.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::ShutdownHandle;

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
    connection: Mutex<Option<Weak<dyn ShutdownHandle>>>,
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
            socket.shutdown();
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

    /// Runs `f` with this token as the current thread's: the I/O it does
    /// attaches its connection to the token.
    pub(crate) fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let previous = CURRENT.with(|c| c.replace(Some(Arc::clone(&self.state))));
        let result = f();
        CURRENT.with(|c| *c.borrow_mut() = previous);
        // The connection may go back to the pool now: a late cancel must
        // not reach whoever uses it next.
        self.state.lock().take();
        result
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

impl CancelState {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Attaches a connection; a cancel that came first shuts it down.
    pub(crate) fn attach(&self, socket: &Weak<dyn ShutdownHandle>) {
        *self.lock() = Some(socket.clone());
        if self.is_cancelled() {
            if let Some(socket) = socket.upgrade() {
                socket.shutdown();
            }
        }
    }

    /// Detaches `socket`, if it is the attached one.
    pub(crate) fn detach(&self, socket: &Weak<dyn ShutdownHandle>) {
        let mut attached = self.lock();
        if attached.as_ref().is_some_and(|a| Weak::ptr_eq(a, socket)) {
            *attached = None;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Weak<dyn ShutdownHandle>>> {
        // Only a pointer is kept under this lock: never in a broken state.
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }
}

thread_local! {
    /// The token of the call this thread is making, if any.
    static CURRENT: RefCell<Option<Arc<CancelState>>> = const { RefCell::new(None) };
}

/// Calls `f` with the current thread's token state.
pub(crate) fn with_current<T>(f: impl FnOnce(Option<&Arc<CancelState>>) -> T) -> T {
    CURRENT.with(|c| f(c.borrow().as_ref()))
}

/// The error a cancelled transport reports to ureq.
pub(crate) fn cancelled_io_error() -> ureq::Error {
    ureq::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        "the call was cancelled",
    ))
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
