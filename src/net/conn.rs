//! One connection to a server, plain TCP or TLS over it, driven without
//! ever blocking: each call does what the socket allows now and reports
//! `WouldBlock` for the rest; the caller waits with [`Conn::wait`] (or on
//! the descriptor itself) and calls again.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use super::socket::{self, Interest};
use super::tls::TlsConfig;

pub(crate) struct Conn {
    /// Shared with the call's cancel token, which shuts it down.
    tcp: Arc<TcpStream>,
    /// Still connecting: the addresses to try next if this one fails.
    connecting: Option<Vec<SocketAddr>>,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
    /// Bytes to send, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// The server closed its side (TLS: the socket's end was read).
    eof: bool,
}

impl Conn {
    /// Starts connecting to the first of `addrs` that accepts (the others
    /// are tried in turn as connects fail); with TLS for `tls_host` when
    /// it is given.
    pub(crate) fn open(
        addrs: Vec<SocketAddr>,
        tls: Option<(&TlsConfig, &str)>,
    ) -> io::Result<Conn> {
        let (tcp, rest) = connect_first(addrs)?;
        #[cfg(feature = "tls")]
        let tls = match tls {
            Some((config, host)) => Some(Box::new(tls_session(config, host)?)),
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        if tls.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "https needs TLS, and this build of modelapi has none (feature \"tls\" is off)",
            ));
        }
        Ok(Conn {
            tcp: Arc::new(tcp),
            connecting: Some(rest),
            #[cfg(feature = "tls")]
            tls,
            out: Vec::new(),
            sent: 0,
            eof: false,
        })
    }

    /// The socket, for a cancel token to shut down.
    pub(crate) fn socket(&self) -> &Arc<TcpStream> {
        &self.tcp
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// Queues `bytes` to be sent (by [`flush`](Self::flush) and every read).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// What the connection waits for: to write while it connects or has
    /// bytes the socket has not taken yet, else to read.
    pub(crate) fn interest(&self) -> Interest {
        if self.connecting.is_some() {
            return Interest::Write;
        }
        let unsent = self.sent < self.out.len();
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            // During the handshake the request waits in our buffer, and
            // only rustls' own records are for the socket.
            let writes = tls.wants_write() || unsent && !tls.is_handshaking();
            return if writes {
                Interest::Write
            } else {
                Interest::Read
            };
        }
        if unsent {
            Interest::Write
        } else {
            Interest::Read
        }
    }

    /// Waits until the connection can make progress, or `until` passes
    /// (`None`: no limit). `Ok(false)`: nothing in time.
    pub(crate) fn wait(&self, until: Option<Instant>) -> io::Result<bool> {
        socket::ready(&self.tcp, self.interest(), until)
    }

    /// Whether an idle connection is still good to send on: the server has
    /// neither closed it nor sent anything unasked.
    pub(crate) fn is_reusable(&self) -> bool {
        !self.eof
            && matches!(
                socket::ready(&self.tcp, Interest::Read, Some(Instant::now())),
                Ok(false)
            )
    }

    /// Connects, shakes hands and sends queued bytes as far as the socket
    /// allows now. `Ok(true)` when something moved.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        let mut moved = false;
        if self.connecting.is_some() {
            if !self.connect_step()? {
                return Ok(false);
            }
            moved = true;
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            moved |= flush_tls(tls, &self.tcp, &self.out, &mut self.sent)?;
            self.compact();
            return Ok(moved);
        }
        while self.sent < self.out.len() {
            match (&*self.tcp).write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        self.compact();
        Ok(moved)
    }

    /// Reads what has arrived into `buf`: `Ok(0)` at the end of the
    /// server's data, `WouldBlock` when nothing has.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.connecting.is_some() || self.sent < self.out.len() {
            self.flush()?;
            if self.connecting.is_some() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return read_tls(
                tls,
                &self.tcp,
                &mut self.eof,
                buf,
                &self.out,
                &mut self.sent,
            );
        }
        loop {
            match (&*self.tcp).read(buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn compact(&mut self) {
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
    }

    /// One step of connecting: `Ok(true)` once connected. A failed address
    /// gives way to the next; the last one's failure is the error.
    fn connect_step(&mut self) -> io::Result<bool> {
        loop {
            match socket::connected(&self.tcp) {
                Ok(true) => {
                    self.connecting = None;
                    return Ok(true);
                }
                Ok(false) => return Ok(false),
                Err(error) => {
                    let rest = self.connecting.take().unwrap_or_default();
                    if rest.is_empty() {
                        return Err(error);
                    }
                    let (tcp, rest) = connect_first(rest)?;
                    self.tcp = Arc::new(tcp);
                    self.connecting = Some(rest);
                }
            }
        }
    }
}

/// Starts a connect to the first address that does not fail at once, and
/// returns the socket and the addresses after it.
fn connect_first(mut addrs: Vec<SocketAddr>) -> io::Result<(TcpStream, Vec<SocketAddr>)> {
    addrs.reverse();
    let mut last_error = None;
    while let Some(addr) = addrs.pop() {
        match socket::start_connect(&addr) {
            Ok(tcp) => {
                addrs.reverse();
                return Ok((tcp, addrs));
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host name has no address")))
}

#[cfg(feature = "tls")]
fn tls_session(config: &TlsConfig, host: &str) -> io::Result<rustls::ClientConnection> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a host name TLS can verify"),
        )
    })?;
    rustls::ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Hands rustls the queued bytes it takes, and writes its records to the
/// socket as far as the socket allows.
#[cfg(feature = "tls")]
fn flush_tls(
    tls: &mut rustls::ClientConnection,
    tcp: &TcpStream,
    out: &[u8],
    sent: &mut usize,
) -> io::Result<bool> {
    let mut moved = false;
    loop {
        if *sent < out.len() && !tls.is_handshaking() {
            *sent += tls.writer().write(&out[*sent..])?;
        }
        if !tls.wants_write() {
            return Ok(moved);
        }
        match tls.write_tls(&mut &*tcp) {
            Ok(_) => moved = true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(moved),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(feature = "tls")]
fn read_tls(
    tls: &mut rustls::ClientConnection,
    tcp: &TcpStream,
    eof: &mut bool,
    buf: &mut [u8],
    out: &[u8],
    sent: &mut usize,
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The server closed without a TLS close_notify, as many do: the
            // HTTP layer tells a complete body from a cut one.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        if *eof {
            return Ok(0);
        }
        match tls.read_tls(&mut &*tcp) {
            Ok(0) => *eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let state = tls.process_new_packets();
        // An alert for the server goes out even when the session failed.
        let _ = flush_tls(tls, tcp, out, sent);
        state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
}
