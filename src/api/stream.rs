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
#[cfg(feature = "net")]
use std::os::fd::RawFd;
use std::sync::Arc;

use std::task::Poll;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::decoder::answer::{chunks_of, StreamMetadata};
use crate::decoder::body::{BodyDecoder, Decoded};
use crate::decoder::event::{EventWithNul, Kind, StreamEvent};
use crate::decoder::head;
use crate::error::Error;
use crate::trace::{trace, Level, Took, Tracer};
use crate::transport::detached::{Detached, HostFeed, HostRequest};
#[cfg(feature = "net")]
use crate::transport::net::Interest;
#[cfg(feature = "net")]
use crate::transport::race::Race;
#[cfg(feature = "net")]
use crate::transport::reply::Reply;
#[cfg(feature = "net")]
use crate::transport::request::Request;
use crate::transport::route::Route;
use crate::types::ChatCompletion;
use crate::until::Until;

/// After `[DONE]`, how much of the body's remainder is read so that the
/// connection can go back to the pool; a longer remainder closes it.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024;

/// How long a read after `data: [DONE]` waits for the end of the body. It
/// normally comes in the same packet; a server that holds the body open
/// costs its connection (closed, not pooled), not the caller's time.
const DRAIN_WAIT: Duration = Duration::from_millis(200);

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
    /// The cap on a plain JSON answer to the stream request.
    max_response_bytes: u64,
    /// Body bytes in, events and the assembled answer out.
    decoder: BodyDecoder,
    state: State,
    /// Where the stream's first event, end and error are told; holds the
    /// secrets scrubbed from error texts (a server may echo what it was
    /// sent).
    tracer: Option<Tracer>,
    /// What the trace tells at the end: when the stream began, and
    /// whether the first event was told.
    started: Instant,
    first_event_told: bool,
    /// Stops the stream from another thread.
    cancel: CancelToken,
    /// An error to end with when the body ends (a canned
    /// `mock_streaming_error`).
    then_error: Option<Error>,
    /// A detached stream: the request the host sends, and what it has fed
    /// of the answer.
    host: Option<Box<Detached>>,
    /// The route of the endpoint that answers, for the metadata.
    serving: Option<Arc<Route>>,
}

enum Body {
    /// The request is under way: the response head has not come yet.
    #[cfg(feature = "net")]
    Opening(Box<Request>),
    /// Requests to the client's endpoint and its fallbacks are under way
    /// (one, or two while hedging), until one produces the first event
    /// (see [`crate::transport::race`]).
    #[cfg(feature = "net")]
    Racing(Box<Race>),
    /// A detached stream whose host has not fed the answer's head yet.
    AwaitingHead,
    /// A plain JSON answer to the stream request, being read whole.
    Json(Source, Vec<u8>),
    /// A detached stream's non-2xx answer: its status, and its body read
    /// for the error message.
    Refused(u16, Vec<u8>),
    /// A `text/event-stream` response body.
    Events(Source),
    /// Events made in advance: a canned reply, or a plain JSON answer to a
    /// stream request (see [`crate::decoder::answer::chunks_of`]).
    Memory(Cursor<Vec<u8>>),
    /// Finished or failed: the connection is released.
    Released,
}

/// Where body bytes come from: the library's own connection, or the host
/// that carries a detached stream's bytes (see [`crate::transport::detached`]). Both
/// are read the same way, into the same decoder.
enum Source {
    #[cfg(feature = "net")]
    Network(Box<Reply>),
    Host,
}

/// What one step of reading found.
enum Step {
    /// A chunk: its events, if any, are queued.
    Chunk,
    /// The end of the stream.
    End,
    /// Nothing yet, by the deadline.
    Pending,
}

/// The socket a polled stream waits on: see [`ChatStream::waits_on`].
#[cfg(feature = "net")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitsOn {
    /// The socket's descriptor, for `poll`, `select`, `epoll` or a
    /// reactor. It belongs to the stream: do not read, write or close it.
    pub fd: RawFd,
    /// `true` when the stream waits for the socket to take more bytes
    /// (connecting, sending the request), `false` when it waits to read.
    /// While the request is being sent, a host that also waits for the
    /// socket to be readable (`POLLIN | POLLOUT`) sees at once a server
    /// that answers before reading it all (a 413, a 401).
    pub wants_write: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    Finished,
    Failed,
}

