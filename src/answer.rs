//! The whole answer of a stream: [`Answer`] assembles it from the chunks as
//! they are read, and [`chunks_of`] goes the other way, cutting a whole
//! answer into the chunks of a stream (canned replies, and servers that
//! answer a stream request with plain JSON, so that they stream through the
//! same reader as any server's chunks).

use std::io::Write;

use serde_json::{json, Map, Value};

use crate::types::{ChatCompletion, Usage};

/// What a stream learns besides its content, for
/// [`ChatStream::metadata`](crate::ChatStream::metadata).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamMetadata {
    /// The response `id` (from the first chunk that had one).
    pub id: Option<String>,
    /// The `model` that answered (from the first chunk that had one).
    pub model: Option<String>,
    /// The `finish_reason` of choice 0, once the server sent one.
    pub finish_reason: Option<String>,
    /// Token counts, when the server sent them (e.g. with
    /// `stream_options: {"include_usage": true}`).
    pub usage: Option<Usage>,
    /// The `x-request-id` response header, when there was one.
    pub request_id: Option<String>,
}

/// The answer assembled from the chunks read so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Answer {
    pub(crate) meta: StreamMetadata,
    created: Option<u64>,
    system_fingerprint: Option<String>,
    /// Every choice seen, in index order.
    choices: Vec<ChoiceSoFar>,
}

