//! The OpenAI shapes: request messages and the `chat.completion` response.
//!
//! Response types keep every field they do not name in `extra`, so nothing
//! a server sends is lost, and [`ChatCompletion::raw_json`] hands out the
//! body exactly as it arrived.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::truncate;

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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the answer.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// Every other field (`prompt_tokens_details`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The message of a [`Choice`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResponseMessage {
    /// Usually `assistant`.
    pub role: String,
    /// The text; `None` when the server sent `null` or nothing (tool calls).
    pub content: Option<String>,
    /// Every other field (`tool_calls`, `refusal`, `reasoning_content`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Choice {
    /// Position of the choice.
    pub index: u64,
    /// The answer.
    pub message: ResponseMessage,
    /// Why generation stopped: `stop`, `length`, `tool_calls`, ...
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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`
    pub id: String,
    /// `chat.completion`
    pub object: String,
    /// Unix time of creation.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// The answers; usually one.
    pub choices: Vec<Choice>,
    /// Token counts, when the server sent them.
    #[serde(skip_serializing_if = "Option::is_none")]
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
    pub(crate) fn from_body(body: String) -> Result<ChatCompletion, crate::error::Error> {
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
fn not_a_completion(body: &str, parse: &serde_json::Error) -> crate::error::Error {
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body) {
        if let Some(error) = object.get("error").filter(|e| !e.is_null()) {
            return crate::error::Error::Server {
                message: crate::error::error_message(error),
                body: truncate(body),
            };
        }
    }
    crate::error::Error::InvalidResponse(format!(
        "the body is not an OpenAI chat.completion object ({}): {}",
        truncate(&parse.to_string()),
        truncate(body)
    ))
}

// Deserialization of the response types: one pass over the JSON, each
// named field into its type, every other field into `extra`. (serde's
// `flatten` would buffer the whole object first.) Counts and texts are
// lenient: `null`, a float or a numeric string where a count belongs does
// not fail the answer.

/// Generates `Deserialize` for a response type with an `extra` map: the
/// listed fields are read with the given types, the rest kept in `extra`;
/// `required` fields must be present.
macro_rules! deserialize_with_extra {
    ($ty:ident { $($field:ident: $kind:ty),* $(,)? } required: [$($required:ident),*]) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;

                impl<'de> Visitor<'de> for ObjectVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a JSON object (", stringify!($ty), ")"))
                    }

                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        const NAMES: &[&str] = &[$(stringify!($field)),*];
                        let mut out = $ty::default();
                        // Bit i: field NAMES[i] was present.
                        let mut seen = 0u64;
                        while let Some(key) = map.next_key::<Key<'de>>()? {
                            match &*key.0 {
                                $(stringify!($field) => {
                                    out.$field = map.next_value::<$kind>()?.into();
                                    seen |= 1 << const { position(NAMES, stringify!($field)) };
                                })*
                                other => {
                                    out.extra.insert(other.to_string(), map.next_value()?);
                                }
                            }
                        }
                        $(if seen & (1 << const { position(NAMES, stringify!($required)) }) == 0 {
                            return Err(de::Error::missing_field(stringify!($required)));
                        })*
                        let _ = seen;
                        Ok(out)
                    }
                }

                deserializer.deserialize_map(ObjectVisitor)
            }
        }
    };
}

deserialize_with_extra!(Usage {
    prompt_tokens: LenientU64,
    completion_tokens: LenientU64,
    total_tokens: LenientU64,
} required: []);

deserialize_with_extra!(ResponseMessage {
    role: LenientString,
    content: Option<String>,
} required: []);

deserialize_with_extra!(Choice {
    index: LenientU64,
    message: ResponseMessage,
    finish_reason: Option<String>,
} required: []);

deserialize_with_extra!(ChatCompletion {
    id: LenientString,
    object: LenientString,
    created: LenientU64,
    model: LenientString,
    choices: Vec<Choice>,
    usage: Option<Usage>,
} required: [choices]);

/// The index of `name` in `names` (for the macro above, at compile time).
const fn position(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        let (a, b) = (names[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a field name")
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A text that may also arrive as `null` (empty), a number or a boolean
/// (its JSON text), or another JSON value (its JSON text).
struct LenientString(String);

impl From<LenientString> for String {
    fn from(text: LenientString) -> String {
        text.0
    }
}

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = LenientString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E>(self, text: &str) -> Result<LenientString, E> {
                Ok(LenientString(text.to_string()))
            }

            fn visit_string<E>(self, text: String) -> Result<LenientString, E> {
                Ok(LenientString(text))
            }

            fn visit_unit<E>(self) -> Result<LenientString, E> {
                Ok(LenientString(String::new()))
            }

            fn visit_bool<E>(self, v: bool) -> Result<LenientString, E> {
                Ok(LenientString(v.to_string()))
            }

            fn visit_u64<E>(self, v: u64) -> Result<LenientString, E> {
                Ok(LenientString(v.to_string()))
            }

            fn visit_i64<E>(self, v: i64) -> Result<LenientString, E> {
                Ok(LenientString(v.to_string()))
            }

            fn visit_f64<E>(self, v: f64) -> Result<LenientString, E> {
                // serde_json's float formatting: no second one in the library.
                Ok(LenientString(Value::from(v).to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LenientString, A::Error> {
                let value = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(LenientString(value.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LenientString, A::Error> {
                let value = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(LenientString(value.to_string()))
            }
        }

        deserializer.deserialize_any(TextVisitor)
    }
}

/// A count that may also arrive as `null`, a float, a numeric string or
/// anything else (0).
struct LenientU64(u64);

impl From<LenientU64> for u64 {
    fn from(count: LenientU64) -> u64 {
        count.0
    }
}

impl<'de> Deserialize<'de> for LenientU64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;

        impl<'de> Visitor<'de> for CountVisitor {
            type Value = LenientU64;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count")
            }

            fn visit_u64<E>(self, v: u64) -> Result<LenientU64, E> {
                Ok(LenientU64(v))
            }

            fn visit_i64<E>(self, v: i64) -> Result<LenientU64, E> {
                Ok(LenientU64(v.max(0) as u64))
            }

            fn visit_f64<E>(self, v: f64) -> Result<LenientU64, E> {
                Ok(LenientU64(if v >= 0.0 { v as u64 } else { 0 }))
            }

            fn visit_str<E>(self, v: &str) -> Result<LenientU64, E> {
                Ok(LenientU64(v.trim().parse().unwrap_or(0)))
            }

            fn visit_unit<E>(self) -> Result<LenientU64, E> {
                Ok(LenientU64(0))
            }

            fn visit_bool<E>(self, _: bool) -> Result<LenientU64, E> {
                Ok(LenientU64(0))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LenientU64, A::Error> {
                de::IgnoredAny::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(LenientU64(0))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LenientU64, A::Error> {
                de::IgnoredAny::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(LenientU64(0))
            }
        }

        deserializer.deserialize_any(CountVisitor)
    }
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
        assert!(matches!(e, crate::error::Error::Server { ref message, .. } if message == "nope"));
        let e = ChatCompletion::from_body("<html>oops</html>".into()).unwrap_err();
        assert!(matches!(e, crate::error::Error::InvalidResponse(ref m) if m.contains("<html>")));
        let e = ChatCompletion::from_body(r#"{"id":"x"}"#.into()).unwrap_err();
        assert!(matches!(e, crate::error::Error::InvalidResponse(ref m) if m.contains("choices")));
    }
}
