//! The data of one streamed event: a `chat.completion.chunk` (content and
//! metadata), `[DONE]`, or an error the server reports inside the stream.
//!
//! The usual chunk is read by [`scan`], a one-pass reader made for its
//! shape, which borrows from the event's text (no allocation); the others
//! (errors, usage, unusual encodings or types) by serde_json, as a
//! [`Value`]. A stream's [`ChunkReader`] also recognises a chunk that
//! repeats the last one around new content, and then reads only that.

mod scan;

use serde::Deserialize;
use serde_json::Value;

use self::scan::{Choice, Chunk, Content, Skipped, Token};
use crate::error::{error_message, truncate};
use crate::sse::Event;
use crate::types::Usage;
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

/// Reads the events of one stream, in order.
///
/// A server sends the chunks of one answer in one shape, and most of their
/// bytes repeat from chunk to chunk: the content changes, and maybe values
/// the stream has no use for (`created` once a second; OpenAI's
/// `obfuscation`, a random string, in every chunk). So the reader keeps the
/// last chunk it read in full, with the places of its content and of the
/// values it skipped. A chunk with the same bytes everywhere else, and a
/// valid string (or number) in each of those places, is that chunk with
/// other values there: only its content is read. (Replacing one string or
/// number token with another keeps a JSON document's structure: it parses
/// the same way, with the new token in its place.)
#[derive(Debug, Default)]
pub(crate) struct ChunkReader {
    /// The last chunk read in full that may repeat: it had content and no
    /// `finish_reason` (so a repeat changes no metadata). Empty when none.
    last: Vec<u8>,
    /// The places in `last` that a repeat may fill differently: the values
    /// the reader skipped, and the content (`content` is its index here).
    free: Vec<Skipped>,
    content: usize,
    /// The values skipped in the chunk being read in full.
    skipped: Vec<Skipped>,
}

/// Chunks longer than this are not remembered (the copy would cost more
/// than it saves, and memory stays small).
const MAX_REMEMBERED_BYTES: usize = 4096;

impl ChunkReader {
    /// Interprets one event. Content of choice 0 goes to `content` (which
    /// is cleared first); metadata goes to `meta`.
    pub(crate) fn read_event(
        &mut self,
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
        if let Some(body) = self.repeated_content(data) {
            // The metadata is the remembered chunk's, already recorded.
            unescape_into(body, content);
            return Ok(content_event(content));
        }
        match scan::read_chunk(data, &mut self.skipped) {
            Some(chunk) => {
                self.remember(data, &chunk);
                Ok(take_chunk(chunk, content, meta))
            }
            None => read_with_serde(data, content, meta),
        }
    }

    /// The content of `data` when it repeats the remembered chunk: its
    /// text between the quotes.
    fn repeated_content<'a>(&self, data: &'a str) -> Option<&'a str> {
        if self.last.is_empty() {
            return None;
        }
        let (old, new) = (&self.last[..], data.as_bytes());
        // The most common repeat first: all the same but the content.
        let place = self.free[self.content];
        if new.starts_with(&old[..=place.start]) {
            let (end, _) = scan::string_end(new, place.start + 1)?;
            if new.get(end..)? == &old[place.end - 1..] {
                return data.get(place.start + 1..end);
            }
        }
        let (mut old_at, mut new_at) = (0, 0);
        let mut content = 0..0;
        for (i, place) in self.free.iter().enumerate() {
            // The same bytes up to the place...
            let same = &old[old_at..place.start];
            if !new.get(new_at..)?.starts_with(same) {
                return None;
            }
            new_at += same.len();
            // ... and a valid token of the same kind in it, which ends
            // where a JSON parser would end it.
            let start = new_at;
            new_at = match place.token {
                Token::String if new.get(new_at) == Some(&b'"') => {
                    scan::string_end(new, new_at + 1)?.0 + 1
                }
                Token::String => return None,
                Token::Number => scan::number_end(new, new_at)?,
            };
            if i == self.content {
                content = start + 1..new_at - 1;
            }
            old_at = place.end;
        }
        if new.get(new_at..)? != &old[old_at..] {
            return None;
        }
        data.get(content)
    }

    /// Remembers `data`, just read in full as `chunk` (with the values in
    /// `self.skipped`), when later chunks may repeat it.
    fn remember(&mut self, data: &str, chunk: &Chunk<'_>) {
        self.last.clear();
        self.free.clear();
        let Some(choice) = &chunk.choice else {
            return;
        };
        let (Some(Content::Escaped(body)), None | Some("")) =
            (choice.content, choice.finish_reason)
        else {
            return;
        };
        if data.len() > MAX_REMEMBERED_BYTES || self.skipped.len() > scan::MAX_NOTED {
            return;
        }
        // `body` is a slice of `data`: where its string starts in it.
        let start = body.as_ptr() as usize - data.as_ptr() as usize - 1;
        let content = Skipped {
            start,
            end: start + body.len() + 2,
            token: Token::String,
        };
        // The content's place among the others, which are in order.
        self.content = self.skipped.partition_point(|s| s.start < start);
        self.free.extend_from_slice(&self.skipped);
        self.free.insert(self.content, content);
        self.last.extend_from_slice(data.as_bytes());
    }
}

