//! A detached stream's side of the exchange the host carries: the request
//! it hands out, and the answer it is fed (see `modelapi_stream_detached`).

use std::ffi::{c_char, c_int};

use super::args;
use super::boundary::{guard, Failure, ModelApiStatus};
use super::stream::{keep_text, ModelApiStream, StreamState};
use super::ModelApiStatus::*;
use crate::HostRequest;

/// The request a detached stream hands out, `None` for any other stream.
unsafe fn host_request<'a>(stream: *const ModelApiStream) -> Option<&'a HostRequest> {
    stream.as_ref()?.state().stream.host_request()
}

/// The URL a detached stream's request is POSTed to
/// (`{api_base}/v1/chat/completions`). The string belongs to the stream.
/// NULL for a stream that is not detached, or a NULL stream.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_request_url(
    stream: *const ModelApiStream,
) -> *const c_char {
    let mut url = std::ptr::null();
    guard(|| {
        if let Some(handle) = stream.as_ref() {
            // One borrow of the state, split: the request read, its text
            // kept.
            let StreamState { stream, texts } = handle.state();
            if let Some(request) = stream.host_request() {
                url = keep_text(texts, Some(request.url()));
            }
        }
        Ok(MODELAPI_OK)
    });
    url
}

/// How many headers a detached stream's request has: those the client
/// sends on its own connections (`Content-Type: application/json`,
/// `Accept: text/event-stream`, its `User-Agent`, `Authorization` with the
/// key, the client's own headers), without the framing ones (`Host`,
/// `Content-Length`) that the host's HTTP stack writes. 0 for a stream
/// that is not detached, or a NULL stream.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_request_header_count(
    stream: *const ModelApiStream,
) -> usize {
    host_request(stream).map_or(0, |request| request.headers().len())
}

/// Header `index` (from 0) of a detached stream's request: its name and
/// value, NUL-terminated, belonging to the stream. The key is in them:
/// send them to `modelapi_stream_request_url` only.
/// `MODELAPI_INVALID_ARGUMENT` for a stream that is not detached, an index
/// past the count, or a NULL pointer (the outputs are then NULL).
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only; `out_name`
/// and `out_value` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_request_header(
    stream: *const ModelApiStream,
    index: usize,
    out_name: *mut *const c_char,
    out_value: *mut *const c_char,
) -> ModelApiStatus {
    for out in [out_name, out_value] {
        if let Some(out) = out.as_mut() {
            *out = std::ptr::null();
        }
    }
    guard(|| {
        let handle = args::shared(stream.cast_mut(), "stream")?;
        let StreamState { stream, texts } = handle.state();
        let request = detached(stream.host_request())?;
        if out_name.is_null() || out_value.is_null() {
            return Err(Failure::invalid("out_name and out_value must not be NULL"));
        }
        let count = request.headers().len();
        let (name, value) = request.headers().get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} is past the request's {count} headers \
                 (modelapi_stream_request_header_count)"
            ))
        })?;
        *out_name = keep_text(texts, Some(name));
        *out_value = keep_text(texts, Some(value));
        Ok(MODELAPI_OK)
    })
}

/// The JSON body of a detached stream's request: `*out_body` (followed by
/// a NUL that `*out_len` does not count; it belongs to the stream) and
/// `*out_len`. `MODELAPI_INVALID_ARGUMENT` for a stream that is not
/// detached or a NULL pointer (the outputs are then NULL and 0).
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only; `out_body`
/// and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_request_body(
    stream: *const ModelApiStream,
    out_body: *mut *const c_char,
    out_len: *mut usize,
) -> ModelApiStatus {
    if let Some(out) = out_body.as_mut() {
        *out = std::ptr::null();
    }
    if let Some(out) = out_len.as_mut() {
        *out = 0;
    }
    guard(|| {
        args::shared(stream.cast_mut(), "stream")?;
        let request = detached(host_request(stream))?;
        if out_body.is_null() || out_len.is_null() {
            return Err(Failure::invalid("out_body and out_len must not be NULL"));
        }
        *out_body = request.body_with_nul().as_ptr().cast();
        *out_len = request.body().len();
        Ok(MODELAPI_OK)
    })
}

/// Feeds a detached stream the head of its answer, once, before any body
/// byte: the HTTP status (of the final answer, 200 to 599) and the
/// `Content-Type` value (NULL if none). A non-2xx status makes the body an
/// error answer: reads return `MODELAPI_HTTP_ERROR` with the server's
/// message (and `modelapi_last_http_status`) once it has ended. A JSON
/// content type makes it a plain answer, read whole at its end. Out of
/// order (a second head), or on a stream that is not detached:
/// `MODELAPI_INVALID_ARGUMENT`, and nothing changes.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only;
/// `content_type` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_feed_head(
    stream: *mut ModelApiStream,
    http_status: c_int,
    content_type: *const c_char,
) -> ModelApiStatus {
    guard(|| {
        let handle = args::shared(stream, "stream")?;
        let content_type = args::optional_str(content_type, "content_type")?;
        let status = u16::try_from(http_status).unwrap_or(0);
        handle.state().stream.feed_head(status, content_type)?;
        Ok(MODELAPI_OK)
    })
}

/// Feeds a detached stream `len` bytes of its answer's body, as the host's
/// HTTP stack delivers them (transfer framing and content encoding already
/// removed), in pieces of any size split anywhere (also inside a UTF-8
/// character). The bytes are copied. An event is readable as soon as the
/// bytes that complete it are fed. Before the head, after the end, or on a
/// stream that is not detached: `MODELAPI_INVALID_ARGUMENT`, and nothing
/// changes. `bytes` may be NULL when `len` is 0.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only; `bytes`
/// points to `len` readable bytes (or is NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_feed(
    stream: *mut ModelApiStream,
    bytes: *const c_char,
    len: usize,
) -> ModelApiStatus {
    guard(|| {
        let handle = args::shared(stream, "stream")?;
        let bytes: &[u8] = match (bytes.is_null(), len) {
            (_, 0) => &[],
            (true, _) => return Err(Failure::invalid(format!("bytes is NULL with len {len}"))),
            (false, len) => std::slice::from_raw_parts(bytes.cast(), len),
        };
        handle.state().stream.feed(bytes)?;
        Ok(MODELAPI_OK)
    })
}

/// Ends a detached stream's body. After it, a stream with neither
/// `data: [DONE]` nor a `finish_reason` was truncated: its reads return
/// `MODELAPI_TRANSPORT_ERROR`, as on the network. A host whose transfer
/// failed after the head just ends the body. Before the head, a second
/// time, or on a stream that is not detached: `MODELAPI_INVALID_ARGUMENT`,
/// and nothing changes.
///
/// # Safety
/// `stream` is NULL or a live stream used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn modelapi_stream_feed_end(stream: *mut ModelApiStream) -> ModelApiStatus {
    guard(|| {
        let handle = args::shared(stream, "stream")?;
        handle.state().stream.feed_end()?;
        Ok(MODELAPI_OK)
    })
}

/// The request of a detached stream, or the error for another stream.
fn detached(request: Option<&HostRequest>) -> Result<&HostRequest, Failure> {
    request.ok_or_else(|| {
        Failure::invalid(
            "this stream is not detached: the library carries its bytes \
             (open one with modelapi_stream_detached)",
        )
    })
}
