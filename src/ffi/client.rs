//! The client: creating it, its settings, and closing it.

use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

use super::args;
use super::boundary::{guard, guard_ptr, guard_void, ModelApiStatus};
use super::ModelApiStatus::*;
use crate::ModelApi;

/// How much a trace line matters (see `modelapi_set_trace`); the numbers
/// are stable, and those of Rust's `log` levels.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelApiTraceLevel {
    /// A call failed: the error, as the call returns it.
    MODELAPI_TRACE_ERROR = 1,
    /// A retry: what failed, and the wait before the next attempt.
    MODELAPI_TRACE_WARN = 2,
    /// A redirect followed.
    MODELAPI_TRACE_INFO = 3,
    /// Each step: connections, TLS, requests, statuses, timings.
    MODELAPI_TRACE_DEBUG = 4,
}

/// A trace hook (see `modelapi_set_trace`): `user_data` as given, the
/// line's level, and the line (NUL-terminated UTF-8, valid during the call
/// only).
pub type ModelApiTraceFn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, level: ModelApiTraceLevel, line: *const c_char),
>;

/// A client of one server and model (the C `ModelApi`). Opaque to C:
/// created by `modelapi_new` or `modelapi_from_env`, freed by
/// `modelapi_close`.
#[derive(Debug)]
pub struct ModelApiHandle {
    pub(super) api: ModelApi,
}

/// Creates a client of `model` at `api_base` (e.g. `http://localhost:8000`
/// or `https://api.openai.com/v1`). `api_key` may be NULL (no
/// `Authorization` header). `DEBUG_MOCK_RESPONSES` is read now. The
/// strings are copied.
///
/// Returns NULL on failure (`modelapi_last_error()` says why). Free the
/// client with `modelapi_close`.
///
/// # Safety
/// Each argument is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn modelapi_new(
    model: *const c_char,
    api_base: *const c_char,
    api_key: *const c_char,
) -> *mut ModelApiHandle {
    guard_ptr(|| {
        let model = args::required_str(model, "model")?;
        let api_base = args::required_str(api_base, "api_base")?;
        let api_key = args::optional_str(api_key, "api_key")?;
        let api = ModelApi::new(model, api_base, api_key.map(str::to_string))?;
        Ok(Box::into_raw(Box::new(ModelApiHandle { api })))
    })
}

/// Creates a client from `MODEL_API_URL`, `MODEL_NAME` and (optional)
/// `MODEL_API_KEY`. Returns NULL on failure (`modelapi_last_error()` says
/// why). Free the client with `modelapi_close`.
#[no_mangle]
pub extern "C" fn modelapi_from_env() -> *mut ModelApiHandle {
    guard_ptr(|| {
        let api = ModelApi::from_env()?;
        Ok(Box::into_raw(Box::new(ModelApiHandle { api })))
    })
}

/// Sets the per-wait timeout in milliseconds (default 60000): no single
/// wait on the network may take longer; a stream that keeps sending is
/// never cut. 0 is `MODELAPI_INVALID_ARGUMENT`. Call before sharing the
/// client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_timeout_ms(
    api: *mut ModelApiHandle,
    timeout_ms: u64,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        api.set_timeout(Duration::from_millis(timeout_ms))?;
        Ok(MODELAPI_OK)
    })
}

/// Sets the first-token deadline: the longest wait from sending a request
/// to its first event (content, reasoning, tool call or refusal); SSE
/// comments, keep-alive bytes and role-only or empty deltas do not count.
/// 0 (the default) turns it off. Past it the attempt fails with
/// `MODELAPI_TIMEOUT`, or the next endpoint (`modelapi_add_fallback`) is
/// tried. A `complete` call has no first token: the deadline bounds its
/// wait for the response head. Call before sharing the client between
/// threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_first_token_timeout_ms(
    api: *mut ModelApiHandle,
    timeout_ms: u64,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        api.set_first_token_timeout(Some(Duration::from_millis(timeout_ms)))?;
        Ok(MODELAPI_OK)
    })
}

