//! Sending one request: the attempts (retries and their backoff), the
//! redirects followed, and where credentials go, as a state machine that
//! each poll moves on as far as the network allows (see [`crate::transport::net`]).
//! Where requests go is the [`Route`]; the 2xx answer, a [`Reply`].

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ureq_proto::http::header::{CONTENT_TYPE, PROXY_AUTHORIZATION};
use ureq_proto::http::{Method, Response, Uri};

use crate::cancel::CancelToken;
use crate::decoder::head::{http_error, MAX_ERROR_BODY_BYTES};
use crate::error::Error;
use crate::trace::{trace, Level, Took};
use crate::transport::net::{Conn, Interest, Transfer, Until};
use crate::transport::redirect::{is_redirect, origin, redirect_target, MAX_REDIRECTS};
use crate::transport::reply::{header, Reply};
use crate::transport::route::{host_of, is_https, port_of, server_key, Addresses, Route};
use crate::transport::{http, retry};

/// One request under way, from its first attempt to the response head of
/// the last.
pub(crate) struct Request {
    route: Arc<Route>,
    /// POST (chat completions, embeddings) or GET (the model list).
    method: Method,
    /// Where the request goes before any redirect: the route's chat
    /// completions endpoint, or another endpoint of the same server.
    endpoint: String,
    endpoint_uri: Uri,
    body: Vec<u8>,
    accept: &'static str,
    cancel: CancelToken,
    /// Retries made so far.
    attempt: u32,
    /// A request on a pooled connection that failed before any byte of an
    /// answer (the server had closed it while it was idle) is sent again
    /// once per request, at once, without counting as a retry.
    stale_retry_left: bool,
    /// The next attempt goes on a new connection, not a pooled one: the
    /// resend after a dead pooled connection (the other pooled ones are
    /// likely as dead, and a second failure would cost a retry).
    fresh_connection: bool,
    /// Where the attempt goes after the redirects it has followed.
    target: Target,
    /// The first hop's addresses, looked up when the request was made: a
    /// retry does not look them up again.
    endpoint_addrs: Addresses,
    /// When the request was made, for the times the trace tells.
    started: Instant,
    state: State,
}

struct Target {
    url: String,
    uri: Uri,
    addrs: Addresses,
    same_origin: bool,
    redirects: usize,
}

enum State {
    /// The next attempt starts at this time (now, or after a backoff).
    Waiting(Instant),
    /// Sent, or being sent: waiting for the response head.
    Sending(Box<Transfer>),
    /// A non-2xx answer: reading its body for the error message.
    Refused(Box<Refused>),
    /// Handed over or failed.
    Over,
}

struct Refused {
    transfer: Transfer,
    head: Response<()>,
    body: Vec<u8>,
}

impl Request {
    pub(crate) fn new(
        route: Arc<Route>,
        body: Vec<u8>,
        accept: &'static str,
        cancel: CancelToken,
    ) -> Request {
        let endpoint = route.endpoint.clone();
        let endpoint_uri = route.endpoint_uri.clone();
        Request::to(
            route,
            Method::POST,
            (endpoint, endpoint_uri),
            body,
            accept,
            cancel,
        )
    }

    /// A `method` request to `endpoint` (URL and its parse), another
    /// endpoint of the route's server (`{api_base}/v1/embeddings`,
    /// `/v1/models`), with everything else as [`Request::new`]: retries,
    /// redirects, credentials, timeouts, trace. A GET sends no body.
    pub(crate) fn to(
        route: Arc<Route>,
        method: Method,
        endpoint: (String, Uri),
        body: Vec<u8>,
        accept: &'static str,
        cancel: CancelToken,
    ) -> Request {
        let (endpoint, endpoint_uri) = endpoint;
        let endpoint_addrs = route.first_hop_addresses();
        let target = Target::endpoint(&endpoint, &endpoint_uri, &endpoint_addrs);
        Request {
            endpoint_addrs,
            route,
            method,
            endpoint,
            endpoint_uri,
            body,
            accept,
            cancel,
            attempt: 0,
            stale_retry_left: true,
            fresh_connection: false,
            target,
            started: Instant::now(),
            state: State::Waiting(Instant::now()),
        }
    }

