//! The C API: every `extern "C"` function of `include/modelapi.h`.
//!
//! Each function checks its pointers, converts its arguments, calls the
//! safe Rust API, and maps the outcome in one place
//! (`boundary::guard`), which also keeps panics from unwinding into C.
//! This module knows nothing of HTTP.

mod args;
mod boundary;

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void, CString};
use std::fmt;
use std::task::Poll;
use std::time::Duration;

pub use boundary::ModelApiStatus;
use boundary::{guard, guard_ptr, guard_void, Failure};
use ModelApiStatus::*;

use crate::event::{EventWithNul, Kind};
use crate::{CancelToken, ChatStream, ModelApi};

/// One chat message: `role` ("system", "user", "assistant", "tool") and
/// `content`, both NUL-terminated UTF-8, borrowed for the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModelApiMessage {
    /// The role.
    pub role: *const c_char,
    /// The text.
    pub content: *const c_char,
}

/// Called once per content chunk, on the thread that called
/// `modelapi_stream`/`modelapi_stream_json`. `chunk` is NUL-terminated,
/// `len` excludes the NUL, and the text is valid only during the call (copy
/// it to keep it). Return 0 to go on, non-zero to stop: the stream is then
/// closed and the call returns `MODELAPI_ABORTED`.
pub type ModelApiChunkFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, chunk: *const c_char, len: usize) -> c_int>;

/// What an event of a stream is (see `ModelApiEvent`). The numbers are
/// stable.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelApiEventKind {
    /// A piece of the answer's text (`delta.content`).
    MODELAPI_EVENT_CONTENT = 0,
    /// A piece of the model's reasoning (`delta.reasoning_content`, or
    /// `delta.reasoning`).
    MODELAPI_EVENT_REASONING = 1,
    /// A piece of one tool call (`delta.tool_calls[]`).
    MODELAPI_EVENT_TOOL_CALL = 2,
    /// A piece of a refusal (`delta.refusal`).
    MODELAPI_EVENT_REFUSAL = 3,
}

/// One event of a stream: a piece of the text, of the reasoning, of a tool
/// call or of a refusal, of choice 0, in the order they arrived. Its
/// strings belong to the stream: valid until the next read of the stream
/// (`modelapi_stream_next`, `modelapi_stream_next_event`) or its free;
/// for a callback, during the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModelApiEvent {
    /// What the piece is.
    pub kind: ModelApiEventKind,
    /// The piece (`MODELAPI_EVENT_TOOL_CALL`: of the call's arguments, the
    /// JSON text with its escapes resolved); NUL-terminated, never NULL.
    pub text: *const c_char,
    /// Bytes of `text`, without the NUL.
    pub len: usize,
    /// `MODELAPI_EVENT_TOOL_CALL`: the call this piece belongs to (its
    /// `index`, or its position when the server leaves it out); else 0.
    pub tool_index: u32,
    /// `MODELAPI_EVENT_TOOL_CALL`: the call's id when this piece carries
    /// it (usually the first piece of the call); else NULL.
    pub tool_id: *const c_char,
    /// `MODELAPI_EVENT_TOOL_CALL`: the function's name when this piece
    /// carries it; else NULL.
    pub tool_name: *const c_char,
}

/// Called once per event by `modelapi_stream_events`, on the calling
/// thread. `event` and its strings are valid during the call only (copy
/// what you keep). Return 0 to go on, non-zero to stop: the stream is then
/// closed and the call returns `MODELAPI_ABORTED`.
pub type ModelApiEventFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const ModelApiEvent) -> c_int>;

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
    api: ModelApi,
}

/// A pull stream: the chunks of one streamed answer, read with
/// `modelapi_stream_next`. Opaque to C.
pub struct ModelApiStream {
    /// Shared with any thread that calls `modelapi_stream_cancel`.
    cancel: CancelToken,
    /// Used by one thread at a time (the C API's rule), while another
    /// thread may cancel: hence a cell, reached only through `&self`.
    state: UnsafeCell<StreamState>,
}

// SAFETY: `state` is touched by one thread at a time (the documented rule
// of the C API); the only part other threads touch is `cancel`, which is
// `Sync`.
unsafe impl Sync for ModelApiStream {}