/// Interprets one event on its own (for tests and fuzzing: a stream reads
/// its events with one [`ChunkReader`]).
pub(crate) fn read_event(
    event: &Event<'_>,
    content: &mut String,
    meta: &mut StreamMetadata,
) -> Result<ChunkEvent, Error> {
    ChunkReader::default().read_event(event, content, meta)
}

/// The general path, for the chunks [`scan::read_chunk`] leaves to
/// serde_json: errors, usage, escapes in metadata, unexpected types,
/// invalid JSON.
fn read_with_serde(
    data: &str,
    content: &mut String,
    meta: &mut StreamMetadata,
) -> Result<ChunkEvent, Error> {
    let value = parse_event(data)?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(Error::Server {
            message: error_message(error),
            body: truncate(data),
        });
    }
    // A `usage` that is not token counts is metadata lost, not a failed
    // answer.
    let usage = value.get("usage").filter(|u| !u.is_null());
    if let Some(Ok(usage)) = usage.map(Usage::deserialize) {
        meta.usage = Some(usage);
    }
    Ok(take_chunk(chunk_of(&value)?, content, meta))
}

fn parse_event(data: &str) -> Result<Value, Error> {
    let value: Value = serde_json::from_str(data).map_err(|e| {
        Error::InvalidResponse(format!(
            "a streamed event is not valid JSON ({}): {}",
            truncate(&e.to_string()),
            truncate(data)
        ))
    })?;
    if !value.is_object() {
        return Err(Error::InvalidResponse(format!(
            "a streamed event is not a JSON object: {}",
            truncate(data)
        )));
    }
    Ok(value)
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
    match choice.content {
        Some(Content::Escaped(body)) => unescape_into(body, content),
        Some(Content::Text(text)) => content.push_str(text),
        None => return ChunkEvent::Nothing,
    }
    content_event(content)
}

fn content_event(content: &str) -> ChunkEvent {
    if content.is_empty() {
        ChunkEvent::Nothing
    } else {
        ChunkEvent::Content
    }
}

/// For the fuzz tests: reads `events` (type and data) in order with one
/// reader, and each with a fresh reader, and says where the two differ (in
/// result, content or metadata); else how many events the first reader
/// found repeating a remembered chunk.
pub(crate) fn check_reader_memory(events: &[(&str, &str)]) -> Result<usize, String> {
    let mut reader = ChunkReader::default();
    let (mut memo_meta, mut fresh_meta) = (StreamMetadata::default(), StreamMetadata::default());
    let (mut memo_content, mut fresh_content) = (String::new(), String::new());
    let mut repeats = 0;
    for (i, &(event_type, data)) in events.iter().enumerate() {
        let event = Event { event_type, data };
        if event.is_message() && reader.repeated_content(data.trim_ascii()).is_some() {
            repeats += 1;
        }
        let memo = reader.read_event(&event, &mut memo_content, &mut memo_meta);
        let fresh = read_event(&event, &mut fresh_content, &mut fresh_meta);
        let (memo, fresh) = (
            memo.map_err(|e| e.to_string()),
            fresh.map_err(|e| e.to_string()),
        );
        if (&memo, &memo_content, &memo_meta) != (&fresh, &fresh_content, &fresh_meta) {
            return Err(format!(
                "event {i}: with memory {memo:?} {memo_content:?} {memo_meta:?}, \
                 fresh {fresh:?} {fresh_content:?} {fresh_meta:?}"
            ));
        }
    }
    Ok(repeats)
}

