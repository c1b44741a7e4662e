//! The data of one streamed event: a `chat.completion.chunk` (content and
//! metadata), `[DONE]`, or an error the server reports inside the stream.
//!
//! The usual chunk is read by [`scan`], a one-pass reader made for its
//! shape; the others (errors, usage, unusual encodings) by serde_json.
//! Both borrow from the event's text, so a chunk costs no allocation.

mod scan;

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use self::scan::{Choice, Chunk};
use crate::sse::Event;
use crate::types::{truncate, Usage};
use crate::Error;

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

/// What one event means for the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChunkEvent {
    /// Choice 0's content, now in the caller's buffer (never empty).
    Content,
    /// A chunk without content for choice 0 (role only, usage, tool calls,
    /// other choices, an event type this client has no use for).
    Nothing,
    /// `data: [DONE]`.
    Done,
}

/// Interprets one event. Content of choice 0 goes to `content` (which is
/// cleared first); metadata goes to `meta`.
pub(crate) fn read_event(
    event: &Event<'_>,
    content: &mut String,
    meta: &mut StreamMetadata,
) -> Result<ChunkEvent, Error> {
    content.clear();
    if event.is_error() {
        return Err(server_error(event.data));
    }
    if !event.is_message() {
        return Ok(ChunkEvent::Nothing);
    }
    let data = event.data.trim_ascii();
    if data == "[DONE]" {
        return Ok(ChunkEvent::Done);
    }
    match scan::read_chunk(data) {
        Some(chunk) => Ok(take_chunk(chunk, content, meta)),
        None => read_with_serde(data, content, meta),
    }
}

/// The general path, for the chunks [`scan::read_chunk`] leaves to
/// serde_json: errors, usage, escapes in metadata, invalid JSON.
fn read_with_serde(
    data: &str,
    content: &mut String,
    meta: &mut StreamMetadata,
) -> Result<ChunkEvent, Error> {
    let mut wire = parse_wire(data)?;
    if let Some(error) = wire.error.as_ref().filter(|e| !e.is_null()) {
        return Err(Error::Server {
            message: error_message(error),
            body: truncate(data),
        });
    }
    if let Some(usage) = wire.usage.take() {
        meta.usage = Some(usage);
    }
    Ok(take_chunk(wire.chunk()?, content, meta))
}

fn parse_wire(data: &str) -> Result<WireChunk<'_>, Error> {
    serde_json::from_str(data).map_err(|e| {
        Error::InvalidResponse(format!(
            "a streamed event is not valid JSON ({}): {}",
            truncate(&e.to_string()),
            truncate(data)
        ))
    })
}

/// Records a chunk's metadata and puts choice 0's content in `content`.
fn take_chunk(chunk: Chunk<'_>, content: &mut String, meta: &mut StreamMetadata) -> ChunkEvent {
    if meta.id.is_none() {
        meta.id = chunk.id.filter(|s| !s.is_empty()).map(str::to_owned);
    }
    if meta.model.is_none() {
        meta.model = chunk.model.filter(|s| !s.is_empty()).map(str::to_owned);
    }
    let Some(choice) = chunk.choice else {
        return ChunkEvent::Nothing;
    };
    // llama.cpp and others send `"finish_reason": ""` on ordinary chunks.
    if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
        if meta.finish_reason.as_deref() != Some(reason) {
            meta.finish_reason = Some(reason.to_owned());
        }
    }
    let Some(body) = choice.content else {
        return ChunkEvent::Nothing;
    };
    unescape_into(body, content);
    if content.is_empty() {
        ChunkEvent::Nothing
    } else {
        ChunkEvent::Content
    }
}

/// For the differential fuzz test: `Ok(true)` when the fast reader read
/// `data` and serde_json reads the same from it, `Ok(false)` when the fast
/// reader left it to serde_json, `Err` (saying how) when they disagree.
pub(crate) fn check_fast_reader(data: &str) -> Result<bool, String> {
    let Some(fast) = scan::read_chunk(data) else {
        return Ok(false);
    };
    let wire = parse_wire(data).map_err(|e| format!("serde_json failed: {e}"))?;
    if wire.usage.is_some() || wire.error.as_ref().is_some_and(|e| !e.is_null()) {
        return Err("serde_json found usage or an error".into());
    }
    match wire.chunk() {
        Ok(slow) if slow == fast => Ok(true),
        Ok(slow) => Err(format!("fast: {fast:?}, serde_json: {slow:?}")),
        Err(e) => Err(format!("serde_json failed: {e}")),
    }
}

