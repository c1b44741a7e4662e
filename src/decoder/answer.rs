//! The whole answer of a stream: [`Answer`] assembles it from the chunks as
//! they are read, and [`chunks_of`] goes the other way, cutting a whole
//! answer into the chunks of a stream (canned replies, and servers that
//! answer a stream request with plain JSON, so that they stream through the
//! same reader as any server's chunks).

use serde_json::Value;

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
    /// The `api_base` of the endpoint that served the stream (the
    /// client's own or a fallback's), once one produced its first event.
    pub endpoint: Option<String>,
    /// The time from the stream's start to its first event, once it came.
    pub first_event: Option<std::time::Duration>,
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
use crate::decoder::event::Kind;

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
    #[inline]
    pub(crate) fn choice(&mut self, index: u64) -> &mut ChoiceSoFar {
        entry(
            &mut self.choices,
            index,
            |c| c.index,
            |index| ChoiceSoFar {
                index,
                ..ChoiceSoFar::default()
            },
        )
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
        let mut json = Json::default();
        json.raw("{\"id\":")
            .string(self.meta.id.as_deref().unwrap_or(""))
            .raw(",\"object\":\"chat.completion\",\"created\":")
            .number(self.created.unwrap_or(0))
            .raw(",\"model\":")
            .string(self.meta.model.as_deref().unwrap_or(""));
        if let Some(fingerprint) = &self.system_fingerprint {
            json.raw(",\"system_fingerprint\":").string(fingerprint);
        }
        json.raw(",\"choices\":[");
        for (i, choice) in self.choices.iter().enumerate() {
            if i > 0 {
                json.raw(",");
            }
            choice.write(&mut json);
        }
        json.raw("]");
        if let Some(usage) = &self.meta.usage {
            json.raw(",\"usage\":").usage(usage);
        }
        json.raw("}");
        ChatCompletion::from_body(json.into_string())
            .expect("an assembled answer is a chat.completion object")
    }
}

impl ChoiceSoFar {
    /// Appends to one of the choice's texts what `write` writes; a text
    /// that stays empty stays absent.
    #[inline]
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

    /// Marks the choice as one with a text, even an empty one (a canned
    /// text reply `""` answers `"content": ""`, not `null`).
    pub(crate) fn has_content(&mut self) {
        self.content.get_or_insert_with(String::new);
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
        let call = entry(
            &mut self.tool_calls,
            index,
            |c| c.index,
            |index| ToolCallSoFar {
                index,
                ..ToolCallSoFar::default()
            },
        );
        if let Some(id) = id {
            first_text(&mut call.id, id);
        }
        if let Some(name) = name {
            first_text(&mut call.name, name);
        }
        write_arguments(&mut call.arguments);
    }

    fn write(&self, json: &mut Json) {
        json.raw("{\"index\":")
            .number(self.index)
            .raw(",\"message\":{\"role\":\"assistant\",\"content\":")
            .string_or_null(self.content.as_deref());
        if let Some(reasoning) = &self.reasoning {
            json.raw(",\"reasoning_content\":").string(reasoning);
        }
        if !self.tool_calls.is_empty() {
            json.raw(",\"tool_calls\":[");
            for (i, call) in self.tool_calls.iter().enumerate() {
                if i > 0 {
                    json.raw(",");
                }
                json.raw("{\"id\":")
                    .string(call.id.as_deref().unwrap_or(""))
                    .raw(",\"type\":\"function\",\"function\":{\"name\":")
                    .string(call.name.as_deref().unwrap_or(""))
                    .raw(",\"arguments\":")
                    .string(&call.arguments)
                    .raw("}}");
            }
            json.raw("]");
        }
        if let Some(refusal) = &self.refusal {
            json.raw(",\"refusal\":").string(refusal);
        }
        json.raw("},\"finish_reason\":")
            .string_or_null(self.finish_reason.as_deref())
            .raw("}");
    }
}

/// JSON text written directly, for the few fixed shapes made here (no
/// tree of values in between).
#[derive(Default)]
struct Json(Vec<u8>);

impl Json {
    fn raw(&mut self, text: &str) -> &mut Json {
        self.0.extend_from_slice(text.as_bytes());
        self
    }

    fn string(&mut self, text: &str) -> &mut Json {
        serde_json::to_writer(&mut self.0, text).expect("a string serializes");
        self
    }

    fn string_or_null(&mut self, text: Option<&str>) -> &mut Json {
        match text {
            Some(text) => self.string(text),
            None => self.raw("null"),
        }
    }

    fn number(&mut self, number: u64) -> &mut Json {
        self.raw(&number.to_string())
    }

