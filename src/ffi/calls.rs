//! The calls: one completion, and the ways to open a stream (pulled, with
//! a callback, started for polls), with a cancel token or without.

use std::ffi::{c_char, c_int, c_void};

use super::boundary::{guard, Failure, ModelApiStatus};
use super::cancel::{token_of, ModelApiCancel};
use super::client::ModelApiHandle;
use super::event::{c_event, ModelApiEventFn};
use super::stream::ModelApiStream;
use super::ModelApiStatus::*;
use super::{args, required_out, shared};
use crate::ChatStream;

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

/// A stream whose bytes the host carries (an engine's HTTP module, a
/// browser's `fetch`, a console SDK): `*out_stream` holds the request
/// exactly as this client would send it (`"stream": true`), to be sent by
/// the host (`modelapi_stream_request_url`, `_header_count`, `_header`,
/// `_body`), and no connection is opened. The host feeds the answer
/// (`modelapi_stream_feed_head`, `_feed`, `_feed_end`), and the stream is
/// read with the ordinary functions (`modelapi_stream_next`, `_next_event`,
/// `_poll`, `_completion_json`, `_finish_reason`, `_usage`, ...). A read
/// that needs bytes not fed yet returns `MODELAPI_PENDING` (the blocking
/// reads too: they cannot wait for the host); the stream goes on.
/// `modelapi_stream_fd` is -1; timeouts, retries and redirects are the
/// host's (the stream is one exchange). With canned replies the events
/// are there at once; bytes fed to such a stream are accepted and ignored.
/// `messages_json` and `mock_response` as in `modelapi_stream_json`. On
/// `MODELAPI_OK`, `*out_stream` receives the stream (free it with
/// `modelapi_stream_free`); on any other status it is set to NULL.
///
/// # Safety
/// As `modelapi_stream_open`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_detached(
    api: *mut ModelApiHandle,
    messages_json: *const c_char,
    mock_response: *const c_char,
    out_stream: *mut *mut ModelApiStream,
) -> ModelApiStatus {
    open_json(
        api,
        messages_json,
        mock_response,
        std::ptr::null_mut(),
        out_stream,
        Opening::Detached,
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
    /// `modelapi_stream_detached`: never; the host carries the bytes.
    Detached,
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
            Opening::Detached => calls.stream_request_detached(request, mock)?,
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
