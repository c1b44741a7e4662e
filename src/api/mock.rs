//! Canned replies: `DEBUG_MOCK_RESPONSES` and
//! [`ModelApiBuilder::mock_responses`](crate::ModelApiBuilder::mock_responses)
//! / [`mock_replies`](crate::ModelApiBuilder::mock_replies).
//!
//! A canned reply answers one call without any network traffic: `complete`
//! gets a full `chat.completion` object, `stream` gets the same answer as
//! the chunks of a stream, read by the same reader as a server's. A reply
//! is a text, or a JSON object standing for a whole assistant message
//! (`content`, `reasoning_content`, `tool_calls`, `refusal`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::api::stream::ChatStream;
use crate::decoder::answer::{chunks_of, Answer};
use crate::decoder::event::Kind;
use crate::error::truncate;
use crate::error::Error;
use crate::types::{ChatCompletion, Usage};

/// The environment variable holding canned replies.
pub const MOCK_ENV_VAR: &str = "DEBUG_MOCK_RESPONSES";

/// One canned reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CannedReply {
    /// The text of the answer (or an error sentinel).
    Text(String),
    /// A whole assistant message, checked: its `content`,
    /// `reasoning_content`, `tool_calls` and `refusal`.
    Message(Map<String, Value>),
}

/// The fields a canned message may have.
const MESSAGE_FIELDS: &[&str] = &[
    "role",
    "content",
    "reasoning_content",
    "reasoning",
    "tool_calls",
    "refusal",
];

/// A canned reply given as JSON: a string (a text) or an object (a
/// message); `what` names it in errors.
pub(crate) fn reply_of(value: Value, what: &str) -> Result<CannedReply, String> {
    let mut message = match value {
        Value::String(text) => return Ok(CannedReply::Text(text)),
        Value::Object(message) => message,
        other => {
            return Err(format!(
                "{what} is neither a string (a reply's text) nor an object (an assistant \
                 message): {}",
                truncate(&other.to_string())
            ))
        }
    };
    let bad = |why: String| Err(format!("{what} is not an assistant message: {why}"));
    if let Some(key) = message
        .keys()
        .find(|k| !MESSAGE_FIELDS.contains(&k.as_str()))
    {
        return bad(format!(
            "unknown field {key:?} (it may have {})",
            MESSAGE_FIELDS.join(", ")
        ));
    }
    for key in ["role", "reasoning_content", "reasoning", "refusal"] {
        if message.get(key).is_some_and(|v| !v.is_string()) {
            return bad(format!("{key} is not a string"));
        }
    }
    if message.get("role").is_some_and(|r| r != "assistant") {
        return bad("its role is not \"assistant\"".into());
    }
    if message
        .get("content")
        .is_some_and(|c| !c.is_string() && !c.is_null())
    {
        return bad("content is not a string".into());
    }
    if let Some(calls) = message.get_mut("tool_calls") {
        let Value::Array(calls) = calls else {
            return bad("tool_calls is not an array".into());
        };
        for (i, call) in calls.iter_mut().enumerate() {
            let name = call.pointer("/function/name").and_then(Value::as_str);
            if name.is_none_or(str::is_empty) {
                return bad(format!(
                    "tool_calls[{i}] has no function name: give \
                     {{\"function\": {{\"name\": ..., \"arguments\": ...}}}}"
                ));
            }
            // Arguments given as JSON stand for their text.
            if let Some(arguments) = call.pointer_mut("/function/arguments") {
                if !arguments.is_string() {
                    *arguments = Value::String(arguments.to_string());
                }
            }
        }
    }
    if ![
        "content",
        "reasoning_content",
        "reasoning",
        "tool_calls",
        "refusal",
    ]
    .iter()
    .any(|k| message.get(*k).is_some_and(|v| !v.is_null()))
    {
        return bad("it has none of content, reasoning_content, tool_calls, refusal".into());
    }
    Ok(CannedReply::Message(message))
}

/// Parses the value of `DEBUG_MOCK_RESPONSES`: a JSON array of replies
/// (strings, or objects standing for assistant messages), a JSON string,
/// or plain text (one reply).
pub(crate) fn parse_env_value(value: &str) -> Result<Vec<CannedReply>, Error> {
    parse_replies(value, MOCK_ENV_VAR)
}