/// One choice of the answer, as far as it arrived.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ChoiceSoFar {
    index: u64,
    content: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    /// In index order.
    tool_calls: Vec<ToolCallSoFar>,
    finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct ToolCallSoFar {
    index: u32,
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

/// The kinds of text a choice's delta carries (tool calls aside).
use crate::event::Kind;

impl Answer {
    /// The response `id`: the first non-empty one counts.
    pub(crate) fn id(&mut self, id: &str) {
        first_text(&mut self.meta.id, id);
    }

    /// The `model`: the first non-empty one counts.
    pub(crate) fn model(&mut self, model: &str) {
        first_text(&mut self.meta.model, model);
    }

    /// `created`: the first one counts.
    pub(crate) fn created(&mut self, created: u64) {
        self.created.get_or_insert(created);
    }

    /// `system_fingerprint`: the first non-empty one counts.
    pub(crate) fn system_fingerprint(&mut self, fingerprint: &str) {
        first_text(&mut self.system_fingerprint, fingerprint);
    }

    /// Token counts: the last ones sent count.
    pub(crate) fn usage(&mut self, usage: Usage) {
        self.meta.usage = Some(usage);
    }

    /// Choice `index`, which is now seen.
    pub(crate) fn choice(&mut self, index: u64) -> &mut ChoiceSoFar {
        // Nearly always choice 0, the first.
        let at = match self.choices.first() {
            Some(first) if first.index == index => 0,
            _ => match self.choices.binary_search_by_key(&index, |c| c.index) {
                Ok(at) => at,
                Err(at) => {
                    let choice = ChoiceSoFar {
                        index,
                        ..ChoiceSoFar::default()
                    };
                    self.choices.insert(at, choice);
                    at
                }
            },
        };
        &mut self.choices[at]
    }

    /// A choice's `finish_reason` (an empty one is none: llama.cpp sends
    /// `""` on ordinary chunks); the last one sent counts.
    pub(crate) fn finish_reason(&mut self, index: u64, reason: &str) {
        if reason.is_empty() {
            return;
        }
        last_text(&mut self.choice(index).finish_reason, reason);
        if index == 0 {
            last_text(&mut self.meta.finish_reason, reason);
        }
    }

    /// The answer as a `chat.completion` object, the shape
    /// [`ModelApi::complete`](crate::ModelApi::complete) returns.
    pub(crate) fn completion(&self) -> ChatCompletion {
        let choices: Vec<Value> = self.choices.iter().map(ChoiceSoFar::to_json).collect();
        let mut body = Map::new();
        body.insert("id".into(), json!(self.meta.id.as_deref().unwrap_or("")));
        body.insert("object".into(), json!("chat.completion"));
        body.insert("created".into(), json!(self.created.unwrap_or(0)));
        body.insert(
            "model".into(),
            json!(self.meta.model.as_deref().unwrap_or("")),
        );
        if let Some(fingerprint) = &self.system_fingerprint {
            body.insert("system_fingerprint".into(), json!(fingerprint));
        }
        body.insert("choices".into(), Value::Array(choices));
        if let Some(usage) = &self.meta.usage {
            body.insert("usage".into(), json!(usage));
        }
        ChatCompletion::from_body(Value::Object(body).to_string())
            .expect("an assembled answer is a chat.completion object")
    }
}

impl ChoiceSoFar {
    /// Appends to one of the choice's texts what `write` writes; a text
    /// that stays empty stays absent.
    pub(crate) fn text(&mut self, kind: Kind, write: impl FnOnce(&mut String)) {
        let field = match kind {
            Kind::Content => &mut self.content,
            Kind::Reasoning => &mut self.reasoning,
            Kind::Refusal => &mut self.refusal,
            Kind::ToolCall => return,
        };
        let text = field.get_or_insert_with(String::new);
        write(text);
        if text.is_empty() {
            *field = None;
        }
    }

    /// Adds a piece of tool call `index`: its id and name when it is the
    /// first piece to carry them, and its arguments' text.
    pub(crate) fn tool_call(
        &mut self,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        write_arguments: impl FnOnce(&mut String),
    ) {
        let at = match self.tool_calls.last() {
            Some(last) if last.index == index => self.tool_calls.len() - 1,
            _ => match self.tool_calls.binary_search_by_key(&index, |c| c.index) {
                Ok(at) => at,
                Err(at) => {
                    let call = ToolCallSoFar {
                        index,
                        ..ToolCallSoFar::default()
                    };
                    self.tool_calls.insert(at, call);
                    at
                }
            },
        };
        let call = &mut self.tool_calls[at];
        if let Some(id) = id {
            first_text(&mut call.id, id);
        }
        if let Some(name) = name {
            first_text(&mut call.name, name);
        }
        write_arguments(&mut call.arguments);
    }

    fn to_json(&self) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert("content".into(), json!(self.content));
        if let Some(reasoning) = &self.reasoning {
            message.insert("reasoning_content".into(), json!(reasoning));
        }
        if !self.tool_calls.is_empty() {
            let calls = self.tool_calls.iter().map(|call| {
                json!({
                    "id": call.id.as_deref().unwrap_or(""),
                    "type": "function",
                    "function": {
                        "name": call.name.as_deref().unwrap_or(""),
                        "arguments": call.arguments,
                    },
                })
            });
            message.insert("tool_calls".into(), Value::Array(calls.collect()));
        }
        if let Some(refusal) = &self.refusal {
            message.insert("refusal".into(), json!(refusal));
        }
        json!({
            "index": self.index,
            "message": message,
            "finish_reason": self.finish_reason,
        })
    }
}

/// Sets `field` to `text` unless it is set already or `text` is empty.
fn first_text(field: &mut Option<String>, text: &str) {
    if field.is_none() && !text.is_empty() {
        *field = Some(text.to_owned());
    }
}

/// Sets `field` to `text` (without a new allocation when it is the same).
fn last_text(field: &mut Option<String>, text: &str) {
    if field.as_deref() != Some(text) {
        *field = Some(text.to_owned());
    }
}

