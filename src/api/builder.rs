//! Making a client and setting it up: [`ModelApi::new`],
//! [`ModelApi::from_env`], [`ModelApi::builder`] and [`ModelApiBuilder`],
//! the setters of a client not yet shared, and the checks of every
//! setting.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use ureq_proto::http::HeaderValue;

use crate::api::client::{
    ModelApi, DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF, DEFAULT_TIMEOUT,
};
use crate::api::mock::{self, CannedReplies};
use crate::error::Error;
use crate::secrets::{is_credential_header, parse_header, Secrets};
use crate::trace::{Hook, Tracer};
use crate::transport::endpoints::{fallback_route, Endpoint, Plan};
use crate::transport::net::{self, Pool};
use crate::transport::proxy::Proxy;
use crate::transport::resolve::NameTable;
use crate::transport::route::Route;
use crate::{TraceHook, TraceLevel};

impl ModelApi {
    /// A client with default settings. `api_base` is the server's URL, with
    /// or without a trailing `/v1`; `api_key`, when given, is sent as
    /// `Authorization: Bearer <key>`. `DEBUG_MOCK_RESPONSES` is read now.
    pub fn new(
        model: impl Into<String>,
        api_base: impl Into<String>,
        api_key: Option<String>,
    ) -> Result<ModelApi, Error> {
        let builder = ModelApi::builder(model, api_base);
        match api_key {
            Some(key) => builder.api_key(key).build(),
            None => builder.build(),
        }
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
        ModelApiBuilder::new(model.into(), api_base.into())
    }