struct StreamState {
    stream: ChatStream,
    /// Metadata handed out as C strings: kept until the stream is freed.
    texts: Vec<CString>,
}

impl ModelApiStream {
    fn new(stream: ChatStream) -> ModelApiStream {
        ModelApiStream {
            cancel: stream.cancel_token(),
            state: UnsafeCell::new(StreamState {
                stream,
                texts: Vec::new(),
            }),
        }
    }

    /// The stream's state, for the one thread using it.
    ///
    /// # Safety
    /// No other reference to the state may be alive (one thread at a time).
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> &mut StreamState {
        &mut *self.state.get()
    }
}

impl StreamState {
    /// `text` as a C string that lives as long as the stream.
    fn c_text(&mut self, text: Option<&str>) -> *const c_char {
        let Some(text) = text else {
            return std::ptr::null();
        };
        if let Some(known) = self.texts.iter().find(|t| t.as_bytes() == text.as_bytes()) {
            return known.as_ptr();
        }
        let owned = CString::new(text.replace('\0', "")).expect("NUL bytes were removed");
        self.texts.push(owned);
        self.texts.last().expect("just pushed").as_ptr()
    }
}

impl fmt::Debug for ModelApiStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelApiStream")
            .field("cancel", &self.cancel)
            .finish_non_exhaustive()
    }
}

/// A cancel token (the C `ModelApiCancel`): created by the caller, passed
/// to the `_with` calls, cancelled from any thread.
#[derive(Debug, Default)]
pub struct ModelApiCancel {
    token: CancelToken,
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

/// One chat completion. `messages` holds `count` messages (never NULL,
/// even when `count` is 0); `mock_response` may be NULL (else it is sent for
/// servers that honour it, e.g. LiteLLM).
///
/// On `MODELAPI_OK`, `*out_json` receives the server's response JSON and
/// `*out_content` the first choice's message content ("" when there is
/// none); free both with `modelapi_string_free`. Either out pointer may be
/// NULL (not wanted). On any other status both are set to NULL.
///
/// May be called by several threads at once on one client.
///
/// # Safety
/// `api` is NULL or a live client; `messages` is NULL or points to `count`
/// messages; strings are NULL or NUL-terminated; out pointers are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_complete(
    api: *mut ModelApiHandle,
    messages: *const ModelApiMessage,
    count: usize,
    mock_response: *const c_char,
    out_json: *mut *mut c_char,
    out_content: *mut *mut c_char,
) -> ModelApiStatus {
    args::clear(out_json);
    args::clear(out_content);
    guard(|| {
        let api = shared(api)?;
        let messages = args::messages(messages, count)?;
        let mock = args::optional_str(mock_response, "mock_response")?;
        let completion = api.complete(&messages, mock)?;
        write_completion(&completion, out_json, out_content);
        Ok(MODELAPI_OK)
    })
}

/// Like `modelapi_complete`, with the messages as JSON: either an array of
/// OpenAI-format messages, or a whole request object whose extra fields
/// (`temperature`, `max_tokens`, `tools`, ...) pass through; `model`
/// defaults to the client's and `stream` is set to false.
///
/// # Safety
/// As `modelapi_complete`; `messages_json` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn modelapi_complete_json(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    out_json: *mut *mut c_char,
    out_content: *mut *mut c_char,
) -> ModelApiStatus {
    modelapi_complete_with(
        api,
        messages_json,
        mock_response,
        std::ptr::null_mut(),
        out_json,
        out_content,
    )
}

/// A streamed chat completion, handed to `on_chunk` chunk by chunk on this
/// thread (see `ModelApiChunkFn`) with `user_data`. Returns `MODELAPI_OK`
/// at the end of the stream, `MODELAPI_ABORTED` when `on_chunk` returned
/// non-zero (the client stays usable), `MODELAPI_SERVER_ERROR` when the
/// server reported an error inside the stream, or another error status, in
/// each case after the chunks that did arrive.
///
/// May be called by several threads at once on one client.
///
/// # Safety
/// As `modelapi_complete`; `on_chunk` is NULL or a valid function.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream(
    api: *mut ModelApiHandle,
    messages: *const ModelApiMessage,
    count: usize,
    mock_response: *const c_char,
    on_chunk: ModelApiChunkFn,
    user_data: *mut c_void,
) -> ModelApiStatus {
    guard(|| {
        let api = shared(api)?;
        let on_chunk = on_chunk.ok_or_else(|| Failure::invalid("on_chunk is NULL"))?;
        let messages = args::messages(messages, count)?;
        let mock = args::optional_str(mock_response, "mock_response")?;
        let stream = api.stream(&messages, mock)?;
        deliver(stream, on_chunk, user_data)
    })
}