    /// The socket the request waits on and for what, or `None` while it
    /// waits on a clock (a retry's backoff).
    pub(crate) fn waits_on(&self) -> Option<(RawFd, Interest)> {
        match &self.state {
            State::Sending(transfer) => Some(transfer.waits_on()),
            State::Refused(refused) => Some(refused.transfer.waits_on()),
            State::Waiting(_) | State::Over => None,
        }
    }

    /// How long the request may be left alone before it must be polled
    /// again, whatever its socket does: until its retry's backoff ends, or
    /// its timeout would expire.
    pub(crate) fn wake_in(&self) -> Duration {
        match &self.state {
            State::Waiting(start) => start.saturating_duration_since(Instant::now()),
            State::Sending(transfer) => transfer.wake_in(),
            State::Refused(refused) => refused.transfer.wake_in(),
            State::Over => Duration::ZERO,
        }
    }

    /// Moves the request on: the 2xx response once it has come,
    /// `Ok(None)` when it has not by `until`, or the error that ends the
    /// request.
    pub(crate) fn poll(&mut self, until: Until) -> Result<Option<Reply>, Error> {
        let result = self.step(until);
        if result.is_err() {
            self.state = State::Over;
        }
        result
    }

    fn step(&mut self, until: Until) -> Result<Option<Reply>, Error> {
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Aborted("the call was cancelled".into()));
            }
            match &mut self.state {
                State::Waiting(start) => {
                    let start = *start;
                    let now = Instant::now();
                    if now < start {
                        let wake = match until.or_before(start) {
                            Until::At(at) => at,
                            _ => now,
                        };
                        self.cancel.sleep(wake.saturating_duration_since(now));
                        if Instant::now() < start {
                            if self.cancel.is_cancelled() {
                                continue;
                            }
                            return Ok(None);
                        }
                    }
                    if self.route.is_closed() {
                        return Err(Error::Closed);
                    }
                    self.state = self.send()?;
                }
                State::Sending(transfer) => match transfer.poll_head(until) {
                    Ok(None) => return Ok(None),
                    Ok(Some(head)) => {
                        let State::Sending(transfer) =
                            std::mem::replace(&mut self.state, State::Over)
                        else {
                            unreachable!("matched above")
                        };
                        if let Some(reply) = self.answered(*transfer, head)? {
                            return Ok(Some(reply));
                        }
                    }
                    Err(err) => {
                        let stale = transfer.reused && !transfer.heard_back();
                        self.state = self.failed(err, stale)?;
                    }
                },
                State::Refused(refused) => {
                    let mut piece = [0; 4096];
                    let room = (MAX_ERROR_BODY_BYTES - refused.body.len()).min(piece.len());
                    match refused.transfer.poll_body(&mut piece[..room], until) {
                        Ok(None) => return Ok(None),
                        Ok(Some(n)) => {
                            refused.body.extend_from_slice(&piece[..n]);
                            if n > 0 && refused.body.len() < MAX_ERROR_BODY_BYTES {
                                continue;
                            }
                        }
                        // A body that cannot be read still leaves the
                        // status to report.
                        Err(_) => {}
                    }
                    let State::Refused(refused) = std::mem::replace(&mut self.state, State::Over)
                    else {
                        unreachable!("matched above")
                    };
                    self.state = self.refused(*refused)?;
                }
                State::Over => return Err(Error::Aborted("the request is over".into())),
            }
        }
    }

    /// Starts an attempt: a pooled connection to the target or a new one,
    /// and the request queued on it.
    fn send(&mut self) -> Result<State, Error> {
        let route = &self.route;
        let target = &self.target;
        let mut headers = route.request_headers(self.accept, target.same_origin);
        if self.method != Method::POST {
            // No body: no Content-Type.
            headers.retain(|(name, _)| *name != CONTENT_TYPE);
        }
        // Plain HTTP through a proxy is forwarded by it: the request names
        // the whole URL, and carries the proxy's credentials.
        let forwarded = route.proxy.as_ref().filter(|_| !is_https(&target.uri));
        if let Some(authorization) = forwarded.and_then(|p| p.authorization.as_ref()) {
            headers.push((PROXY_AUTHORIZATION, authorization.clone()));
        }
        let (bytes, exchange) = http::send(
            self.method.clone(),
            &target.uri,
            headers.into_iter(),
            &self.body,
            forwarded.is_some(),
        )
        .map_err(|e| Error::InvalidArgument(format!("the request cannot be sent: {e}")))?;
        let server = server_key(&target.uri);
        let pooled = if std::mem::take(&mut self.fresh_connection) {
            None
        } else {
            route.pool.take(&server)
        };
        let (conn, reused) = match pooled {
            Some(conn) => (conn, true),
            None => match connect(route, target) {
                Ok(conn) => (conn, false),
                Err(ConnectError::Final(error)) => {
                    return Err(error.in_context(self.method.as_str(), &target.url))
                }
                Err(ConnectError::Io(err)) => return self.failed(err, false),
            },
        };
        trace!(
            route.tracer,
            Level::Debug,
            "{} {} ({} bytes of JSON, {} request bytes) on {}",
            self.method,
            target.url,
            self.body.len(),
            bytes.len(),
            if reused {
                "a pooled connection".to_string()
            } else {
                conn_description(route, target)
            }
        );
        let transfer = Transfer::new(
            conn,
            reused,
            &bytes,
            exchange,
            route.timeout,
            self.cancel.clone(),
        );
        Ok(State::Sending(Box::new(transfer)))
    }

    /// What a response head means: the reply (2xx), a redirect to follow,
    /// or an error whose body is read next.
    fn answered(&mut self, transfer: Transfer, head: Response<()>) -> Result<Option<Reply>, Error> {
        let status = head.status().as_u16();
        trace!(
            self.route.tracer,
            Level::Debug,
            "HTTP {status}{}{}{} after {}",
            header(&head, "content-type").map_or(String::new(), |t| format!(", {t}")),
            header(&head, "x-request-id").map_or(String::new(), |t| format!(", x-request-id {t}")),
            transfer
                .tls_version()
                .map_or(String::new(), |v| format!(", {v}, certificate verified")),
            Took(self.started.elapsed())
        );
        if head.status().is_success() {
            return Ok(Some(Reply::new(
                head,
                transfer,
                Arc::clone(&self.route),
                server_key(&self.target.uri),
            )));
        }
        if let Some(location) = header(&head, "location").filter(|_| is_redirect(status)) {
            self.target
                .follow(status, location, &self.route, &self.endpoint)?;
            trace!(
                self.route.tracer,
                Level::Info,
                "following the {status} redirect to {}{}",
                self.target.url,
                if self.target.same_origin {
                    ""
                } else {
                    " (another origin: without the credentials)"
                }
            );
            self.state = State::Waiting(Instant::now());
            return Ok(None);
        }
        self.state = State::Refused(Box::new(Refused {
            transfer,
            head,
            body: Vec::new(),
        }));
        Ok(None)
    }

    /// After a non-2xx answer: a retry after its backoff, or the error.
    fn refused(&mut self, refused: Refused) -> Result<State, Error> {
        let status = refused.head.status().as_u16();
        let delay = retry::server_delay(
            header(&refused.head, "retry-after-ms"),
            header(&refused.head, "retry-after"),
            SystemTime::now(),
        );
        // The connection is kept when the error body was read to its end.
        self.route
            .release(&server_key(&self.target.uri), refused.transfer);
        let error = http_error(status, &refused.body);
        if !retry::is_retryable_status(status) || self.attempt >= self.route.max_retries {
            return Err(error);
        }
        let wait = delay.unwrap_or_else(|| retry::backoff(self.route.retry_backoff, self.attempt));
        let why = match delay {
            Some(_) => format!("{} (the wait the server asked for)", error.trace_summary()),
            None => error.trace_summary(),
        };
        Ok(self.retry_in(wait, &why))
    }

    /// After a failed connection: a resend, a retry, or the error.
    ///
    /// `stale`: the connection came from the pool and failed before any
    /// byte of an answer. The server most likely closed it while it was
    /// idle and never saw the request, so the request goes again at once,
    /// once, on a new connection, without counting as a retry (as curl and
    /// browsers do). Any other failure, also one after the whole request
    /// went on a new connection (the server may have acted on it), is
    /// retried only as `max_retries` allows.
    fn failed(&mut self, err: io::Error, stale: bool) -> Result<State, Error> {
        let retryable = retry::is_retryable_error(&err);
        if retryable && stale && self.stale_retry_left {
            self.stale_retry_left = false;
            self.fresh_connection = true;
            trace!(
                self.route.tracer,
                Level::Debug,
                "the pooled connection was closed by the server ({err}): sending again at once \
                 on a new one"
            );
            return Ok(State::Waiting(Instant::now()));
        }
        if !retryable || self.attempt >= self.route.max_retries {
            return Err(Error::from_io(err).in_context(self.method.as_str(), &self.target.url));
        }
        let why = Error::from_io(err).trace_summary();
        Ok(self.retry_in(retry::backoff(self.route.retry_backoff, self.attempt), &why))
    }

    fn retry_in(&mut self, delay: Duration, why: &str) -> State {
        trace!(
            self.route.tracer,
            Level::Warn,
            "retry {} of {} in {}: {why}",
            self.attempt + 1,
            self.route.max_retries,
            Took(delay)
        );
        self.attempt += 1;
        self.target = Target::endpoint(&self.endpoint, &self.endpoint_uri, &self.endpoint_addrs);
        // The delay is a capped backoff or a server's wait of at most 60 s;
        // checked all the same, as every instant computed here.
        let now = Instant::now();
        State::Waiting(now.checked_add(delay).unwrap_or(now))
    }
}

