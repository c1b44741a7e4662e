//! A one-pass reader for the usual `chat.completion.chunk`, the event that
//! makes up nearly every stream.
//!
//! serde_json spends most of a chunk's time in its general machinery
//! (visitors, seeds, setting up each string) rather than in the bytes. This
//! reader walks the event once, validates its JSON as strictly as
//! serde_json does, and picks out what the stream needs: `id`, `model`,
//! `created`, `system_fingerprint`, and choice 0's `finish_reason` and
//! delta (`content`, `reasoning_content`, `reasoning`, `refusal`,
//! `tool_calls`).
//!
//! It handles the usual shape only. On anything else it gives up (`None`)
//! and the caller parses the event with serde_json, which decides and words
//! the error: a key or a metadata string with escapes, a non-null `usage` or
//! `error`, a choice other than choice 0, more than [`MAX_TOOL_PIECES`]
//! tool-call pieces, a repeated field, a value of an unexpected type, deep
//! nesting, a
//! lone surrogate escape (`\ud800`) or a number out of `f64`'s range (which
//! serde_json refuses), or invalid JSON. So where this reader answers,
//! serde_json answers the same; `tests/fuzz.rs` checks that differentially.
//!
//! It also notes where the values it skipped are (the strings and numbers
//! the stream has no use for), so that a stream's
//! [`ChunkReader`](super::ChunkReader) can tell a later chunk that differs
//! from this one only there and in its content.

/// What the stream needs from one chunk, borrowed from the event's text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    pub id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub created: Option<u64>,
    pub system_fingerprint: Option<&'a str>,
    /// The one choice, of index 0 (this reader leaves chunks with other
    /// choices to serde_json).
    pub choice: Option<Choice<'a>>,
}

/// Choice 0 of a chunk.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Choice<'a> {
    pub finish_reason: Option<&'a str>,
    pub delta: Delta<'a>,
}

/// The texts of a choice's `delta`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Delta<'a> {
    pub content: Option<Text<'a>>,
    pub reasoning_content: Option<Text<'a>>,
    pub reasoning: Option<Text<'a>>,
    pub refusal: Option<Text<'a>>,
    /// The pieces of `tool_calls`, in order: the first `tool_call_count`.
    pub tool_calls: [ToolPiece<'a>; MAX_TOOL_PIECES],
    pub tool_call_count: usize,
}

/// One element of `delta.tool_calls`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ToolPiece<'a> {
    pub index: Option<u64>,
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub arguments: Option<Text<'a>>,
}

/// More tool-call pieces in one chunk than this are left to serde_json.
pub(crate) const MAX_TOOL_PIECES: usize = 4;

/// A text of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text<'a> {
    /// As the event has it: the JSON text between the string's quotes,
    /// with escapes not yet resolved.
    Escaped(&'a str),
    /// The text itself: serde_json's, or a string without escapes.
    Plain(&'a str),
}

impl<'a> Text<'a> {
    /// The text of a string's body as the event has it, and whether it
    /// has escapes.
    pub(crate) fn of_body((body, escaped): (&'a str, bool)) -> Text<'a> {
        if escaped {
            Text::Escaped(body)
        } else {
            Text::Plain(body)
        }
    }

    /// The body as the event has it (a text this reader read).
    pub(crate) fn body(self) -> &'a str {
        match self {
            Text::Escaped(body) | Text::Plain(body) => body,
        }
    }
}

/// A value the reader skipped because the stream has no use for it (a
/// string or a number): another chunk may hold another value there and
/// still mean the same to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Skipped {
    /// Where the token is in the event: `start..end`, quotes included.
    pub start: usize,
    pub end: usize,
    pub token: Token,
}

/// The kind of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    String,
    Number,
}

/// Skipping more values than this, the reader stops noting them (and the
/// stream does not remember the chunk).
pub(crate) const MAX_NOTED: usize = 32;