/// Like `modelapi_stream`, with the messages as JSON (see
/// `modelapi_complete_json`); `stream` is set to true, and fields such as
/// `stream_options` pass through.
///
/// # Safety
/// As `modelapi_stream`; `messages_json` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_json(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    on_chunk: ModelApiChunkFn,
    user_data: *mut c_void,
) -> ModelApiStatus {
    modelapi_stream_with(
        api,
        messages_json,
        mock_response,
        std::ptr::null_mut(),
        on_chunk,
        user_data,
    )
}

/// Opens a pull stream: the request is sent (and retried when that is
/// safe) now; the chunks are read by `modelapi_stream_next` as the caller
/// asks for them. On `MODELAPI_OK`, `*out_stream` receives the stream, to
/// be freed with `modelapi_stream_free`; on any other status it is set to
/// NULL. The stream does not borrow the client, but uses it from one thread
/// at a time.
///
/// # Safety
/// As `modelapi_complete`; `out_stream` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_open(
    api: *mut ModelApiHandle,
    messages: *const ModelApiMessage,
    count: usize,
    mock_response: *const c_char,
    out_stream: *mut *mut ModelApiStream,
) -> ModelApiStatus {
    args::clear(out_stream);
    guard(|| {
        let api = shared(api)?;
        required_out(out_stream, "out_stream")?;
        let messages = args::messages(messages, count)?;
        let mock = args::optional_str(mock_response, "mock_response")?;
        let stream = api.stream(&messages, mock)?;
        open(stream, out_stream)
    })
}

/// Like `modelapi_stream_open`, with the messages as JSON (see
/// `modelapi_complete_json`).
///
/// # Safety
/// As `modelapi_stream_open`; `messages_json` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_open_json(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    out_stream: *mut *mut ModelApiStream,
) -> ModelApiStatus {
    modelapi_stream_open_with(
        api,
        messages_json,
        mock_response,
        std::ptr::null_mut(),
        out_stream,
    )
}

/// The next chunk of a pull stream. Returns `MODELAPI_OK` with the chunk in
/// `*out_chunk` (NUL-terminated; valid until the next call on this stream
/// or its free) and its length in bytes, without the NUL, in `*out_len`;
/// `MODELAPI_DONE` at the end (chunk NULL, length 0), and again on every
/// later call; or an error status (chunk NULL, length 0), after which the
/// stream is over and later calls return `MODELAPI_DONE`.
///
/// Blocks until a chunk arrives, the stream ends, or the timeout passes.
/// One thread at a time per stream.
///
/// # Safety
/// `stream` is NULL or a live stream; `out_chunk` and `out_len` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_next(
    stream: *mut ModelApiStream,
    out_chunk: *mut *const c_char,
    out_len: *mut usize,
) -> ModelApiStatus {
    if !out_chunk.is_null() {
        *out_chunk = std::ptr::null();
    }
    if !out_len.is_null() {
        *out_len = 0;
    }
    guard(|| {
        let handle = args::shared(stream, "stream")?;
        if out_chunk.is_null() {
            return Err(Failure::invalid("out_chunk is NULL"));
        }
        if out_len.is_null() {
            return Err(Failure::invalid("out_len is NULL"));
        }
        match handle.state().stream.next_chunk_with_nul() {
            None => Ok(MODELAPI_DONE),
            Some(Err(err)) => Err(err.into()),
            Some(Ok(chunk)) => {
                // The chunk's text and its NUL, in the stream's own buffer.
                *out_chunk = chunk.as_ptr().cast();
                *out_len = chunk.len() - 1;
                Ok(MODELAPI_OK)
            }
        }
    })
}