    /// Changes the per-wait timeout (for use before the client is shared;
    /// the C API's `modelapi_set_timeout_ms`).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        check_timeout(timeout)?;
        self.each_route(|route| route.timeout = timeout);
        Ok(())
    }

    /// Trusts the CA certificates of a PEM file, in place of the built-in
    /// roots (for use before the client is shared; the C API's
    /// `modelapi_set_ca_file`). See [`ModelApiBuilder::ca_file`].
    pub fn set_ca_file(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let pem = net::load_ca_file(path.as_ref())?;
        let tls = net::tls_config(Some(&pem));
        self.each_route(|route| {
            route.tls = tls.clone();
            route.ca_pem = Some(Arc::clone(&pem));
            // Connections made with the old trust are not reused.
            route.pool.clear();
        });
        Ok(())
    }

    /// The route, to change before the client is shared; streams still
    /// open keep the settings they started with.
    fn route_mut(&mut self) -> &mut Route {
        Arc::make_mut(&mut self.route)
    }

    /// Changes every route: the client's own and its fallbacks'.
    fn each_route(&mut self, mut change: impl FnMut(&mut Route)) {
        change(self.route_mut());
        for fallback in &mut Arc::make_mut(&mut self.plan).fallbacks {
            change(Arc::make_mut(&mut fallback.route));
        }
    }

    /// Scrubs `secrets` from every route's trace lines and errors.
    fn set_secrets(&mut self, secrets: Secrets) {
        let secrets = Arc::new(secrets);
        self.each_route(|route| route.tracer = route.tracer.with_secrets(Arc::clone(&secrets)));
    }

    /// Changes the number of retries (for use before the client is shared).
    pub fn set_max_retries(&mut self, max_retries: u32) {
        self.each_route(|route| route.max_retries = max_retries);
    }

    /// Adds a header to every request (for use before the client is shared).
    /// A credential header (see [`ModelApiBuilder::header`]) goes to the
    /// client's own endpoint only, not to its fallbacks.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let header = parse_header(name, value)?;
        let secrets = self.route.tracer.secrets().with_header(&header);
        self.set_secrets(secrets);
        self.route_mut().headers.push(header.clone());
        if !is_credential_header(header.0.as_str()) {
            for fallback in &mut Arc::make_mut(&mut self.plan).fallbacks {
                Arc::make_mut(&mut fallback.route)
                    .headers
                    .push(header.clone());
            }
        }
        Ok(())
    }

    /// Sets the first-token deadline, or turns it off with `None` (for use
    /// before the client is shared; the C API's
    /// `modelapi_set_first_token_timeout_ms`). See
    /// [`ModelApiBuilder::first_token_timeout`].
    pub fn set_first_token_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let timeout = timeout.filter(|t| !t.is_zero());
        if let Some(timeout) = timeout {
            check_timeout(timeout)?;
        }
        Arc::make_mut(&mut self.plan).first_token = timeout;
        Ok(())
    }

    /// Sets the hedge delay, or turns hedging off with `None` (for use
    /// before the client is shared; the C API's `modelapi_set_hedge_ms`).
    /// See [`ModelApiBuilder::hedge`].
    pub fn set_hedge(&mut self, delay: Option<Duration>) -> Result<(), Error> {
        let delay = delay.filter(|d| !d.is_zero());
        if let Some(delay) = delay {
            check_timeout(delay)?;
        }
        Arc::make_mut(&mut self.plan).hedge = delay;
        Ok(())
    }

    /// Adds a fallback endpoint after the others (for use before the
    /// client is shared; the C API's `modelapi_add_fallback`). See
    /// [`ModelApiBuilder::fallback`].
    pub fn add_fallback(
        &mut self,
        api_base: &str,
        model: &str,
        api_key: Option<&str>,
    ) -> Result<(), Error> {
        let fallback = fallback_endpoint(&self.route, api_base, model, api_key)?;
        let secrets = self
            .route
            .tracer
            .secrets()
            .with_values(&key_secrets(api_key));
        Arc::make_mut(&mut self.plan).fallbacks.push(fallback);
        self.set_secrets(secrets);
        Ok(())
    }

    /// Sends every request through an HTTP proxy, or through none with
    /// `None` (for use before the client is shared; the C API's
    /// `modelapi_set_proxy`). See [`ModelApiBuilder::proxy`].
    pub fn set_proxy(&mut self, proxy_url: Option<&str>) -> Result<(), Error> {
        let proxy = proxy_url
            .filter(|url| !url.trim().is_empty())
            .map(Proxy::parse)
            .transpose()?;
        if let Some(proxy) = &proxy {
            let secrets = self.route.tracer.secrets().with_values(&proxy.secrets);
            self.set_secrets(secrets);
        }
        self.each_route(|route| {
            route.proxy = proxy.clone();
            // Connections made another way are not reused.
            route.pool.clear();
            *route.looked_up.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
        });
        Ok(())
    }

    /// Adds an entry to the client's own name table, or clears the table
    /// with `None` (for use before the client is shared; the C API's
    /// `modelapi_set_resolve`). See [`ModelApiBuilder::resolve`].
    pub fn set_resolve(&mut self, entry: Option<&str>) -> Result<(), Error> {
        let mut names = self.route.names.clone();
        match entry {
            Some(entry) => names.add(entry)?,
            None => names = NameTable::default(),
        }
        self.each_route(|route| {
            route.names = names.clone();
            // Connections made to other addresses are not reused, and the
            // server's addresses are found again.
            route.pool.clear();
            *route.looked_up.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
        });
        Ok(())
    }

    /// Replaces the canned replies (for use before the client is shared;
    /// the C API's `modelapi_set_mock_responses`): `replies` is written as
    /// `DEBUG_MOCK_RESPONSES` is (a JSON array of strings and of objects
    /// standing for assistant messages, a JSON string, or plain text), and
    /// takes the place of that variable; `None` or `""` leaves the client
    /// none, whatever the variable says. A host that cannot set the
    /// process's environment safely (a game with other threads, .NET, a
    /// Lua state) sets its canned replies here.
    ///
    /// ```
    /// let mut api = modelapi::ModelApi::new("m", "http://localhost:8000", None)?;
    /// api.set_mock_responses(Some(r#"["Hello", {"refusal": "No."}]"#))?;
    /// assert_eq!(api.mock_responses_left(), 2);
    /// api.set_mock_responses(None)?;
    /// assert_eq!(api.mock_responses_left(), 0);
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    pub fn set_mock_responses(&mut self, replies: Option<&str>) -> Result<(), Error> {
        let replies = mock::parse_replies(replies.unwrap_or_default(), "the canned replies")?;
        self.canned = CannedReplies::new(replies);
        Ok(())
    }

    /// Sets the trace hook, or removes it with `None` (for use before the
    /// client is shared; the C API's `modelapi_set_trace`). See
    /// [`ModelApiBuilder::trace`].
    pub fn set_trace(&mut self, hook: Option<TraceHook>) {
        let hook: Option<Hook> = hook.map(Hook::from);
        self.each_route(|route| route.tracer = route.tracer.with_hook(hook.clone()));
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
    proxy: Option<String>,
    resolve: Vec<String>,
    trace: Option<Hook>,
    mock_replies: Option<Vec<Value>>,
    max_response_bytes: u64,
    max_event_bytes: usize,
    /// `(api_base, model, api_key)` of each fallback endpoint.
    fallbacks: Vec<(String, String, Option<String>)>,
    first_token_timeout: Option<Duration>,
    hedge: Option<Duration>,
}

impl ModelApiBuilder {
    /// The default settings (see [`ModelApi::builder`]).
    pub(crate) fn new(model: String, api_base: String) -> ModelApiBuilder {
        ModelApiBuilder {
            model,
            api_base,
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            headers: Vec::new(),
            ca_file: None,
            proxy: None,
            resolve: Vec::new(),
            trace: None,
            mock_replies: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            fallbacks: Vec::new(),
            first_token_timeout: None,
            hedge: None,
        }
    }