/// For the differential fuzz test: `Ok(true)` when the fast reader read
/// `data` and serde_json reads the same from it, `Ok(false)` when the fast
/// reader left it to serde_json, `Err` (saying how) when they disagree.
pub(crate) fn check_fast_reader(data: &str) -> Result<bool, String> {
    let Some(fast) = scan::read_chunk(data, &mut Vec::new()) else {
        return Ok(false);
    };
    let value = parse_event(data).map_err(|e| format!("serde_json failed: {e}"))?;
    if ["usage", "error"]
        .iter()
        .any(|k| value.get(k).is_some_and(|v| !v.is_null()))
    {
        return Err("serde_json found usage or an error".into());
    }
    let slow = chunk_of(&value).map_err(|e| format!("serde_json failed: {e}"))?;
    // Content compared as text: the readers hand it over in two forms.
    let text = |chunk: &Chunk<'_>| {
        let mut text = String::new();
        match chunk.choice.as_ref().and_then(|c| c.content) {
            Some(Content::Escaped(body)) => unescape_into(body, &mut text),
            Some(Content::Text(t)) => text.push_str(t),
            None => {}
        }
        text
    };
    fn meta<'c>(c: &Chunk<'c>) -> (Option<&'c str>, Option<&'c str>, Option<Option<&'c str>>) {
        (c.id, c.model, c.choice.as_ref().map(|c| c.finish_reason))
    }
    let has_content = |c: &Chunk<'_>| c.choice.as_ref().map(|c| c.content.is_some());
    let fast_view = (meta(&fast), has_content(&fast), text(&fast));
    if fast_view == (meta(&slow), has_content(&slow), text(&slow)) {
        Ok(true)
    } else {
        Err(format!("fast: {fast:?}, serde_json: {slow:?}"))
    }
}

/// Appends the text of a JSON string's body (between its quotes, already
/// validated by the parser) to `out`, resolving its escapes. A `\u` escape
/// of a lone surrogate becomes U+FFFD (the readers refuse such events before
/// they get here: a safety net).
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
    match text.as_bytes().get(..4).and_then(scan::hex4) {
        Some(unit) => (Some(u32::from(unit)), &text[4..]),
        None => (None, text),
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

/// What the stream needs from `value`, an event parsed by serde_json: choice
/// 0 is the one with `index` 0, or the first one when the server leaves
/// `index` out. Metadata of another type than a string counts as absent.
fn chunk_of(value: &Value) -> Result<Chunk<'_>, Error> {
    let choices = value.get("choices").and_then(Value::as_array);
    let choice = (0u64..)
        .zip(choices.map(Vec::as_slice).unwrap_or_default())
        .find(|(position, c)| c.get("index").and_then(Value::as_u64).unwrap_or(*position) == 0)
        .map(|(_, choice)| -> Result<Choice<'_>, Error> {
            let content = match choice.get("delta").and_then(|d| d.get("content")) {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(Content::Text(text)),
                Some(other) => {
                    return Err(Error::InvalidResponse(format!(
                        "delta.content is not a string: {}",
                        truncate(&other.to_string())
                    )))
                }
            };
            Ok(Choice {
                finish_reason: choice.get("finish_reason").and_then(Value::as_str),
                content,
            })
        })
        .transpose()?;
    Ok(Chunk {
        id: value.get("id").and_then(Value::as_str),
        model: value.get("model").and_then(Value::as_str),
        choice,
    })
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
    fn unexpected_types_are_ignored_but_content_must_be_a_string() {
        let (r, c, meta) = read(
            r#"{"id":7,"model":["m"],"choices":[{"index":"0","delta":{"content":"A"},"finish_reason":1}],"usage":"n/a"}"#,
        );
        assert_eq!((r.unwrap(), c.as_str()), (ChunkEvent::Content, "A"));
        assert_eq!(meta, StreamMetadata::default());
        // A repeated key: the last one counts.
        let (r, c, meta) = read(r#"{"id":"x","id":"y","choices":[{"delta":{"content":"B"}}]}"#);
        assert_eq!((r.unwrap(), c.as_str()), (ChunkEvent::Content, "B"));
        assert_eq!(meta.id.as_deref(), Some("y"));
        for data in [
            r#"{"choices":[{"delta":{"content":{"text":"A"}}}]}"#,
            r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#,
            "[1,2]",
            "null",
        ] {
            let (r, _, _) = read(data);
            assert!(matches!(r, Err(Error::InvalidResponse(_))), "{data}: {r:?}");
        }
    }

    #[test]
    fn done_marker() {
        assert_eq!(read("[DONE]").0.unwrap(), ChunkEvent::Done);
        assert_eq!(read(" [DONE] ").0.unwrap(), ChunkEvent::Done);
    }
}
