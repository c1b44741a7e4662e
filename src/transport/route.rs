//! Where requests go and how ([`Route`]): the server and the way to it
//! (addresses, looked up and kept; a proxy), credentials, headers, timeout,
//! TLS, retries, and the pool of idle connections; and the rules of URLs
//! that the requests follow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq_proto::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use ureq_proto::http::{HeaderName, HeaderValue, Uri};

use crate::secrets::is_credential_header;
use crate::trace::Tracer;
#[cfg(feature = "net")]
use crate::transport::net::Transfer;
use crate::transport::net::{Pool, TlsConfig};
use crate::transport::proxy::Proxy;
use crate::transport::resolve::NameTable;

/// Where requests go and how: the server, credentials, headers, timeout,
/// TLS, retries, and the pool of idle connections. Shared by a client and
/// the requests and streams it has under way.
pub(crate) struct Route {
    /// The `api_base` it was made from, trimmed of trailing slashes.
    pub(crate) api_base: String,
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
    /// The client's own name table, consulted before the system's
    /// resolver.
    pub(crate) names: NameTable,
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
            api_base: self.api_base.clone(),
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
            names: self.names.clone(),
            tracer: self.tracer.clone(),
        }
    }
}

impl Route {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    #[cfg(feature = "net")]
    /// Ends a transfer with `server`: its connection goes back to the pool
    /// when its request was sent whole, its answer was read to the end and
    /// the server keeps it open (see [`Transfer::into_reusable`]), and is
    /// closed otherwise.
    pub(crate) fn release(&self, server: &str, transfer: Transfer) {
        if !transfer.is_complete() || self.is_closed() {
            return;
        }
        if let Some(conn) = transfer.into_reusable() {
            self.pool.put(server, conn);
        }
    }

    /// The headers of a request to the server, as the client sends them
    /// (the framing ones, `Host` and `Content-Length`, aside): JSON in,
    /// `accept` out, the client's name, the key and the client's own
    /// headers. `same_origin`: whether the request goes to the configured
    /// server's origin; elsewhere (a redirect to another origin) the key
    /// and every credential header stay home.
    pub(crate) fn request_headers(
        &self,
        accept: &'static str,
        same_origin: bool,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ACCEPT, HeaderValue::from_static(accept)),
            (
                USER_AGENT,
                HeaderValue::from_static(crate::transport::http::USER_AGENT_VALUE),
            ),
        ];
        if let (Some(authorization), true) = (&self.authorization, same_origin) {
            headers.push((AUTHORIZATION, authorization.clone()));
        }
        for (name, value) in &self.headers {
            if same_origin || !is_credential_header(name.as_str()) {
                headers.push((name.clone(), value.clone()));
            }
        }
        headers
    }

    #[cfg(feature = "net")]
    /// The first hop's addresses (the proxy's, or the configured
    /// server's): looked up at most every [`LOOKUP_KEPT`], and never for
    /// an IP address or `localhost`.
    pub(crate) fn first_hop_addresses(&self) -> Addresses {
        self.first_hop_addresses_by(|uri| self.addresses(uri))
    }

    #[cfg(feature = "net")]
    /// [`first_hop_addresses`](Self::first_hop_addresses) with `look_up`
    /// for the lookup (a test makes it slow).
    fn first_hop_addresses_by(&self, look_up: impl FnOnce(&Uri) -> Addresses) -> Addresses {
        let kept = || self.looked_up.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, addrs)) = &*kept() {
            if at.elapsed() < LOOKUP_KEPT {
                return addrs.clone();
            }
        }
        // Looked up without the lock: a DNS server slow to answer holds up
        // this request alone, not every other thread's. Threads that find
        // no addresses kept at the same time each look up (the system's
        // resolver has its own cache); the last answer is kept.
        let addrs = look_up(self.proxy.as_ref().map_or(&self.endpoint_uri, |p| &p.uri));
        if addrs.is_ok() {
            *kept() = Some((Instant::now(), addrs.clone()));
        }
        addrs
    }

    /// Another endpoint of the server, beside the chat completions one:
    /// `{api_base}/v1/{path}` (`embeddings`, `models`), its URL and parse.
    pub(crate) fn sibling(&self, path: &str) -> (String, Uri) {
        let base = self
            .endpoint
            .strip_suffix("/chat/completions")
            .unwrap_or(&self.endpoint);
        let url = format!("{base}/{path}");
        // The endpoint parsed, and `path` is one of this crate's.
        let uri = url.parse().unwrap_or_else(|_| self.endpoint_uri.clone());
        (url, uri)
    }

    #[cfg(feature = "net")]
    /// The addresses of `uri`'s server: from the client's name table, else
    /// as [`addresses`] finds them.
    pub(crate) fn addresses(&self, uri: &Uri) -> Addresses {
        match self.names.look_up(host_of(uri), port_of(uri)) {
            Some(addrs) => Ok(addrs.into()),
            None => addresses(uri),
        }
    }
}