/// Appends the text of a JSON string's body (between its quotes, already
/// validated by the parser) to `out`, resolving its escapes. A `\u` escape
/// of a lone surrogate becomes U+FFFD.
fn unescape_into(body: &str, out: &mut String) {
    let mut rest = body;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let mut chars = rest[at + 1..].chars();
        let escape = chars.next().unwrap_or('\\');
        rest = chars.as_str();
        match escape {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'u' => {
                let (unit, tail) = hex4(rest);
                rest = tail;
                let c = match unit {
                    Some(high @ 0xD800..=0xDBFF) => match rest.strip_prefix("\\u").map(hex4) {
                        Some((Some(low @ 0xDC00..=0xDFFF), tail)) => {
                            rest = tail;
                            char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                        }
                        _ => None,
                    },
                    Some(unit) => char::from_u32(unit),
                    None => None,
                };
                out.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            // `\"`, `\\` and `\/` stand for themselves.
            other => out.push(other),
        }
    }
    out.push_str(rest);
}

/// The value of four hex digits at the start of `text`, and what follows.
fn hex4(text: &str) -> (Option<u32>, &str) {
    match text.get(..4).map(|h| u32::from_str_radix(h, 16)) {
        Some(Ok(unit)) => (Some(unit), &text[4..]),
        _ => (None, text),
    }
}

/// The error of an `event: error` / `error:` event, whose data may be JSON
/// (`{"error": {...}}`, `{"message": ...}`) or plain text.
fn server_error(data: &str) -> Error {
    let message = match serde_json::from_str::<Value>(data) {
        Ok(value) => error_message(&value),
        Err(_) if data.trim().is_empty() => "the server sent an error event with no data".into(),
        Err(_) => truncate(data.trim()),
    };
    Error::Server {
        message,
        body: truncate(data),
    }
}

/// The human message of an error value in the shapes servers use:
/// `{"error": {"message": ..}}`, `{"message": ..}`, `{"error": ".."}`,
/// `{"content": ..}` (llama.cpp) or a bare string.
pub(crate) fn error_message(error: &Value) -> String {
    // A server's text, so at most 1 KiB of it: error texts stay small.
    truncate(&error_text(error))
}

fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(object) => {
            for key in ["message", "error", "content", "detail"] {
                match object.get(key) {
                    Some(Value::String(s)) if !s.is_empty() => return s.clone(),
                    Some(nested @ Value::Object(_)) => return error_text(nested),
                    _ => {}
                }
            }
            error.to_string()
        }
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
struct WireChunk<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    model: Text<'a>,
    #[serde(borrow, default)]
    choices: FirstChoice<'a>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

impl<'a> WireChunk<'a> {
    /// What the stream needs, as the fast reader gives it.
    fn chunk(&self) -> Result<Chunk<'_>, Error> {
        let choice = match &self.choices.0 {
            None => None,
            Some(choice) => Some(Choice {
                finish_reason: choice.finish_reason.0.as_deref(),
                content: match choice.delta.as_ref().and_then(|d| d.content) {
                    None => None,
                    Some(raw) if raw.get() == "null" => None,
                    Some(raw) => Some(string_body(raw.get())?),
                },
            }),
        };
        Ok(Chunk {
            id: self.id.0.as_deref(),
            model: self.model.0.as_deref(),
            choice,
        })
    }
}

/// The text between the quotes of `raw`, a JSON string.
fn string_body(raw: &str) -> Result<&str, Error> {
    raw.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| {
            Error::InvalidResponse(format!("delta.content is not a string: {}", truncate(raw)))
        })
}

#[derive(Deserialize)]
struct WireChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<WireDelta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Text<'a>,
}

#[derive(Deserialize)]
struct WireDelta<'a> {
    /// The JSON text of the content, unescaped by [`unescape_into`] straight
    /// into the stream's buffer: no allocation, escapes or not.
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// An optional string that borrows from the event's text unless it has
/// JSON escapes. (serde's own `Option<Cow<str>>` always allocates.)
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or null")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(text))))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(text.to_string()))))
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }

            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_str(self)
            }
        }

        deserializer.deserialize_option(TextVisitor(std::marker::PhantomData))
    }
}

