//! [`ChatStream`]: one streamed answer, pulled one piece at a time from the
//! response body.
//!
//! Data flows one way: body → read buffer → [`SseDecoder`] →
//! [`ChunkReader`] → the events of the chunk ([`Events`]) → the caller,
//! while the [`Answer`] assembles every chunk read. The buffers are
//! allocated once per stream and reused; what grows is the answer.

use std::fmt;
use std::io::{Cursor, Read};
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::answer::{Answer, StreamMetadata};
use crate::cancel::CancelToken;
use crate::chunk::{ChunkEvent, ChunkReader, Received};
use crate::event::{EventWithNul, Events, Kind, StreamEvent};
use crate::secrets::Secrets;
use crate::sse::SseDecoder;
use crate::types::ChatCompletion;
use crate::{transport, Error};

/// How many bytes one read of the body may bring.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// After `[DONE]`, how much of the body's remainder is read so that the
/// connection can go back to the pool; a longer remainder closes it.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024;

/// A streamed chat answer.
///
/// Read it as text with the [`Iterator`] impl (an owned `String` per
/// content chunk) or, without allocating, with
/// [`next_chunk`](Self::next_chunk); read every kind of delta (reasoning,
/// tool calls, refusals too) with [`next_event`](Self::next_event). The
/// reads may be mixed; the text reads skip the other kinds. Whichever is
/// used, [`completion`](Self::completion) gives the answer assembled so
/// far. After the last piece the reads return `None`; an error is returned
/// once, after the pieces that did arrive, and then they return `None`.
///
/// Dropping the stream before its end closes its connection at once (the
/// rest of the answer is not read); a stream read to its end hands its
/// connection back to the client's pool.
pub struct ChatStream {
    body: Body,
    decoder: SseDecoder,
    buffer: Box<[u8]>,
    /// Unconsumed bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// The body reached its end: no more reads.
    eof: bool,
    /// Interprets the events (and remembers the shape of their chunks).
    reader: ChunkReader,
    /// The events of the chunk being handed out.
    events: Events,
    /// Every chunk read so far, assembled.
    answer: Answer,
    state: State,
    /// Scrubbed from error texts: a server may echo what it was sent.
    secrets: Option<Arc<Secrets>>,
    /// Stops the stream from another thread.
    cancel: CancelToken,
    /// An error to end with when the body ends (a canned
    /// `mock_streaming_error`).
    then_error: Option<Error>,
}

