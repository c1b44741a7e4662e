//! Where requests go and how ([`Route`]): the server and the way to it
//! (addresses, looked up and kept; a proxy), credentials, headers, timeout,
//! TLS, retries, and the pool of idle connections; and the rules of URLs
//! that the requests follow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq_proto::http::{HeaderName, HeaderValue, Uri};

use crate::net::{Pool, TlsConfig, Transfer};
use crate::proxy::Proxy;
use crate::trace::Tracer;

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

    /// The first hop's addresses (the proxy's, or the configured
    /// server's): looked up at most every [`LOOKUP_KEPT`], and never for
    /// an IP address or `localhost`.
    pub(crate) fn first_hop_addresses(&self) -> Addresses {
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
pub(crate) fn addresses(uri: &Uri) -> Addresses {
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
