//! The data of one streamed event: a `chat.completion.chunk`, `[DONE]`, or
//! an error the server reports inside the stream.
//!
//! The usual chunk is read by [`scan`], a one-pass reader made for its
//! shape, which borrows from the event's text (no allocation); the others
//! (errors, usage, several choices, unusual encodings or types) by
//! serde_json, as a [`Value`]. Both hand what they read to [`Received`],
//! which keeps the rules of what a delta means in one place. A stream's
//! [`ChunkReader`] also recognises a chunk that repeats the last one around
//! a new text, and then reads only that.

mod scan;

use serde::Deserialize;
use serde_json::Value;

use self::scan::{Chunk, Delta, Skipped, Text, Token};
use crate::decoder::answer::Answer;
use crate::decoder::event::{Events, Kind};
use crate::decoder::sse::Event;
use crate::error::Error;
use crate::error::{error_message, truncate};
use crate::types::Usage;

/// What one event means for the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChunkEvent {
    /// A chunk (its events, if any, are queued), or an event type this
    /// client has no use for.
    Chunk,
    /// `data: [DONE]`.
    Done,
}

/// Where the parts of a chunk go: every choice's into the answer, and
/// choice 0's also into the events handed out.
#[derive(Debug)]
pub(crate) struct Received<'r> {
    pub(crate) events: &'r mut Events,
    pub(crate) answer: &'r mut Answer,
}

impl Received<'_> {
    fn metadata(
        &mut self,
        id: Option<&str>,
        model: Option<&str>,
        created: Option<u64>,
        fingerprint: Option<&str>,
    ) {
        let answer = &mut *self.answer;
        if let Some(id) = id {
            answer.id(id);
        }
        if let Some(model) = model {
            answer.model(model);
        }
        if let Some(created) = created {
            answer.created(created);
        }
        if let Some(fingerprint) = fingerprint {
            answer.system_fingerprint(fingerprint);
        }
    }

    /// The texts of choice `choice`'s delta, events in this order: the
    /// reasoning (`reasoning_content`, or `reasoning` when that one is
    /// absent or empty: one event when a server sends both), the content,
    /// the refusal.
    fn delta(
        &mut self,
        choice: u64,
        content: Option<Text<'_>>,
        reasoning_content: Option<Text<'_>>,
        reasoning: Option<Text<'_>>,
        refusal: Option<Text<'_>>,
    ) {
        let reasoning = reasoning_content.filter(|t| !t.is_empty()).or(reasoning);
        for (kind, text) in [
            (Kind::Reasoning, reasoning),
            (Kind::Content, content),
            (Kind::Refusal, refusal),
        ] {
            if let Some(text) = text {
                self.text(choice, kind, text);
            }
        }
    }

    #[inline]
    fn text(&mut self, choice: u64, kind: Kind, text: Text<'_>) {
        if choice == 0 {
            self.events.push_text(kind, |out| text.write_to(out));
        }
        self.answer
            .choice(choice)
            .text(kind, |out| text.write_to(out));
    }

    /// One piece of a tool call of choice `choice`; `index` is the piece's
    /// own, else its position in the array. An empty id or name counts as
    /// none; an index past `u32` is no call this client can name, and is
    /// ignored.
    fn tool_call(
        &mut self,
        choice: u64,
        index: u64,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Text<'_>,
    ) {
        let Ok(index) = u32::try_from(index) else {
            return;
        };
        let id = id.filter(|id| !id.is_empty());
        let name = name.filter(|name| !name.is_empty());
        if id.is_none() && name.is_none() && arguments.is_empty() {
            // A piece that carries nothing.
            return;
        }
        if choice != 0 {
            let answer = self.answer.choice(choice);
            answer.tool_call(index, id, name, |out| arguments.write_to(out));
        } else if let Some(resolved) = self
            .events
            .push_tool_call(index, id, name, |out| arguments.write_to(out))
        {
            let answer = self.answer.choice(0);
            answer.tool_call(index, id, name, |out| out.push_str(resolved));
        }
    }

    /// A chunk the fast reader read.
    fn chunk(&mut self, chunk: &Chunk<'_>) {
        self.metadata(
            chunk.id,
            chunk.model,
            chunk.created,
            chunk.system_fingerprint,
        );
        let Some(choice) = &chunk.choice else {
            return;
        };
        self.answer.choice(0);
        if let Some(reason) = choice.finish_reason {
            self.answer.finish_reason(0, reason);
        }
        let delta = &choice.delta;
        self.delta(
            0,
            delta.content,
            delta.reasoning_content,
            delta.reasoning,
            delta.refusal,
        );
        for (position, piece) in delta.tool_calls[..delta.tool_call_count].iter().enumerate() {
            let arguments = piece.arguments.unwrap_or(Text::Plain(""));
            let index = piece.index.unwrap_or(position as u64);
            self.tool_call(0, index, piece.id, piece.name, arguments);
        }
    }
}