enum Body {
    /// A `text/event-stream` response body.
    Network(ureq::BodyReader<'static>),
    /// Events made in advance: a canned reply, or a plain JSON answer to a
    /// stream request (see [`crate::answer::chunks_of`]).
    Memory(Cursor<Vec<u8>>),
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
    /// A stream over an SSE response body.
    pub(crate) fn from_events(
        body: ureq::BodyReader<'static>,
        max_event_bytes: usize,
        request_id: Option<String>,
    ) -> ChatStream {
        let mut stream = ChatStream::new(Body::Network(body), max_event_bytes);
        stream.answer.meta.request_id = request_id;
        stream
    }

    /// A stream over server-sent events made in advance.
    pub(crate) fn from_memory(sse: Vec<u8>, request_id: Option<String>) -> ChatStream {
        let max_event_bytes = sse.len().max(1);
        let mut stream = ChatStream::new(Body::Memory(Cursor::new(sse)), max_event_bytes);
        stream.answer.meta.request_id = request_id;
        stream
    }

    fn new(body: Body, max_event_bytes: usize) -> ChatStream {
        ChatStream {
            body,
            decoder: SseDecoder::new(max_event_bytes),
            buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            reader: ChunkReader::default(),
            events: Events::default(),
            answer: Answer::default(),
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

    /// Ends the stream with `error` when its body ends.
    pub(crate) fn then_fail(mut self, error: Error) -> ChatStream {
        self.then_error = Some(error);
        self
    }

    pub(crate) fn with_secrets(mut self, secrets: Arc<Secrets>) -> ChatStream {
        self.secrets = Some(secrets);
        self
    }

    /// The token that stops this stream: cancel it from any thread, also
    /// while another thread is blocked in a read waiting for the server;
    /// that read then returns [`Error::Aborted`] at once, and the
    /// connection is closed.
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

    /// The next content chunk, borrowed until the next read: `None` at the
    /// end, `Some(Err(..))` once when the stream fails (and `None` after).
    /// Other kinds of delta are skipped (and still assembled).
    ///
    /// This is the allocation-free way to read a stream's text; the
    /// [`Iterator`] impl copies each chunk into a `String`.
    pub fn next_chunk(&mut self) -> Option<Result<&str, Error>> {
        match self.next_content()? {
            Ok(at) => Some(Ok(self.events.text(at).0)),
            Err(err) => Some(Err(err)),
        }
    }

    /// [`next_chunk`](Self::next_chunk) for C: the chunk's bytes followed
    /// by a NUL, handed out in place.
    pub(crate) fn next_chunk_with_nul(&mut self) -> Option<Result<&[u8], Error>> {
        match self.next_content()? {
            Ok(at) => Some(Ok(self.events.text(at).1)),
            Err(err) => Some(Err(err)),
        }
    }

    /// The next event of choice 0 — a piece of the text, of the reasoning,
    /// of a tool call or of a refusal — borrowed until the next read:
    /// `None` at the end, `Some(Err(..))` once when the stream fails (and
    /// `None` after).
    ///
    /// ```
    /// use modelapi::{Message, ModelApi, StreamEvent};
    ///
    /// let api = ModelApi::builder("my-model", "http://localhost:8000")
    ///     .mock_replies(vec![serde_json::json!({
    ///         "reasoning_content": "The user greets me.",
    ///         "content": "Hello!",
    ///     })])
    ///     .build()?;
    /// let mut stream = api.stream(&[Message::user("Hi")], None)?;
    /// let (mut thinking, mut text) = (String::new(), String::new());
    /// while let Some(event) = stream.next_event() {
    ///     match event? {
    ///         StreamEvent::Reasoning(piece) => thinking.push_str(piece),
    ///         StreamEvent::Content(piece) => text.push_str(piece),
    ///         StreamEvent::ToolCall { .. } | StreamEvent::Refusal(_) => {}
    ///         _ => {} // kinds of a later version
    ///     }
    /// }
    /// assert_eq!((thinking.as_str(), text.as_str()), ("The user greets me.", "Hello!"));
    /// assert_eq!(stream.completion().content(), Some("Hello!"));
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    pub fn next_event(&mut self) -> Option<Result<StreamEvent<'_>, Error>> {
        match self.next_queued()? {
            Ok(at) => Some(Ok(self.events.event(at))),
            Err(err) => Some(Err(err)),
        }
    }

    /// [`next_event`](Self::next_event) for C: the texts followed by NULs.
    pub(crate) fn next_event_with_nul(&mut self) -> Option<Result<EventWithNul<'_>, Error>> {
        match self.next_queued()? {
            Ok(at) => Some(Ok(self.events.event_with_nul(at))),
            Err(err) => Some(Err(err)),
        }
    }

    /// Hands every event to `on_event`, in order, until the end, and
    /// returns the whole answer. `ControlFlow::Break(())` stops the stream:
    /// the connection is closed and [`Error::Aborted`] is returned.
    pub fn for_each_event(
        &mut self,
        mut on_event: impl FnMut(StreamEvent<'_>) -> ControlFlow<()>,
    ) -> Result<ChatCompletion, Error> {
        while let Some(event) = self.next_event() {
            if on_event(event?).is_break() {
                self.stop();
                return Err(Error::Aborted(
                    "the event callback asked to stop the stream".into(),
                ));
            }
        }
        Ok(self.completion())
    }

    /// The answer assembled from every chunk read so far, in the shape
    /// [`ModelApi::complete`](crate::ModelApi::complete) returns: every
    /// choice, each with its content, `reasoning_content`, `tool_calls`
    /// (id, name and the arguments' pieces concatenated, in index order)
    /// and `refusal` (each only when some arrived), and `finish_reason`;
    /// the `id`, `model`, `created`, `system_fingerprint` and `usage` that
    /// the server sent. It can be asked for at any time, also after an
    /// error (it then holds what arrived before it). A chunk counts from
    /// its first event on: one chunk may carry several events, and the
    /// answer holds all of them once the first is handed out. A tool call
    /// whose server sent no id or name has `""` there.
    pub fn completion(&self) -> ChatCompletion {
        self.answer.completion()
    }

    /// What the stream learned besides its content: `finish_reason`,
    /// `usage`, response `id` and `model`, and the `x-request-id` header.
    /// Complete once the stream has ended.
    pub fn metadata(&self) -> &StreamMetadata {
        &self.answer.meta
    }

    /// Whether the stream ended normally (`[DONE]`, or the end of the body
    /// after a `finish_reason`).
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The next content event (its place in the queue).
    #[inline]
    fn next_content(&mut self) -> Option<Result<usize, Error>> {
        loop {
            match self.next_queued()? {
                Ok(at) if self.events.kind(at) != Kind::Content => continue,
                other => return Some(other),
            }
        }
    }

    /// The next event (its place in the queue), reading chunks until one
    /// brings an event or the stream ends.
    fn next_queued(&mut self) -> Option<Result<usize, Error>> {
        loop {
            if let Some(at) = self.events.take() {
                return Some(Ok(at));
            }
            if self.state != State::Streaming {
                return None;
            }
            self.events.clear();
            let step = if self.cancel.is_cancelled() {
                Err(Error::Aborted("the stream was cancelled".into()))
            } else {
                self.read_chunk()
            };
            match step {
                Ok(true) => {}
                Ok(false) => {
                    self.state = State::Finished;
                    self.release();
                    return None;
                }
                Err(err) => {
                    self.stop();
                    return Some(Err(match &self.secrets {
                        _ if self.cancel.is_cancelled() => {
                            Error::Aborted("the stream was cancelled".into())
                        }
                        Some(secrets) => secrets.redact(err),
                        None => err,
                    }));
                }
            }
        }
    }

    /// Ends the stream where it is: its connection is closed.
    fn stop(&mut self) {
        self.state = State::Failed;
        self.events.clear();
        self.release();
    }

    /// Reads the next chunk (`Ok(true)`: its events, if any, are queued),
    /// or finds the end of the stream (`Ok(false)`).
    fn read_chunk(&mut self) -> Result<bool, Error> {
        let mut received = Received {
            events: &mut self.events,
            answer: &mut self.answer,
        };
        loop {
            if self.start < self.end {
                let (used, event) = self
                    .decoder
                    .decode(&self.buffer[self.start..self.end])
                    .map_err(|e| Error::InvalidResponse(e.to_string()))?;
                self.start += used;
                if let Some(event) = event {
                    return match self.reader.read_event(&event, &mut received)? {
                        ChunkEvent::Chunk => Ok(true),
                        ChunkEvent::Done => {
                            drain(&mut self.body, &mut self.buffer, &self.cancel);
                            Ok(false)
                        }
                    };
                }
                continue;
            }
            if self.eof {
                return self.end_of_body();
            }
            let buffer = &mut self.buffer;
            let read = match &mut self.body {
                Body::Network(body) => self.cancel.enter(|| body.read(buffer)),
                Body::Memory(events) => events.read(buffer),
                Body::Released => return Ok(false),
            };
            let read = read.map_err(Error::from_io)?;
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
                    match self.reader.read_event(&event, &mut received) {
                        Ok(ChunkEvent::Chunk) => return Ok(true),
                        Ok(ChunkEvent::Done) => return Ok(false),
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
    fn end_of_body(&mut self) -> Result<bool, Error> {
        if let Some(error) = self.then_error.take() {
            return Err(error);
        }
        if self.answer.meta.finish_reason.is_some() {
            return Ok(false);
        }
        Err(truncated())
    }

    /// Drops the body reader: a finished body has handed its connection to
    /// the pool, an unfinished one closes it.
    fn release(&mut self) {
        self.body = Body::Released;
        self.buffer = Box::default();
        self.start = 0;
        self.end = 0;
    }
}

/// Reads what follows `[DONE]` (normally just the end of the body) so the
/// connection can be pooled; gives up past a small limit, or when the end
/// does not come at once (the connection is then closed, not waited for).
fn drain(body: &mut Body, buffer: &mut [u8], cancel: &CancelToken) {
    if let Body::Network(body) = body {
        cancel.enter(|| {
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

impl Iterator for ChatStream {
    type Item = Result<String, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().map(|r| r.map(str::to_owned))
    }
}

impl std::iter::FusedIterator for ChatStream {}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match self.body {
            Body::Network(_) => "server-sent events",
            Body::Memory(_) => "events in memory",
            Body::Released => "released",
        };
        f.debug_struct("ChatStream")
            .field("body", &body)
            .field("state", &self.state)
            .field("metadata", &self.answer.meta)
            .finish()
    }
}