impl ChatStream {
    #[cfg(feature = "net")]
    /// A stream over the answer to `request`, which polls move on.
    pub(crate) fn starting(
        request: Request,
        cancel: CancelToken,
        max_event_bytes: usize,
        max_response_bytes: u64,
    ) -> ChatStream {
        let mut stream = ChatStream::new(Body::Opening(Box::new(request)), max_event_bytes);
        stream.max_response_bytes = max_response_bytes;
        stream.cancel = cancel;
        stream
    }

    /// A stream over server-sent events made in advance.
    pub(crate) fn from_memory(sse: Vec<u8>, request_id: Option<String>) -> ChatStream {
        let max_event_bytes = sse.len().max(1);
        let mut stream = ChatStream::new(Body::Memory(Cursor::new(sse)), max_event_bytes);
        stream.decoder.answer.meta.request_id = request_id;
        stream
    }

    fn new(body: Body, max_event_bytes: usize) -> ChatStream {
        ChatStream {
            body,
            max_response_bytes: u64::MAX,
            decoder: BodyDecoder::new(max_event_bytes),
            state: State::Streaming,
            tracer: None,
            started: Instant::now(),
            first_event_told: false,
            cancel: CancelToken::new(),
            then_error: None,
            host: None,
            serving: None,
        }
    }

    /// A stream over the first of `race`'s attempts to produce an event.
    #[cfg(feature = "net")]
    pub(crate) fn racing(
        race: Race,
        cancel: CancelToken,
        max_event_bytes: usize,
        max_response_bytes: u64,
    ) -> ChatStream {
        let mut stream = ChatStream::new(Body::Racing(Box::new(race)), max_event_bytes);
        stream.max_response_bytes = max_response_bytes;
        stream.cancel = cancel;
        stream
    }

    /// A detached stream: `request` is for the host to send, and the
    /// answer is what the host feeds.
    /// `route` is the endpoint's whose request it is (for the metadata).
    pub(crate) fn detached(
        request: HostRequest,
        route: Arc<Route>,
        max_event_bytes: usize,
        max_response_bytes: u64,
    ) -> ChatStream {
        let mut stream = ChatStream::new(Body::AwaitingHead, max_event_bytes);
        stream.max_response_bytes = max_response_bytes;
        stream.serving = Some(route);
        stream.host = Some(Box::new(Detached {
            request,
            feed: HostFeed::default(),
        }));
        stream
    }

    /// This (canned) stream as a detached one: it hands out `request`, and
    /// what the host feeds is accepted and dropped.
    pub(crate) fn answering_detached(mut self, request: HostRequest) -> ChatStream {
        self.host = Some(Box::new(Detached {
            request,
            feed: HostFeed::ignored(),
        }));
        self
    }

    /// A stream whose first read fails with `error`.
    pub(crate) fn failing(error: Error) -> ChatStream {
        ChatStream::from_memory(Vec::new(), None).then_fail(error)
    }