/// The next event of a pull stream: a piece of the text, of the reasoning,
/// of a tool call or of a refusal (see `ModelApiEvent`). Returns
/// `MODELAPI_OK` with `*out_event` filled (its strings valid until the next
/// read of this stream or its free); `MODELAPI_DONE` at the end, and again
/// on every later call; or an error status, after which the stream is
/// over. On any status but `MODELAPI_OK`, `*out_event` is an empty content
/// event ("" text, NULL tool strings). Blocks as `modelapi_stream_next`
/// does; the two may be mixed on one stream (`modelapi_stream_next` skips
/// the other kinds of event).
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only; `out_event`
/// is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_next_event(
    stream: *mut ModelApiStream,
    out_event: *mut ModelApiEvent,
) -> ModelApiStatus {
    if let Some(out) = out_event.as_mut() {
        *out = no_event();
    }
    guard(|| {
        let handle = args::shared(stream, "stream")?;
        let out = out_event
            .as_mut()
            .ok_or_else(|| Failure::invalid("out_event is NULL"))?;
        match handle.state().stream.next_event_with_nul() {
            None => Ok(MODELAPI_DONE),
            Some(Err(err)) => Err(err.into()),
            Some(Ok(event)) => {
                *out = c_event(&event);
                Ok(MODELAPI_OK)
            }
        }
    })
}

/// The answer assembled from every chunk of the stream read so far, as a
/// `chat.completion` object (the shape `modelapi_complete` returns): each
/// choice's content, `reasoning_content`, `tool_calls` (id, function name,
/// the arguments' pieces concatenated, in index order) and `refusal`, each
/// only when some arrived, its `finish_reason`, and the `id`, `model`,
/// `created`, `system_fingerprint` and `usage` the server sent. Works at
/// any time: in the middle of a stream, at its end, after an error (what
/// arrived before it). `*out_json` is freed with `modelapi_string_free`;
/// on failure it is set to NULL.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only; `out_json`
/// is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_completion_json(
    stream: *mut ModelApiStream,
    out_json: *mut *mut c_char,
) -> ModelApiStatus {
    args::clear(out_json);
    guard(|| {
        let handle = args::shared(stream, "stream")?;
        required_out(out_json, "out_json")?;
        let completion = handle.state().stream.completion();
        *out_json = args::c_string(completion.raw_json());
        Ok(MODELAPI_OK)
    })
}

/// A streamed chat completion handed to `on_event` event by event (text,
/// reasoning, tool-call and refusal pieces of choice 0; see
/// `ModelApiEventFn`), on this thread, with `user_data`. The request is
/// JSON as for `modelapi_stream_with` (a request object may carry `tools`);
/// `cancel` may be NULL. On `MODELAPI_OK`, `*out_json` (may be NULL: not
/// wanted) receives the whole answer as `chat.completion` JSON (see
/// `modelapi_stream_completion_json`), freed with `modelapi_string_free`.
/// Returns `MODELAPI_ABORTED` when `on_event` returned non-zero or `cancel`
/// was cancelled, or another error status, in each case after the events
/// that did arrive and with `*out_json` set to NULL (as every out pointer
/// on a failure: a caller who needs the answer that arrived before an error
/// reads the stream with `modelapi_stream_next_event` and asks
/// `modelapi_stream_completion_json`).
///
/// May be called by several threads at once on one client.
///
/// # Safety
/// As `modelapi_stream_with`; `on_event` is NULL or a valid function;
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_events(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    cancel: *mut ModelApiCancel,
    on_event: ModelApiEventFn,
    user_data: *mut c_void,
    out_json: *mut *mut c_char,
) -> ModelApiStatus {
    args::clear(out_json);
    guard(|| {
        let api = shared(api)?;
        let on_event = on_event.ok_or_else(|| Failure::invalid("on_event is NULL"))?;
        let request = args::request_json(messages_json)?;
        let mock = args::optional_str(mock_response, "mock_response")?;
        let token = token_of(cancel);
        let mut stream = api.with_cancel(&token).stream_request(request, mock)?;
        while let Some(event) = stream.next_event_with_nul() {
            let event = c_event(&event?);
            let verdict = on_event(user_data, &event);
            if verdict != 0 {
                return Err(crate::Error::Aborted(format!(
                    "the event callback returned {verdict}: the stream was stopped"
                ))
                .into());
            }
        }
        if !out_json.is_null() {
            *out_json = args::c_string(stream.completion().raw_json());
        }
        Ok(MODELAPI_OK)
    })
}

