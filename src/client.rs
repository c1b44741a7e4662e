//! [`ModelApi`], its builder, and the request/retry loop.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};
use ureq::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use ureq::http::{HeaderName, HeaderValue, Response, Uri};
use ureq::Body;

use crate::answer::{chunks_of, StreamMetadata};
use crate::cancel::CancelToken;
use crate::error::truncate;
use crate::event::StreamEvent;
use crate::mock::{self, CannedReplies};
use crate::secrets::{is_credential_header, parse_header, Secrets};
use crate::stream::ChatStream;
use crate::transport::AgentSettings;
use crate::types::ChatCompletion;
use crate::{retry, transport, Error};

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
/// How much of an error response's body is read.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

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
    model: String,
    endpoint: String,
    /// `endpoint`, parsed once.
    endpoint_uri: Uri,
    api_key: Option<String>,
    /// `Bearer <api_key>`, built once and marked sensitive.
    authorization: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
    settings: AgentSettings,
    max_retries: u32,
    retry_backoff: Duration,
    max_response_bytes: u64,
    max_event_bytes: usize,
    /// `None` once closed.
    agent: RwLock<Option<ureq::Agent>>,
    closed: AtomicBool,
    canned: CannedReplies,
    secrets: Arc<Secrets>,
}

impl ModelApi {
    /// A client with default settings. `api_base` is the server's URL, with
    /// or without a trailing `/v1`; `api_key`, when given, is sent as
    /// `Authorization: Bearer <key>`. `DEBUG_MOCK_RESPONSES` is read now.
    pub fn new(
        model: impl Into<String>,
        api_base: impl Into<String>,
        api_key: Option<String>,
    ) -> Result<ModelApi, Error> {
        let mut builder = ModelApi::builder(model, api_base);
        builder.api_key = api_key;
        builder.build()
    }

