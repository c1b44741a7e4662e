//! TCP sockets that never block: a connect that completes in the
//! background, writes that never raise SIGPIPE, and a wait for readiness
//! with a deadline (poll(2)).

use std::io;
#[cfg(feature = "tls")]
use std::io::IoSlice;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};

/// The flag that keeps a write to a socket the peer has closed from
/// raising SIGPIPE, which kills a C host at the signal's default action.
/// Apple's systems have no such flag: there the socket carries
/// `SO_NOSIGPIPE` instead (set in [`start_connect`]).
#[cfg(not(target_vendor = "apple"))]
const NO_SIGPIPE: SendFlags = SendFlags::NOSIGNAL;
#[cfg(target_vendor = "apple")]
const NO_SIGPIPE: SendFlags = SendFlags::empty();

/// Starts connecting a non-blocking TCP socket to `addr`: the connection is
/// made in the background; the socket is then ready to write, or has
/// failed (its `take_error`).
pub(crate) fn start_connect(addr: &SocketAddr) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd: OwnedFd = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    match rustix::net::connect(&fd, addr) {
        Ok(()) | Err(Errno::INPROGRESS) | Err(Errno::AGAIN) => {}
        Err(e) => return Err(e.into()),
    }
    #[cfg(target_vendor = "apple")]
    rustix::net::sockopt::set_socket_nosigpipe(&fd, true)?;
    let tcp = TcpStream::from(fd);
    // Requests are written in one go; nothing is gained by Nagle's delay.
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Writes `bytes` to `tcp` as far as it takes them now, without ever
/// raising SIGPIPE (a peer that closed gives `BrokenPipe`). Every byte the
/// library sends goes through here or [`Sender`].
pub(crate) fn send(tcp: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(tcp, bytes, NO_SIGPIPE)?)
}

/// The socket as an [`io::Write`] that never raises SIGPIPE, for rustls'
/// `write_tls`, which writes vectored: `writev` on the socket itself could
/// not carry the flag, `sendmsg` does.
#[cfg(feature = "tls")]
pub(crate) struct Sender<'a>(pub(crate) &'a TcpStream);

#[cfg(feature = "tls")]
impl io::Write for Sender<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        send(self.0, bytes)
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut control = rustix::net::SendAncillaryBuffer::default();
        Ok(rustix::net::sendmsg(
            self.0,
            slices,
            &mut control,
            NO_SIGPIPE,
        )?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a socket waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
    /// Either: a request still being sent, whose answer may come before
    /// the server has read it all (a 413, a 401), or instead of reading it.
    Both,
}

/// Waits until `tcp` is ready for `interest`, or has failed or closed
/// (which a read or write then reports), or `until` passes. `Ok(false)`:
/// not ready in time. An `until` already past only looks, without waiting.
pub(crate) fn ready(tcp: &TcpStream, interest: Interest, until: Instant) -> io::Result<bool> {
    let mut fds = [PollFd::new(tcp, poll_flags(interest))];
    Ok(poll_until(&mut fds, until)? > 0)
}

/// [`ready`] for several sockets at once: waits until one of `sockets` is
/// ready for `interest` (or has failed), or `until` passes, and says which
/// are. All `false`: none in time. An `until` already past only looks.
pub(crate) fn ready_many(
    sockets: &[&TcpStream],
    interest: Interest,
    until: Instant,
) -> io::Result<Vec<bool>> {
    let flags = poll_flags(interest);
    let mut fds: Vec<PollFd<'_>> = sockets.iter().map(|tcp| PollFd::new(*tcp, flags)).collect();
    poll_until(&mut fds, until)?;
    Ok(fds.iter().map(|fd| !fd.revents().is_empty()).collect())
}

/// [`ready_many`] for sockets known by their descriptors, each with its
/// own interest: waits until one is ready (or has failed), or `until`
/// passes. The descriptors must stay open during the call (their owners
/// are borrowed by the caller).
pub(crate) fn ready_any(fds: &[(RawFd, Interest)], until: Instant) -> io::Result<()> {
    // SAFETY: the caller holds the owners of these descriptors for the
    // whole call, so they stay open.
    let borrowed: Vec<BorrowedFd<'_>> = fds
        .iter()
        .map(|(fd, _)| unsafe { BorrowedFd::borrow_raw(*fd) })
        .collect();
    let mut polls: Vec<PollFd<'_>> = borrowed
        .iter()
        .zip(fds)
        .map(|(fd, (_, interest))| PollFd::new(fd, poll_flags(*interest)))
        .collect();
    poll_until(&mut polls, until)?;
    Ok(())
}

fn poll_flags(interest: Interest) -> PollFlags {
    match interest {
        Interest::Read => PollFlags::IN,
        Interest::Write => PollFlags::OUT,
        Interest::Both => PollFlags::IN | PollFlags::OUT,
    }
}

/// poll(2) on `fds` until one is ready or `until` passes: how many are.
fn poll_until(fds: &mut [PollFd<'_>], until: Instant) -> io::Result<usize> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let timeout = Timespec {
            tv_sec: left.as_secs().min(i32::MAX as u64) as _,
            tv_nsec: left.subsec_nanos().into(),
        };
        match poll(fds, Some(&timeout)) {
            // Woken early (the kernel's clock is coarser): wait the rest.
            Ok(0) if Instant::now() < until => continue,
            Ok(ready) => return Ok(ready),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