/// Reads `data` (a trimmed event) when it is a chunk of the usual shape;
/// `None` sends it to serde_json. The values it skipped go to `skipped`
/// (cleared first; at most [`MAX_NOTED`] + 1 of them, then it stops).
pub(crate) fn read_chunk<'a>(data: &'a str, skipped: &mut Vec<Skipped>) -> Option<Chunk<'a>> {
    skipped.clear();
    let mut reader = Reader {
        text: data,
        bytes: data.as_bytes(),
        pos: 0,
        skipped,
    };
    let mut chunk = Chunk::default();
    let mut seen = Seen::default();
    reader.object(|r, key| {
        match key {
            Key::Plain(b"id") => {
                seen.first(ID)?;
                chunk.id = r.plain_string_or_null()?;
            }
            Key::Plain(b"model") => {
                seen.first(MODEL)?;
                chunk.model = r.plain_string_or_null()?;
            }
            Key::Plain(b"choices") => {
                seen.first(CHOICES)?;
                chunk.choice = r.choices()?;
            }
            // Skipped (so a later chunk may hold another value there) and
            // kept: the answer takes the first one.
            Key::Plain(b"created") => {
                seen.first(CREATED)?;
                let start = r.pos_after_whitespace();
                r.skip_value(0)?;
                chunk.created = Some(plain_u64(&r.bytes[start..r.pos])?);
            }
            Key::Plain(b"system_fingerprint") => {
                seen.first(FINGERPRINT)?;
                let start = r.pos_after_whitespace();
                match r.peek()? {
                    b'"' => {
                        r.skip_value(0)?;
                        let text = r.text.get(start + 1..r.pos - 1)?;
                        if text.contains('\\') {
                            return None;
                        }
                        chunk.system_fingerprint = Some(text);
                    }
                    _ => r.null()?,
                }
            }
            // Left to serde_json unless null: rare, and an error needs
            // its words.
            Key::Plain(b"usage") => {
                seen.first(USAGE)?;
                r.null()?;
            }
            Key::Plain(b"error") => {
                seen.first(ERROR)?;
                r.null()?;
            }
            Key::Plain(_) => r.skip_value(0)?,
            Key::Escaped => return None,
        }
        Some(())
    })?;
    reader.skip_whitespace();
    (reader.pos == data.len()).then_some(chunk)
}

/// How deep skipped values may nest before the reader gives up (serde_json
/// itself allows 128).
const MAX_DEPTH: u32 = 32;

/// Longer numbers are left to serde_json, which refuses those past `f64`'s
/// range.
const MAX_NUMBER_DIGITS: usize = 200;

/// A key of an object: its text, unless it has escapes (then it might
/// spell a field name in another way, and the reader gives up on it where
/// field names matter).
enum Key<'a> {
    Plain(&'a [u8]),
    Escaped,
}

/// The known fields of one object seen so far, a bit each: serde rejects
/// a repeated field.
#[derive(Default)]
struct Seen(u8);

impl Seen {
    fn first(&mut self, field: u8) -> Option<()> {
        let repeated = self.0 & field != 0;
        self.0 |= field;
        (!repeated).then_some(())
    }
}

// The bits of `Seen`, for a chunk, a choice and a delta.
const ID: u8 = 1;
const MODEL: u8 = 2;
const CHOICES: u8 = 4;
const USAGE: u8 = 8;
const ERROR: u8 = 16;
const CREATED: u8 = 32;
const FINGERPRINT: u8 = 64;
const INDEX: u8 = 1;
const DELTA: u8 = 2;
const FINISH_REASON: u8 = 4;
const CONTENT: u8 = 1;
const REASONING_CONTENT: u8 = 2;
const REASONING: u8 = 4;
const REFUSAL: u8 = 8;
const TOOL_CALLS: u8 = 16;
const TOOL_ID: u8 = 2;
const TOOL_FUNCTION: u8 = 4;
const NAME: u8 = 1;
const ARGUMENTS: u8 = 2;

struct Reader<'a, 's> {
    text: &'a str,
    /// `text`'s bytes.
    bytes: &'a [u8],
    pos: usize,
    skipped: &'s mut Vec<Skipped>,
}