    /// Moves a started stream on as far as it goes without waiting (the
    /// connect starts); an error is kept for the first read, as a started
    /// stream reports network errors.
    pub(crate) fn start_now(&mut self) {
        if let Err(error) = self.open(Until::Now) {
            self.body = Body::Memory(Cursor::new(Vec::new()));
            self.then_error = Some(error);
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

    pub(crate) fn with_tracer(mut self, tracer: Tracer) -> ChatStream {
        self.tracer = Some(tracer);
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
            Ok(at) => Some(Ok(self.decoder.events.text(at).0)),
            Err(err) => Some(Err(err)),
        }
    }

    /// [`next_chunk`](Self::next_chunk) for C: the chunk's bytes followed
    /// by a NUL, handed out in place.
    pub(crate) fn next_chunk_with_nul(&mut self) -> Option<Result<&[u8], Error>> {
        match self.next_content()? {
            Ok(at) => Some(Ok(self.decoder.events.text(at).1)),
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
            Ok(at) => Some(Ok(self.decoder.events.event(at))),
            Err(err) => Some(Err(err)),
        }
    }

    /// [`next_event`](Self::next_event) for C: the texts followed by NULs.
    pub(crate) fn next_event_with_nul(&mut self) -> Option<Result<EventWithNul<'_>, Error>> {
        match self.next_queued()? {
            Ok(at) => Some(Ok(self.decoder.events.event_with_nul(at))),
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
        self.decoder.answer.completion()
    }

    /// What the stream learned besides its content: `finish_reason`,
    /// `usage`, response `id` and `model`, and the `x-request-id` header.
    /// Complete once the stream has ended.
    pub fn metadata(&self) -> &StreamMetadata {
        &self.decoder.answer.meta
    }

    /// Whether the stream ended normally (`[DONE]`, or the end of the body
    /// after a `finish_reason`).
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The request of a detached stream (see
    /// [`ModelApi::stream_detached`](crate::ModelApi::stream_detached)),
    /// for the host to send; `None` on any other stream.
    pub fn host_request(&self) -> Option<&HostRequest> {
        self.host.as_ref().map(|host| &host.request)
    }

    /// Whether the host carries this stream's bytes.
    pub fn is_detached(&self) -> bool {
        self.host.is_some()
    }

    /// Feeds a detached stream the head of its answer, once, first: the
    /// status, and the `Content-Type` value (`None` when there is none). A
    /// non-2xx status makes the body an error answer: the reads return
    /// [`Error::Http`] with the server's message once it has ended.
    pub fn feed_head(&mut self, status: u16, content_type: Option<&str>) -> Result<(), Error> {
        self.feed_of()?.head(status, content_type)
    }

    /// Feeds a detached stream body bytes as the host's HTTP stack
    /// delivers them (transfer framing and content encoding removed), in
    /// pieces of any size, split anywhere. An event is readable as soon as
    /// the bytes that complete it are fed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.feed_of()?.bytes(bytes)
    }

    /// Ends a detached stream's body: a stream with neither `[DONE]` nor a
    /// `finish_reason` by then was truncated ([`Error::Transport`]), as on
    /// the network. A host whose transfer failed ends the body too.
    pub fn feed_end(&mut self) -> Result<(), Error> {
        self.feed_of()?.end()
    }

    fn feed_of(&mut self) -> Result<&mut HostFeed, Error> {
        match &mut self.host {
            Some(host) => Ok(&mut host.feed),
            None => Err(Error::InvalidArgument(
                "this stream is not detached: the library carries its bytes \
                 (open one with stream_detached to feed it)"
                    .into(),
            )),
        }
    }

    /// The next content event (its place in the queue).
    #[inline]
    fn next_content(&mut self) -> Option<Result<usize, Error>> {
        loop {
            match self.next_queued()? {
                Ok(at) if self.decoder.events.kind(at) != Kind::Content => continue,
                other => return Some(other),
            }
        }
    }

    /// The next event (its place in the queue), waiting as long as it
    /// takes (up to the timeout); a detached stream cannot wait for its
    /// host, and says so with [`Error::Pending`].
    #[inline]
    fn next_queued(&mut self) -> Option<Result<usize, Error>> {
        if self.host.is_some() {
            return match self.poll_queued(Until::Now) {
                Poll::Ready(next) => next,
                Poll::Pending => Some(Err(waiting_for_host())),
            };
        }
        loop {
            if let Poll::Ready(next) = self.poll_queued(Until::Forever) {
                return next;
            }
        }
    }

    /// The next event (its place in the queue), reading chunks until one
    /// brings an event, the stream ends, or `until` passes.
    fn poll_queued(&mut self, until: Until) -> Poll<Option<Result<usize, Error>>> {
        loop {
            if let Some(at) = self.decoder.events.take() {
                if !self.first_event_told {
                    self.tell_first_event();
                }
                return Poll::Ready(Some(Ok(at)));
            }
            if self.state != State::Streaming {
                return Poll::Ready(None);
            }
            self.decoder.events.clear();
            let step = if self.cancel.is_cancelled() {
                Err(Error::Aborted("the stream was cancelled".into()))
            } else {
                self.read_chunk(until)
            };
            match step {
                Ok(Step::Chunk) => {}
                Ok(Step::Pending) => return Poll::Pending,
                Ok(Step::End) => {
                    self.state = State::Finished;
                    self.release();
                    self.tell_end();
                    return Poll::Ready(None);
                }
                Err(err) => return Poll::Ready(Some(Err(self.fail(err)))),
            }
        }
    }

    /// Ends the stream with `err`, as the caller sees it: `Aborted` once
    /// cancelled, secrets scrubbed.
    fn fail(&mut self, err: Error) -> Error {
        self.stop();
        let err = match &self.tracer {
            _ if self.cancel.is_cancelled() => Error::Aborted("the stream was cancelled".into()),
            Some(tracer) => tracer.secrets().redact(err),
            None => err,
        };
        if let Some(tracer) = &self.tracer {
            trace!(
                tracer,
                Level::Error,
                "stream failed after {} chunks ({} bytes) and {}: {}",
                self.decoder.chunks,
                self.decoder.bytes,
                Took(self.started.elapsed()),
                err.trace_summary()
            );
        }
        err
    }

    #[cold]
    fn tell_first_event(&mut self) {
        self.first_event_told = true;
        self.decoder.answer.meta.first_event = Some(self.started.elapsed());
        self.decoder.answer.meta.endpoint = self.serving.as_ref().map(|r| r.api_base.clone());
        if let Some(tracer) = &self.tracer {
            trace!(
                tracer,
                Level::Debug,
                "first event after {}",
                Took(self.started.elapsed())
            );
        }
    }

    fn tell_end(&self) {
        if let Some(tracer) = &self.tracer {
            trace!(
                tracer,
                Level::Debug,
                "stream finished: {} chunks, {} bytes, finish_reason {}, after {}",
                self.decoder.chunks,
                self.decoder.bytes,
                self.decoder
                    .answer
                    .meta
                    .finish_reason
                    .as_deref()
                    .unwrap_or("none"),
                Took(self.started.elapsed())
            );
        }
    }

    /// The next event if one can be had by `wait` from now, without ever
    /// waiting longer: `Poll::Pending` when none came in time (the stream
    /// goes on: poll again), else what [`next_event`](Self::next_event)
    /// returns. A `wait` of zero never blocks: it does what the socket
    /// allows at once (one non-blocking read when nothing has come).
    ///
    /// Polls drive a stream opened by [`ModelApi::stream_start`]
    /// (connecting, sending, retries and redirects included) or any other;
    /// [`waits_on`](Self::waits_on) gives the socket to wait on between
    /// polls. The per-wait timeout counts time without progress across
    /// polls: a stream that hears nothing for longer fails with
    /// [`Error::Timeout`] at the next poll.
    ///
    /// ```
    /// use std::task::Poll;
    /// use std::time::Duration;
    /// use modelapi::{Message, ModelApi, StreamEvent};
    ///
    /// let api = ModelApi::builder("my-model", "http://localhost:8000")
    ///     .mock_responses(vec!["Hello from a game loop".into()])
    ///     .build()?;
    /// let mut stream = api.stream_start(&[Message::user("Hi")], None)?;
    /// let mut text = String::new();
    /// loop {
    ///     // ... draw a frame ...
    ///     match stream.poll_event(Duration::ZERO) {
    ///         Poll::Pending => continue,
    ///         Poll::Ready(Some(Ok(StreamEvent::Content(piece)))) => text.push_str(piece),
    ///         Poll::Ready(Some(Ok(_))) => {}
    ///         Poll::Ready(Some(Err(error))) => return Err(error),
    ///         Poll::Ready(None) => break,
    ///     }
    /// }
    /// assert_eq!(text, "Hello from a game loop");
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    ///
    /// [`ModelApi::stream_start`]: crate::ModelApi::stream_start
    pub fn poll_event(&mut self, wait: Duration) -> Poll<Option<Result<StreamEvent<'_>, Error>>> {
        let next = self.poll_queued(Until::after(wait));
        next.map_ok(|at| self.decoder.events.event(at))
    }

