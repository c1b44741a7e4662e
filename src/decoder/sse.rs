//! A Server-Sent Events decoder: bytes in, events out, no I/O.
//!
//! It follows the parsing rules of the HTML standard ("9.2.6 Interpreting an
//! event stream"): lines end in LF, CRLF or a lone CR; a line starting with
//! `:` is a comment; `field: value` loses one optional space after the
//! colon; several `data` lines join with `\n`; a blank line dispatches the
//! event, unless its data is empty. Two additions for real servers:
//!
//! - an `error:` line (older llama.cpp servers) makes an `error` event of its
//!   value, as `event: error` + `data: value` would;
//! - [`SseDecoder::finish`] dispatches an event still pending at the end of
//!   the input, so a final `data: [DONE]` with no blank line after it counts.
//!
//! Bytes are decoded as UTF-8 one complete line at a time, so a character
//! split between two inputs is joined before it is decoded; invalid bytes
//! become U+FFFD, as the standard asks.
//!
//! Memory is bounded: an event (or a line) larger than the limit given to
//! [`SseDecoder::new`] is an error, and the decoder's buffers are reused
//! from one event to the next.

use std::borrow::Cow;
use std::fmt;

/// One dispatched event. It borrows the decoder until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event:` field; `""` when none was given (a `message` event).
    pub event_type: &'a str,
    /// The `data:` lines, joined with `\n`.
    pub data: &'a str,
}

impl Event<'_> {
    /// Whether the server marked this event as an error (`event: error`, or
    /// an `error:` line).
    pub fn is_error(&self) -> bool {
        self.event_type == "error"
    }

    /// Whether this is a plain data event (no type, or `message`).
    pub fn is_message(&self) -> bool {
        self.event_type.is_empty() || self.event_type == "message"
    }
}

/// An event or a line grew past the decoder's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    /// The limit in bytes.
    pub limit: usize,
}

impl fmt::Display for EventTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a server-sent event is larger than the cap of {} bytes \
             (raise it with ModelApiBuilder::max_event_bytes)",
            self.limit
        )
    }
}

impl std::error::Error for EventTooLarge {}

/// Incremental SSE decoder.
///
/// Feed it bytes with [`decode`](Self::decode) as they arrive, in pieces of
/// any size; it returns how much it consumed and, when a blank line
/// completed one, the event. Call [`finish`](Self::finish) at the end of the
/// input.
///
/// ```
/// use modelapi::sse::SseDecoder;
///
/// let mut decoder = SseDecoder::new(1 << 20);
/// let input = b": keep-alive\r\ndata: {\"a\":1}\r\n\r\ndata: [DONE]";
/// let (used, event) = decoder.decode(input).unwrap();
/// assert_eq!(event.unwrap().data, "{\"a\":1}");
/// let (_, event) = decoder.decode(&input[used..]).unwrap();
/// assert!(event.is_none()); // no blank line after [DONE] yet
/// assert_eq!(decoder.finish().unwrap().unwrap().data, "[DONE]");
/// ```
#[derive(Debug)]
pub struct SseDecoder {
    /// An incomplete line carried over from the previous input.
    line: Vec<u8>,
    /// The data of the event being built.
    data: String,
    /// The type of the event being built.
    event_type: String,
    /// Whether a `data` field was seen for the event being built (so the
    /// next one is joined with `\n`, even when this one was empty).
    has_data: bool,
    /// The last call returned an event: clear it before going on.
    dispatched: bool,
    /// The last line ended with CR: an LF right after it ends the same line.
    after_cr: bool,
    max_event_bytes: usize,
}