impl Text<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Text::Escaped(text) | Text::Plain(text) => text.is_empty(),
        }
    }

    /// Appends the text, escapes resolved.
    #[inline]
    fn write_to(&self, out: &mut String) {
        match *self {
            Text::Escaped(body) => unescape_into(body, out),
            Text::Plain(text) => out.push_str(text),
        }
    }
}

/// Reads the events of one stream, in order.
///
/// A server sends the chunks of one answer in one shape, and most of their
/// bytes repeat from chunk to chunk: the text changes, and maybe values the
/// stream has no use for (`created` once a second; OpenAI's `obfuscation`,
/// a random string, in every chunk). So the reader keeps the last chunk it
/// read in full, with the places of its one text and of the values it
/// skipped. A chunk with the same bytes everywhere else, and a valid string
/// (or number) in each of those places, is that chunk with other values
/// there: only its text is read. (Replacing one string or number token with
/// another keeps a JSON document's structure: it parses the same way, with
/// the new token in its place.)
#[derive(Debug, Default)]
pub(crate) struct ChunkReader {
    /// The last chunk read in full that may repeat: it had one text (of
    /// choice 0: content, reasoning, refusal, or the arguments of a tool
    /// call without id and name) and no `finish_reason`, so a repeat
    /// changes nothing but that text. Empty when none.
    last: Vec<u8>,
    /// What the text of `last` is.
    repeat: Repeat,
    /// The places in `last` that a repeat may fill differently: the values
    /// the reader skipped, and the text (`text` is its index here).
    free: Vec<Skipped>,
    text: usize,
    /// The values skipped in the chunk being read in full.
    skipped: Vec<Skipped>,
}

/// The kind of the one text of a remembered chunk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    #[default]
    Content,
    Reasoning,
    Refusal,
    ToolArguments(u64),
}

/// Chunks longer than this are not remembered (the copy would cost more
/// than it saves, and memory stays small).
const MAX_REMEMBERED_BYTES: usize = 4096;

impl ChunkReader {
    /// Interprets one event: its parts go to `received`.
    pub(crate) fn read_event(
        &mut self,
        event: &Event<'_>,
        received: &mut Received<'_>,
    ) -> Result<ChunkEvent, Error> {
        if event.is_error() {
            return Err(server_error(event.data));
        }
        if !event.is_message() {
            return Ok(ChunkEvent::Chunk);
        }
        let data = event.data.trim_ascii();
        if data == "[DONE]" {
            return Ok(ChunkEvent::Done);
        }
        if let Some(text) = self.repeated_text(data) {
            // All else is the remembered chunk's, already recorded.
            match self.repeat {
                Repeat::Content => received.text(0, Kind::Content, text),
                Repeat::Reasoning => received.text(0, Kind::Reasoning, text),
                Repeat::Refusal => received.text(0, Kind::Refusal, text),
                Repeat::ToolArguments(index) => received.tool_call(0, index, None, None, text),
            }
            return Ok(ChunkEvent::Chunk);
        }
        match scan::read_chunk(data, &mut self.skipped) {
            Some(chunk) => {
                self.remember(data, &chunk);
                received.chunk(&chunk);
                Ok(ChunkEvent::Chunk)
            }
            None => read_with_serde(data, received),
        }
    }

