//! The HTTP agent: ureq configured for per-wait timeouts, pooled
//! keep-alive connections, verified TLS, and no threads.
//!
//! Every timeout of ureq but three is a deadline for a whole phase
//! (`recv_body`, `global`, `per_call` would cut a healthy stream that runs
//! long), and a `global`, `per_call` or `resolve` timeout makes ureq's
//! resolver start a thread per DNS lookup. So only these are set, each to
//! the client's timeout:
//!
//! - `timeout_connect`: one connection attempt;
//! - `timeout_per_write`: each write of the request;
//! - `timeout_per_read`: each read, of the response head and of the body,
//!   so a stream that keeps sending is never cut, and one that goes silent
//!   fails after one timeout.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::config::RedirectAuthHeaders;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectionDetails, Connector, DefaultConnector, Transport};
use ureq::Agent;

use crate::Error;

/// The `User-Agent` header: the library and its version.
pub(crate) const USER_AGENT: &str = concat!("modelapi/", env!("CARGO_PKG_VERSION"));

/// Idle connections kept per host: enough for many threads sharing one
/// client against one server.
const IDLE_CONNECTIONS_PER_HOST: usize = 16;

/// What an agent is built from.
#[derive(Debug, Clone)]
pub(crate) struct AgentSettings {
    pub(crate) timeout: Duration,
    /// PEM certificates to trust in place of the built-in roots.
    pub(crate) ca_pem: Option<Arc<[u8]>>,
}

/// Builds the agent of one client.
pub(crate) fn agent(settings: &AgentSettings) -> Agent {
    let timeout = Some(settings.timeout);
    let config = Agent::config_builder()
        // Non-2xx answers come back as responses, so their bodies (the
        // server's error message) can be read.
        .http_status_as_error(false)
        .timeout_connect(timeout)
        .timeout_per_read(timeout)
        .timeout_per_write(timeout)
        .user_agent(USER_AGENT)
        // Proxies from the environment are not used: the key goes to the
        // configured server and nowhere else.
        .proxy(None)
        // Redirects are followed by the client (see `client::send`): ureq
        // would turn a redirected POST into a GET.
        .max_redirects(0)
        .redirect_auth_headers(RedirectAuthHeaders::Never)
        .max_idle_connections(2 * IDLE_CONNECTIONS_PER_HOST)
        .max_idle_connections_per_host(IDLE_CONNECTIONS_PER_HOST)
        // uvicorn (vLLM, LiteLLM, most Python servers) closes idle
        // connections after 5 s: reusing one older than that would race
        // the server closing it.
        .max_idle_age(Duration::from_secs(4));
    #[cfg(feature = "tls")]
    let config = config.tls_config(tls_config(settings.ca_pem.as_deref()));
    let connector = DefaultConnector::new().chain(NoteConnects);
    Agent::with_parts(config.build(), connector, DefaultResolver::default())
}

#[cfg(feature = "tls")]
fn tls_config(ca_pem: Option<&[u8]>) -> ureq::tls::TlsConfig {
    let builder = ureq::tls::TlsConfig::builder();
    let Some(pem) = ca_pem else {
        return builder.build();
    };
    let certs: Vec<_> = ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    builder
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build()
}

/// Reads and checks a PEM file of CA certificates.
pub(crate) fn load_ca_file(path: &Path) -> Result<Arc<[u8]>, Error> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| Error::InvalidArgument(format!("ca_file {shown} cannot be read: {e}")))?;
    #[cfg(feature = "tls")]
    {
        let certificates = ureq::tls::parse_pem(&pem)
            .filter(|item| matches!(item, Ok(ureq::tls::PemItem::Certificate(_))))
            .count();
        if certificates == 0 {
            return Err(Error::InvalidArgument(format!(
                "ca_file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        Ok(pem.into())
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = pem;
        Err(Error::InvalidArgument(format!(
            "ca_file {shown}: this build of modelapi has no TLS (feature \"tls\" is off)"
        )))
    }
}

thread_local! {
    /// Connections this thread has opened, so a failed request can tell
    /// whether it went out on a new connection or on a pooled one.
    static CONNECTIONS_OPENED: Cell<u64> = const { Cell::new(0) };
}

/// How many connections this thread has opened so far.
pub(crate) fn connections_opened() -> u64 {
    CONNECTIONS_OPENED.with(Cell::get)
}

/// A pass-through connector at the end of ureq's chain that counts the
/// connections opened on this thread (connections are made on the
/// caller's thread: the library starts none).
#[derive(Debug)]
struct NoteConnects;

impl<In: Transport> Connector<In> for NoteConnects {
    type Out = In;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if chained.is_some() {
            CONNECTIONS_OPENED.with(|c| c.set(c.get() + 1));
        }
        Ok(chained)
    }
}
