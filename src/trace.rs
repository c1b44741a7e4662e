//! Seeing inside: what a client does, told one line at a time to a trace
//! hook ([`ModelApiBuilder::trace`](crate::ModelApiBuilder::trace), C's
//! `modelapi_set_trace`) and as records of the `log` facade (target
//! `modelapi`), which cost nothing when no logger is installed.
//!
//! What is told: each connection (its address, new or reused, through a
//! proxy or not), TLS (its version; the certificate is always verified),
//! the request line and its size, the response status, content type and
//! `x-request-id` with the time to the head, each retry with its cause and
//! wait, each redirect, the time to a stream's first event, its end
//! (events, bytes, `finish_reason`, duration), and every error. Never the
//! API key, a credential header or any message content (sizes only): every
//! line is scrubbed of the client's secrets before it leaves.
//!
//! Nothing is told per chunk: a stream counts its chunks and bytes, and
//! tells them at its end.

use std::fmt;
use std::sync::Arc;

pub use log::Level;

use crate::secrets::Secrets;

/// The `log` target of every record.
pub const LOG_TARGET: &str = "modelapi";

/// A trace hook, as [`ModelApi::set_trace`](crate::ModelApi::set_trace)
/// takes it: called with each line's level and text, on the thread making
/// the call (so on several threads at once when a client is shared).
pub type TraceHook = Box<dyn Fn(Level, &str) + Send + Sync>;

/// A hook as a client keeps it.
pub(crate) type Hook = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// Where a client's trace lines go.
#[derive(Clone, Default)]
pub(crate) struct Tracer {
    hook: Option<Hook>,
    /// Scrubbed from every line.
    secrets: Arc<Secrets>,
}

impl Tracer {
    pub(crate) fn new(hook: Option<Hook>, secrets: Arc<Secrets>) -> Tracer {
        Tracer { hook, secrets }
    }

    pub(crate) fn with_hook(&self, hook: Option<Hook>) -> Tracer {
        Tracer {
            hook,
            secrets: Arc::clone(&self.secrets),
        }
    }

    pub(crate) fn with_secrets(&self, secrets: Arc<Secrets>) -> Tracer {
        Tracer {
            hook: self.hook.clone(),
            secrets,
        }
    }

    pub(crate) fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// Whether a line of `level` goes anywhere: checked before a line is
    /// formatted, so that an untraced client formats nothing.
    #[inline]
    pub(crate) fn enabled(&self, level: Level) -> bool {
        self.hook.is_some() || log::log_enabled!(target: LOG_TARGET, level)
    }

    /// Tells one line (use the [`trace!`] macro, which checks
    /// [`enabled`](Self::enabled) first).
    pub(crate) fn emit(&self, level: Level, line: fmt::Arguments<'_>) {
        let line = self.secrets.scrub(line.to_string());
        if let Some(hook) = &self.hook {
            hook(level, &line);
        }
        log::log!(target: LOG_TARGET, level, "{line}");
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

/// `trace!(tracer, Level::Debug, "format", args...)`: formats and tells
/// the line only when someone listens.
macro_rules! trace {
    ($tracer:expr, $level:expr, $($format:tt)+) => {{
        let tracer: &$crate::trace::Tracer = &$tracer;
        let level = $level;
        if tracer.enabled(level) {
            tracer.emit(level, format_args!($($format)+));
        }
    }};
}
pub(crate) use trace;

/// A duration for people: `850 µs`, `12.3 ms`, `2.41 s`.
pub(crate) struct Took(pub(crate) std::time::Duration);

impl fmt::Display for Took {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Integer arithmetic: float formatting would grow the library.
        let micros = self.0.as_micros();
        if micros < 1000 {
            write!(f, "{micros} µs")
        } else if micros < 1_000_000 {
            write!(f, "{}.{} ms", micros / 1000, micros % 1000 / 100)
        } else {
            write!(
                f,
                "{}.{:02} s",
                micros / 1_000_000,
                micros % 1_000_000 / 10_000
            )
        }
    }
}