    /// The text of `data` when it repeats the remembered chunk (its body
    /// between the quotes).
    fn repeated_text<'a>(&self, data: &'a str) -> Option<Text<'a>> {
        if self.last.is_empty() {
            return None;
        }
        let (old, new) = (&self.last[..], data.as_bytes());
        // The most common repeat first: all the same but the text.
        let place = self.free[self.text];
        if new.starts_with(&old[..=place.start]) {
            let (end, escaped) = scan::string_end(new, place.start + 1)?;
            if new.get(end..)? == &old[place.end - 1..] {
                return Some(Text::of_body((data.get(place.start + 1..end)?, escaped)));
            }
        }
        let (mut old_at, mut new_at) = (0, 0);
        let (mut text, mut text_escaped) = (0..0, false);
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
                    let (end, escaped) = scan::string_end(new, new_at + 1)?;
                    if i == self.text {
                        text_escaped = escaped;
                    }
                    end + 1
                }
                Token::String => return None,
                Token::Number => scan::number_end(new, new_at)?,
            };
            if i == self.text {
                text = start + 1..new_at - 1;
            }
            old_at = place.end;
        }
        if new.get(new_at..)? != &old[old_at..] {
            return None;
        }
        Some(Text::of_body((data.get(text)?, text_escaped)))
    }

    /// Remembers `data`, just read in full as `chunk` (with the values in
    /// `self.skipped`), when later chunks may repeat it.
    fn remember(&mut self, data: &str, chunk: &Chunk<'_>) {
        self.last.clear();
        self.free.clear();
        let Some(choice) = &chunk.choice else {
            return;
        };
        if !choice.finish_reason.is_none_or(str::is_empty) {
            return;
        }
        let Some((repeat, body)) = one_text(&choice.delta) else {
            return;
        };
        if data.len() > MAX_REMEMBERED_BYTES || self.skipped.len() > scan::MAX_NOTED {
            return;
        }
        // `body` is a slice of `data`: where its string starts in it.
        let start = body.as_ptr() as usize - data.as_ptr() as usize - 1;
        let text = Skipped {
            start,
            end: start + body.len() + 2,
            token: Token::String,
        };
        // The text's place among the others, which are in order.
        self.text = self.skipped.partition_point(|s| s.start < start);
        self.repeat = repeat;
        self.free.extend_from_slice(&self.skipped);
        self.free.insert(self.text, text);
        self.last.extend_from_slice(data.as_bytes());
    }
}

/// The one text of a delta that has exactly one (as the event has it),
/// and what it is; `None` for a delta with more, or none.
fn one_text<'a>(delta: &Delta<'a>) -> Option<(Repeat, &'a str)> {
    let mut found = None;
    let mut count = 0;
    for (repeat, text) in [
        (Repeat::Content, delta.content),
        (Repeat::Reasoning, delta.reasoning_content),
        (Repeat::Reasoning, delta.reasoning),
        (Repeat::Refusal, delta.refusal),
    ] {
        if let Some(text) = text {
            count += 1;
            found = Some((repeat, text));
        }
    }
    for (position, piece) in delta.tool_calls[..delta.tool_call_count].iter().enumerate() {
        count += 1;
        if piece.id.is_some() || piece.name.is_some() {
            return None;
        }
        let index = piece.index.unwrap_or(position as u64);
        found = Some((Repeat::ToolArguments(index), piece.arguments?));
    }
    match (count, found) {
        (1, Some((repeat, text))) => Some((repeat, text.body())),
        _ => None,
    }
}

/// Interprets one event on its own (for tests and fuzzing: a stream reads
/// its events with one [`ChunkReader`]).
pub(crate) fn read_event(
    event: &Event<'_>,
    received: &mut Received<'_>,
) -> Result<ChunkEvent, Error> {
    ChunkReader::default().read_event(event, received)
}