/// The choice with index 0 of a `choices` array (or the first one, when
/// the server leaves `index` out), found without collecting the array.
#[derive(Default)]
struct FirstChoice<'a>(Option<WireChoice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoicesVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for ChoicesVisitor<'a> {
            type Value = FirstChoice<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(FirstChoice(None))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut found = None;
                let mut position = 0u64;
                while let Some(choice) = seq.next_element::<WireChoice<'de>>()? {
                    if found.is_none() && choice.index.unwrap_or(position) == 0 {
                        found = Some(choice);
                    }
                    position += 1;
                }
                Ok(FirstChoice(found))
            }
        }

        deserializer.deserialize_any(ChoicesVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(data: &str) -> (Result<ChunkEvent, Error>, String, StreamMetadata) {
        let mut content = String::new();
        let mut meta = StreamMetadata::default();
        let event = Event {
            event_type: "",
            data,
        };
        let result = read_event(&event, &mut content, &mut meta);
        (result, content, meta)
    }

    #[test]
    fn content_of_choice_zero_only() {
        let (r, c, _) = read(
            r#"{"choices":[{"index":1,"delta":{"content":"B"}},{"index":0,"delta":{"content":"A\n\"q\""}}]}"#,
        );
        assert_eq!(r.unwrap(), ChunkEvent::Content);
        assert_eq!(c, "A\n\"q\"");
    }

    #[test]
    fn quirks_without_content() {
        for data in [
            r#"{"choices":[]}"#,
            r#"{"choices":null}"#,
            r#"{"id":"x","choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{"role":"assistant","content":null}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":""}],"new_field":{"a":[1]}}"#,
        ] {
            let (r, c, meta) = read(data);
            assert_eq!(r.unwrap(), ChunkEvent::Nothing, "{data}");
            assert_eq!(c, "");
            assert_eq!(meta.finish_reason, None, "{data}");
        }
    }

    #[test]
    fn metadata_is_recorded() {
        let (_, _, meta) = read(
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        );
        assert_eq!(meta.id.as_deref(), Some("c1"));
        assert_eq!(meta.model.as_deref(), Some("m"));
        assert_eq!(meta.finish_reason.as_deref(), Some("stop"));
        assert_eq!(meta.usage.unwrap().total_tokens, 3);
    }

    #[test]
    fn errors_are_never_skipped() {
        let (r, _, _) = read(r#"{"error":{"message":"overloaded","type":"server_error"}}"#);
        assert!(matches!(r, Err(Error::Server { ref message, .. }) if message == "overloaded"));
        let (r, _, _) = read("{not json");
        assert!(matches!(r, Err(Error::InvalidResponse(_))));
        let mut content = String::new();
        let mut meta = StreamMetadata::default();
        let event = Event {
            event_type: "error",
            data: "upstream went away",
        };
        let r = read_event(&event, &mut content, &mut meta);
        assert!(
            matches!(r, Err(Error::Server { ref message, .. }) if message == "upstream went away")
        );
    }

    #[test]
    fn escapes_are_resolved_like_serde_does() {
        for text in [
            "plain",
            "a\nb\tc\"d\\e/f",
            "é ✓ 🦀 \u{1}\u{8}\u{c}",
            "\u{7f}\u{2028}",
            "",
        ] {
            let json = serde_json::to_string(text).unwrap();
            let ascii = json
                .chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_string()
                    } else {
                        c.encode_utf16(&mut [0; 2])
                            .iter()
                            .map(|u| format!("\\u{u:04x}"))
                            .collect()
                    }
                })
                .collect::<String>();
            for form in [json, ascii, r#""a\/b""#.to_string()] {
                let expected: String = serde_json::from_str(&form).unwrap();
                let mut out = String::new();
                unescape_into(&form[1..form.len() - 1], &mut out);
                assert_eq!(out, expected, "{form}");
            }
        }
        let mut out = String::new();
        unescape_into(r"lone \ud800 and \udc00 surrogates", &mut out);
        assert_eq!(out, "lone \u{fffd} and \u{fffd} surrogates");
    }

    #[test]
    fn done_marker() {
        assert_eq!(read("[DONE]").0.unwrap(), ChunkEvent::Done);
        assert_eq!(read(" [DONE] ").0.unwrap(), ChunkEvent::Done);
    }
}