    /// The longest wait from sending a request to its first event (a
    /// piece of content, reasoning, a tool call or a refusal); SSE
    /// comments, keep-alive bytes and role-only or empty deltas do not
    /// count, so a server that stalls while it keeps its connection busy
    /// is still caught. Past it the attempt fails with [`Error::Timeout`],
    /// or the next [`fallback`](Self::fallback) endpoint is tried. Off by
    /// default. A `complete` call has no first token: the deadline bounds
    /// its wait for the response head.
    ///
    /// ```
    /// use std::time::Duration;
    /// let api = modelapi::ModelApi::builder("small-model", "http://127.0.0.1:8080")
    ///     .first_token_timeout(Duration::from_millis(1500))
    ///     .fallback("http://127.0.0.1:4000", "backup-model", None)
    ///     .hedge(Duration::from_millis(300))
    ///     .build()?;
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    pub fn first_token_timeout(mut self, timeout: Duration) -> Self {
        self.first_token_timeout = Some(timeout).filter(|t| !t.is_zero());
        self
    }

    /// Adds an endpoint after the client's own (and after earlier
    /// fallbacks), tried when the current one fails before any event was
    /// handed out: a connect or TLS failure, a 5xx or 429 after its
    /// retries, a timeout (the [first-token
    /// deadline](Self::first_token_timeout) among them). Never after an
    /// event was handed out: no text comes twice. `api_key` goes to this
    /// endpoint only (as the client's key goes to the client's endpoint
    /// only); credential headers set with [`header`](Self::header) stay
    /// with the client's endpoint, the other settings apply to all.
    pub fn fallback(
        mut self,
        api_base: impl Into<String>,
        model: impl Into<String>,
        api_key: Option<String>,
    ) -> Self {
        self.fallbacks
            .push((api_base.into(), model.into(), api_key));
        self
    }

    /// When the current endpoint has not produced its first event after
    /// `delay`, the next [`fallback`](Self::fallback) endpoint is started
    /// too; the first of the two to produce an event serves the stream and
    /// the other is cancelled at once (its connection closed, so its
    /// server stops generating). No thread: both advance in the same waits
    /// and polls. Off by default; streams only.
    pub fn hedge(mut self, delay: Duration) -> Self {
        self.hedge = Some(delay).filter(|d| !d.is_zero());
        self
    }

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

    /// Sends every request through the HTTP proxy at `url`:
    /// `http://host:port`, or `http://user:password@host:port` (the
    /// credentials go to the proxy only, as `Proxy-Authorization: Basic`).
    /// HTTPS requests go through a `CONNECT` tunnel: the proxy sees the
    /// server's name and encrypted bytes only, and the server's certificate
    /// is verified as without a proxy. Plain HTTP requests are forwarded by
    /// the proxy, which then sees them whole (the API key included).
    /// Proxies from the environment (`HTTPS_PROXY`, ...) are never used.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Adds an entry to the client's own name table, which is consulted
    /// before the system's resolver, as curl's `--resolve`:
    /// `HOST:PORT:ADDRESS[,ADDRESS...]`, an IPv6 address in brackets
    /// (e.g. `api.example.com:443:192.0.2.10,[2001:db8::10]`). A request
    /// to `HOST:PORT` (the server, a redirect's target, or the proxy)
    /// connects to these addresses, in the order given, with the fallback
    /// of every connect: the next address is tried when one fails or has
    /// not answered within 250 ms. TLS still verifies `HOST`. The host is
    /// matched case-insensitively; a later entry for the same host and port
    /// replaces an earlier one. [`build`](Self::build) checks the entries.
    ///
    /// ```
    /// let api = modelapi::ModelApi::builder("my-model", "https://llm.internal:8443")
    ///     .resolve("llm.internal:8443:10.0.0.7,10.0.0.8")
    ///     .build()?;
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    pub fn resolve(mut self, entry: impl Into<String>) -> Self {
        self.resolve.push(entry.into());
        self
    }

