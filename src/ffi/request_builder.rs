//! A request built piece by piece (`ModelApiRequest`), so that a C host
//! never writes JSON: messages by role, images, the assistant turn of an
//! answer, tool results, parameters; its JSON goes to every `_json` call.

use std::ffi::{c_char, c_int, c_void};

use serde_json::{Number, Value};

use super::boundary::{guard, guard_ptr, guard_void, Failure, ModelApiStatus};
use super::stream::ModelApiStream;
use super::ModelApiStatus::*;
use super::{args, required_out};
use crate::ChatRequest;

/// A chat request under construction. Opaque to C: created by
/// `modelapi_request_new`, freed by `modelapi_request_free`. Every string
/// given to it is copied and escaped by the library. A call that fails
/// leaves the request as it was. Used by one thread at a time.
#[derive(Debug, Default)]
pub struct ModelApiRequest {
    request: ChatRequest,
}

/// A request with no message and no parameter; NULL only when memory ran
/// out. Free it with `modelapi_request_free`.
#[no_mangle]
pub extern "C" fn modelapi_request_new() -> *mut ModelApiRequest {
    guard_ptr(|| Ok(Box::into_raw(Box::default())))
}

/// Frees a request. NULL is a no-op.
///
/// # Safety
/// `request` is NULL or a live request, not used after this call.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_free(request: *mut ModelApiRequest) {
    if !request.is_null() {
        guard_void(|| drop(Box::from_raw(request)));
    }
}

/// Runs `body` on the request behind `request`.
fn with_request(
    request: *mut ModelApiRequest,
    body: impl FnOnce(&mut ChatRequest) -> Result<(), Failure>,
) -> ModelApiStatus {
    guard(|| {
        let handle = args::required(request, "request")?;
        body(&mut handle.request)?;
        Ok(MODELAPI_OK)
    })
}

/// Adds a message of `role` ("system", "user", "assistant", "tool",
/// "developer", ...) with `text` as its content.
///
/// # Safety
/// `request` is NULL or a live request; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_add_message(
    request: *mut ModelApiRequest,
    role: *const c_char,
    text: *const c_char,
) -> ModelApiStatus {
    with_request(request, |r| {
        let role = args::required_str(role, "role")?;
        let text = args::required_str(text, "text")?;
        if role.is_empty() {
            return Err(Failure::invalid("role is empty"));
        }
        r.message(role, text);
        Ok(())
    })
}

/// Adds an image by URL ("https://...", or a "data:" URL) to the last
/// message, which must be a "user" message (its text becomes the first of
/// its content parts).
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_add_image_url(
    request: *mut ModelApiRequest,
    url: *const c_char,
) -> ModelApiStatus {
    with_request(request, |r| {
        let url = args::required_str(url, "url")?;
        r.image_url(url)?;
        Ok(())
    })
}

/// Adds an image from its `len` bytes, sent as a base64 "data:" URL of
/// `mime_type` ("image/png", "image/jpeg", ...), to the last message, which
/// must be a "user" message. The bytes are read during the call only.
///
/// # Safety
/// As `modelapi_request_add_message`; `bytes` is NULL or points to `len`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_add_image_data(
    request: *mut ModelApiRequest,
    bytes: *const c_void,
    len: usize,
    mime_type: *const c_char,
) -> ModelApiStatus {
    with_request(request, |r| {
        if bytes.is_null() {
            return Err(Failure::invalid("bytes is NULL"));
        }
        let mime_type = args::required_str(mime_type, "mime_type")?;
        let bytes = std::slice::from_raw_parts(bytes.cast::<u8>(), len);
        r.image_bytes(bytes, mime_type)?;
        Ok(())
    })
}

/// Adds the result of the tool call `tool_call_id`: a "tool" message with
/// `content`.
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_add_tool_result(
    request: *mut ModelApiRequest,
    tool_call_id: *const c_char,
    content: *const c_char,
) -> ModelApiStatus {
    with_request(request, |r| {
        let id = args::required_str(tool_call_id, "tool_call_id")?;
        let content = args::required_str(content, "content")?;
        r.tool_result(id, content);
        Ok(())
    })
}

/// Adds the assistant turn of a finished answer given as chat.completion
/// JSON (`*out_json` of `modelapi_complete_json`, or
/// `modelapi_stream_completion_json`): its content, its tool calls and
/// refusal when it has some, and, when `include_reasoning` is non-zero, its
/// reasoning as "reasoning_content" (for servers that want it back).
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_add_assistant_json(
    request: *mut ModelApiRequest,
    completion_json: *const c_char,
    include_reasoning: c_int,
) -> ModelApiStatus {
    with_request(request, |r| {
        let json = args::required_str(completion_json, "completion_json")?;
        r.assistant_turn_json(json, include_reasoning != 0)?;
        Ok(())
    })
}