/// The general path, for the chunks [`scan::read_chunk`] leaves to
/// serde_json: errors, usage, several choices, escapes in metadata,
/// unexpected types, invalid JSON.
fn read_with_serde(data: &str, received: &mut Received<'_>) -> Result<ChunkEvent, Error> {
    let value = parse_event(data)?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(Error::Server {
            message: error_message(error),
            body: truncate(data),
        });
    }
    let choices = value.get("choices").and_then(Value::as_array);
    let choices = choices.map(Vec::as_slice).unwrap_or_default();
    // Checked before anything is recorded: a chunk counts whole or not.
    for choice in choices {
        delta_text(choice.get("delta"), "content")?;
    }
    // A `usage` that is not token counts is metadata lost, not a failed
    // answer.
    let usage = value.get("usage").filter(|u| !u.is_null());
    if let Some(Ok(usage)) = usage.map(Usage::deserialize) {
        received.answer.usage(usage);
    }
    received.metadata(
        value.get("id").and_then(Value::as_str),
        value.get("model").and_then(Value::as_str),
        value.get("created").and_then(Value::as_u64),
        value.get("system_fingerprint").and_then(Value::as_str),
    );
    for (position, choice) in (0u64..).zip(choices) {
        // Choice 0 is the one with index 0, or the first one when the
        // server leaves `index` out.
        let index = choice
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position);
        received.answer.choice(index);
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            received.answer.finish_reason(index, reason);
        }
        let delta = choice.get("delta");
        let text = |key| {
            delta
                .and_then(|d| d.get(key))
                .and_then(Value::as_str)
                .map(Text::Plain)
        };
        received.delta(
            index,
            delta_text(delta, "content")?,
            text("reasoning_content"),
            text("reasoning"),
            text("refusal"),
        );
        let pieces = delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array);
        for (position, piece) in (0u64..).zip(pieces.into_iter().flatten()) {
            let function = piece.get("function");
            let part = |key| function.and_then(|f| f.get(key));
            // Arguments that are JSON rather than its text (Ollama's native
            // shape): their text.
            let arguments = match part("arguments") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            };
            received.tool_call(
                index,
                piece
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(position),
                piece.get("id").and_then(Value::as_str),
                part("name").and_then(Value::as_str),
                Text::Plain(&arguments),
            );
        }
    }
    Ok(ChunkEvent::Chunk)
}

/// `delta.content` (a string or null): anything else is an answer this
/// client cannot read.
fn delta_text<'v>(delta: Option<&'v Value>, key: &str) -> Result<Option<Text<'v>>, Error> {
    match delta.and_then(|d| d.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(Text::Plain(text))),
        Some(other) => Err(Error::InvalidResponse(format!(
            "delta.{key} is not a string: {}",
            truncate(&other.to_string())
        ))),
    }
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

/// What reading gives, for the checks below: the outcome, the events
/// queued and the answer.
type Outcome = (Result<ChunkEvent, String>, Events, Answer);