    /// [`poll_event`](Self::poll_event) for C: the texts followed by NULs.
    pub(crate) fn poll_event_with_nul(
        &mut self,
        wait: Duration,
    ) -> Poll<Option<Result<EventWithNul<'_>, Error>>> {
        let next = self.poll_queued(Until::after(wait));
        next.map_ok(|at| self.decoder.events.event_with_nul(at))
    }

    #[cfg(feature = "net")]
    /// The socket this stream waits on between polls, and whether it waits
    /// to write or to read; `None` when it waits on no socket (canned
    /// replies, a retry's backoff, a finished stream): then poll again
    /// after [`wake_in`](Self::wake_in). The stream may hold events it has already read, so after a
    /// wake-up poll until `Poll::Pending` before waiting again. Ask again
    /// after each poll: while connection attempts to several of the
    /// server's addresses race, it is the newest attempt's socket, and
    /// [`wake_in`](Self::wake_in) bounds the wait so that the others are
    /// looked at too.
    pub fn waits_on(&self) -> Option<WaitsOn> {
        if self.state != State::Streaming {
            return None;
        }
        let (fd, interest) = match &self.body {
            Body::Opening(request) => request.waits_on()?,
            Body::Racing(race) => race.waits_on()?,
            Body::Json(Source::Network(reply), _) | Body::Events(Source::Network(reply)) => {
                reply.waits_on()?
            }
            _ => return None,
        };
        Some(WaitsOn {
            fd,
            wants_write: interest != Interest::Read,
        })
    }

    /// The longest a host may wait (on [`waits_on`](Self::waits_on)'s
    /// socket, or asleep when there is none) before it must poll again,
    /// whatever the socket does: `Some(ZERO)` when a poll has something to
    /// do now (events already read, canned replies), else the time until a
    /// retry's backoff ends, the next connection attempt is due (an address
    /// that has not answered within 250 ms; at most 100 ms while attempts
    /// race, as [`waits_on`](Self::waits_on) gives only the newest one's
    /// socket), a hedge is due or a first-token deadline passes (at most
    /// 10 ms while two endpoints race, for the same reason: see
    /// [`ModelApiBuilder::hedge`](crate::ModelApiBuilder::hedge)), or the
    /// stream's timeout would expire; `None`
    /// once the stream is over. A host that waits on the socket with this
    /// as its timeout never misses a timeout, nor spins through a backoff.
    /// A detached stream has no clock and no socket: `Some(ZERO)` when a
    /// poll has work (events read, bytes fed and not read yet), else `None`
    /// (it waits for the host, who polls after it feeds).
    ///
    /// ```
    /// # use modelapi::{Message, ModelApi};
    /// # let api = ModelApi::builder("m", "http://localhost:8000")
    /// #     .mock_responses(vec!["hi".into()]).build()?;
    /// let stream = api.stream_start(&[Message::user("Hi")], None)?;
    /// // Canned: nothing to wait for, poll now.
    /// assert_eq!(stream.wake_in(), Some(std::time::Duration::ZERO));
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    pub fn wake_in(&self) -> Option<Duration> {
        if self.state != State::Streaming {
            return None;
        }
        if self.decoder.events.has_next() || self.decoder.has_unread() {
            return Some(Duration::ZERO);
        }
        Some(match &self.body {
            #[cfg(feature = "net")]
            Body::Opening(request) => request.wake_in(),
            #[cfg(feature = "net")]
            Body::Racing(race) => race.wake_in()?,
            #[cfg(feature = "net")]
            Body::Json(Source::Network(reply), _) | Body::Events(Source::Network(reply)) => {
                reply.wake_in()
            }
            Body::Memory(_) | Body::Released => Duration::ZERO,
            // Nothing to wait for but the host: a poll has work only once
            // it has fed something.
            Body::AwaitingHead
            | Body::Json(Source::Host, _)
            | Body::Refused(..)
            | Body::Events(Source::Host) => {
                let feed = &self.host.as_ref()?.feed;
                let head_to_read =
                    matches!(self.body, Body::AwaitingHead) && feed.fed_head().is_some();
                return (head_to_read || feed.has_unread()).then_some(Duration::ZERO);
            }
        })
    }

    /// Moves an opening stream on until its events can be read: `Ok(true)`
    /// once they can, `Ok(false)` when that did not happen by `until`.
    #[cfg_attr(not(feature = "net"), allow(unused_variables))]
    pub(crate) fn open(&mut self, until: Until) -> Result<bool, Error> {
        loop {
            match &mut self.body {
                #[cfg(feature = "net")]
                Body::Opening(request) => {
                    let Some(reply) = request.poll(until)? else {
                        return Ok(false);
                    };
                    self.decoder.answer.meta.request_id =
                        reply.header("x-request-id").map(str::to_string);
                    self.serving = Some(Arc::clone(reply.route()));
                    self.body = if reply.is_json() {
                        Body::Json(Source::Network(Box::new(reply)), Vec::new())
                    } else {
                        Body::Events(Source::Network(Box::new(reply)))
                    };
                }
                #[cfg(feature = "net")]
                Body::Racing(race) => {
                    let Some(winner) = race.poll(until)? else {
                        return Ok(false);
                    };
                    let reply = winner.reply;
                    // The winner's decoder, with the chunks it has read
                    // (its first event among them), goes on as this one.
                    self.decoder = winner.decoder;
                    self.decoder.answer.meta.request_id =
                        reply.header("x-request-id").map(str::to_string);
                    self.serving = Some(winner.route);
                    self.body = if reply.is_json() {
                        Body::Json(Source::Network(reply), Vec::new())
                    } else {
                        Body::Events(Source::Network(reply))
                    };
                }
                Body::AwaitingHead => {
                    let Some(head) = self.host.as_ref().and_then(|h| h.feed.fed_head()) else {
                        return Ok(false);
                    };
                    self.body = if !(200..300).contains(&head.status) {
                        Body::Refused(head.status, Vec::new())
                    } else if head::is_json(head.content_type.as_deref()) {
                        Body::Json(Source::Host, Vec::new())
                    } else {
                        Body::Events(Source::Host)
                    };
                }
                Body::Refused(status, bytes) => {
                    let feed = &mut self.host.as_mut().expect("refused: detached").feed;
                    if !feed.read_error_body(bytes) {
                        return Ok(false);
                    }
                    return Err(head::http_error(*status, bytes));
                }
                #[cfg(feature = "net")]
                Body::Json(Source::Network(reply), bytes) => {
                    if !reply.poll_all(bytes, self.max_response_bytes, until)? {
                        return Ok(false);
                    }
                    self.answer_json()?;
                }
                Body::Json(Source::Host, bytes) => {
                    let feed = &mut self.host.as_mut().expect("host json: detached").feed;
                    if !feed.read_all(bytes, self.max_response_bytes)? {
                        return Ok(false);
                    }
                    self.answer_json()?;
                }
                _ => return Ok(true),
            }
        }
    }

    /// A plain JSON answer read whole: its chunks, made in advance, are
    /// what the stream reads next.
    fn answer_json(&mut self) -> Result<(), Error> {
        let Body::Json(_, bytes) = &mut self.body else {
            return Ok(());
        };
        // Invalid UTF-8 (a server's bug) becomes U+FFFD, as in streams, so
        // the rest of the answer is not lost.
        let text = String::from_utf8(std::mem::take(bytes))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let completion = ChatCompletion::from_body(text)?;
        let events = chunks_of(&completion, usize::MAX, true);
        self.decoder.expect_events_of(events.len());
        // The reply, read to its end, hands its connection back.
        self.body = Body::Memory(Cursor::new(events));
        Ok(())
    }

    /// Ends the stream where it is: its connection is closed.
    fn stop(&mut self) {
        self.state = State::Failed;
        self.decoder.events.clear();
        self.release();
    }

    /// Reads the next chunk, or finds the end of the stream, or that
    /// nothing more came by `until`.
    fn read_chunk(&mut self, until: Until) -> Result<Step, Error> {
        loop {
            match self.decoder.next()? {
                Decoded::Chunk => return Ok(Step::Chunk),
                Decoded::Done => {
                    #[cfg(feature = "net")]
                    drain(&mut self.body, self.decoder.scratch(), until);
                    return Ok(Step::End);
                }
                Decoded::BodyEnd => return self.end_of_body(),
                Decoded::NeedBytes => {}
            }
            if !matches!(
                self.body,
                Body::Events(_) | Body::Memory(_) | Body::Released
            ) {
                if !self.open(until)? {
                    return Ok(Step::Pending);
                }
                // A race's winner brings the chunk of its first event,
                // decoded: it is handed out now, not after the next read.
                if self.decoder.events.has_next() {
                    return Ok(Step::Chunk);
                }
                continue;
            }
            // The one place body bytes enter the decoder, wherever they
            // come from.
            let room = self.decoder.room();
            let read = match &mut self.body {
                #[cfg(feature = "net")]
                Body::Events(Source::Network(reply)) => reply.poll_body(room, until)?,
                Body::Events(Source::Host) => match &mut self.host {
                    Some(host) => host.feed.read(room),
                    None => Some(0),
                },
                Body::Memory(events) => Some(events.read(room).map_err(Error::from_io)?),
                _ => return Ok(Step::End),
            };
            let Some(read) = read else {
                return Ok(Step::Pending);
            };
            self.decoder.filled(read);
        }
    }

    /// The body ended without `[DONE]`: clean after a `finish_reason`,
    /// truncated otherwise.
    fn end_of_body(&mut self) -> Result<Step, Error> {
        if let Some(error) = self.then_error.take() {
            return Err(error);
        }
        self.decoder.end_of_body().map(|()| Step::End)
    }

    /// Drops the body: a finished body hands its connection to the pool,
    /// an unfinished one closes it.
    fn release(&mut self) {
        self.body = Body::Released;
        self.decoder.release();
        // A host may go on feeding a stream that is over: nothing is kept.
        if let Some(host) = &mut self.host {
            host.feed.drop_the_rest();
        }
    }
}