/// Adds an endpoint after the client's own (and after earlier fallbacks),
/// tried when the current one fails before any event was handed out:
/// connect or TLS failure, 5xx or 429 after its retries, a timeout (the
/// first-token deadline among them). Never after an event was handed out.
/// `api_key` (may be NULL) goes only to this endpoint; the client's key and
/// credential headers never go there. The other settings (timeout, retries,
/// CA file, proxy, resolve, trace) are the client's. Strings are copied.
/// Call before sharing the client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread; the
/// strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn modelapi_add_fallback(
    api: *mut ModelApiHandle,
    api_base: *const c_char,
    model: *const c_char,
    api_key: *const c_char,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        let api_base = args::required_str(api_base, "api_base")?;
        let model = args::required_str(model, "model")?;
        let api_key = args::optional_str(api_key, "api_key")?;
        api.add_fallback(api_base, model, api_key)?;
        Ok(MODELAPI_OK)
    })
}

/// Sets the hedge delay: when the current endpoint has not produced its
/// first event after `hedge_ms`, the next one (`modelapi_add_fallback`) is
/// started too; the first to produce an event serves the stream and the
/// other is cancelled at once (its connection closed). 0 (the default)
/// turns it off. No thread: both advance in the same waits and polls
/// (`modelapi_stream_fd` gives one socket, and `modelapi_stream_wake_ms`
/// is at most 10 ms while two race, so the other is looked at too).
/// Streams only. Call before sharing the client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_hedge_ms(
    api: *mut ModelApiHandle,
    hedge_ms: u64,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        api.set_hedge(Some(Duration::from_millis(hedge_ms)))?;
        Ok(MODELAPI_OK)
    })
}

/// Sets how many times a failed request is sent again (default 2): after
/// connection failures and statuses 408, 409, 429 and 5xx, never once a
/// response has begun. Call before sharing the client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_max_retries(
    api: *mut ModelApiHandle,
    max_retries: u32,
) -> ModelApiStatus {
    guard(|| {
        args::required(api, "api")?.api.set_max_retries(max_retries);
        Ok(MODELAPI_OK)
    })
}

/// Adds a header to every request of the client (e.g.
/// "OpenAI-Organization"). The strings are copied. Call before sharing the
/// client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread; `name` and
/// `value` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_header(
    api: *mut ModelApiHandle,
    name: *const c_char,
    value: *const c_char,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        let name = args::required_str(name, "name")?;
        let value = args::required_str(value, "value")?;
        api.set_header(name, value)?;
        Ok(MODELAPI_OK)
    })
}

/// Trusts the CA certificates of the PEM file at `pem_path` for HTTPS, in
/// place of the built-in (Mozilla) roots: for a server whose certificate a
/// private CA signed, or a self-signed one. Verification stays on. The file
/// is read now; one without a certificate is `MODELAPI_INVALID_ARGUMENT`.
/// Call before sharing the client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread; `pem_path`
/// is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_ca_file(
    api: *mut ModelApiHandle,
    pem_path: *const c_char,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        let path = args::required_str(pem_path, "pem_path")?;
        api.set_ca_file(path)?;
        Ok(MODELAPI_OK)
    })
}

/// Sends every request of the client through the HTTP proxy at
/// `proxy_url` ("http://host:port", or "http://user:password@host:port":
/// the credentials go to the proxy only); NULL or "" removes it. HTTPS goes
/// through a CONNECT tunnel, so the proxy sees only the server's name and
/// encrypted bytes, and the server's certificate is verified as without a
/// proxy; plain HTTP is forwarded by the proxy, which then sees it whole.
/// Proxies from the environment (HTTPS_PROXY, ...) are never used. The
/// string is copied. Call before sharing the client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread;
/// `proxy_url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_proxy(
    api: *mut ModelApiHandle,
    proxy_url: *const c_char,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        let url = args::optional_str(proxy_url, "proxy_url")?;
        api.set_proxy(url)?;
        Ok(MODELAPI_OK)
    })
}

/// Adds one entry to the client's own name table, used before the system's
/// resolver, as curl's --resolve: `"HOST:PORT:ADDRESS[,ADDRESS...]"` (an
/// IPv6 address in brackets), e.g.
/// `"api.example.com:443:192.0.2.10,[2001:db8::10]"`.
/// A request to HOST:PORT (the server, a redirect's target, or the proxy)
/// connects to these addresses, in the order given (with the fallback rules
/// of every connect: a next address is tried when one fails or has not
/// answered within 250 ms), and TLS still verifies HOST. The host matches
/// case-insensitively; an entry for a HOST:PORT already in the table
/// replaces it. NULL clears the table. A malformed entry is
/// MODELAPI_INVALID_ARGUMENT (the last error says what is wrong), and
/// leaves the table as it was. The string is copied. Call before sharing
/// the client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread; `entry` is
/// NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_resolve(
    api: *mut ModelApiHandle,
    entry: *const c_char,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        let entry = args::optional_str(entry, "entry")?;
        api.set_resolve(entry)?;
        Ok(MODELAPI_OK)
    })
}

