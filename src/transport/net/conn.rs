//! One connection to a server, plain TCP or TLS over it, driven without
//! ever blocking: each call does what the socket allows now and reports
//! `WouldBlock` for the rest; the caller waits with [`Conn::wait`] (or on
//! the descriptor itself) and calls again.

#[cfg(feature = "tls")]
use std::io::Write;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connect::Connecting;
use super::socket::{self, Interest};
use super::tls::TlsConfig;
use crate::trace::Tracer;

pub(crate) struct Conn {
    /// Shared with the call's cancel token, which shuts it down. While
    /// connecting: the newest attempt's socket.
    tcp: Arc<TcpStream>,
    /// Still connecting: the attempts racing, and the addresses not tried
    /// yet.
    connecting: Option<Box<Connecting>>,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
    /// Bytes to send, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// Nothing more is sent: the server answered (or failed) before it
    /// took the whole request. The connection cannot serve another one.
    stopped_sending: bool,
    /// Why sending failed (the server reset or closed the connection), told
    /// once the answer it may have sent before has been read.
    write_error: Option<io::Error>,
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
    /// Starts connecting to `addrs` (the first to accept wins: see
    /// [`Connecting`]; the trace tells each attempt that fails); through a
    /// proxy's tunnel when `tunnel` (its `CONNECT` request) is given; with
    /// TLS for the host named in `tls`, once connected (and tunnelled).
    pub(crate) fn open(
        addrs: Vec<SocketAddr>,
        tunnel: Option<Vec<u8>>,
        tls: Option<(&TlsConfig, &str)>,
        tracer: &Tracer,
    ) -> io::Result<Conn> {
        let connecting = Connecting::start(addrs, tracer)?;
        let tcp = match connecting.socket() {
            Some(tcp) => Arc::clone(tcp),
            None => return Err(io::Error::other("no connection attempt is under way")),
        };
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
            tcp,
            connecting: Some(Box::new(connecting)),
            #[cfg(feature = "tls")]
            tls,
            out: Vec::new(),
            sent: 0,
            stopped_sending: false,
            write_error: None,
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

    /// Queues `bytes` to be sent (by [`flush`](Self::flush) and every read).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// What the connection waits for: to write while it connects, to read
    /// or write while it has bytes the socket has not taken yet (the answer
    /// may come before the server has read them all), else to read.
    pub(crate) fn interest(&self) -> Interest {
        if self.connecting.is_some() {
            return Interest::Write;
        }
        if self.stopped_sending {
            return Interest::Read;
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
            return if !writes {
                Interest::Read
            } else if tls.is_handshaking() {
                // Nothing comes before the server's handshake records.
                Interest::Write
            } else {
                Interest::Both
            };
        }
        if unsent {
            Interest::Both
        } else {
            Interest::Read
        }
    }

    /// Whether the whole request has gone to the socket (and nothing was
    /// given up): only then may the connection serve another request.
    pub(crate) fn sent_all(&self) -> bool {
        let unsent = self.stopped_sending
            || self.connecting.is_some()
            || self.tunnel.is_some()
            || self.sent < self.out.len();
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return !unsent && !tls.wants_write();
        }
        !unsent
    }

    /// Sends nothing more on this connection: the server has answered
    /// before taking the whole request, or writing to it failed. Uploading
    /// the rest into a server that refused it would only waste the time
    /// and bandwidth (curl stops sending on an early error answer, too).
    pub(crate) fn stop_sending(&mut self) {
        if !self.sent_all() {
            self.stopped_sending = true;
            self.sent = self.out.len();
            self.compact();
        }
    }

    /// Waits until the connection can make progress, or `until` passes.
    /// `Ok(false)`: nothing in time. While connecting: on every attempt,
    /// and until the next attempt is due.
    pub(crate) fn wait(&self, until: Instant) -> io::Result<bool> {
        if let Some(connecting) = &self.connecting {
            return connecting.wait(until);
        }
        socket::ready(&self.tcp, self.interest(), until)
    }

