//! Sending one request: the attempts (retries and their backoff), the
//! redirects followed, and where credentials go, as a state machine that
//! each poll moves on as far as the network allows (see [`crate::net`]).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use ureq_proto::http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, PROXY_AUTHORIZATION, USER_AGENT,
};
use ureq_proto::http::{HeaderName, HeaderValue, Response, Uri};

use crate::cancel::CancelToken;
use crate::error::truncate;
use crate::net::{Conn, Interest, Pool, TlsConfig, Transfer, Until};
use crate::proxy::Proxy;
use crate::redirect::{is_redirect, origin, redirect_target, MAX_REDIRECTS};
use crate::secrets::is_credential_header;
use crate::trace::{trace, Level, Took, Tracer};
use crate::{http, retry, Error};

/// How much of an error response's body is read.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Where requests go and how: the server, credentials, headers, timeout,
/// TLS, retries, and the pool of idle connections. Shared by a client and
/// the requests and streams it has under way.
pub(crate) struct Route {
    pub(crate) endpoint: String,
    /// `endpoint`, parsed once.
    pub(crate) endpoint_uri: Uri,
    /// `Bearer <api_key>`, marked sensitive.
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) timeout: Duration,
    /// PEM certificates trusted in place of the built-in roots.
    pub(crate) ca_pem: Option<Arc<[u8]>>,
    pub(crate) tls: TlsConfig,
    pub(crate) max_retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) pool: Pool,
    pub(crate) closed: AtomicBool,
    /// The first hop's addresses (the proxy's, or the configured
    /// server's), from the last lookup of its host name.
    pub(crate) looked_up: Mutex<Option<(Instant, Addresses)>>,
    /// The proxy every connection goes through, if one is named.
    pub(crate) proxy: Option<Proxy>,
    /// Where trace lines go; holds the secrets they are scrubbed of.
    pub(crate) tracer: Tracer,
}

/// The addresses of a server, or why its host name has none.
pub(crate) type Addresses = Result<Arc<[SocketAddr]>, String>;

/// How long a lookup of the configured server's host name is used.
const LOOKUP_KEPT: Duration = Duration::from_secs(30);

impl Clone for Route {
    /// The same settings, with a pool of its own.
    fn clone(&self) -> Route {
        Route {
            endpoint: self.endpoint.clone(),
            endpoint_uri: self.endpoint_uri.clone(),
            authorization: self.authorization.clone(),
            headers: self.headers.clone(),
            timeout: self.timeout,
            ca_pem: self.ca_pem.clone(),
            tls: self.tls.clone(),
            max_retries: self.max_retries,
            retry_backoff: self.retry_backoff,
            pool: Pool::default(),
            closed: AtomicBool::new(self.closed.load(Ordering::SeqCst)),
            looked_up: Mutex::default(),
            proxy: self.proxy.clone(),
            tracer: self.tracer.clone(),
        }
    }
}

impl Route {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The first hop's addresses (the proxy's, or the configured
    /// server's): looked up at most every [`LOOKUP_KEPT`], and never for
    /// an IP address or `localhost`.
    fn first_hop_addresses(&self) -> Addresses {
        let mut looked_up = self.looked_up.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, addrs)) = &*looked_up {
            if at.elapsed() < LOOKUP_KEPT {
                return addrs.clone();
            }
        }
        let addrs = addresses(self.proxy.as_ref().map_or(&self.endpoint_uri, |p| &p.uri));
        if addrs.is_ok() {
            *looked_up = Some((Instant::now(), addrs.clone()));
        }
        addrs
    }
}

