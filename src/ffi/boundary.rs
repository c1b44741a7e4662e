//! The panic boundary, the thread-local last error, and the one mapping of
//! [`Error`] to [`ModelApiStatus`].

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::Error;

/// The result of every call of the C API. The numbers are stable.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelApiStatus {
    /// Success.
    MODELAPI_OK = 0,
    /// `modelapi_stream_next`: no more chunks.
    MODELAPI_DONE = 1,
    /// NULL where not allowed, bad UTF-8, bad JSON input, a bad setting.
    MODELAPI_INVALID_ARGUMENT = 2,
    /// The server answered with a non-2xx status (see
    /// `modelapi_last_http_status`).
    MODELAPI_HTTP_ERROR = 3,
    /// DNS, connect, TLS, connection reset, a truncated stream.
    MODELAPI_TRANSPORT_ERROR = 4,
    /// One wait on the network took longer than the timeout.
    MODELAPI_TIMEOUT = 5,
    /// The body or an event is not valid OpenAI-format JSON, or is too large.
    MODELAPI_INVALID_RESPONSE = 6,
    /// Reserved: use after close is not possible in C.
    MODELAPI_CLOSED = 7,
    /// The chunk callback asked to stop.
    MODELAPI_ABORTED = 8,
    /// A bug: a panic caught at the boundary.
    MODELAPI_INTERNAL = 9,
    /// The server reported an error inside a 2xx response, e.g. a
    /// mid-stream `{"error": ...}` event.
    MODELAPI_SERVER_ERROR = 10,
    /// `modelapi_stream_poll`: nothing yet; call again. A read of a
    /// detached stream: the bytes it needs have not been fed yet.
    MODELAPI_PENDING = 11,
}

use ModelApiStatus::*;

/// An error on its way to C: a status and the text for `modelapi_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: ModelApiStatus,
    pub(crate) message: String,
    pub(crate) http_status: i32,
}

impl Failure {
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: MODELAPI_INVALID_ARGUMENT,
            message: message.into(),
            http_status: 0,
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        let status = match &err {
            Error::Http { .. } => MODELAPI_HTTP_ERROR,
            Error::Server { .. } => MODELAPI_SERVER_ERROR,
            Error::Transport(_) => MODELAPI_TRANSPORT_ERROR,
            Error::Timeout(_) => MODELAPI_TIMEOUT,
            Error::InvalidResponse(_) => MODELAPI_INVALID_RESPONSE,
            Error::Closed => MODELAPI_CLOSED,
            Error::InvalidArgument(_) => MODELAPI_INVALID_ARGUMENT,
            Error::Aborted(_) => MODELAPI_ABORTED,
            Error::Pending(_) => MODELAPI_PENDING,
        };
        Failure {
            status,
            http_status: err.status().map_or(0, i32::from),
            message: err.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_HTTP_STATUS: Cell<i32> = const { Cell::new(0) };
    /// Set while this thread runs inside the C API, so the panic hook
    /// stays quiet there.
    static IN_C_CALL: Cell<bool> = const { Cell::new(false) };
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records a failure for `modelapi_last_error` / `modelapi_last_http_status`.
pub(crate) fn record(failure: &Failure) {
    let text = CString::new(failure.message.replace('\0', " ")).expect("NUL bytes were replaced");
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
    // The status of the most recent HTTP error, as the contract says: a
    // failure of another kind leaves it.
    if failure.status == ModelApiStatus::MODELAPI_HTTP_ERROR {
        LAST_HTTP_STATUS.with(|s| s.set(failure.http_status));
    }
}

pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

pub(crate) fn last_http_status() -> i32 {
    LAST_HTTP_STATUS.with(Cell::get)
}

/// Runs `body` for C: a failure is recorded and becomes its status; a
/// panic becomes `MODELAPI_INTERNAL` and never unwinds into C.
pub(crate) fn guard(body: impl FnOnce() -> Result<ModelApiStatus, Failure>) -> ModelApiStatus {
    match catch(body) {
        Ok(status) => status,
        Err(failure) => {
            record(&failure);
            failure.status
        }
    }
}

/// Like [`guard`], for constructors: NULL on failure.
pub(crate) fn guard_ptr<T>(body: impl FnOnce() -> Result<*mut T, Failure>) -> *mut T {
    match catch(body) {
        Ok(ptr) => ptr,
        Err(failure) => {
            record(&failure);
            std::ptr::null_mut()
        }
    }
}

/// Like [`guard`], for functions that return nothing: a panic is recorded.
pub(crate) fn guard_void(body: impl FnOnce()) {
    if let Err(failure) = catch(|| {
        body();
        Ok(())
    }) {
        record(&failure);
    }
}

fn catch<T>(body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    install_quiet_panic_hook();
    let outer = IN_C_CALL.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(body));
    IN_C_CALL.with(|c| c.set(outer));
    match result {
        Ok(result) => result,
        Err(_) => {
            let detail = PANIC_MESSAGE
                .with(|m| m.borrow_mut().take())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure {
                status: MODELAPI_INTERNAL,
                message: format!("internal error in modelapi (please report it): {detail}"),
                http_status: 0,
            })
        }
    }
}