/// Whether `uri` is `https`.
pub(crate) fn is_https(uri: &Uri) -> bool {
    uri.scheme_str() == Some("https")
}

/// The port of `uri`, or its scheme's.
pub(crate) fn port_of(uri: &Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if is_https(uri) { 443 } else { 80 })
}

/// The addresses of `uri`'s server. Looking up a host name is the one
/// step that may block; an IP address or `localhost` never does.
#[cfg(feature = "net")]
fn addresses(uri: &Uri) -> Addresses {
    let host = host_of(uri);
    let port = port_of(uri);
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
pub(crate) fn host_of(uri: &Uri) -> &str {
    let host = uri.host().unwrap_or_default();
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `scheme://host:port`: which idle connections can serve a URL.
pub(crate) fn server_key(uri: &Uri) -> String {
    let port = port_of(uri);
    format!(
        "{}://{}:{port}",
        uri.scheme_str().unwrap_or("http"),
        uri.host().unwrap_or_default()
    )
}

#[cfg(all(test, feature = "net"))]
mod tests {
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// A lookup of the first hop's name holds no lock that other threads
    /// wait on: while one thread's lookup hangs (the system's resolver
    /// waiting on a DNS server that does not answer), another thread's
    /// request gets its addresses. The system's resolver cannot be made
    /// slow from a test, so the lookup is a stand-in that blocks until it
    /// is released; everything else is the real code.
    #[test]
    fn a_slow_lookup_does_not_hold_up_other_threads() {
        let api = crate::ModelApi::builder("m", "http://slow.test:8000")
            .build()
            .unwrap();
        let route = Arc::clone(&api.route);
        let fast: Arc<[SocketAddr]> = [SocketAddr::from(([192, 0, 2, 1], 8000))].into();

        let (entered, entered_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let slow_route = Arc::clone(&route);
        let slow_addrs = Arc::clone(&fast);
        let slow = thread::spawn(move || {
            slow_route.first_hop_addresses_by(|_| {
                entered.send(()).unwrap();
                // Bounded: released by the test, or gives up after 10 s.
                let _ = release_rx.recv_timeout(Duration::from_secs(10));
                Ok(slow_addrs)
            })
        });
        entered_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the slow lookup started");

        let (done, done_rx) = mpsc::channel();
        let other_route = Arc::clone(&route);
        let other_addrs = Arc::clone(&fast);
        let other = thread::spawn(move || {
            let addrs = other_route.first_hop_addresses_by(|_| Ok(other_addrs));
            done.send(addrs).unwrap();
        });
        let other_result = done_rx.recv_timeout(Duration::from_secs(5));
        release.send(()).unwrap();
        let slow_result = slow.join().unwrap();
        other.join().unwrap();
        let other_result =
            other_result.expect("a second thread got its addresses while a lookup hung");
        assert_eq!(other_result.unwrap()[..], fast[..]);
        assert_eq!(slow_result.unwrap()[..], fast[..]);
        // The lookups are kept for the next requests.
        let kept = route.first_hop_addresses_by(|_| Err("looked up again".into()));
        assert_eq!(kept.unwrap()[..], fast[..]);
    }

    /// The name table comes before the system's resolver, for the server
    /// and for the proxy.
    #[test]
    fn the_name_table_comes_first() {
        let mut api = crate::ModelApi::builder("m", "http://Model.Test:8000")
            .resolve("model.test:8000:127.0.0.9,[::1]")
            .resolve("localhost:8000:127.0.0.8")
            .build()
            .unwrap();
        let addrs = |api: &crate::ModelApi| -> Vec<String> {
            let addrs = api.route.first_hop_addresses().unwrap();
            addrs.iter().map(ToString::to_string).collect()
        };
        assert_eq!(addrs(&api), ["127.0.0.9:8000", "[::1]:8000"]);
        let localhost: Uri = "http://localhost:8000/x".parse().unwrap();
        assert_eq!(
            api.route.addresses(&localhost).unwrap()[..],
            [SocketAddr::from(([127, 0, 0, 8], 8000))]
        );
        api.set_proxy(Some("http://proxy.test:3128")).unwrap();
        api.set_resolve(Some("PROXY.test:3128:127.0.0.7")).unwrap();
        assert_eq!(addrs(&api), ["127.0.0.7:3128"]);
        api.set_resolve(None).unwrap();
        api.set_proxy(None).unwrap();
        api.set_resolve(Some("model.test:8000:127.0.0.6")).unwrap();
        assert_eq!(addrs(&api), ["127.0.0.6:8000"]);
        assert!(format!("{api:?}").contains("model.test:8000:127.0.0.6"));
    }
}