    /// A client configured by the environment: `MODEL_API_URL` (required),
    /// `MODEL_NAME` (required) and `MODEL_API_KEY` (optional). No other key
    /// variable is read.
    pub fn from_env() -> Result<ModelApi, Error> {
        let required = |name: &str, example: &str| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(Error::InvalidArgument(format!(
                "{name} is not set: set it to {example}"
            ))),
        };
        let api_base = required(
            "MODEL_API_URL",
            "the server's URL, e.g. http://localhost:8000",
        )?;
        let model = required("MODEL_NAME", "the model's name, e.g. gpt-4o-mini")?;
        let api_key = std::env::var("MODEL_API_KEY").ok();
        ModelApi::new(model, api_base, api_key)
    }

    /// A builder, for settings beyond [`new`](Self::new).
    pub fn builder(model: impl Into<String>, api_base: impl Into<String>) -> ModelApiBuilder {
        ModelApiBuilder {
            model: model.into(),
            api_base: api_base.into(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            headers: Vec::new(),
            ca_file: None,
            mock_replies: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }

    /// The model this client asks for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The URL requests go to: `{api_base}/v1/chat/completions`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
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
        body: Result<Vec<u8>, Error>,
        cancel: &CancelToken,
    ) -> Result<ChatCompletion, Error> {
        self.ensure_open()?;
        let body = body?;
        check_cancel(cancel)?;
        if let Some(reply) = self.canned.take() {
            return self.canned.completion(&self.model, body.len(), &reply);
        }
        cancel
            .enter(|| {
                let mut response = self.send(&body, false, cancel)?;
                let body = read_body(&mut response, self.max_response_bytes)?;
                ChatCompletion::from_body(body)
            })
            .map_err(|e| self.call_error(e, cancel))
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

    /// Opens one stream with a request `body` (see
    /// [`run_complete`](Self::run_complete)).
    fn run_stream(
        &self,
        body: Result<Vec<u8>, Error>,
        cancel: &CancelToken,
    ) -> Result<ChatStream, Error> {
        self.ensure_open()?;
        let body = body?;
        check_cancel(cancel)?;
        let stream = if let Some(reply) = self.canned.take() {
            self.canned.stream(&self.model, body.len(), &reply)?
        } else {
            cancel
                .enter(|| self.open_stream(&body, cancel))
                .map_err(|e| self.call_error(e, cancel))?
        };
        Ok(stream
            .with_secrets(Arc::clone(&self.secrets))
            .with_cancel(cancel.clone()))
    }

    fn open_stream(&self, body: &[u8], cancel: &CancelToken) -> Result<ChatStream, Error> {
        let mut response = self.send(body, true, cancel)?;
        let request_id = header(&response, "x-request-id").map(str::to_string);
        if is_json(&response) {
            let body = read_body(&mut response, self.max_response_bytes)?;
            let completion = ChatCompletion::from_body(body)?;
            return Ok(stream_of_completion(completion, request_id));
        }
        Ok(ChatStream::from_events(
            response.into_body().into_reader(),
            self.max_event_bytes,
            request_id,
        ))
    }

    /// The error a call returns: `Aborted` once its token is cancelled,
    /// whatever the I/O reported; secrets scrubbed.
    fn call_error(&self, error: Error, cancel: &CancelToken) -> Error {
        if cancel.is_cancelled() {
            return cancelled();
        }
        self.secrets.redact(error)
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
        self.closed.store(true, Ordering::SeqCst);
        let agent = self.agent.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(agent);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Changes the per-wait timeout (for use before the client is shared;
    /// the C API's `modelapi_set_timeout_ms`).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        check_timeout(timeout)?;
        self.settings.timeout = timeout;
        self.rebuild_agent();
        Ok(())
    }

    /// Trusts the CA certificates of a PEM file, in place of the built-in
    /// roots (for use before the client is shared; the C API's
    /// `modelapi_set_ca_file`). See [`ModelApiBuilder::ca_file`].
    pub fn set_ca_file(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        self.settings.ca_pem = Some(transport::load_ca_file(path.as_ref())?);
        self.rebuild_agent();
        Ok(())
    }

    fn rebuild_agent(&mut self) {
        let agent = self.agent.get_mut().unwrap_or_else(|p| p.into_inner());
        if agent.is_some() {
            *agent = Some(transport::agent(&self.settings));
        }
    }

    /// Changes the number of retries (for use before the client is shared).
    pub fn set_max_retries(&mut self, max_retries: u32) {
        self.max_retries = max_retries;
    }

    /// Adds a header to every request (for use before the client is shared).
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let header = parse_header(name, value)?;
        self.secrets = Arc::new(self.secrets.with_header(&header));
        self.headers.push(header);
        Ok(())
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
    ) -> Result<Vec<u8>, Error> {
        let unserializable = |e: serde_json::Error| {
            Error::InvalidArgument(format!("messages cannot be serialized: {e}"))
        };
        let mut body = Vec::with_capacity(256);
        body.extend_from_slice(b"{\"model\":");
        serde_json::to_writer(&mut body, &self.model).map_err(unserializable)?;
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
        Ok(body)
    }

    /// The JSON body of a request.
    fn request_body(
        &self,
        mut request: Map<String, Value>,
        mock_response: Option<&str>,
        stream: bool,
    ) -> Result<Vec<u8>, Error> {
        check_messages(request.get("messages"))?;
        if !request.contains_key("model") {
            request.insert("model".into(), Value::String(self.model.clone()));
        }
        request.insert("stream".into(), Value::Bool(stream));
        if let Some(mock) = mock_response {
            request.insert("mock_response".into(), Value::String(mock.to_string()));
        }
        serde_json::to_vec(&request)
            .map_err(|e| Error::InvalidArgument(format!("the request cannot be serialized: {e}")))
    }

    /// Sends `body`, retrying connection failures and retryable statuses,
    /// and returns the first 2xx response.
    fn send(
        &self,
        body: &[u8],
        stream: bool,
        cancel: &CancelToken,
    ) -> Result<Response<Body>, Error> {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut attempt = 0;
        let mut stale_retry_left = true;
        loop {
            let agent = self
                .agent
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .ok_or(Error::Closed)?;
            let tried_before = transport::connections_tried();
            let retry_in = match self.send_following_redirects(&agent, body, accept) {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let delay = retry::server_delay(
                        header(&response, "retry-after-ms"),
                        header(&response, "retry-after"),
                        SystemTime::now(),
                    );
                    let error = http_error(&mut response);
                    if !retry::is_retryable_status(status) || attempt >= self.max_retries {
                        return Err(self.secrets.redact(error));
                    }
                    delay.unwrap_or_else(|| retry::backoff(self.retry_backoff, attempt))
                }
                Err(SendError::Final(error)) => return Err(self.secrets.redact(error)),
                Err(SendError::Ureq(err)) => {
                    let retryable = retry::is_retryable_error(&err);
                    // A pooled connection the server had closed: the request
                    // never reached it, and a new connection is made at once
                    // (once per call, not counted as a retry).
                    let on_pooled_connection = transport::connections_tried() == tried_before;
                    if retryable && on_pooled_connection && stale_retry_left {
                        stale_retry_left = false;
                        continue;
                    }
                    if !retryable || attempt >= self.max_retries {
                        let error = Error::from_ureq(err).in_context(&self.endpoint);
                        return Err(self.secrets.redact(error));
                    }
                    retry::backoff(self.retry_backoff, attempt)
                }
            };
            cancel.sleep(retry_in);
            check_cancel(cancel)?;
            self.ensure_open()?;
            attempt += 1;
        }
    }

    /// One attempt: POSTs `body`, following 307 and 308 redirects (which
    /// keep the method and the body) up to [`MAX_REDIRECTS`] times.
    /// Credentials go only to the configured server's origin, and an
    /// `https` request is never redirected to plain `http`.
    fn send_following_redirects(
        &self,
        agent: &ureq::Agent,
        body: &[u8],
        accept: &'static str,
    ) -> Result<Response<Body>, SendError> {
        let mut url = self.endpoint.clone();
        let mut same_origin = true;
        let mut same_url = true;
        for _ in 0..=MAX_REDIRECTS {
            let uri = if same_url {
                self.endpoint_uri.clone()
            } else {
                url.parse().map_err(|_| {
                    SendError::Final(Error::InvalidResponse(format!(
                        "the redirect location {url:?} is not a URL"
                    )))
                })?
            };
            let mut request = agent
                .post(uri)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .header(ACCEPT, HeaderValue::from_static(accept));
            if let (Some(authorization), true) = (&self.authorization, same_origin) {
                request = request.header(AUTHORIZATION, authorization);
            }
            for (name, value) in &self.headers {
                if same_origin || !is_credential_header(name.as_str()) {
                    request = request.header(name, value);
                }
            }
            let response = request.send(body).map_err(SendError::Ureq)?;
            let status = response.status().as_u16();
            let Some(location) = header(&response, "location").filter(|_| is_redirect(status))
            else {
                return Ok(response);
            };
            let next = redirect_target(&url, location).map_err(SendError::Final)?;
            if !matches!(status, 307 | 308) {
                return Err(SendError::Final(Error::Http {
                    status,
                    message: format!(
                        "the server redirects to {next} with {status}, which would turn the \
                         POST into a GET; only 307 and 308 are followed: set api_base to the \
                         new address"
                    ),
                    error_type: None,
                    code: None,
                    body: String::new(),
                }));
            }
            if url.starts_with("https:") && next.starts_with("http:") {
                return Err(SendError::Final(Error::Transport(format!(
                    "refused to follow a redirect from https to plain http ({next})"
                ))));
            }
            same_origin &= origin(&next) == origin(&self.endpoint);
            same_url = false;
            url = next;
        }
        Err(SendError::Final(Error::Transport(format!(
            "more than {MAX_REDIRECTS} redirects from {}",
            self.endpoint
        ))))
    }
}