impl Target {
    fn endpoint(url: &str, uri: &Uri, addrs: &Addresses) -> Target {
        Target {
            url: url.to_string(),
            uri: uri.clone(),
            addrs: addrs.clone(),
            same_origin: true,
            redirects: 0,
        }
    }

    /// Follows a redirect: 307 and 308 (which keep the method and the
    /// body) up to [`MAX_REDIRECTS`] times. Credentials go only to the
    /// configured server's origin, and `https` is never left for plain
    /// `http`.
    fn follow(
        &mut self,
        status: u16,
        location: &str,
        route: &Route,
        endpoint: &str,
    ) -> Result<(), Error> {
        let next = redirect_target(&self.url, location)?;
        if !matches!(status, 307 | 308) {
            return Err(Error::Http {
                status,
                message: format!(
                    "the server redirects to {next} with {status}, which would turn the \
                     POST into a GET; only 307 and 308 are followed: set api_base to the \
                     new address"
                ),
                error_type: None,
                code: None,
                body: String::new(),
            });
        }
        if self.url.starts_with("https:") && next.starts_with("http:") {
            return Err(Error::Transport(format!(
                "refused to follow a redirect from https to plain http ({next})"
            )));
        }
        if self.redirects >= MAX_REDIRECTS {
            return Err(Error::Transport(format!(
                "more than {MAX_REDIRECTS} redirects from {endpoint}"
            )));
        }
        self.uri = next.parse().map_err(|_| {
            Error::InvalidResponse(format!("the redirect location {next:?} is not a URL"))
        })?;
        self.same_origin &= origin(&next) == origin(endpoint);
        // A redirect to another host name is looked up here, inside a poll:
        // the one lookup that cannot be made in advance. (Through a proxy,
        // the proxy's addresses stay.)
        if route.proxy.is_none() {
            self.addrs = route.addresses(&self.uri);
        }
        self.redirects += 1;
        self.url = next;
        Ok(())
    }
}

