//! Cancel tokens: made by the host, passed to the `_with` calls, cancelled
//! from any thread.

use super::args;
use super::boundary::{guard, guard_ptr, guard_void, ModelApiStatus};
use super::ModelApiStatus::*;
use crate::CancelToken;

/// A cancel token (the C `ModelApiCancel`): created by the caller, passed
/// to the `_with` calls, cancelled from any thread.
#[derive(Debug, Default)]
pub struct ModelApiCancel {
    pub(super) token: CancelToken,
}

/// Creates a cancel token, to pass to `modelapi_complete_with`,
/// `modelapi_stream_with` or `modelapi_stream_open_with`. Free it with
/// `modelapi_cancel_free` once no call uses it.
#[no_mangle]
pub extern "C" fn modelapi_cancel_new() -> *mut ModelApiCancel {
    guard_ptr(|| Ok(Box::into_raw(Box::default())))
}

/// Cancels every call and stream using `cancel` (one token may serve
/// several at once, on any threads). Safe from any thread, at any time:
/// each call blocked on the network (waiting for the server, or between two
/// chunks) returns `MODELAPI_ABORTED` within milliseconds, and its
/// connection is closed. The token stays cancelled (later calls with it
/// return `MODELAPI_ABORTED` at once) until `modelapi_cancel_reset`.
///
/// # Safety
/// `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn modelapi_cancel(cancel: *mut ModelApiCancel) -> ModelApiStatus {
    guard(|| {
        args::shared(cancel, "cancel")?.token.cancel();
        Ok(MODELAPI_OK)
    })
}

/// Makes a cancelled token usable for new calls.
///
/// # Safety
/// `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn modelapi_cancel_reset(cancel: *mut ModelApiCancel) -> ModelApiStatus {
    guard(|| {
        args::shared(cancel, "cancel")?.token.reset();
        Ok(MODELAPI_OK)
    })
}

/// Frees a cancel token. NULL is a no-op. No call may be using it.
///
/// # Safety
/// `cancel` is NULL or a live token, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn modelapi_cancel_free(cancel: *mut ModelApiCancel) {
    if !cancel.is_null() {
        guard_void(|| drop(Box::from_raw(cancel)));
    }
}
/// The token behind a C cancel handle, or a fresh one for NULL.
pub(super) unsafe fn token_of(cancel: *mut ModelApiCancel) -> CancelToken {
    cancel
        .as_ref()
        .map_or_else(CancelToken::new, |c| c.token.clone())
}