impl SseDecoder {
    /// A decoder that refuses events and lines longer than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> SseDecoder {
        SseDecoder {
            line: Vec::new(),
            data: String::new(),
            event_type: String::new(),
            has_data: false,
            dispatched: false,
            after_cr: false,
            max_event_bytes,
        }
    }

    /// Decodes `input` up to the end of the first complete event.
    ///
    /// Returns the number of bytes consumed and the event, if one was
    /// completed; feed the rest of `input` (from the returned offset) in the
    /// next call. Without an event, all of `input` was consumed.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Event<'a>>), EventTooLarge> {
        self.clear_dispatched();
        let mut pos = 0;
        while pos < input.len() {
            if self.after_cr {
                self.after_cr = false;
                if input[pos] == b'\n' {
                    pos += 1;
                    continue;
                }
            }
            let rest = &input[pos..];
            let Some(end) = find_line_end(rest) else {
                if self.line.len() + rest.len() > self.max_event_bytes {
                    return Err(self.too_large());
                }
                self.line.extend_from_slice(rest);
                return Ok((input.len(), None));
            };
            self.after_cr = rest[end] == b'\r';
            if self.line.len() + end > self.max_event_bytes {
                return Err(self.too_large());
            }
            if self.line.is_empty() && !self.has_data && self.event_type.is_empty() {
                if let Some((data, used, after_cr)) = single_data_event(rest, end) {
                    self.after_cr = after_cr;
                    return Ok((
                        pos + used,
                        Some(Event {
                            event_type: "",
                            data,
                        }),
                    ));
                }
            }
            let dispatch = if self.line.is_empty() {
                self.process_line(&rest[..end])?
            } else {
                self.take_carried_line(&rest[..end])?
            };
            pos += end + 1;
            if dispatch {
                return Ok((pos, Some(self.dispatch())));
            }
        }
        Ok((pos, None))
    }

    /// Ends the input: a last line without a line end is processed, and an
    /// event still waiting for its blank line is dispatched.
    pub fn finish(&mut self) -> Result<Option<Event<'_>>, EventTooLarge> {
        self.clear_dispatched();
        self.after_cr = false;
        if !self.line.is_empty() && self.take_carried_line(&[])? {
            return Ok(Some(self.dispatch()));
        }
        if self.data.is_empty() && !self.has_error_type() {
            return Ok(None);
        }
        Ok(Some(self.dispatch()))
    }

    /// Whether the event being built is an error event (as
    /// [`Event::is_error`] tells).
    fn has_error_type(&self) -> bool {
        self.event_type == "error"
    }

    /// The data of the event being built, not yet dispatched.
    pub fn pending_data(&self) -> &str {
        if self.dispatched {
            ""
        } else {
            &self.data
        }
    }

    fn clear_dispatched(&mut self) {
        if self.dispatched {
            self.dispatched = false;
            self.reset_event();
        }
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.event_type.clear();
        self.has_data = false;
    }

    fn dispatch(&mut self) -> Event<'_> {
        self.dispatched = true;
        Event {
            event_type: &self.event_type,
            data: &self.data,
        }
    }

    fn too_large(&self) -> EventTooLarge {
        EventTooLarge {
            limit: self.max_event_bytes,
        }
    }

    /// Completes the carried-over line with `tail` and processes it.
    fn take_carried_line(&mut self, tail: &[u8]) -> Result<bool, EventTooLarge> {
        if self.line.len() + tail.len() > self.max_event_bytes {
            return Err(self.too_large());
        }
        let mut line = std::mem::take(&mut self.line);
        line.extend_from_slice(tail);
        let result = self.process_line(&line);
        line.clear();
        self.line = line; // keep the allocation for the next long line
        result
    }

    /// Processes one complete line; returns whether it dispatches an event.
    fn process_line(&mut self, line: &[u8]) -> Result<bool, EventTooLarge> {
        if line.is_empty() {
            // The spec drops an event without data; an error event is kept
            // (an error is never skipped, even one that says nothing).
            if self.data.is_empty() && !self.has_error_type() {
                self.reset_event();
                return Ok(false);
            }
            return Ok(true);
        }
        if line[0] == b':' {
            return Ok(false);
        }
        // Valid UTF-8 (the usual case) is checked by the fast validator;
        // only a line with invalid bytes takes the replacing decoder.
        let text: Cow<'_, str> = match std::str::from_utf8(line) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line),
        };
        let (field, value) = match text.find(':') {
            Some(colon) => {
                let value = &text[colon + 1..];
                (&text[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&text[..], ""),
        };
        match field {
            "data" => self.push_data(value)?,
            "error" => {
                self.event_type.clear();
                self.event_type.push_str("error");
                self.push_data(value)?;
            }
            "event" => {
                // Decoding can grow a line (an invalid byte becomes a
                // three-byte U+FFFD): the cap holds for the decoded text.
                if value.len() > self.max_event_bytes {
                    return Err(self.too_large());
                }
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            // `id` and `retry` are valid fields that a client of a single
            // request has no use for; unknown fields are ignored by the rules.
            _ => {}
        }
        Ok(false)
    }

    fn push_data(&mut self, value: &str) -> Result<(), EventTooLarge> {
        if self.data.len() + value.len() + 1 > self.max_event_bytes {
            return Err(self.too_large());
        }
        if self.has_data {
            self.data.push('\n');
        }
        self.data.push_str(value);
        self.has_data = true;
        Ok(())
    }
}

/// The usual event, `data: <value>` and a blank line, when both lines are
/// in `rest` (the first ending at `end`): its data, borrowed in place (no
/// copy), the bytes it spans, and whether it ended with a CR. `None` sends
/// the line down the general path.
fn single_data_event(rest: &[u8], end: usize) -> Option<(&str, usize, bool)> {
    let value = rest[..end].strip_prefix(b"data:")?;
    let value = value.strip_prefix(b" ").unwrap_or(value);
    let mut next = end + 1;
    if rest[end] == b'\r' {
        match rest.get(next) {
            Some(b'\n') => next += 1,
            None => return None, // a CRLF may be split: let the general path see
            _ => {}
        }
    }
    let blank_line_end = *rest.get(next)?;
    if blank_line_end != b'\n' && blank_line_end != b'\r' {
        return None;
    }
    let data = std::str::from_utf8(value).ok().filter(|d| !d.is_empty())?;
    Some((data, next + 1, blank_line_end == b'\r'))
}

/// The position of the first `\n` or `\r` in `bytes`: this search runs
/// over every byte of a stream, so it is memchr's (vector instructions).
fn find_line_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr2(b'\n', b'\r', bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes, then finishes.
    fn events(input: &[u8], piece: usize) -> Vec<(String, String)> {
        let mut decoder = SseDecoder::new(1 << 20);
        let mut out = Vec::new();
        for part in input.chunks(piece.max(1)) {
            let mut part = part;
            loop {
                let (used, event) = decoder.decode(part).unwrap();
                if let Some(e) = event {
                    out.push((e.event_type.to_string(), e.data.to_string()));
                }
                part = &part[used..];
                if part.is_empty() {
                    break;
                }
            }
        }
        if let Some(e) = decoder.finish().unwrap() {
            out.push((e.event_type.to_string(), e.data.to_string()));
        }
        out
    }

    fn data(input: &str) -> Vec<String> {
        events(input.as_bytes(), usize::MAX)
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    #[test]
    fn line_ends_lf_crlf_and_lone_cr() {
        assert_eq!(data("data: a\n\ndata: b\n\n"), ["a", "b"]);
        assert_eq!(data("data: a\r\n\r\ndata: b\r\n\r\n"), ["a", "b"]);
        assert_eq!(data("data: a\r\rdata: b\r\r"), ["a", "b"]);
        assert_eq!(data("data: a\r\n\ndata: b\n\r\n"), ["a", "b"]);
    }

    #[test]
    fn crlf_split_between_inputs_is_one_line_end() {
        let mut decoder = SseDecoder::new(1024);
        assert_eq!(decoder.decode(b"data: a\r").unwrap(), (8, None));
        // The LF completes the CR's line end; only then the blank line.
        let (used, event) = decoder.decode(b"\n\r\n").unwrap();
        assert_eq!(used, 2);
        assert_eq!(event.unwrap().data, "a");
        // The last LF belongs to the CR before it: not another blank line.
        assert_eq!(decoder.decode(b"\n").unwrap(), (1, None));
    }

    #[test]
    fn comments_and_optional_space() {
        let input = ": OPENROUTER PROCESSING\n\n:\ndata:x\ndata:  y\n\n";
        assert_eq!(data(input), ["x\n y"]);
    }

    #[test]
    fn multiple_data_lines_join_with_newline() {
        assert_eq!(data("data: 1\ndata: 2\ndata\ndata: 3\n\n"), ["1\n2\n\n3"]);
    }

    #[test]
    fn event_id_and_retry_are_accepted() {
        let got = events(b"event: ping\nid: 7\nretry: 100\ndata: p\n\n", 3);
        assert_eq!(got, [("ping".to_string(), "p".to_string())]);
    }

    #[test]
    fn empty_data_does_not_dispatch_and_resets_the_type() {
        let got = events(b"event: ping\n\ndata:\n\ndata: x\n\n", 1);
        assert_eq!(got, [(String::new(), "x".to_string())]);
    }

    #[test]
    fn an_error_event_is_dispatched_even_without_data() {
        let error = ("error".to_string(), String::new());
        let x = (String::new(), "x".to_string());
        for input in [
            &b"event: error\n\ndata: x\n\n"[..],
            b"event: error\ndata:\n\ndata: x\n\n",
            b"error:\n\ndata: x\n\n",
        ] {
            assert_eq!(events(input, 1), [error.clone(), x.clone()]);
        }
        assert_eq!(events(b"event: error\n", 1), [error]);
    }

    #[test]
    fn error_line_is_an_error_event() {
        let got = events(b"error: {\"message\":\"boom\"}\n\n", 5);
        assert_eq!(
            got,
            [("error".to_string(), "{\"message\":\"boom\"}".to_string())]
        );
    }

    #[test]
    fn pending_event_is_dispatched_at_the_end() {
        assert_eq!(data("data: a\n\ndata: [DONE]\n"), ["a", "[DONE]"]);
        assert_eq!(data("data: a\n\ndata: [DONE]"), ["a", "[DONE]"]);
    }

    #[test]
    fn utf8_split_between_inputs_is_not_mangled() {
        let input = "data: héllo wörld ✓ 🦀\n\n".as_bytes();
        for piece in 1..input.len() {
            assert_eq!(
                events(input, piece)[0].1,
                "héllo wörld ✓ 🦀",
                "piece {piece}"
            );
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(events(b"data: a\xffb\n\n", 2)[0].1, "a\u{fffd}b");
    }

    #[test]
    fn event_and_line_caps() {
        let mut decoder = SseDecoder::new(16);
        let err = decoder.decode(&[b'x'; 17]).unwrap_err();
        assert_eq!(err.limit, 16);
        let mut decoder = SseDecoder::new(16);
        assert!(decoder.decode(b"data: 0123456789\n").is_ok());
        assert!(decoder.decode(b"data: 0123456789\n").is_err());
    }

    #[test]
    fn line_end_search() {
        let mut text = vec![b'x'; 40];
        assert_eq!(find_line_end(&text), None);
        for at in 0..40 {
            for end in [b'\n', b'\r'] {
                text[at] = end;
                assert_eq!(find_line_end(&text), Some(at));
                assert_eq!(find_line_end(&text[..at]), None);
                text[at] = b'x';
            }
        }
        // Bytes that differ from LF or CR by one bit are not line ends.
        assert_eq!(
            find_line_end(&[0x0b, 0x0c, 0x8a, 0x8d, 0x0e, 0x09, 0x00, 0xff, 0x2a]),
            None
        );
    }

    #[test]
    fn the_cap_holds_for_decoded_text() {
        // 13 bytes in, but six invalid bytes decode to 18 bytes of U+FFFD.
        let mut decoder = SseDecoder::new(16);
        assert!(decoder
            .decode(b"event: \xff\xff\xff\xff\xff\xff\n")
            .is_err());
        // A line that ends within one input is held to the cap too.
        let mut decoder = SseDecoder::new(16);
        assert!(decoder.decode(b": 0123456789abcdef\n").is_err());
    }

    #[test]
    fn buffers_are_reused_not_grown() {
        let mut decoder = SseDecoder::new(1 << 20);
        let event = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
        for _ in 0..1000 {
            let (used, e) = decoder.decode(event).unwrap();
            assert_eq!(used, event.len());
            assert!(e.is_some());
        }
        assert!(decoder.data.capacity() < 256);
    }

    /// The same stream cut into random pieces gives the same events.
    #[test]
    fn random_splits_give_the_same_events() {
        let mut input = Vec::new();
        for i in 0..50 {
            let end = ["\n", "\r\n", "\r"][i % 3];
            input
                .extend_from_slice(format!(": c{i}{end}data: {{\"n\":\"é{i}✓\"}}{end}").as_bytes());
            if i % 7 == 0 {
                input.extend_from_slice(format!("data: line2{end}").as_bytes());
            }
            input.extend_from_slice(end.as_bytes());
        }
        let whole = events(&input, usize::MAX);
        assert_eq!(whole.len(), 50);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..500 {
            let mut decoder = SseDecoder::new(1 << 20);
            let mut got = Vec::new();
            let mut rest: &[u8] = &input;
            while !rest.is_empty() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let cut = 1 + (seed % 40) as usize;
                let (mut piece, tail) = rest.split_at(cut.min(rest.len()));
                rest = tail;
                while !piece.is_empty() {
                    let (used, e) = decoder.decode(piece).unwrap();
                    if let Some(e) = e {
                        got.push((e.event_type.to_string(), e.data.to_string()));
                    }
                    piece = &piece[used..];
                }
            }
            if let Some(e) = decoder.finish().unwrap() {
                got.push((e.event_type.to_string(), e.data.to_string()));
            }
            assert_eq!(got, whole);
        }
    }

    /// The same stream split at every pair of points gives the same events.
    #[test]
    fn any_split_gives_the_same_events() {
        let input: &[u8] = b": hi\r\ndata: {\"a\":\"\xc3\xa9\"}\r\n\r\nevent: error\ndata: x\ndata: y\r\rdata: [DONE]\n\n";
        let whole = events(input, usize::MAX);
        assert_eq!(whole.len(), 3);
        for i in 0..input.len() {
            for j in i..input.len() {
                let mut decoder = SseDecoder::new(1 << 20);
                let mut got = Vec::new();
                for part in [&input[..i], &input[i..j], &input[j..]] {
                    let mut part = part;
                    while !part.is_empty() {
                        let (used, e) = decoder.decode(part).unwrap();
                        if let Some(e) = e {
                            got.push((e.event_type.to_string(), e.data.to_string()));
                        }
                        part = &part[used..];
                    }
                }
                if let Some(e) = decoder.finish().unwrap() {
                    got.push((e.event_type.to_string(), e.data.to_string()));
                }
                assert_eq!(got, whole, "split at {i} and {j}");
            }
        }
    }
}