/// Parses canned replies written as `DEBUG_MOCK_RESPONSES` has them; `what`
/// names where they came from, for the error.
pub(crate) fn parse_replies(value: &str, what: &str) -> Result<Vec<CannedReply>, Error> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let invalid = |why: String| {
        Error::InvalidArgument(format!(
            "{what} must be a JSON array of canned replies (strings, or objects \
             such as {{\"tool_calls\": [...]}} standing for assistant messages), a JSON \
             string, or plain text; {why}"
        ))
    };
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| reply_of(item, &format!("element {i} of the array")).map_err(invalid))
            .collect(),
        Ok(Value::String(s)) => Ok(vec![CannedReply::Text(s)]),
        Ok(other) => Err(invalid(format!(
            "got JSON of another shape: {}",
            truncate(&other.to_string())
        ))),
        Err(e) if value.trim_start().starts_with('[') => Err(invalid(format!(
            "it starts with '[' but is not valid JSON ({e})"
        ))),
        Err(_) => Ok(vec![CannedReply::Text(value.to_string())]),
    }
}

/// Canned replies shared by every thread using one client; each is
/// consumed exactly once, in order.
#[derive(Debug, Default)]
pub(crate) struct CannedReplies {
    replies: Mutex<VecDeque<CannedReply>>,
    served: AtomicU64,
}

/// Characters per streamed piece of a canned reply: LiteLLM's mock streams
/// in pieces of this size, so mocked and proxied streams look alike.
const PIECE_CHARS: usize = 3;

impl CannedReplies {
    pub(crate) fn new(replies: Vec<CannedReply>) -> CannedReplies {
        CannedReplies {
            replies: Mutex::new(replies.into()),
            served: AtomicU64::new(0),
        }
    }

