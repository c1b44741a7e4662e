//! [`ModelApi`]: its calls, and the request loop (retries, and the
//! redirects it follows). Creating a client and its settings are in
//! [`crate::api::builder`].

use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::api::mock::CannedReplies;
use crate::api::stream::ChatStream;
use crate::cancel::CancelToken;
use crate::decoder::answer::StreamMetadata;
use crate::decoder::event::StreamEvent;
use crate::error::truncate;
use crate::error::Error;
use crate::trace::{trace, Level};
use crate::transport::detached::HostRequest;
use crate::transport::endpoints::{Payload, Plan};
#[cfg(feature = "net")]
use crate::transport::failover::{Failover, Sequential};
#[cfg(feature = "net")]
use crate::transport::race::Race;
#[cfg(feature = "net")]
use crate::transport::request::Request;
use crate::transport::route::Route;
use crate::types::ChatCompletion;
use crate::until::Until;

/// The default per-wait timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The default number of retries after the first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// The default first backoff between attempts (it doubles per attempt).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// The default cap on a non-streamed response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// The default cap on one server-sent event.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// A client of one OpenAI-compatible chat-completion server and model.
///
/// `ModelApi` is `Send + Sync`: one client may serve many threads at once,
/// sharing its pool of keep-alive connections and its canned replies.
/// Every call runs on the caller's thread; the client never starts one.
///
/// ```no_run
/// use modelapi::{Message, ModelApi};
///
/// let api = ModelApi::new("gpt-4o-mini", "https://api.openai.com/v1",
///                         std::env::var("MODEL_API_KEY").ok())?;
/// let answer = api.complete(&[Message::user("What is 2+2?")], None)?;
/// println!("{}", answer.content().unwrap_or_default());
/// for chunk in api.stream(&[Message::user("Write a haiku about coding")], None)? {
///     print!("{}", chunk?);
/// }
/// api.close();
/// # Ok::<(), modelapi::Error>(())
/// ```
pub struct ModelApi {
    pub(crate) model: String,
    pub(crate) api_key: Option<String>,
    /// Where requests go and how; shared with the requests under way.
    pub(crate) route: Arc<Route>,
    /// The fallback endpoints, the first-token deadline and the hedge.
    pub(crate) plan: Arc<Plan>,
    pub(crate) max_response_bytes: u64,
    pub(crate) max_event_bytes: usize,
    pub(crate) canned: CannedReplies,
}

impl ModelApi {
    /// The model this client asks for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The URL requests go to: `{api_base}/v1/chat/completions`.
    pub fn endpoint(&self) -> &str {
        &self.route.endpoint
    }

