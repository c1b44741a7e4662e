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
    /// The input buffer of the last transfer, kept for the next one.
    buffer: Option<Box<[u8]>>,
    /// A proxy's `CONNECT` tunnel being opened: until it is, nothing else
    /// goes over the socket.
    tunnel: Option<Box<Tunnel>>,
}

/// A `CONNECT` request to a proxy, and its answer as it arrives.
struct Tunnel {
    request: Vec<u8>,
    sent: usize,
    answer: Vec<u8>,
}

/// The longest proxy answer to a `CONNECT` read.
const MAX_TUNNEL_ANSWER: usize = 16 * 1024;

impl Conn {
    /// Starts connecting to the first of `addrs` that accepts (the others
    /// are tried in turn as connects fail); through a proxy's tunnel when
    /// `tunnel` (its `CONNECT` request) is given; with TLS for the host
    /// named in `tls`, once connected (and tunnelled).
    pub(crate) fn open(
        addrs: Vec<SocketAddr>,
        tunnel: Option<Vec<u8>>,
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
            buffer: None,
            tunnel: tunnel.map(|request| {
                Box::new(Tunnel {
                    request,
                    sent: 0,
                    answer: Vec::new(),
                })
            }),
        })
    }

    /// The TLS version in use, once the handshake is done.
    pub(crate) fn tls_version(&self) -> Option<&'static str> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            if tls.is_handshaking() {
                return None;
            }
            return tls.protocol_version().and_then(|v| v.as_str());
        }
        None
    }

    /// The input buffer a transfer left, if any.
    pub(crate) fn take_buffer(&mut self) -> Option<Box<[u8]>> {
        self.buffer.take()
    }

    /// Keeps a transfer's input buffer for the next one on this connection.
    pub(crate) fn keep_buffer(&mut self, buffer: Box<[u8]>) {
        self.buffer = Some(buffer);
    }

    /// The socket, for a cancel token to shut down.
    pub(crate) fn socket(&self) -> &Arc<TcpStream> {
        &self.tcp
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// Whether every byte queued by [`send`](Self::send) has gone to the
    /// socket (and, with TLS, out of rustls too): until then the connection
    /// is in the middle of a request, and cannot serve another.
    pub(crate) fn is_sent(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.as_ref().is_some_and(|tls| tls.wants_write()) {
            return false;
        }
        self.connecting.is_none() && self.tunnel.is_none() && self.sent == self.out.len()
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
        if let Some(tunnel) = &self.tunnel {
            return if tunnel.sent < tunnel.request.len() {
                Interest::Write
            } else {
                Interest::Read
            };
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

    /// Waits until the connection can make progress, or `until` passes.
    /// `Ok(false)`: nothing in time.
    pub(crate) fn wait(&self, until: Instant) -> io::Result<bool> {
        socket::ready(&self.tcp, self.interest(), until)
    }

    /// Whether an idle connection is still good to send on: the server has
    /// neither closed it nor sent anything unasked.
    pub(crate) fn is_reusable(&self) -> bool {
        !self.eof
            && matches!(
                socket::ready(&self.tcp, Interest::Read, Instant::now()),
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
        if let Some(tunnel) = &mut self.tunnel {
            moved |= write_some(&self.tcp, &tunnel.request, &mut tunnel.sent)?;
            return Ok(moved);
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            moved |= flush_tls(tls, &self.tcp, &self.out, &mut self.sent)?;
            self.compact();
            return Ok(moved);
        }
        moved |= write_some(&self.tcp, &self.out, &mut self.sent)?;
        self.compact();
        Ok(moved)
    }

    /// Reads what has arrived into `buf`: `Ok(0)` at the end of the
    /// server's data, `WouldBlock` when nothing has. Call
    /// [`flush`](Self::flush) first: this only reads.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.connecting.is_some() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.tunnel.is_some() {
            self.read_tunnel_answer()?;
            // The tunnel is open: the request (and the TLS handshake) go.
            self.flush()?;
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

    /// Reads the proxy's answer to `CONNECT` (`WouldBlock` until it is
    /// whole); a 2xx opens the tunnel, anything else fails.
    fn read_tunnel_answer(&mut self) -> io::Result<()> {
        let Some(tunnel) = &mut self.tunnel else {
            return Ok(());
        };
        if tunnel.sent < tunnel.request.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        loop {
            if let Some(end) = find(&tunnel.answer, b"\r\n\r\n") {
                // Nothing may follow the answer before our first byte.
                if end + 4 != tunnel.answer.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the proxy sent bytes after its answer to CONNECT",
                    ));
                }
                let status = tunnel_status(&tunnel.answer)?;
                if !(200..300).contains(&status.0) {
                    let kind = if status.0 < 500 {
                        io::ErrorKind::PermissionDenied
                    } else {
                        io::ErrorKind::ConnectionRefused
                    };
                    return Err(io::Error::new(
                        kind,
                        format!("the proxy refused the tunnel: {} {}", status.0, status.1),
                    ));
                }
                self.tunnel = None;
                return Ok(());
            }
            if tunnel.answer.len() >= MAX_TUNNEL_ANSWER {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the proxy's answer to CONNECT is too long",
                ));
            }
            // Never past the head's end: what follows it is the server's.
            let mut byte = [0u8; 4];
            let want = (MAX_TUNNEL_ANSWER - tunnel.answer.len()).min(byte.len());
            let want = head_room(&tunnel.answer).min(want);
            match (&*self.tcp).read(&mut byte[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the proxy closed the connection instead of opening the tunnel",
                    ))
                }
                Ok(n) => tunnel.answer.extend_from_slice(&byte[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
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

/// Writes `bytes[*sent..]` as far as the socket takes them now: `Ok(true)`
/// when some went.
fn write_some(tcp: &TcpStream, bytes: &[u8], sent: &mut usize) -> io::Result<bool> {
    let mut moved = false;
    while *sent < bytes.len() {
        match (&*tcp).write(&bytes[*sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *sent += n;
                moved = true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(moved)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How many bytes may be read without going past the end of a head that
/// ends `answer` so far: at most up to the `\r\n\r\n` that could end it.
fn head_room(answer: &[u8]) -> usize {
    let tail = &answer[answer.len().saturating_sub(3)..];
    let mut room = 4;
    for keep in (1..=tail.len()).rev() {
        if b"\r\n\r\n".starts_with(&tail[tail.len() - keep..]) {
            room = 4 - keep;
            break;
        }
    }
    room.max(1)
}

/// The status code and reason of a proxy's answer.
fn tunnel_status(answer: &[u8]) -> io::Result<(u16, String)> {
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/1.") => {
            Ok((code, parts.next().unwrap_or_default().to_string()))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the proxy's answer to CONNECT is not HTTP",
        )),
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
