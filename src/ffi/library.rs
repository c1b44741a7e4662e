//! What belongs to the library as a whole: its strings, the last error
//! of this thread, its version.

use std::ffi::{c_char, c_int};

use super::boundary::{self, guard_void};

/// Frees a string returned by the library (`out_json`, `out_content`).
/// NULL is a no-op.
///
/// # Safety
/// `s` is NULL or a string from this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn modelapi_string_free(s: *mut c_char) {
    if !s.is_null() {
        guard_void(|| drop(std::ffi::CString::from_raw(s)));
    }
}

/// This thread's message for its most recent failed call, "" when none
/// failed yet. A successful call leaves it as it was (as `errno`). The
/// text belongs to the library and stays valid until the next call into
/// the library on this thread.
#[no_mangle]
pub extern "C" fn modelapi_last_error() -> *const c_char {
    boundary::last_error()
}

/// The HTTP status of this thread's most recent `MODELAPI_HTTP_ERROR`; 0
/// when none happened on this thread yet. Other failures and successes
/// leave it.
#[no_mangle]
pub extern "C" fn modelapi_last_http_status() -> c_int {
    boundary::last_http_status()
}

/// The library's version, e.g. "0.1.0" (a static string: do not free it).
#[no_mangle]
pub extern "C" fn modelapi_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
