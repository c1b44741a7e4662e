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
//!
//! Each TCP connection is wrapped in a [`CallTransport`], which makes the
//! calls cancellable and writes each request in one go.

use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ureq::config::RedirectAuthHeaders;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, ShutdownHandle, TcpConnector, Transport,
};
use ureq::Agent;

use crate::cancel::{cancelled_io_error, with_current, CancelState};
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
        .max_idle_age(Duration::from_secs(4))
        // The input buffer holds a response head (ureq refuses one over
        // 64 KiB, which must fit with room to spare, or the refusal turns
        // into another error) and each read of the body; the output buffer,
        // the request head. ureq's 128 KiB each were a good part of a
        // streaming C program's memory.
        .input_buffer_size(80 * 1024)
        .output_buffer_size(16 * 1024);
    #[cfg(feature = "tls")]
    let config = config.tls_config(tls_config(settings.ca_pem.as_deref()));
    #[cfg(feature = "tls")]
    let connector = TcpWithCancel.chain(ureq::unversioned::transport::RustlsConnector::default());
    #[cfg(not(feature = "tls"))]
    let connector = TcpWithCancel;
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
    /// Connections this thread has tried to open, so a failed request can
    /// tell whether it went out on a new connection or on a pooled one.
    static CONNECTIONS_TRIED: Cell<u64> = const { Cell::new(0) };
}

thread_local! {
    /// Set while a finished stream reads the end of its body.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

/// How long a read after `data: [DONE]` waits for the end of the body. It
/// normally comes in the same packet; a server that holds the body open
/// costs its connection (closed, not pooled), not the caller's time.
const DRAIN_WAIT: Duration = Duration::from_millis(200);

/// While alive, every wait for input on this thread lasts at most
/// [`DRAIN_WAIT`].
pub(crate) struct DrainGuard(());

impl DrainGuard {
    pub(crate) fn new() -> DrainGuard {
        DRAINING.with(|d| d.set(true));
        DrainGuard(())
    }
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(false));
    }
}

/// `timeout`, cut to [`DRAIN_WAIT`] while draining.
fn wait_for_input(mut timeout: NextTimeout) -> NextTimeout {
    if DRAINING.with(Cell::get) {
        let cap = DRAIN_WAIT.into();
        timeout.after = timeout.after.min(cap);
        timeout.per_read = Some(timeout.per_read.map_or(cap, |t| t.min(cap)));
    }
    timeout
}

/// How many connections this thread has tried to open so far.
pub(crate) fn connections_tried() -> u64 {
    CONNECTIONS_TRIED.with(Cell::get)
}

/// ureq's TCP connector, with each connection wrapped in a [`CallTransport`]
/// and counted.
#[derive(Debug)]
struct TcpWithCancel;

type TcpOut = <TcpConnector as Connector<()>>::Out;

impl Connector<()> for TcpWithCancel {
    type Out = CallTransport<TcpOut>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        // ureq hands the socket's shutdown handle to its pool through
        // `register_shutdown`; a copy of it is what a cancel shuts down.
        let socket: Arc<Mutex<Option<Weak<dyn ShutdownHandle>>>> = Arc::default();
        let register = Arc::clone(&details.register_shutdown);
        let keep = Arc::clone(&socket);
        let details = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: Arc::clone(&details.current_time),
            run_connector: Arc::clone(&details.run_connector),
            register_shutdown: Arc::new(move |handle: Weak<dyn ShutdownHandle>| {
                *keep.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.clone());
                register(handle)
            }),
        };
        // Counted before the attempt: a refused connect is a new
        // connection that failed, not a stale pooled one.
        CONNECTIONS_TRIED.with(|c| c.set(c.get() + 1));
        let Some(tcp) = Connector::<()>::connect(&TcpConnector::default(), &details, None)? else {
            return Ok(None);
        };
        let socket = socket.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(Some(CallTransport::new(tcp, socket)))
    }
}

/// A TCP connection as the calls see it: cancellable, and writing each
/// request in one go.
///
/// - Cancel: each read and write first attaches the connection to the
///   current call's [`CancelToken`](crate::CancelToken) and checks it, so a
///   cancel shuts down exactly the socket in use, and a cancelled call does
///   no more I/O.
/// - One write per request: ureq writes the head and the body separately
///   (two packets, and a delayed ACK on some servers); the bytes are held
///   here and sent together when the response is first awaited.
#[derive(Debug)]
pub(crate) struct CallTransport<T> {
    inner: T,
    socket: Option<Weak<dyn ShutdownHandle>>,
    /// The token the connection is attached to.
    attached: Option<Arc<CancelState>>,
    /// Request bytes not written yet, and the timeout to write them with.
    pending: Vec<u8>,
    pending_timeout: NextTimeout,
}

/// Held request bytes are written once they reach this size.
const MAX_PENDING_BYTES: usize = 64 * 1024;

impl<T: Transport> CallTransport<T> {
    fn new(inner: T, socket: Option<Weak<dyn ShutdownHandle>>) -> Self {
        CallTransport {
            inner,
            socket,
            attached: None,
            pending: Vec::new(),
            pending_timeout: NextTimeout::default(),
        }
    }

    /// Attaches the connection to the current call's token, and fails if
    /// that token is cancelled.
    fn check_cancel(&mut self) -> Result<(), ureq::Error> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        with_current(|current| {
            let same = match (&self.attached, current) {
                (Some(a), Some(c)) => Arc::ptr_eq(a, c),
                (None, None) => true,
                _ => false,
            };
            if !same {
                if let Some(previous) = self.attached.take() {
                    previous.detach(socket);
                }
                self.attached = current.cloned();
            }
            // Again on every I/O: the call's token lets go of the
            // connection between two reads of a stream.
            if let Some(state) = current {
                state.attach(socket);
            }
        });
        match &self.attached {
            Some(state) if state.is_cancelled() => Err(cancelled_io_error()),
            _ => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<(), ureq::Error> {
        let mut sent = 0;
        while sent < self.pending.len() {
            let output = self.inner.buffers().output();
            let n = output.len().min(self.pending.len() - sent);
            output[..n].copy_from_slice(&self.pending[sent..sent + n]);
            self.inner.transmit_output(n, self.pending_timeout)?;
            sent += n;
        }
        self.pending.clear();
        Ok(())
    }
}

impl<T: Transport> Transport for CallTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.check_cancel()?;
        let output = &self.inner.buffers().output()[..amount];
        self.pending.extend_from_slice(output);
        self.pending_timeout = timeout;
        if self.pending.len() >= MAX_PENDING_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if !self.pending.is_empty() {
            self.check_cancel()?;
            self.flush()?;
        }
        if self.buffers().can_use_input() {
            return Ok(true);
        }
        self.await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.check_cancel()?;
        self.flush()?;
        let result = self.inner.await_input(wait_for_input(timeout));
        // A cancel during the wait shows below as an end of input or an
        // error: report it as what it is.
        self.check_cancel()?;
        result
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
