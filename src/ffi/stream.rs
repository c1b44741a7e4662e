//! A stream: its reads (pull, event, poll), what it waits on, its
//! metadata, cancel and free.

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, CString};
use std::fmt;
use std::task::Poll;
use std::time::Duration;

use super::boundary::{guard, guard_void, Failure, ModelApiStatus};
use super::event::{c_event, no_event, ModelApiEvent};
use super::ModelApiStatus::*;
use super::{args, required_out};
use crate::{CancelToken, ChatStream};

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

pub(super) struct StreamState {
    pub(super) stream: ChatStream,
    /// Metadata handed out as C strings: kept until the stream is freed.
    pub(super) texts: Vec<CString>,
}

impl ModelApiStream {
    pub(super) fn new(stream: ChatStream) -> ModelApiStream {
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
    pub(super) unsafe fn state(&self) -> &mut StreamState {
        &mut *self.state.get()
    }
}

impl StreamState {
    /// `text` as a C string that lives as long as the stream.
    pub(super) fn c_text(&mut self, text: Option<&str>) -> *const c_char {
        keep_text(&mut self.texts, text)
    }
}

impl fmt::Debug for ModelApiStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelApiStream")
            .field("cancel", &self.cancel)
            .finish_non_exhaustive()
    }
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

/// The api_base of the endpoint that served the stream (the client's own
/// or a fallback's, without surrounding spaces and trailing slashes), or
/// NULL until one has produced its first event (and for a canned reply,
/// which no endpoint serves). Valid until the stream is freed.
///
/// # Safety
/// As `modelapi_stream_finish_reason`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_endpoint(stream: *mut ModelApiStream) -> *const c_char {
    stream_text(stream, |meta| meta.endpoint.as_deref())
}

/// The milliseconds from the stream's start to its first event, or -1
/// before it (and when `stream` is NULL).
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_first_event_ms(stream: *mut ModelApiStream) -> i64 {
    let mut ms = -1;
    guard(|| {
        let state = args::shared(stream, "stream")?.state();
        if let Some(first) = state.stream.metadata().first_event {
            ms = i64::try_from(first.as_millis()).unwrap_or(i64::MAX);
        }
        Ok(MODELAPI_OK)
    });
    ms
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
/// several addresses race, it is the newest attempt's; while a hedge races
/// two endpoints (`modelapi_set_hedge_ms`), it is the hedge's, and
/// `modelapi_stream_wake_ms` is at most 10 ms so that the other endpoint
/// is looked at too; a fallback changes it).
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
    let (fd, wants_write) = socket_of(stream).unwrap_or((-1, false));
    if let Some(out) = out_wants_write.as_mut() {
        *out = c_int::from(wants_write);
    }
    fd
}

/// The socket a stream waits on, and whether it waits to write.
#[cfg(feature = "net")]
unsafe fn socket_of(stream: *const ModelApiStream) -> Option<(c_int, bool)> {
    let mut socket = None;
    guard_void(|| {
        if let Some(handle) = stream.as_ref() {
            socket = handle
                .state()
                .stream
                .waits_on()
                .map(|waits| (waits.fd, waits.wants_write));
        }
    });
    socket
}

/// A build without the network waits on no socket, ever.
#[cfg(not(feature = "net"))]
unsafe fn socket_of(_: *const ModelApiStream) -> Option<(c_int, bool)> {
    None
}

/// The longest the host may wait (on `modelapi_stream_fd`'s socket, or
/// asleep when it is -1) before it must call `modelapi_stream_poll` again,
/// whatever the socket does, in milliseconds (rounded up): 0 when a poll
/// has something to do now (events already read, canned replies), else the
/// time until a retry's backoff ends, the next connection attempt is due
/// (an address that has not answered within 250 ms; at most 100 ms while
/// attempts race, as the descriptor is only the newest one's), a hedge is
/// due or a first-token deadline passes (`modelapi_set_hedge_ms`,
/// `modelapi_set_first_token_timeout_ms`; at most 10 ms while two
/// endpoints race), or the stream's timeout would expire; -1 once the
/// stream is over (or for a NULL stream), and on a detached stream that
/// has nothing to do until the host feeds it. Use it as the timeout
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

/// `text` as a C string kept in `texts` (a stream's), so that it lives as
/// long as they do; the same text is kept once.
pub(super) fn keep_text(texts: &mut Vec<CString>, text: Option<&str>) -> *const c_char {
    let Some(text) = text else {
        return std::ptr::null();
    };
    if let Some(known) = texts.iter().find(|t| t.as_bytes() == text.as_bytes()) {
        return known.as_ptr();
    }
    let owned = CString::new(text.replace('\0', "")).expect("NUL bytes were removed");
    texts.push(owned);
    texts.last().expect("just pushed").as_ptr()
}