/// Cancels a pull stream. Safe to call from any thread, also while another
/// thread is blocked inside `modelapi_stream_next` on this stream: that
/// call returns `MODELAPI_ABORTED` within milliseconds, and the stream's
/// connection is closed (so the server stops generating). Later
/// `modelapi_stream_next` calls return `MODELAPI_DONE`. The stream must
/// still be freed with `modelapi_stream_free`, after every other call on it
/// has returned. A stream opened with a cancel token (`modelapi_stream_open_with`,
/// `modelapi_stream_start` given one) is cancelled through that token: every
/// other call sharing the token is cancelled too (and stays so until
/// `modelapi_cancel_reset`); to stop one stream alone, give it a token of
/// its own.
///
/// # Safety
/// `stream` is NULL or a live stream (not freed, and not being freed).
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_cancel(stream: *mut ModelApiStream) -> ModelApiStatus {
    guard(|| {
        args::shared(stream, "stream")?.cancel.cancel();
        Ok(MODELAPI_OK)
    })
}

/// The `finish_reason` of the stream ("stop", "length", "tool_calls", ...),
/// or NULL while the server has not sent one. The text belongs to the
/// stream and stays valid until it is freed.
///
/// # Safety
/// `stream` is NULL or a live stream, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_finish_reason(
    stream: *mut ModelApiStream,
) -> *const c_char {
    stream_text(stream, |meta| meta.finish_reason.as_deref())
}

/// The response `id` of the stream (e.g. "chatcmpl-..."), or NULL when
/// none was seen yet. Valid until the stream is freed.
///
/// # Safety
/// As `modelapi_stream_finish_reason`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_id(stream: *mut ModelApiStream) -> *const c_char {
    stream_text(stream, |meta| meta.id.as_deref())
}

/// The `model` that answered, as the server named it, or NULL when none
/// was seen yet. Valid until the stream is freed.
///
/// # Safety
/// As `modelapi_stream_finish_reason`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_model(stream: *mut ModelApiStream) -> *const c_char {
    stream_text(stream, |meta| meta.model.as_deref())
}

/// The `x-request-id` header of the response, or NULL when there was none.
/// Valid until the stream is freed.
///
/// # Safety
/// As `modelapi_stream_finish_reason`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_request_id(stream: *mut ModelApiStream) -> *const c_char {
    stream_text(stream, |meta| meta.request_id.as_deref())
}

/// The token counts of the stream, when the server sent them (e.g. with
/// `"stream_options": {"include_usage": true}` in a `_json` request, after
/// the last chunk): returns 1 and fills the non-NULL out pointers; returns
/// 0 (and sets them to 0) when there are none, or `stream` is NULL.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only; the out
/// pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_usage(
    stream: *mut ModelApiStream,
    out_prompt_tokens: *mut u64,
    out_completion_tokens: *mut u64,
    out_total_tokens: *mut u64,
) -> c_int {
    let mut known = 0;
    let mut counts = [0u64; 3];
    let status = guard(|| {
        let handle = args::shared(stream, "stream")?;
        if let Some(usage) = &handle.state().stream.metadata().usage {
            counts = [
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens,
            ];
            known = 1;
        }
        Ok(MODELAPI_OK)
    });
    if status != MODELAPI_OK {
        known = 0;
    }
    for (out, value) in [out_prompt_tokens, out_completion_tokens, out_total_tokens]
        .into_iter()
        .zip(counts)
    {
        if !out.is_null() {
            *out = value;
        }
    }
    known
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

/// `modelapi_complete_json` that `cancel` can stop from another thread
/// (`cancel` may be NULL: then it is `modelapi_complete_json`). A
/// cancelled call returns `MODELAPI_ABORTED`.
///
/// # Safety
/// As `modelapi_complete_json`; `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn modelapi_complete_with(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    cancel: *mut ModelApiCancel,
    out_json: *mut *mut c_char,
    out_content: *mut *mut c_char,
) -> ModelApiStatus {
    args::clear(out_json);
    args::clear(out_content);
    guard(|| {
        let api = shared(api)?;
        let request = args::request_json(messages_json)?;
        let mock = args::optional_str(mock_response, "mock_response")?;
        let token = token_of(cancel);
        let completion = api.with_cancel(&token).complete_request(request, mock)?;
        write_completion(&completion, out_json, out_content);
        Ok(MODELAPI_OK)
    })
}