    fn value(&mut self, value: &Value) -> &mut Json {
        serde_json::to_writer(&mut self.0, value).expect("a value serializes");
        self
    }

    fn usage(&mut self, usage: &Usage) -> &mut Json {
        self.raw("{\"prompt_tokens\":")
            .number(usage.prompt_tokens)
            .raw(",\"completion_tokens\":")
            .number(usage.completion_tokens)
            .raw(",\"total_tokens\":")
            .number(usage.total_tokens);
        for (key, value) in &usage.extra {
            self.raw(",").string(key).raw(":").value(value);
        }
        self.raw("}")
    }

    fn into_string(self) -> String {
        String::from_utf8(self.0).expect("JSON text is UTF-8")
    }
}

/// The element of `list` (kept in key order) whose key is `key`, made by
/// `new` and put in its place when there is none. The last element is
/// looked at first: the usual stream adds to the choice or the tool call
/// it added to last.
fn entry<T, K: Ord + Copy>(
    list: &mut Vec<T>,
    key: K,
    key_of: impl Fn(&T) -> K,
    new: impl FnOnce(K) -> T,
) -> &mut T {
    let at = match list.last() {
        Some(last) if key_of(last) == key => list.len() - 1,
        _ => match list.binary_search_by_key(&key, &key_of) {
            Ok(at) => at,
            Err(at) => {
                list.insert(at, new(key));
                at
            }
        },
    };
    &mut list[at]
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
    // Every chunk starts the same.
    let mut head = Json::default();
    head.raw("data: {\"id\":")
        .string(&completion.id)
        .raw(",\"object\":\"chat.completion.chunk\",\"created\":")
        .number(completion.created)
        .raw(",\"model\":")
        .string(&completion.model)
        .raw(",\"choices\":[");
    let mut sse = Json::default();
    // One chunk of choice `index`; `delta` writes the delta's fields.
    let mut chunk = |index: u64, reason: Option<&str>, delta: &dyn Fn(&mut Json)| {
        sse.0.extend_from_slice(&head.0);
        sse.raw("{\"index\":").number(index).raw(",\"delta\":{");
        delta(&mut sse);
        sse.raw("},\"finish_reason\":")
            .string_or_null(reason)
            .raw("}]}\n\n");
    };
    for choice in &completion.choices {
        let message = &choice.message;
        let extra_text = |key: &str| message.extra.get(key).and_then(Value::as_str);
        let reasoning = extra_text("reasoning_content").or_else(|| extra_text("reasoning"));
        let texts = [
            ("\"reasoning_content\":", reasoning),
            ("\"content\":", message.content.as_deref()),
            ("\"refusal\":", extra_text("refusal")),
        ];
        let mut role = "\"role\":\"assistant\",";
        for (field, text) in texts {
            for piece in pieces(text.unwrap_or(""), piece_chars) {
                let role = std::mem::take(&mut role);
                chunk(choice.index, None, &|json| {
                    json.raw(role).raw(field).string(piece);
                });
            }
        }
        let calls = message.extra.get("tool_calls").and_then(Value::as_array);
        for (position, call) in (0u64..).zip(calls.into_iter().flatten()) {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position);
            let part = |key: &str| call.get("function").and_then(|f| f.get(key));
            let arguments = match part("arguments") {
                Some(Value::String(text)) => text.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            let mut pieces = pieces(&arguments, piece_chars);
            let first = pieces.next().unwrap_or("");
            chunk(choice.index, None, &|json| {
                json.raw("\"tool_calls\":[{\"index\":")
                    .number(index)
                    .raw(",\"id\":")
                    .string_or_null(call.get("id").and_then(Value::as_str))
                    .raw(",\"type\":\"function\",\"function\":{\"name\":")
                    .string_or_null(part("name").and_then(Value::as_str))
                    .raw(",\"arguments\":")
                    .string(first)
                    .raw("}}]");
            });
            for piece in pieces {
                chunk(choice.index, None, &|json| {
                    json.raw("\"tool_calls\":[{\"index\":")
                        .number(index)
                        .raw(",\"function\":{\"arguments\":")
                        .string(piece)
                        .raw("}}]");
                });
            }
        }
    }
    if finish {
        for choice in &completion.choices {
            let reason = choice.finish_reason.as_deref().unwrap_or("stop");
            chunk(choice.index, Some(reason), &|_| {});
        }
        if let Some(usage) = &completion.usage {
            sse.0.extend_from_slice(&head.0);
            sse.raw("],\"usage\":").usage(usage).raw("}\n\n");
        }
        sse.raw("data: [DONE]\n\n");
    }
    sse.0
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
