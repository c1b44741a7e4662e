//! [`ChatStream`]: the content chunks of one streamed answer, pulled one at
//! a time from the response body.
//!
//! Data flows one way: body reader → read buffer → [`SseDecoder`] →
//! [`ChunkReader`] → the caller. The buffers are allocated once per
//! stream and reused, so memory stays flat however long the stream runs.

use std::fmt;
use std::io::Read;
use std::sync::Arc;

use crate::cancel::CancelToken;
use crate::chunk::{ChunkEvent, ChunkReader, StreamMetadata};
use crate::secrets::Secrets;
use crate::sse::SseDecoder;
use crate::transport;
use crate::Error;

/// How many bytes one read of the body may bring.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// After `[DONE]`, how much of the body's remainder is read so that the
/// connection can go back to the pool; a longer remainder closes it.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024;

/// The content chunks of a streamed chat answer.
///
/// Pull them with the [`Iterator`] impl (an owned `String` per chunk) or,
/// without allocating, with [`next_chunk`](Self::next_chunk). After the last
/// chunk the iterator ends; an error is yielded once, after the chunks that
/// did arrive, and then the iterator ends.
///
/// Dropping the stream before its end closes its connection at once (the
/// rest of the answer is not read); a stream read to its end hands its
/// connection back to the client's pool.
pub struct ChatStream {
    source: Source,
    decoder: SseDecoder,
    buffer: Box<[u8]>,
    /// Unconsumed bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// The body reached its end: no more reads.
    eof: bool,
    /// The current chunk, handed out by reference.
    chunk: String,
    /// Interprets the events (and remembers the shape of their chunks).
    reader: ChunkReader,
    meta: StreamMetadata,
    state: State,
    /// Scrubbed from error texts: a server may echo what it was sent.
    secrets: Option<Arc<Secrets>>,
    /// Stops the stream from another thread.
    cancel: CancelToken,
    /// An error to end with once the text runs out (a canned
    /// `mock_streaming_error`).
    then_error: Option<Error>,
}

enum Source {
    /// A `text/event-stream` response body.
    Events(ureq::BodyReader<'static>),
    /// Text known in advance (a canned reply, or the content of a plain JSON
    /// answer), handed out `piece_chars` characters at a time.
    Text {
        text: String,
        pos: usize,
        piece_chars: usize,
    },
    /// Finished or failed: the connection is released.
    Released,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    Finished,
    Failed,
}

impl ChatStream {
    /// A stream over an SSE body.
    pub(crate) fn from_events(
        body: ureq::BodyReader<'static>,
        max_event_bytes: usize,
        request_id: Option<String>,
    ) -> ChatStream {
        ChatStream::new(
            Source::Events(body),
            SseDecoder::new(max_event_bytes),
            READ_BUFFER_BYTES,
            StreamMetadata {
                request_id,
                ..StreamMetadata::default()
            },
        )
    }

    /// A stream that hands out `text` in pieces of `piece_chars` characters,
    /// then ends with `meta`.
    pub(crate) fn from_text(text: String, piece_chars: usize, meta: StreamMetadata) -> ChatStream {
        ChatStream::new(
            Source::Text {
                text,
                pos: 0,
                piece_chars: piece_chars.max(1),
            },
            SseDecoder::new(0),
            0,
            meta,
        )
    }

    fn new(
        source: Source,
        decoder: SseDecoder,
        buffer_bytes: usize,
        meta: StreamMetadata,
    ) -> ChatStream {
        ChatStream {
            source,
            decoder,
            buffer: vec![0; buffer_bytes].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            chunk: String::new(),
            reader: ChunkReader::default(),
            meta,
            state: State::Streaming,
            secrets: None,
            cancel: CancelToken::new(),
            then_error: None,
        }
    }

    pub(crate) fn with_cancel(mut self, cancel: CancelToken) -> ChatStream {
        self.cancel = cancel;
        self
    }

    /// Ends the stream with `error` once its text runs out.
    pub(crate) fn then_fail(mut self, error: Error) -> ChatStream {
        self.then_error = Some(error);
        self
    }

