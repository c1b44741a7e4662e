//! The OpenAI shapes: request messages and the `chat.completion` response.
//!
//! Response types keep every field they do not name in `extra`, so nothing
//! a server sends is lost, and [`ChatCompletion::raw_json`] hands out the
//! body exactly as it arrived.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// One chat message in OpenAI format.
///
/// Any `serde_json::Value` in the same format works too, for messages with
/// more fields (`name`, `tool_calls`, content parts, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text of the message.
    pub content: String,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Message {
        Message::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Message {
        Message::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new("assistant", content)
    }
}

/// Token counts of a request, as the server reported them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub prompt_tokens: u64,
    /// Tokens in the answer.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub total_tokens: u64,
    /// Every other field (`prompt_tokens_details`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The message of a [`Choice`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Usually `assistant`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub role: String,
    /// The text; `None` when the server sent `null` or nothing (tool calls).
    #[serde(default)]
    pub content: Option<String>,
    /// Every other field (`tool_calls`, `refusal`, `reasoning_content`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position of the choice.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub index: u64,
    /// The answer.
    #[serde(default)]
    pub message: ResponseMessage,
    /// Why generation stopped: `stop`, `length`, `tool_calls`, ...
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Every other field (`logprobs`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `chat.completion` object, as returned by
/// [`ModelApi::complete`](crate::ModelApi::complete).
///
/// Fields a server leaves out or sends as `null` take their default value;
/// fields this type does not name are kept in `extra`; the body as it
/// arrived is [`raw_json`](Self::raw_json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: String,
    /// `chat.completion`
    #[serde(default, deserialize_with = "lenient_string")]
    pub object: String,
    /// Unix time of creation.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub created: u64,
    /// The model that answered.
    #[serde(default, deserialize_with = "lenient_string")]
    pub model: String,
    /// The answers; usually one.
    pub choices: Vec<Choice>,
    /// Token counts, when the server sent them.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Every other field (`system_fingerprint`, `service_tier`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The body as the server sent it.
    #[serde(skip)]
    pub(crate) raw: String,
}

impl ChatCompletion {
    /// The first choice's message content, if any.
    pub fn content(&self) -> Option<&str> {
        self.choices.first()?.message.content.as_deref()
    }

    /// The first choice's `finish_reason`, if any.
    pub fn finish_reason(&self) -> Option<&str> {
        self.choices.first()?.finish_reason.as_deref()
    }

    /// The response body exactly as the server sent it (for a canned reply,
    /// the JSON this library made).
    pub fn raw_json(&self) -> &str {
        &self.raw
    }

    /// Parses a response body. `body` must be a JSON object with a `choices`
    /// array; an object with an `error` member is the server's error.
    pub(crate) fn from_body(body: String) -> Result<ChatCompletion, crate::Error> {
        let mut completion: ChatCompletion = match serde_json::from_str(&body) {
            Ok(c) => c,
            Err(parse) => return Err(not_a_completion(&body, &parse)),
        };
        completion.raw = body;
        Ok(completion)
    }
}

/// Explains why a body is not a completion: the server's error when it
/// sent one, otherwise what is wrong with the JSON.
fn not_a_completion(body: &str, parse: &serde_json::Error) -> crate::Error {
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body) {
        if let Some(error) = object.get("error").filter(|e| !e.is_null()) {
            return crate::Error::Server {
                message: crate::chunk::error_message(error),
                body: truncate(body),
            };
        }
    }
    crate::Error::InvalidResponse(format!(
        "the body is not an OpenAI chat.completion object ({}): {}",
        truncate(&parse.to_string()),
        truncate(body)
    ))
}

/// At most 1 KiB of `text`, cut at a character boundary, for messages.
pub(crate) fn truncate(text: &str) -> String {
    const MAX: usize = 1024;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len())
}

/// A string that may also arrive as `null` or a number.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// A count that may also arrive as `null`, a float or a numeric string.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unknown_fields_and_raw_body() {
        let body = r#"{"id":"x","object":"chat.completion","created":1,"model":"m",
            "system_fingerprint":"fp","choices":[{"index":0,"message":{"role":"assistant",
            "content":"hi","tool_calls":[]},"finish_reason":"stop","logprobs":null}],
            "usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"x":1}}"#;
        let c = ChatCompletion::from_body(body.to_string()).unwrap();
        assert_eq!(c.content(), Some("hi"));
        assert_eq!(c.extra["system_fingerprint"], "fp");
        assert!(c.choices[0].message.extra.contains_key("tool_calls"));
        assert!(c.choices[0].extra.contains_key("logprobs"));
        assert_eq!(c.usage.as_ref().unwrap().extra["x"], 1);
        assert_eq!(c.raw_json(), body);
        let again: Value = serde_json::to_value(&c).unwrap();
        assert_eq!(again["system_fingerprint"], "fp");
    }

    #[test]
    fn tolerates_nulls_and_floats() {
        let body = r#"{"id":null,"created":1.7e9,"model":null,"choices":[{"message":{"content":null}}],"usage":null}"#;
        let c = ChatCompletion::from_body(body.to_string()).unwrap();
        assert_eq!(c.created, 1_700_000_000);
        assert_eq!(c.content(), None);
    }

    #[test]
    fn error_body_and_garbage() {
        let e = ChatCompletion::from_body(r#"{"error":{"message":"nope"}}"#.into()).unwrap_err();
        assert!(matches!(e, crate::Error::Server { ref message, .. } if message == "nope"));
        let e = ChatCompletion::from_body("<html>oops</html>".into()).unwrap_err();
        assert!(matches!(e, crate::Error::InvalidResponse(ref m) if m.contains("<html>")));
        let e = ChatCompletion::from_body(r#"{"id":"x"}"#.into()).unwrap_err();
        assert!(matches!(e, crate::Error::InvalidResponse(ref m) if m.contains("choices")));
    }
}