    /// Calls `hook` with a line for each step of every request: connects,
    /// TLS, the request line and size, the status with the time to the
    /// head, retries and their waits, redirects, a stream's first event and
    /// its end, and every error. Never the API key, a credential header or
    /// message content; nothing per chunk. The hook runs on the thread
    /// making the call, so on several threads at once when the client is
    /// shared. The same lines go to the `log` facade (target
    /// [`LOG_TARGET`](crate::LOG_TARGET)) when a logger is installed.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let lines = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&lines);
    /// let api = modelapi::ModelApi::builder("my-model", "http://localhost:8000")
    ///     .trace(move |level, line| seen.lock().unwrap().push(format!("{level}: {line}")))
    ///     .mock_responses(vec!["Hi".into()])
    ///     .build()?;
    /// api.stream(&[modelapi::Message::user("Hello")], None)?.into_text().unwrap();
    /// assert!(lines.lock().unwrap().iter().any(|l| l.contains("finished")));
    /// # Ok::<(), modelapi::Error>(())
    /// ```
    pub fn trace(mut self, hook: impl Fn(TraceLevel, &str) + Send + Sync + 'static) -> Self {
        self.trace = Some(Arc::new(hook));
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
        let authorization = authorization(api_key.as_deref())?;
        let mut secrets = Secrets::new(api_key.as_deref());
        for (_, _, key) in &self.fallbacks {
            secrets = secrets.with_values(&key_secrets(key.as_deref()));
        }
        for timeout in [self.first_token_timeout, self.hedge].into_iter().flatten() {
            check_timeout(timeout)?;
        }
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
        let proxy = self.proxy.as_deref().map(Proxy::parse).transpose()?;
        if let Some(proxy) = &proxy {
            secrets = secrets.with_values(&proxy.secrets);
        }
        let mut names = NameTable::default();
        for entry in &self.resolve {
            names.add(entry)?;
        }
        let ca_pem = match &self.ca_file {
            Some(path) => Some(net::load_ca_file(path)?),
            None => None,
        };
        let route = Route {
            api_base: api_base_of(&self.api_base),
            endpoint_uri: endpoint.parse().expect("checked by endpoint()"),
            endpoint,
            authorization,
            headers,
            timeout: self.timeout,
            tls: net::tls_config(ca_pem.as_deref()),
            ca_pem,
            max_retries: self.max_retries,
            retry_backoff: self.retry_backoff,
            pool: Pool::default(),
            closed: AtomicBool::new(false),
            looked_up: Default::default(),
            proxy,
            names,
            tracer: Tracer::new(self.trace, Arc::new(secrets)),
        };
        let mut plan = Plan {
            fallbacks: Vec::with_capacity(self.fallbacks.len()),
            first_token: self.first_token_timeout,
            hedge: self.hedge,
        };
        for (api_base, model, key) in &self.fallbacks {
            let fallback = fallback_endpoint(&route, api_base, model, key.as_deref())?;
            plan.fallbacks.push(fallback);
        }
        Ok(ModelApi {
            model: self.model,
            api_key,
            route: Arc::new(route),
            plan: Arc::new(plan),
            max_response_bytes: self.max_response_bytes,
            max_event_bytes: self.max_event_bytes.max(1),
            canned: CannedReplies::new(canned),
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
            .field("proxy", &self.proxy.as_deref().map(|_| "<set>"))
            .field("resolve", &self.resolve)
            .field("trace", &self.trace.is_some())
            .finish_non_exhaustive()
    }
}

/// `Authorization: Bearer <key>` (marked sensitive) for a key, if any.
fn authorization(api_key: Option<&str>) -> Result<Option<HeaderValue>, Error> {
    let Some(key) = api_key.filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
        Error::InvalidArgument(
            "api_key holds characters not allowed in an HTTP header \
             (a line break or a control character?)"
                .into(),
        )
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// What of a key is scrubbed from trace lines and errors.
fn key_secrets(api_key: Option<&str>) -> Vec<String> {
    api_key
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .into_iter()
        .collect()
}

/// A fallback endpoint with the settings of `like`, its own server and
/// key (checked).
fn fallback_endpoint(
    like: &Route,
    api_base: &str,
    model: &str,
    api_key: Option<&str>,
) -> Result<Endpoint, Error> {
    if model.trim().is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the model of the fallback {} is empty: give the model's name",
            api_base.trim()
        )));
    }
    let mut route = fallback_route(like, endpoint(api_base)?, authorization(api_key)?);
    route.api_base = api_base_of(api_base);
    Ok(Endpoint {
        model: model.to_string(),
        route: Arc::new(route),
    })
}

/// `api_base` as a stream tells which endpoint served it.
fn api_base_of(api_base: &str) -> String {
    api_base.trim().trim_end_matches('/').to_string()
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
    let uri: ureq_proto::http::Uri = base.parse().map_err(|_| bad("it is not a URL"))?;
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

pub(crate) fn check_timeout(timeout: Duration) -> Result<(), Error> {
    if timeout.is_zero() {
        return Err(Error::InvalidArgument(
            "timeout is zero: give a positive duration (the default is 60 s)".into(),
        ));
    }
    Ok(())
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
}