    /// One chat completion: the server's `chat.completion` object.
    ///
    /// `messages` are [`Message`](crate::Message)s or any serializable
    /// values in OpenAI message format. `mock_response`, when given, is sent
    /// in the body for servers that honour it (LiteLLM). A canned reply, when
    /// one is left, answers instead of the server.
    pub fn complete<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
    ) -> Result<ChatCompletion, Error> {
        self.with_cancel(&CancelToken::new())
            .complete(messages, mock_response)
    }

    /// Like [`complete`](Self::complete), with a whole request body:
    /// `request` must hold `messages`; extra fields (`temperature`,
    /// `max_tokens`, `tools`, ...) pass through; `model` defaults to the
    /// client's; `stream` is set to `false`.
    pub fn complete_request(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatCompletion, Error> {
        self.with_cancel(&CancelToken::new())
            .complete_request(request, mock_response)
    }

    /// Calls that `cancel` can stop from another thread:
    /// `api.with_cancel(&cancel).complete(..)`, `.stream(..)`, ...
    pub fn with_cancel<'a>(&'a self, cancel: &'a CancelToken) -> Cancellable<'a> {
        Cancellable { api: self, cancel }
    }

    /// Makes one completion call with a request `body` built by
    /// [`messages_body`](Self::messages_body) or
    /// [`request_body`](Self::request_body).
    fn run_complete(
        &self,
        body: Result<Payload, Error>,
        cancel: &CancelToken,
    ) -> Result<ChatCompletion, Error> {
        self.ensure_open()?;
        let body = body?;
        check_cancel(cancel)?;
        if let Some(reply) = self.canned.take() {
            trace!(
                self.route.tracer,
                Level::Debug,
                "a canned reply answers (no network)"
            );
            return self.canned.completion(&self.model, body.len(), &reply);
        }
        self.complete_over_network(body, cancel)
    }

    /// Sends a completion request, and reads its answer whole.
    #[cfg(feature = "net")]
    fn complete_over_network(
        &self,
        body: Payload,
        cancel: &CancelToken,
    ) -> Result<ChatCompletion, Error> {
        let started = std::time::Instant::now();
        let mut requests = Sequential::new(self.failover(body, "application/json", cancel));
        let mut answer = || {
            let (reply, _) = loop {
                if let Some(served) = requests.poll(Until::Forever)? {
                    break served;
                }
            };
            let bytes = reply.read_whole(self.max_response_bytes, started)?;
            // Invalid UTF-8 (a server's bug) becomes U+FFFD, as in streams,
            // so the rest of the answer is not lost.
            let text = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            ChatCompletion::from_body(text)
        };
        answer().map_err(|e| self.call_error(e, cancel))
    }

    /// A streamed chat completion: an iterator over the content chunks.
    ///
    /// The request is sent, and retried when that is safe, before this
    /// returns; the chunks are read as the caller pulls them. A server that
    /// answers a stream request with a plain JSON completion yields its
    /// content as one chunk.
    pub fn stream<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        self.with_cancel(&CancelToken::new())
            .stream(messages, mock_response)
    }

    /// Like [`stream`](Self::stream), with a whole request body (see
    /// [`complete_request`](Self::complete_request)); `stream` is set to
    /// `true`, and fields such as `stream_options` pass through.
    pub fn stream_request(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        self.with_cancel(&CancelToken::new())
            .stream_request(request, mock_response)
    }

    /// A streamed chat completion that returns at once, for a thread that
    /// must never block (a game loop, a UI thread, an event loop): the
    /// connection, the request and the answer progress inside later calls
    /// of [`ChatStream::poll_event`], which give `Poll::Pending` while
    /// nothing has come, and [`ChatStream::waits_on`] gives the socket to
    /// wait on. Looking up a host name is the one step that may block
    /// here; an IP address or `localhost` never does. Argument errors are
    /// returned here; network and server errors by a poll. Retries,
    /// redirects, timeouts, caps and cancel work as in
    /// [`stream`](Self::stream), and the blocking reads work on the
    /// stream too.
    pub fn stream_start<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        self.with_cancel(&CancelToken::new())
            .stream_start(messages, mock_response)
    }

    /// Like [`stream_start`](Self::stream_start), with a whole request body
    /// (see [`stream_request`](Self::stream_request)).
    pub fn stream_request_start(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        self.with_cancel(&CancelToken::new())
            .stream_request_start(request, mock_response)
    }

    /// A stream whose bytes the host carries, for engines, browsers and
    /// consoles that must use their own HTTP stack: the request is built
    /// exactly as the client would send it ([`ChatStream::host_request`]:
    /// URL, headers with the key and the client's own, body) and no
    /// connection is opened. The host sends it, feeds the answer
    /// ([`ChatStream::feed_head`], [`ChatStream::feed`],
    /// [`ChatStream::feed_end`]) and reads the stream as any other, best
    /// with [`ChatStream::poll_event`]; a blocking read that needs bytes
    /// not fed yet returns [`Error::Pending`]. Timeouts, retries and
    /// redirects are the host's: the stream is one exchange. With canned
    /// replies the events are there at once, and what is fed is dropped.
    ///
    /// ```
    /// use std::task::Poll;
    /// use std::time::Duration;
    /// use modelapi::{Message, ModelApi, StreamEvent};
    ///
    /// let api = ModelApi::new("my-model", "http://localhost:8000", None)?;
    /// let mut stream = api.stream_detached(&[Message::user("Hi")], None)?;
    /// let request = stream.host_request().expect("detached");
    /// assert_eq!(request.url(), "http://localhost:8000/v1/chat/completions");
    /// // ... the host sends it, and feeds what comes back:
    /// stream.feed_head(200, Some("text/event-stream"))?;
    /// stream.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel")?;
    /// assert!(stream.poll_event(Duration::ZERO).is_pending());
    /// stream.feed(b"lo\"}}]}\n\ndata: [DONE]\n\n")?;
    /// stream.feed_end()?;
    /// let mut text = String::new();
    /// while let Poll::Ready(Some(event)) = stream.poll_event(Duration::ZERO) {
    ///     if let StreamEvent::Content(piece) = event? {
    ///         text.push_str(piece);
    ///     }
    /// }
    /// assert_eq!(text, "Hello");
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    pub fn stream_detached<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        self.with_cancel(&CancelToken::new())
            .stream_detached(messages, mock_response)
    }

    /// Like [`stream_detached`](Self::stream_detached), with a whole
    /// request body (see [`stream_request`](Self::stream_request)).
    pub fn stream_request_detached(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        self.with_cancel(&CancelToken::new())
            .stream_request_detached(request, mock_response)
    }

    /// The request of a detached stream with `body`, as
    /// [`Request`] would send it to the configured server.
    fn host_request(&self, body: Vec<u8>) -> HostRequest {
        let route = &self.route;
        let headers = route
            .request_headers("text/event-stream", true)
            .into_iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect();
        HostRequest::new(route.endpoint.clone(), headers, body)
    }

    /// Starts one stream with a request `body` (see
    /// [`run_complete`](Self::run_complete)): `opening` says how far.
    fn run_stream(
        &self,
        body: Result<Payload, Error>,
        cancel: &CancelToken,
        opening: Opening,
    ) -> Result<ChatStream, Error> {
        self.ensure_open()?;
        let body = body?;
        // A cancelled token refuses new calls at once, whichever kind.
        check_cancel(cancel)?;
        let stream = if let Some(reply) = self.canned.take() {
            trace!(
                self.route.tracer,
                Level::Debug,
                "a canned reply answers (no network)"
            );
            let request = matches!(opening, Opening::Detached)
                .then(|| self.host_request(body.clone().into_bytes()));
            let stream = match self.canned.stream(&self.model, body.len(), &reply) {
                Ok(stream) => stream,
                // A canned server error, like a server's, comes from the
                // first poll of a started stream.
                Err(error) if !matches!(opening, Opening::Wait) => ChatStream::failing(error),
                Err(error) => return Err(error),
            };
            match request {
                Some(request) => stream.answering_detached(request),
                None => stream,
            }
        } else if let Opening::Detached = opening {
            trace!(
                self.route.tracer,
                Level::Debug,
                "POST {} ({} bytes of JSON) detached: the host carries it",
                self.route.endpoint,
                body.len()
            );
            ChatStream::detached(
                self.host_request(body.into_bytes()),
                Arc::clone(&self.route),
                self.max_event_bytes,
                self.max_response_bytes,
            )
        } else {
            self.stream_over_network(body, cancel, opening)?
        };
        Ok(stream
            .with_tracer(self.route.tracer.clone())
            .with_cancel(cancel.clone()))
    }

    /// Sends a stream request: `opening` says how far before it returns.
    #[cfg(feature = "net")]
    fn stream_over_network(
        &self,
        body: Payload,
        cancel: &CancelToken,
        opening: Opening,
    ) -> Result<ChatStream, Error> {
        let mut stream = if self.plan.fallbacks.is_empty() && self.plan.first_token.is_none() {
            let request = Request::new(
                Arc::clone(&self.route),
                body.into_bytes(),
                "text/event-stream",
                cancel.clone(),
            );
            ChatStream::starting(
                request,
                cancel.clone(),
                self.max_event_bytes,
                self.max_response_bytes,
            )
        } else {
            // The endpoints race to the first event (see crate::transport::race).
            let failover = self.failover(body, "text/event-stream", cancel);
            ChatStream::racing(
                Race::new(failover, self.max_event_bytes),
                cancel.clone(),
                self.max_event_bytes,
                self.max_response_bytes,
            )
        };
        if let Opening::Wait = opening {
            while !stream
                .open(Until::Forever)
                .map_err(|e| self.call_error(e, cancel))?
            {}
        } else {
            // One step that never waits: the connect starts, so the
            // host has a socket to wait on at once.
            stream.start_now();
        }
        Ok(stream)
    }

    /// The endpoints a call with `body` goes through.
    #[cfg(feature = "net")]
    fn failover(&self, body: Payload, accept: &'static str, cancel: &CancelToken) -> Failover {
        Failover::new(
            Arc::clone(&self.route),
            Arc::clone(&self.plan),
            body,
            accept,
            cancel.clone(),
        )
    }

    #[cfg(not(feature = "net"))]
    fn complete_over_network(
        &self,
        _: Payload,
        cancel: &CancelToken,
    ) -> Result<ChatCompletion, Error> {
        Err(self.call_error(crate::transport::net::no_network(), cancel))
    }

    #[cfg(not(feature = "net"))]
    fn stream_over_network(
        &self,
        _: Payload,
        cancel: &CancelToken,
        opening: Opening,
    ) -> Result<ChatStream, Error> {
        let error = self.call_error(crate::transport::net::no_network(), cancel);
        match opening {
            // A started stream reports network errors from its first poll.
            Opening::Start => Ok(ChatStream::failing(error)),
            Opening::Wait | Opening::Detached => Err(error),
        }
    }

    /// The error a call returns: `Aborted` once its token is cancelled,
    /// whatever the I/O reported; secrets scrubbed; traced.
    pub(crate) fn call_error(&self, error: Error, cancel: &CancelToken) -> Error {
        let error = if cancel.is_cancelled() {
            cancelled()
        } else {
            self.route.tracer.secrets().redact(error)
        };
        trace!(
            self.route.tracer,
            Level::Error,
            "failed: {}",
            error.trace_summary()
        );
        error
    }

    /// The callback form of [`stream`](Self::stream): `on_chunk` is called
    /// once per content chunk, in order, on this thread. Return
    /// `ControlFlow::Break(())` to stop early: the connection is closed and
    /// the call returns [`Error::Aborted`]. On success, returns what the
    /// stream learned besides its content.
    pub fn stream_with<M, F>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
        on_chunk: F,
    ) -> Result<StreamMetadata, Error>
    where
        M: Serialize,
        F: FnMut(&str) -> ControlFlow<()>,
    {
        self.with_cancel(&CancelToken::new())
            .stream_with(messages, mock_response, on_chunk)
    }

    /// The callback form of [`ChatStream::next_event`]: `on_event` is
    /// called once per event (text, reasoning, tool-call and refusal
    /// pieces of choice 0), in order, on this thread, and the whole
    /// answer is returned at the end (see [`ChatStream::completion`]).
    /// `ControlFlow::Break(())` stops the stream: the connection is closed
    /// and the call returns [`Error::Aborted`].
    ///
    /// For a request with `tools`, open the stream with
    /// [`stream_request`](Self::stream_request) and call
    /// [`ChatStream::for_each_event`] on it.
    pub fn stream_events_with<M, F>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
        on_event: F,
    ) -> Result<ChatCompletion, Error>
    where
        M: Serialize,
        F: FnMut(StreamEvent<'_>) -> ControlFlow<()>,
    {
        self.with_cancel(&CancelToken::new())
            .stream_events_with(messages, mock_response, on_event)
    }

    /// Closes the client: idle pooled connections are released now, and
    /// every later call fails with [`Error::Closed`]. Streams already open
    /// go on to their end. Calling it twice is harmless.
    pub fn close(&self) {
        let fallbacks = self.plan.fallbacks.iter().map(|e| &e.route);
        for route in std::iter::once(&self.route).chain(fallbacks) {
            route.closed.store(true, Ordering::SeqCst);
            route.pool.clear();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.route.is_closed()
    }

    /// Canned replies not yet used.
    pub fn mock_responses_left(&self) -> usize {
        self.canned.remaining()
    }

    fn ensure_open(&self) -> Result<(), Error> {
        if self.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// The JSON body of a request for `messages`, written straight from
    /// them (no JSON tree in between), after checking they are OpenAI
    /// messages as far as a client can tell.
    fn messages_body<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
        stream: bool,
    ) -> Result<Payload, Error> {
        let unserializable = |e: serde_json::Error| {
            Error::InvalidArgument(format!("messages cannot be serialized: {e}"))
        };
        let mut body = Vec::with_capacity(256);
        body.extend_from_slice(b"{\"model\":");
        serde_json::to_writer(&mut body, &self.model).map_err(unserializable)?;
        let model_end = body.len();
        body.extend_from_slice(b",\"messages\":");
        let start = body.len();
        serde_json::to_writer(&mut body, messages).map_err(unserializable)?;
        if serde_json::from_slice::<Vec<MessageShape<'_>>>(&body[start..]).is_err() {
            // Not OpenAI messages: the slow path says which one and why.
            let messages: Value = serde_json::from_slice(&body[start..]).map_err(unserializable)?;
            check_messages(Some(&messages))?;
        }
        body.extend_from_slice(if stream {
            b",\"stream\":true"
        } else {
            b",\"stream\":false"
        });
        if let Some(mock) = mock_response {
            body.extend_from_slice(b",\"mock_response\":");
            serde_json::to_writer(&mut body, mock).map_err(unserializable)?;
        }
        body.push(b'}');
        Ok(Payload::new(body, model_end))
    }

    /// The JSON body of a request.
    fn request_body(
        &self,
        mut request: Map<String, Value>,
        mock_response: Option<&str>,
        stream: bool,
    ) -> Result<Payload, Error> {
        check_messages(request.get("messages"))?;
        let model = request
            .remove("model")
            .unwrap_or_else(|| Value::String(self.model.clone()));
        request.insert("stream".into(), Value::Bool(stream));
        if let Some(mock) = mock_response {
            request.insert("mock_response".into(), Value::String(mock.to_string()));
        }
        let unserializable = |e: serde_json::Error| {
            Error::InvalidArgument(format!("the request cannot be serialized: {e}"))
        };
        // `model` first, where a fallback endpoint puts its own.
        let mut body = b"{\"model\":".to_vec();
        serde_json::to_writer(&mut body, &model).map_err(unserializable)?;
        let model_end = body.len();
        body.push(b',');
        // The rest of the object, without its `{` (it holds `messages`).
        let rest = serde_json::to_vec(&request).map_err(unserializable)?;
        body.extend_from_slice(&rest[1..]);
        Ok(Payload::new(body, model_end))
    }
}