/// How many redirects one attempt follows.
const MAX_REDIRECTS: usize = 5;

/// Why one attempt failed: a transport failure ureq reported (perhaps worth
/// a retry), or an error that ends the call.
enum SendError {
    Ureq(ureq::Error),
    Final(Error),
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The absolute URL a `Location` header points to from `base`.
fn redirect_target(base: &str, location: &str) -> Result<String, Error> {
    let location = location.trim();
    let bad = || Error::InvalidResponse(format!("the redirect location {location:?} is not a URL"));
    if location.starts_with("http://") || location.starts_with("https://") {
        let uri: ureq::http::Uri = location.parse().map_err(|_| bad())?;
        return uri.host().map(|_| location.to_string()).ok_or_else(bad);
    }
    if location.contains("://") {
        return Err(Error::Transport(format!(
            "refused to follow a redirect to {location}: only http and https are supported"
        )));
    }
    let origin = origin(base);
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split(':').next().unwrap_or("https");
        return Ok(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{origin}{location}"));
    }
    // A relative path: next to the last segment of the base's path.
    let path = &base[origin.len()..];
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Ok(format!("{origin}{dir}{location}"))
}

/// `scheme://authority` of an absolute URL, lowercased.
fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    url[..end].to_ascii_lowercase()
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
        self.api.run_stream(body, self.cancel)
    }

    /// [`ModelApi::stream_request`], cancellable.
    pub fn stream_request(
        &self,
        request: Map<String, Value>,
        mock_response: Option<&str>,
    ) -> Result<ChatStream, Error> {
        let body = self.api.request_body(request, mock_response, true);
        self.api.run_stream(body, self.cancel)
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
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.settings.timeout)
            .field("custom_ca", &self.settings.ca_pem.is_some())
            .field("max_retries", &self.max_retries)
            .field("mock_responses_left", &self.canned.remaining())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Settings for a [`ModelApi`]; see [`ModelApi::builder`].