fn outcome(read: impl FnOnce(&mut Received<'_>) -> Result<ChunkEvent, Error>) -> Outcome {
    let (mut events, mut answer) = (Events::default(), Answer::default());
    let result = read(&mut Received {
        events: &mut events,
        answer: &mut answer,
    });
    (result.map_err(|e| e.to_string()), events, answer)
}

/// For the fuzz tests: reads `events` (type and data) in order with one
/// reader, and each with a fresh reader, and says where the two differ (in
/// result, events or answer); else how many events the first reader found
/// repeating a remembered chunk.
pub(crate) fn check_reader_memory(events: &[(&str, &str)]) -> Result<usize, String> {
    let mut reader = ChunkReader::default();
    let (mut memo_events, mut memo_answer) = (Events::default(), Answer::default());
    let (mut fresh_events, mut fresh_answer) = (Events::default(), Answer::default());
    let mut repeats = 0;
    for (i, &(event_type, data)) in events.iter().enumerate() {
        let event = Event { event_type, data };
        if event.is_message() && reader.repeated_text(data.trim_ascii()).is_some() {
            repeats += 1;
        }
        memo_events.clear();
        fresh_events.clear();
        let memo = reader.read_event(
            &event,
            &mut Received {
                events: &mut memo_events,
                answer: &mut memo_answer,
            },
        );
        let fresh = read_event(
            &event,
            &mut Received {
                events: &mut fresh_events,
                answer: &mut fresh_answer,
            },
        );
        let (memo, fresh) = (
            memo.map_err(|e| e.to_string()),
            fresh.map_err(|e| e.to_string()),
        );
        if (&memo, &memo_events, &memo_answer) != (&fresh, &fresh_events, &fresh_answer) {
            return Err(format!(
                "event {i}: with memory {memo:?} {memo_events:?} {memo_answer:?}, \
                 fresh {fresh:?} {fresh_events:?} {fresh_answer:?}"
            ));
        }
    }
    Ok(repeats)
}

/// For the differential fuzz test: `Ok(true)` when the fast reader read
/// `data` and serde_json reads the same from it (the same events, the same
/// answer), `Ok(false)` when the fast reader left it to serde_json, `Err`
/// (saying how) when they disagree.
pub(crate) fn check_fast_reader(data: &str) -> Result<bool, String> {
    let Some(chunk) = scan::read_chunk(data, &mut Vec::new()) else {
        return Ok(false);
    };
    let fast = outcome(|received| {
        received.chunk(&chunk);
        Ok(ChunkEvent::Chunk)
    });
    let slow = outcome(|received| read_with_serde(data, received));
    if fast == slow {
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
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decoder::answer::StreamMetadata;
    use crate::decoder::event::StreamEvent;

    /// Reads one event: the outcome, the content of its events, the
    /// metadata.
    fn read(data: &str) -> (Result<ChunkEvent, Error>, String, StreamMetadata) {
        let (result, events, answer) = read_all(data);
        (result, content_of(events), answer.meta)
    }

    fn read_all(data: &str) -> (Result<ChunkEvent, Error>, Events, Answer) {
        let (mut events, mut answer) = (Events::default(), Answer::default());
        let event = Event {
            event_type: "",
            data,
        };
        let result = read_event(
            &event,
            &mut Received {
                events: &mut events,
                answer: &mut answer,
            },
        );
        (result, events, answer)
    }

    fn content_of(mut events: Events) -> String {
        let mut content = String::new();
        while let Some(at) = events.take() {
            if let StreamEvent::Content(text) = events.event(at) {
                content.push_str(text);
            }
        }
        content
    }

    fn all_events(mut events: Events) -> Vec<String> {
        let mut all = Vec::new();
        while let Some(at) = events.take() {
            all.push(format!("{:?}", events.event(at)));
        }
        all
    }

    #[test]
    fn content_of_choice_zero_only() {
        let (r, c, _) = read(
            r#"{"choices":[{"index":1,"delta":{"content":"B"}},{"index":0,"delta":{"content":"A\n\"q\""}}]}"#,
        );
        assert_eq!(r.unwrap(), ChunkEvent::Chunk);
        assert_eq!(c, "A\n\"q\"");
    }

    #[test]
    fn every_kind_of_delta_in_order() {
        let data = r#"{"choices":[{"delta":{"content":"C","reasoning":"R2","reasoning_content":"R","refusal":"no","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":"}},{"index":3,"function":{"arguments":{"b":1}}}]}}]}"#;
        let (r, events, answer) = read_all(data);
        r.unwrap();
        assert_eq!(
            all_events(events),
            [
                r#"Reasoning("R")"#,
                r#"Content("C")"#,
                r#"Refusal("no")"#,
                r#"ToolCall { index: 0, id: Some("call_1"), name: Some("f"), arguments: "{\"a\":" }"#,
                r#"ToolCall { index: 3, id: None, name: None, arguments: "{\"b\":1}" }"#,
            ]
        );
        let message = &answer.completion().choices[0].message;
        assert_eq!(message.extra["reasoning_content"], "R");
        assert_eq!(
            message.extra["tool_calls"][1]["function"]["arguments"],
            "{\"b\":1}"
        );
        // Without reasoning_content, `reasoning` is the reasoning.
        let (_, events, _) =
            read_all(r#"{"choices":[{"delta":{"reasoning_content":"","reasoning":"R2"}}]}"#);
        assert_eq!(all_events(events), [r#"Reasoning("R2")"#]);
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
            assert_eq!(r.unwrap(), ChunkEvent::Chunk, "{data}");
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
        let event = Event {
            event_type: "error",
            data: "upstream went away",
        };
        let r = read_event(
            &event,
            &mut Received {
                events: &mut Events::default(),
                answer: &mut Answer::default(),
            },
        );
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
        assert_eq!((r.unwrap(), c.as_str()), (ChunkEvent::Chunk, "A"));
        assert_eq!(meta, StreamMetadata::default());
        // A repeated key: the last one counts.
        let (r, c, meta) = read(r#"{"id":"x","id":"y","choices":[{"delta":{"content":"B"}}]}"#);
        assert_eq!((r.unwrap(), c.as_str()), (ChunkEvent::Chunk, "B"));
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
