//! What the head of an answer means, wherever it came from (the library's
//! own connection or the host's HTTP stack): whether the body is a plain
//! JSON answer or events, and the error a non-2xx status stands for, with
//! the server's own message. No I/O.

use serde_json::Value;

use crate::error::truncate;
use crate::error::Error;

/// How much of an error answer's body is kept for its message.
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Appends `piece` of a body read whole to `into`: a body over `limit`
/// bytes is an error.
pub(crate) fn append_capped(into: &mut Vec<u8>, piece: &[u8], limit: u64) -> Result<(), Error> {
    if (into.len() + piece.len()) as u64 > limit {
        return Err(Error::InvalidResponse(format!(
            "response body is larger than the cap of {limit} bytes \
             (raise it with ModelApiBuilder::max_response_bytes)"
        )));
    }
    into.extend_from_slice(piece);
    Ok(())
}

/// Whether a `Content-Type` names JSON (`application/json`,
/// `application/*+json`): a plain answer to a stream request, read whole.
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let t = t.trim_start().to_ascii_lowercase();
        t.starts_with("application/json") || t.starts_with("application/") && t.contains("+json")
    })
}

/// The error for a non-2xx response, with the server's message.
pub(crate) fn http_error(status: u16, raw: &[u8]) -> Error {
    let body = String::from_utf8_lossy(raw).into_owned();
    let (mut message, mut error_type, mut code) = (None, None, None);
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&body) {
        let detail = object.get("error").unwrap_or(&Value::Null);
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        error_type = text(detail.get("type"));
        code = text(detail.get("code"));
        message = Some(crate::error::error_message(&Value::Object(object)));
    }
    let message = message
        .or_else(|| Some(truncate(body.trim())).filter(|m| !m.is_empty()))
        .unwrap_or_else(|| {
            ureq_proto::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no reason given")
                .to_string()
        });
    Error::Http {
        status,
        message,
        error_type,
        code,
        body,
    }
}
