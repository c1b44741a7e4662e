//! Canned replies: `DEBUG_MOCK_RESPONSES` and
//! [`ModelApiBuilder::mock_responses`](crate::ModelApiBuilder::mock_responses).
//!
//! A canned reply answers one call without any network traffic: `complete`
//! gets a full `chat.completion` object, `stream` gets the text in pieces.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::chunk::StreamMetadata;
use crate::stream::ChatStream;
use crate::types::{ChatCompletion, Usage};
use crate::Error;

/// The environment variable holding canned replies.
pub const MOCK_ENV_VAR: &str = "DEBUG_MOCK_RESPONSES";

/// Characters per streamed piece of a canned reply: LiteLLM's mock streams
/// in pieces of this size, so mocked and proxied streams look alike.
const PIECE_CHARS: usize = 3;

/// Parses the value of `DEBUG_MOCK_RESPONSES`:
/// a JSON array of strings, a JSON string, or plain text (one reply).
pub(crate) fn parse_env_value(value: &str) -> Result<Vec<String>, Error> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let invalid = |why: String| {
        Error::InvalidArgument(format!(
            "{MOCK_ENV_VAR} must be a JSON array of strings (canned replies), \
             a JSON string, or plain text; {why}"
        ))
    };
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s),
                other => Err(invalid(format!(
                    "element {i} of the array is not a string: {other}"
                ))),
            })
            .collect(),
        Ok(Value::String(s)) => Ok(vec![s]),
        Ok(other) => Err(invalid(format!("got JSON of another shape: {other}"))),
        Err(e) if value.trim_start().starts_with('[') => Err(invalid(format!(
            "it starts with '[' but is not valid JSON ({e})"
        ))),
        Err(_) => Ok(vec![value.to_string()]),
    }
}

/// Canned replies shared by every thread using one client; each is
/// consumed exactly once, in order.
#[derive(Debug, Default)]
pub(crate) struct CannedReplies {
    replies: Mutex<VecDeque<String>>,
    served: AtomicU64,
}

impl CannedReplies {
    pub(crate) fn new(replies: Vec<String>) -> CannedReplies {
        CannedReplies {
            replies: Mutex::new(replies.into()),
            served: AtomicU64::new(0),
        }
    }

    /// Takes the next reply, if one is left.
    pub(crate) fn take(&self) -> Option<String> {
        // A panic while the lock was held cannot leave the queue in a
        // broken state, so a poisoned lock is still usable.
        let mut replies = self.replies.lock().unwrap_or_else(|p| p.into_inner());
        let reply = replies.pop_front();
        if reply.is_some() {
            self.served.fetch_add(1, Ordering::Relaxed);
        }
        reply
    }

    /// How many replies are left.
    pub(crate) fn remaining(&self) -> usize {
        self.replies.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn next_id(&self) -> String {
        format!("chatcmpl-mock-{}", self.served.load(Ordering::Relaxed))
    }

    /// A full `chat.completion` object answering with `text`, or the error
    /// `text` names (see [`error_sentinel`]).
    pub(crate) fn completion(
        &self,
        model: &str,
        prompt_chars: usize,
        text: &str,
    ) -> Result<ChatCompletion, Error> {
        if let Some(sentinel) = error_sentinel(text) {
            return Err(sentinel.error());
        }
        let usage = estimate_usage(prompt_chars, text);
        let body = json!({
            "id": self.next_id(),
            "object": "chat.completion",
            "created": unix_time(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens
            }
        })
        .to_string();
        Ok(ChatCompletion::from_body(body).expect("a canned completion is a valid completion"))
    }

    /// A stream handing out `text` in pieces whose concatenation is `text`,
    /// or the error `text` names (see [`error_sentinel`]).
    pub(crate) fn stream(
        &self,
        model: &str,
        prompt_chars: usize,
        text: String,
    ) -> Result<ChatStream, Error> {
        match error_sentinel(&text) {
            Some(Sentinel::AfterText) => {
                let meta = StreamMetadata {
                    id: Some(self.next_id()),
                    model: Some(model.to_string()),
                    ..StreamMetadata::default()
                };
                let stream =
                    ChatStream::from_text(MOCK_TEXT_BEFORE_ERROR.into(), PIECE_CHARS, meta);
                return Ok(stream.then_fail(Sentinel::AfterText.error()));
            }
            Some(sentinel) => return Err(sentinel.error()),
            None => {}
        }
        let meta = StreamMetadata {
            id: Some(self.next_id()),
            model: Some(model.to_string()),
            finish_reason: Some("stop".into()),
            usage: Some(estimate_usage(prompt_chars, &text)),
            request_id: None,
        };
        Ok(ChatStream::from_text(text, PIECE_CHARS, meta))
    }
}

/// The text streamed before the error of `Exception: mock_streaming_error`.
pub const MOCK_TEXT_BEFORE_ERROR: &str = "This is a mock streaming response, until";

/// A canned reply that stands for an error, as LiteLLM's `mock_response`
/// sentinels do, so error handling can be tested with no server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sentinel {
    Http(u16, &'static str, &'static str),
    AfterText,
}

