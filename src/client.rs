//! [`ModelApi`]: its calls, and the request loop (retries, and the
//! redirects it follows). Creating a client and its settings are in
//! [`crate::builder`].

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::ops::ControlFlow;
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
use crate::mock::CannedReplies;
use crate::redirect::{is_redirect, origin, redirect_target, MAX_REDIRECTS};
use crate::secrets::{is_credential_header, Secrets};
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
    pub(crate) model: String,
    pub(crate) endpoint: String,
    /// `endpoint`, parsed once.
    pub(crate) endpoint_uri: Uri,
    pub(crate) api_key: Option<String>,
    /// `Bearer <api_key>`, built once and marked sensitive.
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) settings: AgentSettings,
    pub(crate) max_retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) max_response_bytes: u64,
    pub(crate) max_event_bytes: usize,
    /// `None` once closed.
    pub(crate) agent: RwLock<Option<ureq::Agent>>,
    pub(crate) closed: AtomicBool,
    pub(crate) canned: CannedReplies,
    pub(crate) secrets: Arc<Secrets>,
}

impl ModelApi {
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

/// Why one attempt failed: a transport failure ureq reported (perhaps worth
/// a retry), or an error that ends the call.
enum SendError {
    Ureq(ureq::Error),
    Final(Error),
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
    fn messages_are_checked() {
        assert!(check_messages(Some(&serde_json::json!([{"role": "user"}]))).is_ok());
        let err = check_messages(Some(&serde_json::json!([{"role": "user"}, "hi"]))).unwrap_err();
        assert!(err.to_string().contains("messages[1]"), "{err}");
        assert!(check_messages(None).is_err());
    }
}