/// Reads what follows `[DONE]` (normally just the end of the body) so the
/// connection can go back to the pool; gives up past a small limit, or when
/// the end does not come within [`DRAIN_WAIT`] (nor by the caller's
/// deadline): the connection is then closed, not waited for.
#[cfg(feature = "net")]
fn drain(body: &mut Body, buffer: &mut [u8], until: Until) {
    let Body::Events(Source::Network(reply)) = body else {
        return;
    };
    let now = Instant::now();
    let until = until.or_before(now.checked_add(DRAIN_WAIT).unwrap_or(now));
    let mut drained = 0;
    while drained <= DRAIN_LIMIT_BYTES {
        match reply.poll_body(buffer, until) {
            Ok(Some(0)) | Ok(None) | Err(_) => break,
            Ok(Some(n)) => drained += n,
        }
    }
}

fn waiting_for_host() -> Error {
    Error::Pending(
        "the detached stream needs bytes the host has not fed yet: feed them \
         (feed_head, feed, feed_end) and read again"
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
            #[cfg(feature = "net")]
            Body::Opening(_) => "opening",
            #[cfg(feature = "net")]
            Body::Racing(_) => "racing endpoints to the first event",
            Body::AwaitingHead => "awaiting the host's head",
            Body::Json(..) => "JSON answer",
            Body::Refused(..) => "error answer",
            Body::Events(_) => "server-sent events",
            Body::Memory(_) => "events in memory",
            Body::Released => "released",
        };
        f.debug_struct("ChatStream")
            .field("body", &body)
            .field("state", &self.state)
            .field("metadata", &self.decoder.answer.meta)
            .finish()
    }
}
