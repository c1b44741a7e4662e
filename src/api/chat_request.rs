//! [`ChatRequest`]: a chat request built piece by piece (messages by role,
//! images, the assistant turn of an answer, tool results, parameters), for
//! hosts that should not write JSON by hand; and the same pieces as single
//! messages ([`Message::tool_result`], [`Message::user_with_image`],
//! [`Message::user_with_image_url`], [`ChatCompletion::assistant_message`]).

use serde_json::{json, Map, Value};

use crate::base64::base64;
use crate::error::truncate;
use crate::error::Error;
use crate::types::{ChatCompletion, Message};

/// A chat request body, built piece by piece: every string is escaped here,
/// so a host never writes JSON. Its [`body`](Self::body) goes to
/// [`ModelApi::complete_request`](crate::ModelApi::complete_request) and
/// [`ModelApi::stream_request`](crate::ModelApi::stream_request) (and their
/// `_start` form); [`to_json`](Self::to_json) to every `_json` call of the C
/// API.
///
/// ```
/// use modelapi::{ChatRequest, ModelApi};
/// use serde_json::json;
///
/// let api = ModelApi::builder("my-model", "http://localhost:8000")
///     .mock_responses(vec!["Bonjour".into()])
///     .build()?;
/// let mut request = ChatRequest::new();
/// request
///     .message("system", "Answer in French.")
///     .message("user", "Hello \"friend\"")
///     .set("temperature", json!(0.2))?;
/// let answer = api.complete_request(request.body(), None)?;
/// request.assistant_turn(&answer, false)?;
/// assert_eq!(request.messages().len(), 3);
/// # Ok::<(), modelapi::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    messages: Vec<Value>,
    params: Map<String, Value>,
}

impl ChatRequest {
    /// An empty request: no message, no parameter.
    pub fn new() -> ChatRequest {
        ChatRequest::default()
    }

    /// Adds a message of `role` (`system`, `user`, `assistant`, `tool`,
    /// `developer`, ...) with `text` as its content.
    pub fn message(&mut self, role: &str, text: &str) -> &mut Self {
        self.messages.push(json!({"role": role, "content": text}));
        self
    }

    /// Adds a message written as JSON by the host (an OpenAI message
    /// object with a `role` string).
    pub fn push(&mut self, message: Value) -> Result<&mut Self, Error> {
        if !message.get("role").is_some_and(Value::is_string) {
            return Err(Error::InvalidArgument(format!(
                "message is not an OpenAI message: it needs a \"role\" string, got {}",
                truncate(&message.to_string())
            )));
        }
        self.messages.push(message);
        Ok(self)
    }

    /// Adds an image by URL (`https://...`, or a `data:` URL) to the last
    /// message, which must be a `user` message: its content becomes
    /// content parts, the text first.
    pub fn image_url(&mut self, url: &str) -> Result<&mut Self, Error> {
        if url.trim().is_empty() {
            return Err(Error::InvalidArgument("url is empty".into()));
        }
        let last = self.messages.last_mut().filter(|m| m["role"] == "user");
        let Some(message) = last else {
            return Err(Error::InvalidArgument(
                "an image goes on a user message: add a message with role \"user\" first".into(),
            ));
        };
        add_part(message, image_part(url));
        Ok(self)
    }

    /// Adds an image from its bytes, sent as a base64 `data:` URL of
    /// `mime_type` (`image/png`, `image/jpeg`, ...), to the last message,
    /// which must be a `user` message (see [`image_url`](Self::image_url)).
    pub fn image_bytes(&mut self, bytes: &[u8], mime_type: &str) -> Result<&mut Self, Error> {
        let url = data_url(bytes, mime_type)?;
        self.image_url(&url)
    }

    /// Adds the assistant turn of an answer (of `complete`, or assembled by
    /// a stream): see [`ChatCompletion::assistant_message`].
    pub fn assistant_turn(
        &mut self,
        answer: &ChatCompletion,
        with_reasoning: bool,
    ) -> Result<&mut Self, Error> {
        self.messages
            .push(answer.assistant_message(with_reasoning)?);
        Ok(self)
    }

    /// Adds the assistant turn of an answer given as `chat.completion` JSON
    /// (as `modelapi_complete_json` and `modelapi_stream_completion_json`
    /// hand it out).
    pub fn assistant_turn_json(
        &mut self,
        completion_json: &str,
        with_reasoning: bool,
    ) -> Result<&mut Self, Error> {
        let answer = ChatCompletion::from_body(completion_json.to_string()).map_err(|e| {
            Error::InvalidArgument(format!("completion_json is not a chat.completion: {e}"))
        })?;
        self.assistant_turn(&answer, with_reasoning)
    }

    /// Adds the result of the tool call `tool_call_id` (a `tool` message).
    pub fn tool_result(&mut self, tool_call_id: &str, content: &str) -> &mut Self {
        self.messages
            .push(Message::tool_result(tool_call_id, content));
        self
    }

    /// Sets a parameter of the request: `temperature`, `max_tokens`,
    /// `tools`, `tool_choice`, `response_format`, `stream_options`, `model`
    /// (the client's by default), anything else the server takes. Setting
    /// it again replaces it. `messages` (built by the calls above) and
    /// `stream` (set by each call) cannot be set.
    pub fn set(&mut self, name: &str, value: Value) -> Result<&mut Self, Error> {
        match name {
            "" => return Err(Error::InvalidArgument("name is empty".into())),
            "messages" => {
                return Err(Error::InvalidArgument(
                    "\"messages\" is built by adding messages, not set".into(),
                ))
            }
            "stream" => {
                return Err(Error::InvalidArgument(
                    "\"stream\" is set by each call (complete or stream), not here".into(),
                ))
            }
            _ => {}
        }
        self.params.insert(name.to_string(), value);
        Ok(self)
    }