///
/// ```
/// use std::time::Duration;
/// let api = modelapi::ModelApi::builder("my-model", "http://localhost:8000")
///     .timeout(Duration::from_secs(30))
///     .max_retries(0)
///     .mock_responses(vec!["Hello from a canned reply".into()])
///     .build()?;
/// let answer = api.complete(&[modelapi::Message::user("Hi")], None)?;
/// assert_eq!(answer.content(), Some("Hello from a canned reply"));
/// # Ok::<(), modelapi::Error>(())
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct ModelApiBuilder {
    model: String,
    api_base: String,
    api_key: Option<String>,
    timeout: Duration,
    max_retries: u32,
    retry_backoff: Duration,
    headers: Vec<(String, String)>,
    ca_file: Option<PathBuf>,
    mock_replies: Option<Vec<Value>>,
    max_response_bytes: u64,
    max_event_bytes: usize,
}

impl ModelApiBuilder {
    /// The API key, sent as `Authorization: Bearer <key>` to the configured
    /// server only. An empty key counts as none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The longest any single wait on the network may take (default 60 s):
    /// connecting, sending, waiting for the response head, and waiting
    /// between two reads of the body. A stream that keeps sending is never
    /// cut by it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a failed request is sent again (default 2): after
    /// connection failures and statuses 408, 409, 429 and 5xx, never once
    /// a response has begun.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The first wait between attempts (default 0.5 s); it doubles per
    /// attempt, up to 8 s, less random jitter. A `Retry-After` or
    /// `retry-after-ms` header of up to 60 s takes precedence.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// A header sent with every request (e.g. `OpenAI-Organization`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Trusts the CA certificates of this PEM file for HTTPS, in place of
    /// the built-in (Mozilla) roots: for a server whose certificate a
    /// private CA signed, or a self-signed one. Verification stays on.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Canned replies, used in place of `DEBUG_MOCK_RESPONSES`: one per call,
    /// in order, with no network traffic; then calls go to the server.
    pub fn mock_responses(mut self, replies: Vec<String>) -> Self {
        self.mock_replies = Some(replies.into_iter().map(Value::String).collect());
        self
    }