    /// The token that stops this stream: cancel it from any thread, also
    /// while another thread is blocked in [`next_chunk`](Self::next_chunk)
    /// waiting for the server; that call then returns
    /// [`Error::Aborted`] at once, and the connection is closed.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Reads the stream to its end and returns the whole text; on an error,
    /// the text that arrived before it comes with the error.
    pub fn into_text(mut self) -> Result<String, Box<PartialText>> {
        let mut text = String::new();
        while let Some(chunk) = self.next_chunk() {
            match chunk {
                Ok(chunk) => text.push_str(chunk),
                Err(error) => return Err(Box::new(PartialText { text, error })),
            }
        }
        Ok(text)
    }

    pub(crate) fn with_secrets(mut self, secrets: Arc<Secrets>) -> ChatStream {
        self.secrets = Some(secrets);
        self
    }

    /// The next content chunk, borrowed until the next call: `None` at the
    /// end, `Some(Err(..))` once when the stream fails (and `None` after).
    ///
    /// This is the allocation-free way to read a stream; the [`Iterator`]
    /// impl copies each chunk into a `String`.
    pub fn next_chunk(&mut self) -> Option<Result<&str, Error>> {
        match self.advance()? {
            Ok(()) => Some(Ok(&self.chunk[..self.chunk.len() - 1])),
            Err(err) => Some(Err(err)),
        }
    }

    /// [`next_chunk`](Self::next_chunk) for C: the chunk's bytes followed
    /// by a NUL, handed out in place.
    pub(crate) fn next_chunk_with_nul(&mut self) -> Option<Result<&[u8], Error>> {
        match self.advance()? {
            Ok(()) => Some(Ok(self.chunk.as_bytes())),
            Err(err) => Some(Err(err)),
        }
    }

    /// Moves to the next chunk, which is then in `self.chunk` followed by a
    /// NUL (so C can have it without a copy).
    fn advance(&mut self) -> Option<Result<(), Error>> {
        if self.state != State::Streaming {
            return None;
        }
        let step = if self.cancel.is_cancelled() {
            Err(Error::Aborted("the stream was cancelled".into()))
        } else {
            match &mut self.source {
                Source::Events(_) => self.next_event_chunk(),
                Source::Text {
                    text,
                    pos,
                    piece_chars,
                } => match next_piece(text, pos, *piece_chars, &mut self.chunk) {
                    false if self.then_error.is_some() => Err(self.then_error.take().unwrap()),
                    more => Ok(more),
                },
                Source::Released => Ok(false),
            }
        };
        match step {
            Ok(true) => {
                self.chunk.push('\0');
                Some(Ok(()))
            }
            Ok(false) => {
                self.state = State::Finished;
                self.release();
                None
            }
            Err(err) => {
                self.state = State::Failed;
                self.release();
                Some(Err(match &self.secrets {
                    _ if self.cancel.is_cancelled() => {
                        Error::Aborted("the stream was cancelled".into())
                    }
                    Some(secrets) => secrets.redact(err),
                    None => err,
                }))
            }
        }
    }

    /// What the stream learned besides its content: `finish_reason`,
    /// `usage`, response `id` and `model`, and the `x-request-id` header.
    /// Complete once the stream has ended.
    pub fn metadata(&self) -> &StreamMetadata {
        &self.meta
    }