    /// Sets a parameter to a value written as JSON (`tools`,
    /// `response_format`, ...); `name` names it in the error when the JSON
    /// is not valid.
    pub fn set_json(&mut self, name: &str, json: &str) -> Result<&mut Self, Error> {
        let value = serde_json::from_str(json)
            .map_err(|e| Error::InvalidArgument(format!("{name}: the value is not JSON: {e}")))?;
        self.set(name, value)
    }

    /// The messages so far.
    pub fn messages(&self) -> &[Value] {
        &self.messages
    }

    /// The request body: the parameters and `messages`.
    pub fn body(&self) -> Map<String, Value> {
        let mut body = self.params.clone();
        body.insert("messages".into(), Value::Array(self.messages.clone()));
        body
    }

    /// The request body as JSON text.
    pub fn to_json(&self) -> String {
        Value::Object(self.body()).to_string()
    }
}

impl Message {
    /// The result of the tool call `tool_call_id`: `{"role": "tool",
    /// "tool_call_id": ..., "content": ...}`.
    pub fn tool_result(tool_call_id: &str, content: &str) -> Value {
        json!({"role": "tool", "tool_call_id": tool_call_id, "content": content})
    }

    /// A `user` message of `text` and an image by URL (`https://...` or a
    /// `data:` URL), as content parts.
    pub fn user_with_image_url(text: &str, url: &str) -> Value {
        let mut message = json!({"role": "user", "content": text});
        add_part(&mut message, image_part(url));
        message
    }

    /// A `user` message of `text` and an image from its bytes, sent as a
    /// base64 `data:` URL of `mime_type` (`image/png`, ...).
    pub fn user_with_image(text: &str, bytes: &[u8], mime_type: &str) -> Result<Value, Error> {
        Ok(Message::user_with_image_url(
            text,
            &data_url(bytes, mime_type)?,
        ))
    }
}

impl ChatCompletion {
    /// The first choice's message as the assistant turn of the next
    /// request: `role`, `content` (`null` only beside tool calls), the
    /// `tool_calls` and `refusal` when there are some, and, when
    /// `with_reasoning`, the reasoning as `reasoning_content` (for the
    /// servers that want it back; most do not).
    pub fn assistant_message(&self, with_reasoning: bool) -> Result<Value, Error> {
        let Some(choice) = self.choices.first() else {
            return Err(Error::InvalidArgument(
                "the answer has no choice to take the assistant turn from".into(),
            ));
        };
        let message = &choice.message;
        let extra = &message.extra;
        let tool_calls = extra.get("tool_calls").filter(|c| !c.is_null());
        let mut turn = Map::new();
        turn.insert("role".into(), json!("assistant"));
        turn.insert(
            "content".into(),
            match (&message.content, tool_calls) {
                (Some(text), _) => json!(text),
                (None, Some(_)) => Value::Null,
                (None, None) => json!(""),
            },
        );
        if let Some(calls) = tool_calls {
            let mut calls = calls.clone();
            // A call the server sent without an id gets `call_<position>`,
            // so that its tool result can name it.
            if let Value::Array(calls) = &mut calls {
                for (at, call) in calls.iter_mut().enumerate() {
                    let named = call
                        .get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| !id.is_empty());
                    if let (false, Value::Object(call)) = (named, call) {
                        call.insert("id".into(), json!(format!("call_{at}")));
                    }
                }
            }
            turn.insert("tool_calls".into(), calls);
        }
        if let Some(refusal) = extra.get("refusal").filter(|r| r.is_string()) {
            turn.insert("refusal".into(), refusal.clone());
        }
        if with_reasoning {
            let reasoning = ["reasoning_content", "reasoning"]
                .iter()
                .find_map(|k| extra.get(*k).filter(|r| r.is_string()));
            if let Some(reasoning) = reasoning {
                turn.insert("reasoning_content".into(), reasoning.clone());
            }
        }
        Ok(Value::Object(turn))
    }
}

fn image_part(url: &str) -> Value {
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// Adds a content part to `message`, whose text content becomes its first
/// part (left out when empty).
fn add_part(message: &mut Value, part: Value) {
    let parts = match message["content"].take() {
        Value::Array(parts) => parts,
        Value::String(text) if text.is_empty() => Vec::new(),
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        _ => Vec::new(),
    };
    let mut parts = parts;
    parts.push(part);
    message["content"] = Value::Array(parts);
}

/// `data:<mime_type>;base64,<bytes>`.
pub(crate) fn data_url(bytes: &[u8], mime_type: &str) -> Result<String, Error> {
    let valid = mime_type.split_once('/').is_some_and(|(kind, sub)| {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        token(kind) && token(sub)
    });
    if !valid {
        return Err(Error::InvalidArgument(format!(
            "mime_type {:?} is not a MIME type such as image/png",
            truncate(mime_type)
        )));
    }
    if bytes.is_empty() {
        return Err(Error::InvalidArgument("the image has no bytes".into()));
    }
    Ok(format!("data:{mime_type};base64,{}", base64(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_are_checked() {
        assert_eq!(
            data_url(b"x", "image/png").unwrap(),
            "data:image/png;base64,eA=="
        );
        for bad in ["", "png", "image/", "image/png;x", "image/p g", "a/b\"c"] {
            let err = data_url(b"x", bad).unwrap_err();
            assert!(err.to_string().contains("mime_type"), "{bad}: {err}");
        }
        assert!(data_url(b"", "image/png").is_err());
    }
}