    /// Canned replies as `DEBUG_MOCK_RESPONSES` has them, in place of it
    /// (and of [`mock_responses`](Self::mock_responses)):
    /// each a JSON string (the answer's text) or a JSON object standing for
    /// a whole assistant message, with any of `content`,
    /// `reasoning_content`, `tool_calls` and `refusal`:
    ///
    /// ```
    /// use serde_json::json;
    /// let api = modelapi::ModelApi::builder("my-model", "http://localhost:8000")
    ///     .mock_replies(vec![
    ///         json!({"tool_calls": [{"function": {"name": "get_weather",
    ///                                             "arguments": {"city": "Paris"}}}]}),
    ///         json!("It is sunny in Paris."),
    ///     ])
    ///     .build()?;
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    ///
    /// A tool call's `id` defaults to `call_mock_<n>_<i>`, its `arguments`
    /// may be JSON (their text is used), and a reply with tool calls
    /// finishes with `tool_calls`. [`build`](Self::build) checks them.
    pub fn mock_replies(mut self, replies: Vec<Value>) -> Self {
        self.mock_replies = Some(replies);
        self
    }

    /// The cap on a non-streamed response body (default 64 MiB).
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The cap on one server-sent event, and on one line of the stream
    /// (default 16 MiB).
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Checks the settings and creates the client. Reads
    /// `DEBUG_MOCK_RESPONSES` unless [`mock_responses`](Self::mock_responses)
    /// was given.
    pub fn build(self) -> Result<ModelApi, Error> {
        if self.model.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "model is empty: give the model's name, e.g. gpt-4o-mini".into(),
            ));
        }
        let endpoint = endpoint(&self.api_base)?;
        check_timeout(self.timeout)?;
        let api_key = self.api_key.filter(|k| !k.is_empty());
        let authorization = match &api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    Error::InvalidArgument(
                        "api_key holds characters not allowed in an HTTP header \
                         (a line break or a control character?)"
                            .into(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut secrets = Secrets::new(api_key.as_deref());
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let header = parse_header(name, value)?;
            secrets = secrets.with_header(&header);
            headers.push(header);
        }
        let canned = match self.mock_replies {
            Some(replies) => replies
                .into_iter()
                .enumerate()
                .map(|(i, reply)| mock::reply_of(reply, &format!("canned reply {i}")))
                .collect::<Result<_, _>>()
                .map_err(Error::InvalidArgument)?,
            None => match std::env::var(mock::MOCK_ENV_VAR) {
                Ok(value) => mock::parse_env_value(&value)?,
                Err(std::env::VarError::NotPresent) => Vec::new(),
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is not valid UTF-8",
                        mock::MOCK_ENV_VAR
                    )))
                }
            },
        };
        let settings = AgentSettings {
            timeout: self.timeout,
            ca_pem: match &self.ca_file {
                Some(path) => Some(transport::load_ca_file(path)?),
                None => None,
            },
        };
        Ok(ModelApi {
            model: self.model,
            endpoint_uri: endpoint.parse().expect("checked by endpoint()"),
            endpoint,
            api_key,
            authorization,
            headers,
            agent: RwLock::new(Some(transport::agent(&settings))),
            settings,
            max_retries: self.max_retries,
            retry_backoff: self.retry_backoff,
            max_response_bytes: self.max_response_bytes,
            max_event_bytes: self.max_event_bytes.max(1),
            closed: AtomicBool::new(false),
            canned: CannedReplies::new(canned),
            secrets: Arc::new(secrets),
        })
    }
}

impl fmt::Debug for ModelApiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelApiBuilder")
            .field("model", &self.model)
            .field("api_base", &self.api_base)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// `POST` URL of the chat completions endpoint for `api_base`.
fn endpoint(api_base: &str) -> Result<String, Error> {
    let base = api_base.trim().trim_end_matches('/');
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "api_base {base:?} is not usable: {why}; give the server's URL, \
             e.g. http://localhost:8000 or https://api.openai.com/v1"
        ))
    };
    let uri: ureq::http::Uri = base.parse().map_err(|_| bad("it is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(_) => return Err(bad("only http:// and https:// are supported")),
        None => return Err(bad("it has no http:// or https:// scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if uri.query().is_some() {
        return Err(bad("it has a query string"));
    }
    Ok(if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    })
}

fn check_timeout(timeout: Duration) -> Result<(), Error> {
    if timeout.is_zero() {
        return Err(Error::InvalidArgument(
            "timeout is zero: give a positive duration (the default is 60 s)".into(),
        ));
    }
    Ok(())
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

fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name)?.to_str().ok()
}