impl<'a> Reader<'a, '_> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Where the next value starts, after whitespace.
    fn pos_after_whitespace(&mut self) -> usize {
        self.skip_whitespace();
        self.pos
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let next = *self.bytes.get(self.pos)?;
        // Compact JSON, the usual kind, has no whitespace to skip.
        if next > b' ' {
            return Some(next);
        }
        self.skip_whitespace();
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` (after whitespace) if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// An object, handing each field to `field`, which must consume its
    /// value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, Key<'a>) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return None;
            }
            let (key, escaped) = self.string_bytes()?;
            self.expect(b':')?;
            field(
                self,
                if escaped {
                    Key::Escaped
                } else {
                    Key::Plain(key)
                },
            )?;
            if !self.eat(b',') {
                return self.expect(b'}');
            }
        }
    }

    /// An array, handing each element to `element`, which must consume it.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            element(self)?;
            if !self.eat(b',') {
                return self.expect(b']');
            }
        }
    }

    /// The string whose opening quote is at the current position: its text
    /// between the quotes, and whether it has escapes.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        let start = self.pos + 1;
        let (bytes, escaped) = self.string_bytes()?;
        // Both ends are ASCII quotes, so char boundaries.
        let text = self.text.get(start..start + bytes.len())?;
        Some((text, escaped))
    }

    /// [`string`](Self::string) as bytes, for keys and skipped values:
    /// no UTF-8 boundary checks.
    #[inline(always)]
    fn string_bytes(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.pos + 1;
        let (end, escaped) = string_end(self.bytes, start)?;
        self.pos = end + 1;
        Some((&self.bytes[start..end], escaped))
    }

    /// A string without escapes, or `null`.
    fn plain_string_or_null(&mut self) -> Option<Option<&'a str>> {
        match self.peek()? {
            b'n' => self.null().map(|()| None),
            b'"' => match self.string()? {
                (text, false) => Some(Some(text)),
                (_, true) => None,
            },
            _ => None,
        }
    }

    fn null(&mut self) -> Option<()> {
        self.literal("null")
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.skip_whitespace();
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word.as_bytes()).then(|| self.pos = end)
    }

    /// Any JSON value, validated and skipped; its strings and numbers are
    /// noted in `skipped`.
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        let first = self.peek()?;
        let start = self.pos;
        let token = match first {
            b'"' => {
                self.string_bytes()?;
                Token::String
            }
            b'-' | b'0'..=b'9' => {
                self.pos = number_end(self.bytes, start)?;
                Token::Number
            }
            b'{' if depth < MAX_DEPTH => return self.object(|r, _| r.skip_value(depth + 1)),
            b'[' if depth < MAX_DEPTH => return self.array(|r| r.skip_value(depth + 1)),
            b't' => return self.literal("true"),
            b'f' => return self.literal("false"),
            b'n' => return self.null(),
            _ => return None,
        };
        if self.skipped.len() <= MAX_NOTED {
            self.skipped.push(Skipped {
                start,
                end: self.pos,
                token,
            });
        }
        Some(())
    }

    /// `choices`: `null`, or an array of at most one choice, of index 0
    /// (or none): a chunk with other choices is left to serde_json.
    fn choices(&mut self) -> Option<Option<Choice<'a>>> {
        if self.peek()? == b'n' {
            return self.null().map(|()| None);
        }
        let mut found = None;
        self.array(|r| {
            let (index, choice) = r.choice()?;
            if found.is_some() || index.unwrap_or(0) != 0 {
                return None;
            }
            found = Some(choice);
            Some(())
        })?;
        Some(found)
    }

    /// One choice object: its `index` and what the stream needs of it.
    fn choice(&mut self) -> Option<(Option<u64>, Choice<'a>)> {
        let mut index = None;
        let mut choice = Choice::default();
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                Key::Plain(b"index") => {
                    seen.first(INDEX)?;
                    index = r.index()?;
                }
                Key::Plain(b"delta") => {
                    seen.first(DELTA)?;
                    r.delta(&mut choice.delta)?;
                }
                Key::Plain(b"finish_reason") => {
                    seen.first(FINISH_REASON)?;
                    choice.finish_reason = r.plain_string_or_null()?;
                }
                Key::Plain(_) => r.skip_value(0)?,
                Key::Escaped => return None,
            }
            Some(())
        })?;
        Some((index, choice))
    }

    /// `index`: `null` or an unsigned integer written plainly.
    fn index(&mut self) -> Option<Option<u64>> {
        if self.peek()? == b'n' {
            return self.null().map(|()| None);
        }
        let bytes = self.bytes;
        let end = digits_end(bytes, self.pos);
        if matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = plain_u64(&bytes[self.pos..end])?;
        self.pos = end;
        Some(Some(value))
    }

    /// `delta`: `null`, or an object whose texts are strings or `null`
    /// and whose `tool_calls` is `null` or an array of pieces.
    fn delta(&mut self, delta: &mut Delta<'a>) -> Option<()> {
        if self.peek()? == b'n' {
            return self.null();
        }
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                Key::Plain(b"content") => {
                    seen.first(CONTENT)?;
                    delta.content = r.text_or_null()?;
                }
                Key::Plain(b"reasoning_content") => {
                    seen.first(REASONING_CONTENT)?;
                    delta.reasoning_content = r.text_or_null()?;
                }
                Key::Plain(b"reasoning") => {
                    seen.first(REASONING)?;
                    delta.reasoning = r.text_or_null()?;
                }
                Key::Plain(b"refusal") => {
                    seen.first(REFUSAL)?;
                    delta.refusal = r.text_or_null()?;
                }
                Key::Plain(b"tool_calls") => {
                    seen.first(TOOL_CALLS)?;
                    if r.peek()? == b'n' {
                        return r.null();
                    }
                    r.array(|r| {
                        let piece = delta.tool_calls.get_mut(delta.tool_call_count)?;
                        *piece = r.tool_piece()?;
                        delta.tool_call_count += 1;
                        Some(())
                    })?;
                }
                Key::Plain(_) => r.skip_value(0)?,
                Key::Escaped => return None,
            }
            Some(())
        })
    }

    /// One element of `tool_calls`: `{"index", "id", "type", "function":
    /// {"name", "arguments"}}`, each part optional.
    fn tool_piece(&mut self) -> Option<ToolPiece<'a>> {
        let mut piece = ToolPiece::default();
        let mut seen = Seen::default();
        self.object(|r, key| {
            match key {
                Key::Plain(b"index") => {
                    seen.first(INDEX)?;
                    piece.index = r.index()?;
                }
                Key::Plain(b"id") => {
                    seen.first(TOOL_ID)?;
                    piece.id = r.plain_string_or_null()?;
                }
                Key::Plain(b"function") => {
                    seen.first(TOOL_FUNCTION)?;
                    if r.peek()? == b'n' {
                        return r.null();
                    }
                    let mut seen = Seen::default();
                    r.object(|r, key| {
                        match key {
                            Key::Plain(b"name") => {
                                seen.first(NAME)?;
                                piece.name = r.plain_string_or_null()?;
                            }
                            Key::Plain(b"arguments") => {
                                seen.first(ARGUMENTS)?;
                                piece.arguments = r.text_or_null()?;
                            }
                            Key::Plain(_) => r.skip_value(0)?,
                            Key::Escaped => return None,
                        }
                        Some(())
                    })?;
                }
                Key::Plain(_) => r.skip_value(0)?,
                Key::Escaped => return None,
            }
            Some(())
        })?;
        Some(piece)
    }

    /// A string or `null`: the string's body as the event has it, which
    /// is its text when it has no escapes.
    fn text_or_null(&mut self) -> Option<Option<Text<'a>>> {
        match self.peek()? {
            b'n' => self.null().map(|()| None),
            b'"' => Some(Some(Text::of_body(self.string()?))),
            _ => None,
        }
    }
}