/// `modelapi_stream_json` that `cancel` can stop from another thread, also
/// between two chunks (`cancel` may be NULL). A cancelled call returns
/// `MODELAPI_ABORTED`, after the chunks that arrived.
///
/// # Safety
/// As `modelapi_stream_json`; `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_with(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    cancel: *mut ModelApiCancel,
    on_chunk: ModelApiChunkFn,
    user_data: *mut c_void,
) -> ModelApiStatus {
    guard(|| {
        let api = shared(api)?;
        let on_chunk = on_chunk.ok_or_else(|| Failure::invalid("on_chunk is NULL"))?;
        let request = args::request_json(messages_json)?;
        let mock = args::optional_str(mock_response, "mock_response")?;
        let token = token_of(cancel);
        let stream = api.with_cancel(&token).stream_request(request, mock)?;
        deliver(stream, on_chunk, user_data)
    })
}

/// `modelapi_stream_open_json` that `cancel` can stop from another thread
/// while the request is sent and the answer awaited, and at any later
/// `modelapi_stream_next` (as `modelapi_stream_cancel` does). `cancel` may
/// be NULL.
///
/// # Safety
/// As `modelapi_stream_open_json`; `cancel` is NULL or a live token that
/// outlives the stream.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_open_with(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    cancel: *mut ModelApiCancel,
    out_stream: *mut *mut ModelApiStream,
) -> ModelApiStatus {
    open_json(
        api,
        messages_json,
        mock_response,
        cancel,
        out_stream,
        Opening::Wait,
    )
}

/// Starts a streamed request and returns at once: the connection, the
/// request and the answer progress inside later `modelapi_stream_poll`
/// calls, for a thread that must never block (a game loop, a UI thread, an
/// event loop). The name lookup of a host name is the one step that may
/// block here; an IP address or "localhost" never does. `messages_json`,
/// `mock_response` and `cancel` (NULL, or a token that outlives the stream)
/// as in `modelapi_stream_open_with`. Argument errors are returned here;
/// network and server errors by a poll. On `MODELAPI_OK`, `*out_stream`
/// receives the stream (free it with `modelapi_stream_free`); on any other
/// status it is set to NULL. The blocking reads work on it too.
///
/// # Safety
/// As `modelapi_stream_open_with`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_start(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    cancel: *mut ModelApiCancel,
    out_stream: *mut *mut ModelApiStream,
) -> ModelApiStatus {
    open_json(
        api,
        messages_json,
        mock_response,
        cancel,
        out_stream,
        Opening::Start,
    )
}

/// Gives the next event if one can be had within `wait_ms` milliseconds (0:
/// at once, never waiting): `MODELAPI_OK` with `*out_event` filled (as
/// `modelapi_stream_next_event`), `MODELAPI_PENDING` when none came in time
/// (the stream goes on; call again), `MODELAPI_DONE` at the end (and on
/// every later call), or an error status, after which the stream is over
/// (`modelapi_last_error` says why). On any status but `MODELAPI_OK`,
/// `*out_event` is an empty content event. Works on every stream, however
/// it was opened, and may be mixed with the blocking reads.
///
/// With `wait_ms` 0 it does no blocking system call: at most one
/// non-blocking read when nothing has arrived. The client's timeout counts
/// time without progress across polls: a stream that hears nothing for
/// longer fails with `MODELAPI_TIMEOUT` at the next poll.
///
/// # Safety
/// As `modelapi_stream_next_event`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_poll(
    stream: *mut ModelApiStream,
    wait_ms: u32,
    out_event: *mut ModelApiEvent,
) -> ModelApiStatus {
    if let Some(out) = out_event.as_mut() {
        *out = no_event();
    }
    guard(|| {
        let handle = args::shared(stream, "stream")?;
        let out = out_event
            .as_mut()
            .ok_or_else(|| Failure::invalid("out_event is NULL"))?;
        let wait = Duration::from_millis(wait_ms.into());
        match handle.state().stream.poll_event_with_nul(wait) {
            Poll::Pending => Ok(MODELAPI_PENDING),
            Poll::Ready(None) => Ok(MODELAPI_DONE),
            Poll::Ready(Some(Err(err))) => Err(err.into()),
            Poll::Ready(Some(Ok(event))) => {
                *out = c_event(&event);
                Ok(MODELAPI_OK)
            }
        }
    })
}