/// How far a call opens its stream before it returns.
#[derive(Clone, Copy)]
enum Opening {
    /// Until its events can be read (the blocking calls).
    Wait,
    /// One step that never waits: the connect starts (polled streams).
    Start,
    /// Not at all: the host carries its bytes.
    Detached,
}

/// Calls of a client that a [`CancelToken`] can stop; see
/// [`ModelApi::with_cancel`]. The methods are those of [`ModelApi`].
#[derive(Debug, Clone, Copy)]
pub struct Cancellable<'a> {
    api: &'a ModelApi,
    cancel: &'a CancelToken,
}

impl Cancellable<'_> {
    /// [`ModelApi::complete`], cancellable.
    pub fn complete<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
    ) -> Result<ChatCompletion, Error> {
        let body = self.api.messages_body(messages, mock_response, false);
        self.api.run_complete(body, self.cancel)
    }

    /// [`ModelApi::complete_request`], cancellable.
    pub fn complete_request(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatCompletion, Error> {
        let body = self.api.request_body(request, mock_response, false);
        self.api.run_complete(body, self.cancel)
    }

    /// [`ModelApi::stream`], cancellable: the token stops the opening of
    /// the stream and every later read of it.
    pub fn stream<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        let body = self.api.messages_body(messages, mock_response, true);
        self.api.run_stream(body, self.cancel, Opening::Wait)
    }

    /// [`ModelApi::stream_request`], cancellable.
    pub fn stream_request(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        let body = self.api.request_body(request, mock_response, true);
        self.api.run_stream(body, self.cancel, Opening::Wait)
    }

    /// [`ModelApi::stream_start`], cancellable: the token stops the stream
    /// wherever it is, also during a retry's backoff.
    pub fn stream_start<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        let body = self.api.messages_body(messages, mock_response, true);
        self.api.run_stream(body, self.cancel, Opening::Start)
    }

    /// [`ModelApi::stream_request_start`], cancellable.
    pub fn stream_request_start(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        let body = self.api.request_body(request, mock_response, true);
        self.api.run_stream(body, self.cancel, Opening::Start)
    }

    /// [`ModelApi::stream_detached`], cancellable: the token ends the
    /// stream's reads with [`Error::Aborted`].
    pub fn stream_detached<M: Serialize>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        let body = self.api.messages_body(messages, mock_response, true);
        self.api.run_stream(body, self.cancel, Opening::Detached)
    }

    /// [`ModelApi::stream_request_detached`], cancellable.
    pub fn stream_request_detached(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        let body = self.api.request_body(request, mock_response, true);
        self.api.run_stream(body, self.cancel, Opening::Detached)
    }

    /// [`ModelApi::stream_with`], cancellable.
    pub fn stream_with<M, F>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
        on_chunk: F,
    ) -> Result<StreamMetadata, Error>
    where
        M: Serialize,
        F: FnMut(&str) -> ControlFlow<()>,
    {
        drive(self.stream(messages, mock_response)?, on_chunk)
    }

    /// [`ModelApi::stream_events_with`], cancellable.
    pub fn stream_events_with<M, F>(
        &self,
        messages: &[M],
        mock_response: Option<&str>,
        on_event: F,
    ) -> Result<ChatCompletion, Error>
    where
        M: Serialize,
        F: FnMut(StreamEvent<'_>) -> ControlFlow<()>,
    {
        self.stream(messages, mock_response)?
            .for_each_event(on_event)
    }
}