/// Replaces the client's canned replies with `replies_json`, written as
/// `DEBUG_MOCK_RESPONSES` is: a JSON array of replies, each a string (the
/// answer's text) or an object standing for a whole assistant message (any
/// of `content`, `reasoning_content`, `tool_calls`, `refusal`); a JSON
/// string or plain text is one reply. Each is used by one call, in order,
/// with no network traffic; then calls go to the server. NULL or "" leaves
/// the client no canned replies, whatever `DEBUG_MOCK_RESPONSES` says. For
/// hosts that cannot set the process's environment safely (other threads
/// read it; .NET does not pass it on). A malformed value is
/// MODELAPI_INVALID_ARGUMENT (the last error says what is wrong), and
/// leaves the replies as they were. The string is copied. Call before
/// sharing the client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread;
/// `replies_json` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_mock_responses(
    api: *mut ModelApiHandle,
    replies_json: *const c_char,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        let replies = args::optional_str(replies_json, "replies_json")?;
        api.set_mock_responses(replies)?;
        Ok(MODELAPI_OK)
    })
}

/// Sets the client's trace hook: `on_trace` is called with `user_data`, a
/// level and one line of text (NUL-terminated, valid during the call) for
/// each step of every request: connections, TLS, the request line and its
/// size, the status with the time to the response head, retries and their
/// waits, redirects, a stream's first event and its end, and every error.
/// Never the API key, a credential header or message content; nothing per
/// chunk. NULL `on_trace` turns tracing off. The hook runs on the thread
/// making the call, inside it: with a client shared between threads, on
/// several threads at once (`user_data` must allow that). It must not call
/// back into this client. Call before sharing the client between threads.
///
/// # Safety
/// `api` is NULL or a live client not in use by another thread; `on_trace`
/// is NULL or a function that may be called as documented, with
/// `user_data` valid for as long as the client lives.
#[no_mangle]
pub unsafe extern "C" fn modelapi_set_trace(
    api: *mut ModelApiHandle,
    on_trace: ModelApiTraceFn,
    user_data: *mut c_void,
) -> ModelApiStatus {
    guard(|| {
        let api = &mut args::required(api, "api")?.api;
        let hook = on_trace.map(|on_trace| {
            let target = TraceTarget {
                on_trace,
                user_data,
            };
            Box::new(move |level: crate::TraceLevel, line: &str| target.call(level, line))
                as crate::TraceHook
        });
        api.set_trace(hook);
        Ok(MODELAPI_OK)
    })
}

/// A C trace hook and its `user_data`.
struct TraceTarget {
    on_trace: unsafe extern "C" fn(*mut c_void, ModelApiTraceLevel, *const c_char),
    user_data: *mut c_void,
}

// SAFETY: the caller of `modelapi_set_trace` promises that the hook may be
// called with `user_data` from any thread that uses the client.
unsafe impl Send for TraceTarget {}
unsafe impl Sync for TraceTarget {}

impl TraceTarget {
    fn call(&self, level: crate::TraceLevel, line: &str) {
        let level = match level {
            crate::TraceLevel::Error => ModelApiTraceLevel::MODELAPI_TRACE_ERROR,
            crate::TraceLevel::Warn => ModelApiTraceLevel::MODELAPI_TRACE_WARN,
            crate::TraceLevel::Info => ModelApiTraceLevel::MODELAPI_TRACE_INFO,
            crate::TraceLevel::Debug | crate::TraceLevel::Trace => {
                ModelApiTraceLevel::MODELAPI_TRACE_DEBUG
            }
        };
        let line = CString::new(line.replace('\0', "")).expect("NUL bytes were removed");
        // SAFETY: as promised to modelapi_set_trace.
        unsafe { (self.on_trace)(self.user_data, level, line.as_ptr()) }
    }
}

/// Releases the client's pooled connections and frees it. NULL is a no-op.
/// No other thread may be using the client; pull streams opened from it
/// stay valid until freed.
///
/// # Safety
/// `api` is NULL or a live client, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn modelapi_close(api: *mut ModelApiHandle) {
    if !api.is_null() {
        guard_void(|| {
            let handle = Box::from_raw(api);
            handle.api.close();
        });
    }
}