/// The socket the stream waits on, for the host's `poll`/`select`/`epoll`:
/// its descriptor, with `*out_wants_write` (may be NULL) set to 1 when the
/// stream waits to write (connecting, sending the request: wait for
/// `POLLIN | POLLOUT`, so that a server that answers before it has read the
/// whole request, a 413 or a 401, is seen at once), 0 to read; or
/// -1 when it waits on no socket (canned replies, a retry's backoff, a
/// finished stream, a NULL stream), in which case the host polls again
/// after `modelapi_stream_wake_ms`. The descriptor belongs to the stream: do not read, write or close
/// it, and ask again after each poll (a retry, a redirect, or a connect
/// that tries the server's next address changes it: while attempts to
/// several addresses race, it is the newest attempt's).
/// The stream may hold events it has already read, so after a wake-up poll
/// until `MODELAPI_PENDING` before waiting again.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only;
/// `out_wants_write` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_fd(
    stream: *const ModelApiStream,
    out_wants_write: *mut c_int,
) -> c_int {
    if let Some(out) = out_wants_write.as_mut() {
        *out = 0;
    }
    let mut fd = -1;
    guard_void(|| {
        let Some(handle) = stream.as_ref() else {
            return;
        };
        if let Some(waits) = handle.state().stream.waits_on() {
            fd = waits.fd;
            if let Some(out) = out_wants_write.as_mut() {
                *out = c_int::from(waits.wants_write);
            }
        }
    });
    fd
}

/// The longest the host may wait (on `modelapi_stream_fd`'s socket, or
/// asleep when it is -1) before it must call `modelapi_stream_poll` again,
/// whatever the socket does, in milliseconds (rounded up): 0 when a poll
/// has something to do now (events already read, canned replies), else the
/// time until a retry's backoff ends, the next connection attempt is due
/// (an address that has not answered within 250 ms; at most 100 ms while
/// attempts race, as the descriptor is only the newest one's), or the
/// stream's timeout would expire; -1 once the stream is over (or for a NULL stream). Use it as the timeout
/// of `poll`/`epoll_wait`, like libcurl's `curl_multi_timeout`: a host that
/// does never misses a timeout and never spins through a backoff.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_wake_ms(stream: *const ModelApiStream) -> i64 {
    let mut wake = -1;
    guard_void(|| {
        let Some(handle) = stream.as_ref() else {
            return;
        };
        if let Some(left) = handle.state().stream.wake_in() {
            // Rounded up: a host woken early would find nothing to do.
            let ms = left.as_micros().div_ceil(1000);
            wake = i64::try_from(ms).unwrap_or(i64::MAX);
        }
    });
    wake
}