fn cancelled() -> Error {
    Error::Aborted("the call was cancelled".into())
}

fn check_cancel(cancel: &CancelToken) -> Result<(), Error> {
    if cancel.is_cancelled() {
        Err(cancelled())
    } else {
        Ok(())
    }
}

/// Pulls `stream` to its end, handing each chunk to `on_chunk`.
pub(crate) fn drive(
    mut stream: ChatStream,
    mut on_chunk: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<StreamMetadata, Error> {
    while let Some(chunk) = stream.next_chunk() {
        if on_chunk(chunk?).is_break() {
            return Err(Error::Aborted(
                "the chunk callback asked to stop the stream".into(),
            ));
        }
    }
    Ok(stream.metadata().clone())
}

impl fmt::Debug for ModelApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelApi")
            .field("model", &self.model)
            .field("endpoint", &self.route.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "headers",
                &self
                    .route
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.route.timeout)
            .field("custom_ca", &self.route.ca_pem.is_some())
            .field("max_retries", &self.route.max_retries)
            .field(
                "fallbacks",
                &self
                    .plan
                    .fallbacks
                    .iter()
                    .map(|f| (f.route.api_base.as_str(), f.model.as_str()))
                    .collect::<Vec<_>>(),
            )
            .field("first_token_timeout", &self.plan.first_token)
            .field("hedge", &self.plan.hedge)
            .field("proxy", &self.route.proxy)
            .field("resolve", &self.route.names)
            .field("trace", &self.route.tracer)
            .field("mock_responses_left", &self.canned.remaining())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// What every OpenAI message has: a `role` string (`content` is optional,
/// e.g. an assistant message with `tool_calls`).
#[derive(serde::Deserialize)]
struct MessageShape<'a> {
    // Only its presence and type are checked.
    #[serde(borrow, rename = "role")]
    _role: Cow<'a, str>,
}

fn check_messages(messages: Option<&Value>) -> Result<(), Error> {
    let Some(Value::Array(messages)) = messages else {
        return Err(Error::InvalidArgument(
            "the request has no \"messages\" array: give a list of \
             {\"role\": ..., \"content\": ...} objects"
                .into(),
        ));
    };
    for (i, message) in messages.iter().enumerate() {
        match message.get("role") {
            Some(Value::String(_)) => {}
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "messages[{i}] is not an OpenAI message: it needs a \"role\" \
                     string (and usually \"content\"), got {}",
                    truncate(&message.to_string())
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_checked() {
        assert!(check_messages(Some(&serde_json::json!([{"role": "user"}]))).is_ok());
        let err = check_messages(Some(&serde_json::json!([{"role": "user"}, "hi"]))).unwrap_err();
        assert!(err.to_string().contains("messages[1]"), "{err}");
        assert!(check_messages(None).is_err());
    }
}