/// The value of an unsigned integer written plainly (no sign, no leading
/// zero, at most 19 digits); `None` for anything else.
fn plain_u64(digits: &[u8]) -> Option<u64> {
    match digits {
        [] | [b'0', _, ..] => return None,
        _ if digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) => return None,
        _ => {}
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// The position of the closing quote of the string whose text begins at
/// `start`, and whether the text has escapes; `None` if the string is
/// invalid or does not end.
#[inline(always)]
pub(crate) fn string_end(bytes: &[u8], start: usize) -> Option<(usize, bool)> {
    let end = find_string_special(bytes, start)?;
    // The usual string has no escapes: it ends at the first special byte.
    if bytes[end] == b'"' {
        return Some((end, false));
    }
    Some((escaped_string_end(bytes, end)?, true))
}

/// The position of the closing quote of a string, going on from `at`, a
/// special byte inside it; `None` if the string is invalid.
fn escaped_string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        match bytes[at] {
            b'"' => return Some(at),
            b'\\' => at += escape_len(&bytes[at..])?,
            // A control character, which JSON strings may not hold.
            _ => return None,
        }
        at = find_string_special(bytes, at)?;
    }
}

/// Where the number that begins at `start` ends, by JSON's grammar:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; `None` if there
/// is no number there, or one that may be past `f64`'s range (which
/// serde_json refuses): an exponent of over two digits, or over 200 digits
/// before it.
pub(crate) fn number_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + usize::from(bytes.get(start) == Some(&b'-'));
    match bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits_end(bytes, at),
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        let end = digits_end(bytes, at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if at - start > MAX_NUMBER_DIGITS {
        return None;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        let end = digits_end(bytes, at);
        if end == at || end - at > 2 {
            return None;
        }
        at = end;
    }
    Some(at)
}

