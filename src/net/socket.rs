//! TCP sockets that never block: a connect that completes in the
//! background, and a wait for readiness with a deadline (poll(2)).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

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
    let tcp = TcpStream::from(fd);
    // Requests are written in one go; nothing is gained by Nagle's delay.
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// What a socket waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

/// Waits until `tcp` is ready for `interest`, or has failed or closed
/// (which a read or write then reports), or `until` passes. `Ok(false)`:
/// not ready in time. An `until` already past only looks, without waiting.
pub(crate) fn ready(tcp: &TcpStream, interest: Interest, until: Instant) -> io::Result<bool> {
    let flags = match interest {
        Interest::Read => PollFlags::IN,
        Interest::Write => PollFlags::OUT,
    };
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let timeout = Timespec {
            tv_sec: left.as_secs().min(i32::MAX as u64) as _,
            tv_nsec: left.subsec_nanos().into(),
        };
        let mut fds = [PollFd::new(tcp, flags)];
        match poll(&mut fds, Some(&timeout)) {
            // Woken early (the kernel's clock is coarser): wait the rest.
            Ok(0) if Instant::now() < until => continue,
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// [`ready`] for several sockets at once: waits until one of `sockets` is
/// ready for `interest` (or has failed), or `until` passes, and says which
/// are. All `false`: none in time. An `until` already past only looks.
pub(crate) fn ready_many(
    sockets: &[&TcpStream],
    interest: Interest,
    until: Instant,
) -> io::Result<Vec<bool>> {
    let flags = match interest {
        Interest::Read => PollFlags::IN,
        Interest::Write => PollFlags::OUT,
    };
    let mut fds: Vec<PollFd<'_>> = sockets.iter().map(|tcp| PollFd::new(*tcp, flags)).collect();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let timeout = Timespec {
            tv_sec: left.as_secs().min(i32::MAX as u64) as _,
            tv_nsec: left.subsec_nanos().into(),
        };
        match poll(&mut fds, Some(&timeout)) {
            // Woken early (the kernel's clock is coarser): wait the rest.
            Ok(0) if Instant::now() < until => continue,
            Ok(_) => return Ok(fds.iter().map(|fd| !fd.revents().is_empty()).collect()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