enum ConnectError {
    /// Worth a retry, perhaps.
    Io(io::Error),
    /// Not: a host that does not resolve, a URL that cannot be used.
    Final(Error),
}

/// Starts a connection to the target's server: straight, or through the
/// proxy (a `CONNECT` tunnel for https).
fn connect(route: &Route, target: &Target) -> Result<Conn, ConnectError> {
    let addrs = target
        .addrs
        .as_ref()
        .map_err(|e| ConnectError::Final(Error::Transport(e.clone())))?;
    let https = is_https(&target.uri);
    let tunnel = match &route.proxy {
        Some(proxy) if https => {
            Some(proxy.connect_request(host_of(&target.uri), port_of(&target.uri)))
        }
        _ => None,
    };
    let tls = https.then_some((&route.tls, host_of(&target.uri)));
    Conn::open(addrs.to_vec(), tunnel, tls, &route.tracer).map_err(ConnectError::Io)
}

/// How a new connection is made, for the trace.
fn conn_description(route: &Route, target: &Target) -> String {
    let addrs = match &target.addrs {
        Ok(addrs) => addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or "),
        Err(_) => "no address".into(),
    };
    match &route.proxy {
        Some(proxy) if is_https(&target.uri) => {
            format!("a new connection to {addrs} through proxy {proxy} (CONNECT tunnel)")
        }
        Some(proxy) => format!("a new connection to {addrs}, proxy {proxy} (forwarded)"),
        None => format!("a new connection to {addrs}"),
    }
}