/// The server-sent events of a stream carrying `completion`: for each
/// choice, its reasoning, content and refusal in pieces of `piece_chars`
/// characters and each tool call (its id and name with its first piece of
/// arguments), then, when `finish` is set, each choice's `finish_reason`
/// (`stop` when it has none), the usage and `[DONE]`. Without `finish` the
/// events stop after the texts, as a stream cut short does.
pub(crate) fn chunks_of(completion: &ChatCompletion, piece_chars: usize, finish: bool) -> Vec<u8> {
    let mut sse = Vec::new();
    let mut chunk = |choices: Value, usage: Option<&Usage>| {
        let mut chunk = json!({
            "id": completion.id,
            "object": "chat.completion.chunk",
            "created": completion.created,
            "model": completion.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = json!(usage);
        }
        sse.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut sse, &chunk).expect("a chunk serializes");
        sse.extend_from_slice(b"\n\n");
    };
    for choice in &completion.choices {
        let delta =
            |delta: Value| json!([{"index": choice.index, "delta": delta, "finish_reason": null}]);
        let message = &choice.message;
        let extra_text = |key: &str| message.extra.get(key).and_then(Value::as_str);
        let reasoning = extra_text("reasoning_content").or_else(|| extra_text("reasoning"));
        let texts = [
            ("reasoning_content", reasoning),
            ("content", message.content.as_deref()),
            ("refusal", extra_text("refusal")),
        ];
        let mut first = true;
        for (field, text) in texts {
            for piece in pieces(text.unwrap_or(""), piece_chars) {
                let mut body = json!({ field: piece });
                if std::mem::take(&mut first) {
                    body["role"] = json!("assistant");
                }
                chunk(delta(body), None);
            }
        }
        let calls = message.extra.get("tool_calls").and_then(Value::as_array);
        for (position, call) in calls.into_iter().flatten().enumerate() {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            let function = call.get("function");
            let arguments = match function.and_then(|f| f.get("arguments")) {
                Some(Value::String(text)) => text.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            let mut pieces = pieces(&arguments, piece_chars);
            let head = json!({
                "index": index,
                "id": call.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": function.and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null),
                    "arguments": pieces.next().unwrap_or(""),
                },
            });
            chunk(delta(json!({"tool_calls": [head]})), None);
            for piece in pieces {
                let body =
                    json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
                chunk(delta(body), None);
            }
        }
    }
    if finish {
        for choice in &completion.choices {
            let reason = choice.finish_reason.as_deref().unwrap_or("stop");
            chunk(
                json!([{"index": choice.index, "delta": {}, "finish_reason": reason}]),
                None,
            );
        }
        if let Some(usage) = &completion.usage {
            chunk(json!([]), Some(usage));
        }
        sse.write_all(b"data: [DONE]\n\n").expect("writes to a Vec");
    }
    sse
}

/// `text` cut into pieces of at most `chars` characters.
fn pieces(text: &str, chars: usize) -> impl Iterator<Item = &str> {
    let chars = chars.max(1);
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = rest
            .char_indices()
            .nth(chars)
            .map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_text() {
        for text in ["", "a", "héllo wörld ✓\n\n  spaced  ", "🦀🦀🦀🦀"] {
            let all: Vec<&str> = pieces(text, 3).collect();
            assert_eq!(all.concat(), text);
            assert!(all.iter().all(|p| p.chars().count() <= 3 && !p.is_empty()));
        }
        assert_eq!(pieces("abc", usize::MAX).collect::<Vec<_>>(), ["abc"]);
    }

    #[test]
    fn assembles_choices_and_tool_calls_in_index_order() {
        let mut answer = Answer::default();
        answer.id("");
        answer.id("chatcmpl-1");
        answer.id("chatcmpl-2");
        answer.choice(1).text(Kind::Content, |t| t.push('B'));
        answer.choice(0).text(Kind::Content, |t| t.push_str(""));
        let zero = answer.choice(0);
        zero.tool_call(1, Some("call_b"), Some("g"), |t| t.push_str("{}"));
        zero.tool_call(0, Some("call_a"), Some("f"), |t| t.push_str("{\"x\""));
        zero.tool_call(0, Some("ignored"), None, |t| t.push_str(":1}"));
        answer.finish_reason(0, "");
        answer.finish_reason(0, "tool_calls");
        let c = answer.completion();
        assert_eq!(c.id, "chatcmpl-1");
        assert_eq!(c.choices.len(), 2);
        assert_eq!(c.content(), None);
        assert_eq!(c.finish_reason(), Some("tool_calls"));
        assert_eq!(answer.meta.finish_reason.as_deref(), Some("tool_calls"));
        let calls = &c.choices[0].message.extra["tool_calls"];
        assert_eq!(calls[0]["id"], "call_a");
        assert_eq!(calls[0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(calls[1]["function"]["name"], "g");
        assert_eq!(c.choices[1].message.content.as_deref(), Some("B"));
        assert_eq!(c.choices[1].finish_reason, None);
    }
}