/// The sentinels, with the status and `error.type` LiteLLM answers them
/// with.
const SENTINELS: &[(&str, Sentinel)] = &[
    (
        "litellm.RateLimitError",
        Sentinel::Http(429, "throttling_error", "rate limit"),
    ),
    (
        "litellm.InternalServerError",
        Sentinel::Http(500, "internal_server_error", "internal server error"),
    ),
    (
        "litellm.BadRequestError",
        Sentinel::Http(400, "invalid_request_error", "bad request"),
    ),
    (
        "litellm.AuthenticationError",
        Sentinel::Http(401, "auth_error", "authentication error"),
    ),
    (
        "litellm.NotFoundError",
        Sentinel::Http(404, "not_found_error", "not found error"),
    ),
    (
        "litellm.ContextWindowExceededError",
        Sentinel::Http(
            400,
            "context_length_exceeded",
            "context window exceeded error",
        ),
    ),
    (
        "litellm.ServiceUnavailableError",
        Sentinel::Http(503, "service_unavailable", "service unavailable error"),
    ),
    ("Exception: mock_streaming_error", Sentinel::AfterText),
];

fn error_sentinel(text: &str) -> Option<Sentinel> {
    SENTINELS
        .iter()
        .find(|(name, _)| *name == text.trim())
        .map(|(_, sentinel)| *sentinel)
}

impl Sentinel {
    fn error(self) -> Error {
        match self {
            Sentinel::Http(status, error_type, what) => {
                let name = SENTINELS
                    .iter()
                    .find(|(_, s)| *s == self)
                    .map_or("", |(name, _)| name);
                Error::Http {
                    status,
                    message: format!("{name}: this is a mock {what}"),
                    error_type: Some(error_type.into()),
                    code: Some(status.to_string()),
                    body: String::new(),
                }
            }
            Sentinel::AfterText => Error::Server {
                message: "mock_streaming_error: the mock stream failed after some text".into(),
                body: String::new(),
            },
        }
    }
}

/// The canned replies that stand for errors, for documentation and tests.
pub fn error_sentinels() -> impl Iterator<Item = &'static str> {
    SENTINELS.iter().map(|(name, _)| *name)
}

/// Token counts for a canned reply: no tokenizer is at hand, so about four
/// characters a token, the usual rule of thumb for English text.
fn estimate_usage(prompt_chars: usize, text: &str) -> Usage {
    let tokens = |chars: usize| chars.div_ceil(4) as u64;
    let prompt_tokens = tokens(prompt_chars);
    let completion_tokens = tokens(text.chars().count());
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        extra: Default::default(),
    }
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_value_forms() {
        let ok = |v: &str| parse_env_value(v).unwrap();
        assert_eq!(ok(r#"["a", "b\nc"]"#), ["a", "b\nc"]);
        assert_eq!(ok(r#""one""#), ["one"]);
        assert_eq!(ok("plain text"), ["plain text"]);
        assert_eq!(ok("  "), Vec::<String>::new());
        assert_eq!(ok("[]"), Vec::<String>::new());
        for bad in ["[1, 2]", "{\"a\": 1}", "42", "null", "true", "[\"unclosed"] {
            let err = parse_env_value(bad).unwrap_err().to_string();
            assert!(err.contains(MOCK_ENV_VAR), "{bad}: {err}");
        }
    }

    #[test]
    fn replies_are_consumed_once_in_order() {
        let canned = CannedReplies::new(vec!["1".into(), "2".into()]);
        assert_eq!(canned.take().as_deref(), Some("1"));
        assert_eq!(canned.remaining(), 1);
        assert_eq!(canned.take().as_deref(), Some("2"));
        assert_eq!(canned.take(), None);
    }

    #[test]
    fn canned_completion_shape() {
        let canned = CannedReplies::new(vec![]);
        let c = canned.completion("m", 40, "Hello there").unwrap();
        assert_eq!(c.object, "chat.completion");
        assert_eq!(c.model, "m");
        assert_eq!(c.content(), Some("Hello there"));
        assert_eq!(c.choices[0].message.role, "assistant");
        assert_eq!(c.finish_reason(), Some("stop"));
        let usage = c.usage.as_ref().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (10, 3, 13)
        );
        let raw: Value = serde_json::from_str(c.raw_json()).unwrap();
        assert_eq!(raw["choices"][0]["message"]["content"], "Hello there");
    }
}