/// The library never writes to stderr: a panic inside a C call is kept for
/// `modelapi_last_error` instead of printed. Panics elsewhere in the
/// process go to the hook that was there before.
fn install_quiet_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_C_CALL.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{payload}{location}")));
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error_text() -> String {
        unsafe { CStr::from_ptr(last_error()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_panic_becomes_internal_and_is_recorded() {
        let status = guard(|| panic!("boom {}", 42));
        assert_eq!(status, MODELAPI_INTERNAL);
        let text = last_error_text();
        assert!(
            text.contains("boom 42") && text.contains("boundary.rs"),
            "{text}"
        );
        assert!(guard_ptr::<u8>(|| panic!("again")).is_null());
        assert!(last_error_text().contains("again"));
        guard_void(|| panic!("in a free"));
        assert!(last_error_text().contains("in a free"));
        // Outside a C call, panics still reach the previous hook and unwind.
        assert!(std::panic::catch_unwind(|| panic!("outside")).is_err());
    }

    #[test]
    fn failures_are_recorded_and_successes_leave_them() {
        let status = guard(|| {
            Err(Error::Http {
                status: 429,
                message: "slow down".into(),
                error_type: None,
                code: None,
                body: String::new(),
            }
            .into())
        });
        assert_eq!(status, MODELAPI_HTTP_ERROR);
        assert_eq!(last_http_status(), 429);
        assert_eq!(guard(|| Ok(MODELAPI_OK)), MODELAPI_OK);
        assert!(last_error_text().contains("slow down"));
        assert_eq!(
            guard(|| Err(Failure::invalid("x is NULL"))),
            MODELAPI_INVALID_ARGUMENT
        );
        // The last HTTP error's status stays: this one was not HTTP.
        assert_eq!(last_http_status(), 429);
        assert_eq!(last_error_text(), "x is NULL");
    }

    #[test]
    fn every_error_maps_to_its_status() {
        let cases = [
            (
                Error::Server {
                    message: "m".into(),
                    body: String::new(),
                },
                MODELAPI_SERVER_ERROR,
            ),
            (Error::Transport("t".into()), MODELAPI_TRANSPORT_ERROR),
            (Error::Timeout("t".into()), MODELAPI_TIMEOUT),
            (
                Error::InvalidResponse("r".into()),
                MODELAPI_INVALID_RESPONSE,
            ),
            (Error::Closed, MODELAPI_CLOSED),
            (
                Error::InvalidArgument("a".into()),
                MODELAPI_INVALID_ARGUMENT,
            ),
            (Error::Aborted("a".into()), MODELAPI_ABORTED),
            (Error::Pending("p".into()), MODELAPI_PENDING),
        ];
        for (error, status) in cases {
            assert_eq!(Failure::from(error).status, status);
        }
    }
}