/// Where the run of ASCII digits starting at `at` ends.
fn digits_end(bytes: &[u8], at: usize) -> usize {
    let run = bytes.get(at..).unwrap_or_default();
    at + run.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// The length of the escape at the start of `escape` (a backslash first)
/// when it is valid: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, or
/// `\u` and four hex digits, where a surrogate must come in a pair
/// (`\ud83e\udd80`: serde_json refuses a lone one).
fn escape_len(escape: &[u8]) -> Option<usize> {
    match escape.get(1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' => match hex4(escape.get(2..6)?)? {
            0xD800..=0xDBFF => {
                let low = escape.get(6..12)?;
                let low_unit = hex4(low.strip_prefix(b"\\u")?)?;
                (0xDC00..=0xDFFF).contains(&low_unit).then_some(12)
            }
            0xDC00..=0xDFFF => None,
            _ => Some(6),
        },
        _ => None,
    }
}

/// The value of four hex digits (exactly four, nothing else).
pub(crate) fn hex4(digits: &[u8]) -> Option<u16> {
    let digits: &[u8; 4] = digits.try_into().ok()?;
    digits.iter().try_fold(0u16, |unit, &digit| {
        Some(unit << 4 | char::from(digit).to_digit(16)? as u16)
    })
}

/// The position, from `at` on, of the first byte that ends a run of plain
/// string text: a quote, a backslash or a control character. Eight bytes at
/// a time: this search runs over most bytes of a stream.
#[inline(always)]
fn find_string_special(bytes: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    while let Some(word) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // The high bit of each byte that is below 0x20, a quote or a
        // backslash (the bit trick that finds a zero byte, applied three
        // ways). Bits above the lowest one may be false alarms; the lowest
        // one is exact.
        let (quote, backslash) = (word ^ QUOTES, word ^ BACKSLASHES);
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        let found = (control | quote | backslash) & HIGHS;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    let found = tail
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\');
    found.map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI: &str = r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hel\"lo"},"logprobs":null,"finish_reason":null}]}"#;

    #[test]
    fn reads_the_usual_chunk() {
        let chunk = read_chunk(OPENAI, &mut Vec::new()).unwrap();
        assert_eq!(chunk.id, Some("chatcmpl-123"));
        assert_eq!(chunk.model, Some("gpt-4o-mini"));
        assert_eq!(chunk.created, Some(1694268190));
        assert_eq!(chunk.system_fingerprint, Some("fp_44709d6fcb"));
        let choice = chunk.choice.unwrap();
        assert_eq!(choice.delta.content, Some(Text::Escaped(r#"Hel\"lo"#)));
        assert_eq!(choice.finish_reason, None);
    }

    #[test]
    fn reads_reasoning_refusals_and_tool_calls() {
        let data = r#"{"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"a\nb","reasoning":null,"refusal":"no","tool_calls":[{"index":1,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"x\""}},{"function":{"arguments":null}}]}}]}"#;
        let delta = read_chunk(data, &mut Vec::new())
            .unwrap()
            .choice
            .unwrap()
            .delta;
        assert_eq!(delta.reasoning_content, Some(Text::Escaped("a\\nb")));
        assert_eq!(
            (delta.reasoning, delta.refusal),
            (None, Some(Text::Plain("no")))
        );
        assert_eq!(delta.tool_call_count, 2);
        assert_eq!(
            delta.tool_calls[0],
            ToolPiece {
                index: Some(1),
                id: Some("call_1"),
                name: Some("f"),
                arguments: Some(Text::Escaped(r#"{\"x\""#)),
            }
        );
        assert_eq!(delta.tool_calls[1], ToolPiece::default());
    }

    #[test]
    fn notes_the_values_it_skips() {
        let mut skipped = Vec::new();
        read_chunk(OPENAI, &mut skipped).unwrap();
        let tokens: Vec<(&str, Token)> = skipped
            .iter()
            .map(|s| (&OPENAI[s.start..s.end], s.token))
            .collect();
        assert_eq!(
            tokens,
            [
                ("\"chat.completion.chunk\"", Token::String),
                ("1694268190", Token::Number),
                ("\"fp_44709d6fcb\"", Token::String),
            ]
        );
        let data = r#"{"x": [ 1.5e-3 , "a\u00e9" , {"y": -0} ], "z": true}"#;
        read_chunk(data, &mut skipped).unwrap();
        let tokens: Vec<&str> = skipped.iter().map(|s| &data[s.start..s.end]).collect();
        assert_eq!(tokens, ["1.5e-3", "\"a\\u00e9\"", "-0"]);
    }

    #[test]
    fn reads_choice_zero_alone() {
        let chunk = read_chunk(
            r#"{"choices":[{"index":0,"delta":{"content":"A"},"finish_reason":"stop"}]}"#,
            &mut Vec::new(),
        )
        .unwrap();
        let choice = chunk.choice.unwrap();
        assert_eq!(choice.delta.content, Some(Text::Plain("A")));
        assert_eq!(choice.finish_reason, Some("stop"));
        let chunk = read_chunk(
            r#" { "choices" : [ { "delta" : { } } ] } "#,
            &mut Vec::new(),
        );
        assert_eq!(chunk.unwrap().choice, Some(Choice::default()));
    }

    #[test]
    fn gives_up_on_what_serde_json_should_decide() {
        for data in [
            r#"{"error":{"message":"x"}}"#,
            r#"{"usage":{"total_tokens":3}}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"i\u0064":"a"}"#,
            r#"{"id":"\u0061"}"#,
            r#"{"choices":[{"index":-0}]}"#,
            r#"{"choices":[{"index":1.0}]}"#,
            r#"{"choices":[{"index":01}]}"#,
            r#"{"choices":[{"index":99999999999999999999}]}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[{"delta":{"content":1}}]}"#,
            r#"{"choices":[{"delta":[]}]}"#,
            r#"{"x":[1,]}"#,
            r#"{"x":01}"#,
            r#"{"x":1.}"#,
            r#"{"x":1e}"#,
            r#"{"x":"tab	inside"}"#,
            r#"{"x":"\x"}"#,
            r#"{"x":"\u12g4"}"#,
            r#"{"x":"\u+123"}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"x":"\ud800\u0041"}"#,
            r#"{"x":"\udc00\ud800"}"#,
            r#"{"choices":[{"delta":{"content":"\ud83e"}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"B"}}]}"#,
            r#"{"choices":[{"delta":{"content":"A"}},{"delta":null}]}"#,
            r#"{"choices":[{"delta":{"reasoning":1}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":{}}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"c\u0031"}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":{}}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{},{},{},{},{}]}}]}"#,
            r#"{"created":1.5}"#,
            r#"{"created":-1}"#,
            r#"{"system_fingerprint":"f\u0070"}"#,
            r#"{"x":1e400}"#,
            r#"{"x":1e100}"#,
            r#"{"x":tru}"#,
            r#"{"x":1} x"#,
            r#"{"x":1,}"#,
            r#"[]"#,
            "{\"x\":\u{c}1}",
            "",
        ] {
            assert_eq!(read_chunk(data, &mut Vec::new()), None, "{data}");
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(read_chunk(&deep, &mut Vec::new()), None);
    }

    #[test]
    fn validates_what_it_skips() {
        let data = r#"{"a":[true,false,null,-1.5e+3,0,"\u00e9\n",{"b":{}}],"c":-0.0E-1,"usage":null,"error":null}"#;
        assert_eq!(read_chunk(data, &mut Vec::new()), Some(Chunk::default()));
    }

    #[test]
    fn string_special_search() {
        let text = b"0123456789abcdef0123456789";
        for at in 0..text.len() {
            for special in [b'"', b'\\', 0x1f, 0] {
                let mut bytes = text.to_vec();
                bytes[at] = special;
                assert_eq!(find_string_special(&bytes, 0), Some(at));
                assert_eq!(find_string_special(&bytes, at), Some(at));
            }
        }
        assert_eq!(find_string_special(text, 0), None);
        assert_eq!(find_string_special(text, 3), None);
        assert_eq!(find_string_special("é✓🦀 \u{7f}".as_bytes(), 0), None);
    }
}