/// One request under way, from its first attempt to the response head of
/// the last.
pub(crate) struct Request {
    route: Arc<Route>,
    body: Vec<u8>,
    accept: &'static str,
    cancel: CancelToken,
    /// Retries made so far.
    attempt: u32,
    /// A pooled connection the server had closed is replaced once per
    /// request, at once, without counting as a retry.
    stale_retry_left: bool,
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

/// A 2xx response, its body still to read. Dropped after its body was read
/// to the end, it hands its connection back to the pool; before, it closes
/// it.
pub(crate) struct Reply {
    head: Response<()>,
    transfer: Option<Transfer>,
    route: Arc<Route>,
    /// The pool's key for the connection.
    server: String,
}

impl Request {
    pub(crate) fn new(
        route: Arc<Route>,
        body: Vec<u8>,
        accept: &'static str,
        cancel: CancelToken,
    ) -> Request {
        let endpoint_addrs = route.first_hop_addresses();
        let target = Target::endpoint(&route, &endpoint_addrs);
        Request {
            endpoint_addrs,
            route,
            body,
            accept,
            cancel,
            attempt: 0,
            stale_retry_left: true,
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
    /// `Ok(None)` when it has not by `until` (`None`: wait as long as it
    /// takes), or the error that ends the request.
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
                    let mut buffer = [0; 4096];
                    let room = MAX_ERROR_BODY_BYTES - refused.body.len();
                    let read = refused
                        .transfer
                        .poll_body(&mut buffer[..room.min(4096)], until);
                    match read {
                        Ok(None) => return Ok(None),
                        Ok(Some(n)) if n > 0 && refused.body.len() + n < MAX_ERROR_BODY_BYTES => {
                            refused.body.extend_from_slice(&buffer[..n]);
                            continue;
                        }
                        Ok(Some(n)) => refused.body.extend_from_slice(&buffer[..n]),
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
        let mut headers = vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ACCEPT, HeaderValue::from_static(self.accept)),
            (USER_AGENT, HeaderValue::from_static(http::USER_AGENT_VALUE)),
        ];
        if let (Some(authorization), true) = (&route.authorization, target.same_origin) {
            headers.push((AUTHORIZATION, authorization.clone()));
        }
        for (name, value) in &route.headers {
            if target.same_origin || !is_credential_header(name.as_str()) {
                headers.push((name.clone(), value.clone()));
            }
        }
        // Plain HTTP through a proxy is forwarded by it: the request names
        // the whole URL, and carries the proxy's credentials.
        let forwarded = route.proxy.as_ref().filter(|_| !is_https(&target.uri));
        if let Some(authorization) = forwarded.and_then(|p| p.authorization.as_ref()) {
            headers.push((PROXY_AUTHORIZATION, authorization.clone()));
        }
        let (bytes, exchange) = http::post(
            &target.uri,
            headers.into_iter(),
            &self.body,
            forwarded.is_some(),
        )
        .map_err(|e| Error::InvalidArgument(format!("the request cannot be sent: {e}")))?;
        let server = server_key(&target.uri);
        let (conn, reused) = match route.pool.take(&server) {
            Some(conn) => (conn, true),
            None => match connect(route, target) {
                Ok(conn) => (conn, false),
                Err(ConnectError::Final(error)) => return Err(error.in_context(&target.url)),
                Err(ConnectError::Io(err)) => return self.failed(err, false),
            },
        };
        trace!(
            route.tracer,
            Level::Debug,
            "POST {} ({} bytes of JSON, {} request bytes) on {}",
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
            return Ok(Some(Reply {
                head,
                transfer: Some(transfer),
                route: Arc::clone(&self.route),
                server: server_key(&self.target.uri),
            }));
        }
        if let Some(location) = header(&head, "location").filter(|_| is_redirect(status)) {
            self.target.follow(
                status,
                location,
                &self.route.endpoint,
                self.route.proxy.is_some(),
            )?;
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
        Reply {
            head: Response::new(()),
            transfer: Some(refused.transfer),
            route: Arc::clone(&self.route),
            server: server_key(&self.target.uri),
        }
        .finish();
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

    /// After a failed connection: a retry, or the error.
    fn failed(&mut self, err: io::Error, stale: bool) -> Result<State, Error> {
        let retryable = retry::is_retryable_error(&err);
        if retryable && stale && self.stale_retry_left {
            self.stale_retry_left = false;
            trace!(
                self.route.tracer,
                Level::Debug,
                "the pooled connection was closed by the server ({err}): sending again at once \
                 on a new one"
            );
            return Ok(State::Waiting(Instant::now()));
        }
        if !retryable || self.attempt >= self.route.max_retries {
            return Err(Error::from_io(err).in_context(&self.target.url));
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
        self.target = Target::endpoint(&self.route, &self.endpoint_addrs);
        State::Waiting(Instant::now() + delay)
    }
}

impl Target {
    fn endpoint(route: &Route, addrs: &Addresses) -> Target {
        Target {
            url: route.endpoint.clone(),
            uri: route.endpoint_uri.clone(),
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
        endpoint: &str,
        proxied: bool,
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
        if !proxied {
            self.addrs = addresses(&self.uri);
        }
        self.redirects += 1;
        self.url = next;
        Ok(())
    }
}

impl Reply {
    /// A response header, when it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    /// Whether the body is JSON (`application/json`, `application/*+json`).
    pub(crate) fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|t| {
            let t = t.trim_start().to_ascii_lowercase();
            t.starts_with("application/json")
                || t.starts_with("application/") && t.contains("+json")
        })
    }

    /// How long the reply may be left alone before its timeout would expire.
    pub(crate) fn wake_in(&self) -> Duration {
        self.transfer
            .as_ref()
            .map_or(Duration::ZERO, Transfer::wake_in)
    }

    /// The socket the body is read from, and what it waits for.
    pub(crate) fn waits_on(&self) -> Option<(RawFd, Interest)> {
        self.transfer.as_ref().map(Transfer::waits_on)
    }

    /// Reads body bytes into `out`: `Ok(Some(0))` at the end of the body,
    /// `Ok(None)` when none came by `until` (`None`: wait as long as it
    /// takes).
    pub(crate) fn poll_body(
        &mut self,
        out: &mut [u8],
        until: Until,
    ) -> Result<Option<usize>, Error> {
        let Some(transfer) = &mut self.transfer else {
            return Ok(Some(0));
        };
        transfer.poll_body(out, until).map_err(Error::from_io)
    }

    /// Appends the body to `into`, up to its end: `Ok(false)` when it has
    /// not ended by `until`. A body over `limit` bytes is an error.
    pub(crate) fn poll_all(
        &mut self,
        into: &mut Vec<u8>,
        limit: u64,
        until: Until,
    ) -> Result<bool, Error> {
        if into.capacity() == 0 {
            // Sized by Content-Length up front (within the cap).
            let expected = self
                .header("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
                .min(limit);
            into.reserve(expected as usize + 1);
        }
        // Decoded into a piece on the stack, then copied: no zeroing of
        // the vector's room per read.
        let mut piece = [0u8; 16 * 1024];
        loop {
            let n = match self.poll_body(&mut piece, until)? {
                Some(0) => return Ok(true),
                Some(n) => n,
                None => return Ok(false),
            };
            if (into.len() + n) as u64 > limit {
                return Err(Error::InvalidResponse(format!(
                    "response body is larger than the cap of {limit} bytes \
                     (raise it with ModelApiBuilder::max_response_bytes)"
                )));
            }
            into.extend_from_slice(&piece[..n]);
        }
    }

    /// Ends the reply: its connection goes back to the pool when the body
    /// was read to its end, and is closed otherwise.
    pub(crate) fn finish(mut self) {
        self.release();
    }

    fn release(&mut self) {
        let Some(transfer) = self.transfer.take() else {
            return;
        };
        if !transfer.is_complete() || self.route.is_closed() {
            return;
        }
        if let Some(conn) = transfer.into_reusable() {
            self.route.pool.put(&self.server, conn);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.release();
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
    Conn::open(addrs.to_vec(), tunnel, tls).map_err(ConnectError::Io)
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

fn is_https(uri: &Uri) -> bool {
    uri.scheme_str() == Some("https")
}

fn port_of(uri: &Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if is_https(uri) { 443 } else { 80 })
}

/// The addresses of `uri`'s server. Looking up a host name is the one
/// step that may block; an IP address or `localhost` never does.
fn addresses(uri: &Uri) -> Addresses {
    let https = uri.scheme_str() == Some("https");
    let host = host_of(uri);
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok([SocketAddr::new(ip, port)].into());
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok([
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        ]
        .into());
    }
    match (host, port).to_socket_addrs() {
        Ok(found) => Ok(found.collect::<Vec<_>>().into()),
        Err(e) => Err(format!("host not found (DNS lookup of {host} failed: {e})")),
    }
}

/// The host of `uri`, without the brackets of an IPv6 address.
fn host_of(uri: &Uri) -> &str {
    let host = uri.host().unwrap_or_default();
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `scheme://host:port`: which idle connections can serve a URL.
fn server_key(uri: &Uri) -> String {
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    format!(
        "{}://{}:{port}",
        uri.scheme_str().unwrap_or("http"),
        uri.host().unwrap_or_default()
    )
}

fn header<'a>(head: &'a Response<()>, name: &str) -> Option<&'a str> {
    head.headers().get(name)?.to_str().ok()
}

/// The error for a non-2xx response, with the server's message.
fn http_error(status: u16, raw: &[u8]) -> Error {
    let body = String::from_utf8_lossy(raw).into_owned();
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
            ureq_proto::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no reason given")
                .to_string()
        });
    Error::Http {
        status,
        message,
        error_type,
        code,
        body,
    }
}