/// Adds the assistant turn of a stream as it was assembled (see
/// `modelapi_stream_completion_json`), read to its end or not, as
/// `modelapi_request_add_assistant_json` does. The stream is only read.
///
/// # Safety
/// As `modelapi_request_add_message`; `stream` is NULL or a live stream,
/// not used by another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_add_assistant_stream(
    request: *mut ModelApiRequest,
    stream: *mut ModelApiStream,
    include_reasoning: c_int,
) -> ModelApiStatus {
    with_request(request, |r| {
        let stream = args::shared(stream, "stream")?;
        let answer = stream.state().stream.completion();
        r.assistant_turn(&answer, include_reasoning != 0)?;
        Ok(())
    })
}

/// Adds a message given as JSON: an OpenAI message object with a "role"
/// string (for fields the calls above do not cover).
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_add_message_json(
    request: *mut ModelApiRequest,
    message_json: *const c_char,
) -> ModelApiStatus {
    with_request(request, |r| {
        let json = args::required_str(message_json, "message_json")?;
        let value: Value = serde_json::from_str(json)
            .map_err(|e| Failure::invalid(format!("message_json is not valid JSON: {e}")))?;
        r.push(value)?;
        Ok(())
    })
}

/// Sets the parameter `name` (a JSON value of any kind) after checking it.
fn set(request: *mut ModelApiRequest, name: *const c_char, value: Value) -> ModelApiStatus {
    with_request(request, |r| {
        // SAFETY: the callers' contract: `name` is NULL or NUL-terminated.
        let name = unsafe { args::required_str(name, "name") }?;
        r.set(name, value)?;
        Ok(())
    })
}

/// Sets the parameter `name` to a number ("temperature", "top_p", ...).
/// NaN and infinities are `MODELAPI_INVALID_ARGUMENT`. Setting a parameter
/// again replaces it. "messages" and "stream" cannot be set (they are
/// built by the calls above, and set by each call).
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_set_number(
    request: *mut ModelApiRequest,
    name: *const c_char,
    value: f64,
) -> ModelApiStatus {
    match Number::from_f64(value) {
        Some(number) => set(request, name, Value::Number(number)),
        None => guard(|| Err(Failure::invalid("value is not a finite number"))),
    }
}

/// Sets the parameter `name` to an integer ("max_tokens", "seed", ...).
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_set_int(
    request: *mut ModelApiRequest,
    name: *const c_char,
    value: i64,
) -> ModelApiStatus {
    set(request, name, Value::from(value))
}

/// Sets the parameter `name` to a string ("model", "tool_choice",
/// "reasoning_effort", ...).
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_set_string(
    request: *mut ModelApiRequest,
    name: *const c_char,
    value: *const c_char,
) -> ModelApiStatus {
    match args::required_str(value, "value") {
        Ok(value) => set(request, name, Value::from(value)),
        Err(failure) => guard(|| Err(failure)),
    }
}

/// Sets the parameter `name` to true (`value` non-zero) or false.
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_set_bool(
    request: *mut ModelApiRequest,
    name: *const c_char,
    value: c_int,
) -> ModelApiStatus {
    set(request, name, Value::Bool(value != 0))
}

/// Sets the parameter `name` to a value written as JSON: "tools",
/// "response_format", "stream_options", anything else. JSON that does not
/// parse is `MODELAPI_INVALID_ARGUMENT`, naming `name`.
///
/// # Safety
/// As `modelapi_request_add_message`.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_set_json(
    request: *mut ModelApiRequest,
    name: *const c_char,
    json: *const c_char,
) -> ModelApiStatus {
    with_request(request, |r| {
        let name = args::required_str(name, "name")?;
        let json = args::required_str(json, "json")?;
        r.set_json(name, json)?;
        Ok(())
    })
}

/// The request as JSON, for every `_json` call (`modelapi_complete_json`,
/// `modelapi_stream_json`, `modelapi_stream_open_json`,
/// `modelapi_stream_start`, `modelapi_stream_detached`, their `_with`
/// forms); free it with `modelapi_string_free`. The request stays usable:
/// add the answer and the next turn, and ask again.
///
/// # Safety
/// `request` is NULL or a live request; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_request_json(
    request: *const ModelApiRequest,
    out_json: *mut *mut c_char,
) -> ModelApiStatus {
    args::clear(out_json);
    guard(|| {
        let handle = args::shared(request.cast_mut(), "request")?;
        required_out(out_json, "out_json")?;
        *out_json = args::c_string(&handle.request.to_json());
        Ok(MODELAPI_OK)
    })
}