    /// While connecting, when a host waiting on [`fd`](Self::fd) alone
    /// must poll again whatever it does (see [`Connecting::wake_at`]).
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        self.connecting.as_ref().and_then(|c| c.wake_at())
    }

    /// While connecting, the error of a connect that the client's
    /// `timeout` ended: what became of each address.
    pub(crate) fn connect_timed_out(&self, timeout: Duration) -> Option<io::Error> {
        self.connecting.as_ref().map(|c| c.timed_out(timeout))
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
        if self.stopped_sending {
            return Ok(false);
        }
        if self.connecting.is_some() {
            if !self.connect_step()? {
                return Ok(false);
            }
            moved = true;
        }
        match self.send_queued() {
            Ok(sent) => Ok(moved || sent),
            // The server reset or closed the connection while the request
            // was going out. What it answered before (a 413, a 401) may be
            // there to read, and is what the caller needs to see, not the
            // broken pipe: the error waits until the reads find nothing.
            Err(e) if is_write_failure(&e) => {
                self.stopped_sending = true;
                self.write_error = Some(e);
                Ok(moved)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends queued bytes (the tunnel's request, TLS records, the request)
    /// as far as the socket takes them now.
    fn send_queued(&mut self) -> io::Result<bool> {
        let mut moved = false;
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
        match self.read_arrived(buf) {
            // Sending failed, and nothing the server sent before is left:
            // the failure is the news.
            Err(e) if self.write_error.is_some() => Err(self.write_error.take().unwrap_or(e)),
            other => other,
        }
    }

    /// Why sending failed, if it did and that was not told yet: a server
    /// that reset the connection mid-upload and sent nothing is a reset,
    /// even though the socket's reads then only see the end.
    pub(crate) fn take_write_error(&mut self) -> Option<io::Error> {
        self.write_error.take()
    }

    fn read_arrived(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
                (!self.stopped_sending).then_some((&self.out, &mut self.sent)),
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

    /// One step of connecting: `Ok(true)` once connected. The socket waited
    /// on becomes the newest attempt's, then the connected one.
    fn connect_step(&mut self) -> io::Result<bool> {
        let Some(connecting) = &mut self.connecting else {
            return Ok(true);
        };
        match connecting.step()? {
            Some(tcp) => {
                self.tcp = tcp;
                self.connecting = None;
                Ok(true)
            }
            None => {
                if let Some(newest) = connecting.socket() {
                    if !Arc::ptr_eq(newest, &self.tcp) {
                        self.tcp = Arc::clone(newest);
                    }
                }
                Ok(false)
            }
        }
    }
}

/// Whether a send failed because the server is gone (it reset or closed
/// the connection): what it sent before may still be there to read.
fn is_write_failure(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// Writes `bytes[*sent..]` as far as the socket takes them now: `Ok(true)`
/// when some went.
fn write_some(tcp: &TcpStream, bytes: &[u8], sent: &mut usize) -> io::Result<bool> {
    let mut moved = false;
    while *sent < bytes.len() {
        match socket::send(tcp, &bytes[*sent..]) {
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
        match tls.write_tls(&mut socket::Sender(tcp)) {
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
    // What is left to send, or `None` once sending has stopped: then not
    // even rustls' buffered records of the refused request go out.
    mut unsent: Option<(&Vec<u8>, &mut usize)>,
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The connection ended without a TLS close_notify: an attacker
            // (or a middlebox) may have cut it. A sized or chunked body has
            // ended before this read, or is incomplete anyway; a body that
            // ends with the connection would look whole while it is not:
            // so this is no clean end, but a truncation.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    if tls.is_handshaking() {
                        "the server closed the connection during the TLS handshake"
                    } else {
                        "the connection ended without TLS close_notify: the answer may be \
                         truncated"
                    },
                ))
            }
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
        if let Some((out, sent)) = &mut unsent {
            let _ = flush_tls(tls, tcp, out, sent);
        }
        state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
}