    /// Takes the next reply, if one is left.
    pub(crate) fn take(&self) -> Option<CannedReply> {
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

    fn serial(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// A full `chat.completion` object answering with `reply`, or the error
    /// a text reply names (see [`error_sentinel`]).
    pub(crate) fn completion(
        &self,
        model: &str,
        prompt_chars: usize,
        reply: &CannedReply,
    ) -> Result<ChatCompletion, Error> {
        if let CannedReply::Text(text) = reply {
            if let Some(sentinel) = error_sentinel(text) {
                return Err(sentinel.error());
            }
        }
        Ok(self.answer(model, prompt_chars, reply))
    }

    /// The answer of `reply`, assembled as a stream's answer is.
    fn answer(&self, model: &str, prompt_chars: usize, reply: &CannedReply) -> ChatCompletion {
        let serial = self.serial();
        let mut answer = Answer::default();
        answer.id(&format!("chatcmpl-mock-{serial}"));
        answer.model(model);
        answer.created(unix_time());
        let choice = answer.choice(0);
        let mut chars = 0;
        let mut text = |kind: Kind, text: &str| {
            chars += text.chars().count();
            choice.text(kind, |out| out.push_str(text));
        };
        let mut calls: &[Value] = &[];
        match reply {
            CannedReply::Text(content) => {
                text(Kind::Content, content);
                choice.has_content();
            }
            CannedReply::Message(message) => {
                let field = |key: &str| message.get(key).and_then(Value::as_str);
                let reasoning = field("reasoning_content").or_else(|| field("reasoning"));
                text(Kind::Reasoning, reasoning.unwrap_or(""));
                text(Kind::Content, field("content").unwrap_or(""));
                text(Kind::Refusal, field("refusal").unwrap_or(""));
                if let Some(Value::Array(list)) = message.get("tool_calls") {
                    calls = list;
                }
            }
        }
        for (i, call) in (0u32..).zip(calls) {
            let id = match call.get("id").and_then(Value::as_str) {
                Some(id) => id.to_string(),
                None => format!("call_mock_{serial}_{i}"),
            };
            let part = |key: &str| call.pointer(key).and_then(Value::as_str);
            let arguments = part("/function/arguments").unwrap_or("");
            chars += arguments.chars().count();
            choice.tool_call(i, Some(&id), part("/function/name"), |out| {
                out.push_str(arguments)
            });
        }
        let reason = if calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        answer.finish_reason(0, reason);
        answer.usage(estimate_usage(prompt_chars, chars));
        answer.completion()
    }

    /// A stream of `reply`: its texts in pieces whose concatenation is the
    /// text, its tool calls, then the end; or the error a text reply names
    /// (see [`error_sentinel`]).
    pub(crate) fn stream(
        &self,
        model: &str,
        prompt_chars: usize,
        reply: &CannedReply,
    ) -> Result<ChatStream, Error> {
        if let CannedReply::Text(text) = reply {
            match error_sentinel(text) {
                Some(Sentinel::AfterText) => {
                    let before = CannedReply::Text(MOCK_TEXT_BEFORE_ERROR.into());
                    let answer = self.answer(model, prompt_chars, &before);
                    let sse = chunks_of(&answer, PIECE_CHARS, false);
                    let stream = ChatStream::from_memory(sse, None);
                    return Ok(stream.then_fail(Sentinel::AfterText.error()));
                }
                Some(sentinel) => return Err(sentinel.error()),
                None => {}
            }
        }
        let answer = self.answer(model, prompt_chars, reply);
        Ok(ChatStream::from_memory(
            chunks_of(&answer, PIECE_CHARS, true),
            None,
        ))
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

impl CannedReply {
    /// The error this reply stands for, when it is an error sentinel.
    pub(crate) fn error(&self) -> Option<Error> {
        match self {
            CannedReply::Text(text) => error_sentinel(text).map(Sentinel::error),
            CannedReply::Message(_) => None,
        }
    }
}

/// The canned replies that stand for errors, for documentation and tests.
pub fn error_sentinels() -> impl Iterator<Item = &'static str> {
    SENTINELS.iter().map(|(name, _)| *name)
}

/// Token counts for a canned reply: no tokenizer is at hand, so about four
/// characters a token, the usual rule of thumb for English text.
fn estimate_usage(prompt_chars: usize, answer_chars: usize) -> Usage {
    let tokens = |chars: usize| chars.div_ceil(4) as u64;
    let prompt_tokens = tokens(prompt_chars);
    let completion_tokens = tokens(answer_chars);
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
        let text = |t: &str| CannedReply::Text(t.into());
        let ok = |v: &str| parse_env_value(v).unwrap();
        assert_eq!(ok(r#"["a", "b\nc"]"#), [text("a"), text("b\nc")]);
        assert_eq!(ok(r#""one""#), [text("one")]);
        assert_eq!(ok("plain text"), [text("plain text")]);
        assert_eq!(ok("  "), []);
        assert_eq!(ok("[]"), []);
        let replies =
            ok(r#"["a", {"tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}]"#);
        let CannedReply::Message(message) = &replies[1] else {
            panic!("{replies:?}");
        };
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            "{\"x\":1}"
        );
        for bad in [
            "[1, 2]",
            "{\"a\": 1}",
            "42",
            "null",
            "true",
            "[\"unclosed",
            r#"[{"tool_call": []}]"#,
            r#"[{"tool_calls": [{"function": {}}]}]"#,
            r#"[{"role": "user", "content": "x"}]"#,
            r#"[{"content": 1}]"#,
            r#"[{}]"#,
        ] {
            let err = parse_env_value(bad).unwrap_err().to_string();
            assert!(err.contains(MOCK_ENV_VAR), "{bad}: {err}");
        }
    }

    #[test]
    fn replies_are_consumed_once_in_order() {
        let text = |t: &str| CannedReply::Text(t.into());
        let canned = CannedReplies::new(vec![text("1"), text("2")]);
        assert_eq!(canned.take(), Some(text("1")));
        assert_eq!(canned.remaining(), 1);
        assert_eq!(canned.take(), Some(text("2")));
        assert_eq!(canned.take(), None);
    }

    #[test]
    fn canned_completion_shape() {
        let canned = CannedReplies::new(vec![]);
        let c = canned
            .completion("m", 40, &CannedReply::Text("Hello there".into()))
            .unwrap();
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
