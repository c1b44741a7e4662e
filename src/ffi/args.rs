//! Checking and converting what C hands in, and what goes back out.

use std::ffi::{c_char, CStr, CString};

use serde_json::{Map, Value};

use super::boundary::Failure;
use super::ModelApiMessage;
use crate::Message;

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn required_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    optional_str(ptr, name)?.ok_or_else(|| Failure::invalid(format!("{name} is NULL")))
}

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// As [`required_str`].
pub(crate) unsafe fn optional_str<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    CStr::from_ptr(ptr).to_str().map(Some).map_err(|e| {
        Failure::invalid(format!(
            "{name} is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// A required pointer argument.
pub(crate) fn required<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the C API's rules make every non-NULL handle a live one.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::invalid(format!("{name} is NULL")))
}

/// A required pointer argument that other threads may share.
pub(crate) fn shared<'a, T>(ptr: *mut T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the C API's rules make every non-NULL handle a live one.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::invalid(format!("{name} is NULL")))
}

/// The `messages`/`count` pair as messages.
///
/// # Safety
/// `messages` is NULL or points to `count` messages whose strings are
/// NULL or NUL-terminated.
pub(crate) unsafe fn messages(
    messages: *const ModelApiMessage,
    count: usize,
) -> Result<Vec<Message>, Failure> {
    if messages.is_null() {
        return Err(Failure::invalid(format!(
            "messages is NULL (count {count}): pass an array of ModelApiMessage"
        )));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    std::slice::from_raw_parts(messages, count)
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = required_str(m.role, &format!("messages[{i}].role"))?;
            let content = required_str(m.content, &format!("messages[{i}].content"))?;
            Ok(Message::new(role, content))
        })
        .collect()
}

/// `messages_json`: a JSON array of OpenAI messages, or a whole request
/// object.
///
/// # Safety
/// As [`required_str`].
pub(crate) unsafe fn request_json(
    messages_json: *const c_char,
) -> Result<Map<String, Value>, Failure> {
    let text = required_str(messages_json, "messages_json")?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Failure::invalid(format!("messages_json is not valid JSON: {e}")))?;
    match value {
        Value::Array(messages) => {
            let mut request = Map::new();
            request.insert("messages".into(), Value::Array(messages));
            Ok(request)
        }
        Value::Object(request) => Ok(request),
        _ => Err(Failure::invalid(
            "messages_json must be a JSON array of messages or a JSON request object",
        )),
    }
}

/// Sets an optional out pointer to NULL.
pub(crate) fn clear<T>(out: *mut *mut T) {
    if !out.is_null() {
        // SAFETY: a non-NULL out pointer points to writable storage.
        unsafe { *out = std::ptr::null_mut() };
    }
}

/// A string for C, freed with `modelapi_string_free`. C strings end at the
/// first NUL, so NUL characters (JSON `\u0000`) are left out.
pub(crate) fn c_string(text: &str) -> *mut c_char {
    CString::new(text)
        .or_else(|_| CString::new(text.replace('\0', "")))
        .expect("NUL characters were removed")
        .into_raw()
}