    /// Whether the stream ended normally (`[DONE]`, or the end of the body
    /// after a `finish_reason`).
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Reads events until one carries content (`Ok(true)`) or the stream
    /// ends (`Ok(false)`).
    fn next_event_chunk(&mut self) -> Result<bool, Error> {
        loop {
            if self.start < self.end {
                let (used, event) = self
                    .decoder
                    .decode(&self.buffer[self.start..self.end])
                    .map_err(|e| Error::InvalidResponse(e.to_string()))?;
                self.start += used;
                if let Some(event) = event {
                    match self
                        .reader
                        .read_event(&event, &mut self.chunk, &mut self.meta)?
                    {
                        ChunkEvent::Content => return Ok(true),
                        ChunkEvent::Nothing => {}
                        ChunkEvent::Done => {
                            self.drain();
                            return Ok(false);
                        }
                    }
                }
                continue;
            }
            if self.eof {
                return self.end_of_body();
            }
            let Source::Events(body) = &mut self.source else {
                return Ok(false);
            };
            let buffer = &mut self.buffer;
            let read = self
                .cancel
                .enter(|| body.read(buffer))
                .map_err(Error::from_io)?;
            self.start = 0;
            self.end = read;
            if read == 0 {
                self.eof = true;
                let event = self
                    .decoder
                    .finish()
                    .map_err(|e| Error::InvalidResponse(e.to_string()))?;
                if let Some(event) = event {
                    // This event never got its blank line: data that does
                    // not parse was cut off, not garbled.
                    match self
                        .reader
                        .read_event(&event, &mut self.chunk, &mut self.meta)
                    {
                        Ok(ChunkEvent::Content) => return Ok(true),
                        Ok(ChunkEvent::Done) => return Ok(false),
                        Ok(ChunkEvent::Nothing) => {}
                        Err(Error::InvalidResponse(_)) => return Err(truncated()),
                        Err(err) => return Err(err),
                    }
                }
                return self.end_of_body();
            }
        }
    }

    /// The body ended without `[DONE]`: clean after a `finish_reason`,
    /// truncated otherwise.
    fn end_of_body(&self) -> Result<bool, Error> {
        if self.meta.finish_reason.is_some() {
            return Ok(false);
        }
        Err(truncated())
    }

    /// Reads what follows `[DONE]` (normally just the end of the body) so
    /// the connection can be pooled; gives up past a small limit, or when
    /// the end does not come at once (the connection is then closed, not
    /// waited for).
    fn drain(&mut self) {
        if let Source::Events(body) = &mut self.source {
            let buffer = &mut self.buffer;
            self.cancel.enter(|| {
                let _short_waits = transport::DrainGuard::new();
                let mut drained = 0;
                while drained <= DRAIN_LIMIT_BYTES {
                    match body.read(buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => drained += n,
                    }
                }
            });
        }
    }

    /// Drops the body reader: a finished body has handed its connection to
    /// the pool, an unfinished one closes it.
    fn release(&mut self) {
        self.source = Source::Released;
        self.buffer = Box::default();
        self.start = 0;
        self.end = 0;
    }
}

fn truncated() -> Error {
    Error::Transport(
        "the stream was truncated: the connection ended before `data: [DONE]` \
         or a finish_reason"
            .into(),
    )
}

/// The text a stream delivered before it failed, and the error.
#[derive(Debug)]
pub struct PartialText {
    /// The content that arrived before the error.
    pub text: String,
    /// Why the stream ended early.
    pub error: Error,
}

impl std::fmt::Display for PartialText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (after {} bytes of text)",
            self.error,
            self.text.len()
        )
    }
}

impl std::error::Error for PartialText {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Moves the next piece of `text` (at most `piece_chars` characters from
/// byte offset `pos`) into `chunk`; `false` when none is left.
fn next_piece(text: &str, pos: &mut usize, piece_chars: usize, chunk: &mut String) -> bool {
    let rest = &text[*pos..];
    if rest.is_empty() {
        return false;
    }
    let len = rest
        .char_indices()
        .nth(piece_chars)
        .map_or(rest.len(), |(i, _)| i);
    chunk.clear();
    chunk.push_str(&rest[..len]);
    *pos += len;
    true
}

impl Iterator for ChatStream {
    type Item = Result<String, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().map(|r| r.map(str::to_owned))
    }
}

impl std::iter::FusedIterator for ChatStream {}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.source {
            Source::Events(_) => "server-sent events",
            Source::Text { .. } => "text",
            Source::Released => "released",
        };
        f.debug_struct("ChatStream")
            .field("source", &source)
            .field("state", &self.state)
            .field("metadata", &self.meta)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_pieces_concatenate_to_the_text() {
        for text in ["", "a", "héllo wörld ✓\n\n  spaced  ", "🦀🦀🦀🦀"] {
            let stream = ChatStream::from_text(text.to_string(), 3, StreamMetadata::default());
            let pieces: Vec<String> = stream.map(Result::unwrap).collect();
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| p.chars().count() <= 3));
        }
    }
}