fn is_json(response: &Response<Body>) -> bool {
    header(response, "content-type").is_some_and(|t| {
        let t = t.trim_start().to_ascii_lowercase();
        t.starts_with("application/json") || t.starts_with("application/") && t.contains("+json")
    })
}

/// Reads a whole body of at most `limit` bytes as text.
fn read_body(response: &mut Response<Body>, limit: u64) -> Result<String, Error> {
    // Sized by Content-Length up front (within the cap): one allocation.
    let expected = response.body().content_length().unwrap_or(0).min(limit);
    let mut bytes = Vec::with_capacity(expected as usize);
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .reader()
        .read_to_end(&mut bytes)
        .map_err(Error::from_io)?;
    // Invalid UTF-8 (a server's bug) becomes U+FFFD, as in streams, so
    // the rest of the answer is not lost.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The error for a non-2xx response, with the server's message.
fn http_error(response: &mut Response<Body>) -> Error {
    let status = response.status();
    let mut raw = Vec::new();
    // A body that cannot be read still leaves the status to report.
    let _ = response
        .body_mut()
        .as_reader()
        .take(MAX_ERROR_BODY_BYTES)
        .read_to_end(&mut raw);
    let body = String::from_utf8_lossy(&raw).into_owned();
    let (mut message, mut error_type, mut code) = (None, None, None);
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&body) {
        let detail = object.get("error").unwrap_or(&Value::Null);
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        error_type = text(detail.get("type"));
        code = text(detail.get("code"));
        message = Some(crate::error::error_message(&Value::Object(object)));
    }
    let message = message
        .or_else(|| Some(truncate(body.trim())).filter(|m| !m.is_empty()))
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_string()
        });
    Error::Http {
        status: status.as_u16(),
        message,
        error_type,
        code,
        body,
    }
}

/// A stream of a plain JSON answer to a stream request: the answer, cut
/// into chunks (one per part of each choice), read like any stream.
fn stream_of_completion(completion: ChatCompletion, request_id: Option<String>) -> ChatStream {
    ChatStream::from_memory(chunks_of(&completion, usize::MAX, true), request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = |b: &str| endpoint(b).unwrap();
        assert_eq!(
            e("http://host:8000"),
            "http://host:8000/v1/chat/completions"
        );
        assert_eq!(
            e("http://host:8000///"),
            "http://host:8000/v1/chat/completions"
        );
        assert_eq!(
            e("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            e("https://api.openai.com/v1/"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(e("http://h/proxy"), "http://h/proxy/v1/chat/completions");
        for bad in [
            "",
            "localhost:8000",
            "ftp://h",
            "http://",
            "not a url",
            "http://h/?a=1",
        ] {
            let err = endpoint(bad).unwrap_err().to_string();
            assert!(err.contains("api_base"), "{bad}: {err}");
        }
    }

    #[test]
    fn redirect_targets() {
        let base = "https://h:1/v1/chat/completions";
        let t = |l: &str| redirect_target(base, l).unwrap();
        assert_eq!(t("https://other/x"), "https://other/x");
        assert_eq!(t("/v2/chat/completions"), "https://h:1/v2/chat/completions");
        assert_eq!(t("//mirror:2/v1"), "https://mirror:2/v1");
        assert_eq!(t("completions2"), "https://h:1/v1/chat/completions2");
        assert!(redirect_target(base, "ftp://x/y").is_err());
        assert!(redirect_target(base, "http://").is_err());
        assert_eq!(origin("HTTP://Example.com:80/a?b"), "http://example.com:80");
        assert_eq!(origin("http://h"), "http://h");
    }

    #[test]
    fn messages_are_checked() {
        assert!(check_messages(Some(&serde_json::json!([{"role": "user"}]))).is_ok());
        let err = check_messages(Some(&serde_json::json!([{"role": "user"}, "hi"]))).unwrap_err();
        assert!(err.to_string().contains("messages[1]"), "{err}");
        assert!(check_messages(None).is_err());
    }
}