/// Frees a pull stream. In the middle of a stream its connection is closed
/// at once (the rest of the answer is not read). NULL is a no-op.
///
/// # Safety
/// `stream` is NULL or a live stream, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_free(stream: *mut ModelApiStream) {
    if !stream.is_null() {
        guard_void(|| drop(Box::from_raw(stream)));
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

/// The event C gets when there is none: empty content.
fn no_event() -> ModelApiEvent {
    ModelApiEvent {
        kind: ModelApiEventKind::MODELAPI_EVENT_CONTENT,
        text: c"".as_ptr(),
        len: 0,
        tool_index: 0,
        tool_id: std::ptr::null(),
        tool_name: std::ptr::null(),
    }
}

/// An event for C, pointing into the stream's buffer.
fn c_event(event: &EventWithNul<'_>) -> ModelApiEvent {
    let c_text = |bytes: &[u8]| bytes.as_ptr().cast::<c_char>();
    ModelApiEvent {
        kind: match event.kind {
            Kind::Content => ModelApiEventKind::MODELAPI_EVENT_CONTENT,
            Kind::Reasoning => ModelApiEventKind::MODELAPI_EVENT_REASONING,
            Kind::ToolCall => ModelApiEventKind::MODELAPI_EVENT_TOOL_CALL,
            Kind::Refusal => ModelApiEventKind::MODELAPI_EVENT_REFUSAL,
        },
        text: c_text(event.text),
        len: event.text.len() - 1,
        tool_index: event.tool_index,
        tool_id: event.tool_id.map_or(std::ptr::null(), c_text),
        tool_name: event.tool_name.map_or(std::ptr::null(), c_text),
    }
}

/// The token behind a C cancel handle, or a fresh one for NULL.
unsafe fn token_of(cancel: *mut ModelApiCancel) -> CancelToken {
    cancel
        .as_ref()
        .map_or_else(CancelToken::new, |c| c.token.clone())
}

/// A metadata text of a stream, as a C string living as long as it.
unsafe fn stream_text(
    stream: *mut ModelApiStream,
    field: impl FnOnce(&crate::StreamMetadata) -> Option<&str>,
) -> *const c_char {
    let mut text = std::ptr::null();
    guard(|| {
        let state = args::shared(stream, "stream")?.state();
        let value = field(state.stream.metadata()).map(str::to_string);
        text = state.c_text(value.as_deref());
        Ok(MODELAPI_OK)
    });
    text
}

/// A client for a call that may run on several threads at once.
fn shared<'a>(api: *mut ModelApiHandle) -> Result<&'a ModelApi, Failure> {
    args::required(api, "api").map(|handle| &handle.api)
}

fn required_out<T>(out: *mut *mut T, name: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid(format!("{name} is NULL")));
    }
    Ok(())
}

unsafe fn write_completion(
    completion: &crate::ChatCompletion,
    out_json: *mut *mut c_char,
    out_content: *mut *mut c_char,
) {
    if !out_json.is_null() {
        *out_json = args::c_string(completion.raw_json());
    }
    if !out_content.is_null() {
        *out_content = args::c_string(completion.content().unwrap_or_default());
    }
}

/// Whether opening a stream waits for the answer to begin.
enum Opening {
    /// `modelapi_stream_open*`: until the response head (or an error).
    Wait,
    /// `modelapi_stream_start`: not at all.
    Start,
}

/// Opens a stream for a JSON request, the rules of both ways in one place.
unsafe fn open_json(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    cancel: *mut ModelApiCancel,
    out_stream: *mut *mut ModelApiStream,
    opening: Opening,
) -> ModelApiStatus {
    args::clear(out_stream);
    guard(|| {
        let api = shared(api)?;
        required_out(out_stream, "out_stream")?;
        let request = args::request_json(messages_json)?;
        let mock = args::optional_str(mock_response, "mock_response")?;
        let token = token_of(cancel);
        let calls = api.with_cancel(&token);
        let stream = match opening {
            Opening::Wait => calls.stream_request(request, mock)?,
            Opening::Start => calls.stream_request_start(request, mock)?,
        };
        open(stream, out_stream)
    })
}

unsafe fn open(
    stream: ChatStream,
    out_stream: *mut *mut ModelApiStream,
) -> Result<ModelApiStatus, Failure> {
    *out_stream = Box::into_raw(Box::new(ModelApiStream::new(stream)));
    Ok(MODELAPI_OK)
}

/// Hands every chunk of `stream` to `on_chunk`.
unsafe fn deliver(
    mut stream: ChatStream,
    on_chunk: unsafe extern "C" fn(*mut c_void, *const c_char, usize) -> c_int,
    user_data: *mut c_void,
) -> Result<ModelApiStatus, Failure> {
    while let Some(chunk) = stream.next_chunk_with_nul() {
        let chunk = chunk?;
        let verdict = on_chunk(user_data, chunk.as_ptr().cast(), chunk.len() - 1);
        if verdict != 0 {
            return Err(crate::Error::Aborted(format!(
                "the chunk callback returned {verdict}: the stream was stopped"
            ))
            .into());
        }
    }
    Ok(MODELAPI_OK)
}
