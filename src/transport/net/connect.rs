//! Connecting to a server that has several addresses: Happy Eyeballs v2
//! (RFC 8305), inside the poll pipeline and without a thread.
//!
//! The addresses are tried in turn, the two families alternating (the
//! first family as the resolver or the name table gives it). An attempt
//! that has not connected after [`ATTEMPT_DELAY`] does not hold up the
//! next: that one starts too, and the attempts race; one that fails lets
//! the next start at once. The first to connect wins and the others are
//! closed at once. So an address that never answers (a broken IPv6 route,
//! a firewall that drops) costs 250 ms, not the timeout.
//!
//! Every attempt is a non-blocking socket. A step ([`Connecting::step`])
//! looks at all of them with one poll(2) of zero, and starts the attempts
//! that are due; a blocking wait ([`Connecting::wait`]) waits on all of
//! them at once, and on the next attempt's start.
//!
//! A host that drives a stream by polls waits on one descriptor: the
//! newest attempt's ([`Connecting::socket`], which is also the socket a
//! cancel shuts down, so a cancel wakes that host). That descriptor does
//! not tell when an older attempt connects; so the wake time given to the
//! host ([`Connecting::wake_at`]) is the next attempt's start, and, while
//! several attempts race, never more than [`RECHECK`] away.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::socket::{self, Interest};
use crate::trace::{trace, Level, Took, Tracer};

/// How long an attempt has alone before the next address is tried too
/// (RFC 8305's "Connection Attempt Delay", its recommended value).
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// While several attempts race, how long a host waiting on the newest
/// one's descriptor may sleep before it looks at the others. An older
/// attempt still silent when the next starts usually answers only after
/// the kernel sends its SYN again (1 s, then 3 s, after the first): so a
/// lag of up to 100 ms adds a tenth at most, for 10 wake-ups a second
/// during the race.
const RECHECK: Duration = Duration::from_millis(100);

/// A connection being made to one of several addresses.
pub(crate) struct Connecting {
    /// The addresses not tried yet, in the order they will be.
    waiting: VecDeque<SocketAddr>,
    /// The attempts under way, oldest first.
    attempts: Vec<Attempt>,
    /// When the next waiting address is tried, if none has connected.
    next_start: Instant,
    /// Addresses that failed, and why: for the error when none connects.
    failed: Vec<(SocketAddr, io::Error)>,
    /// How many addresses were tried.
    tried: usize,
    started: Instant,
    tracer: Tracer,
}

struct Attempt {
    addr: SocketAddr,
    tcp: Arc<TcpStream>,
    started: Instant,
}

impl Connecting {
    /// Starts connecting to `addrs`: the first attempt now (and the next,
    /// as long as they fail at once). Fails when every address does at
    /// once.
    pub(crate) fn start(addrs: Vec<SocketAddr>, tracer: &Tracer) -> io::Result<Connecting> {
        let now = Instant::now();
        let mut connecting = Connecting {
            waiting: interleave(addrs),
            attempts: Vec::new(),
            next_start: now,
            failed: Vec::new(),
            tried: 0,
            started: now,
            tracer: tracer.clone(),
        };
        connecting.launch(now);
        if connecting.attempts.is_empty() {
            return Err(all_failed(connecting.failed));
        }
        Ok(connecting)
    }

    /// The socket to wait on, and for a cancel to shut down: the newest
    /// attempt's (`None` once every attempt has failed).
    pub(crate) fn socket(&self) -> Option<&Arc<TcpStream>> {
        self.attempts.last().map(|a| &a.tcp)
    }

    /// Moves the race on: looks at every attempt, and starts the next
    /// address when it is due. The connected socket once one has
    /// connected (the others are closed), `Ok(None)` while none has, or
    /// the error once every address has failed.
    pub(crate) fn step(&mut self) -> io::Result<Option<Arc<TcpStream>>> {
        let now = Instant::now();
        let sockets: Vec<&TcpStream> = self.attempts.iter().map(|a| &*a.tcp).collect();
        let ready = socket::ready_many(&sockets, Interest::Write, now)?;
        let failures = self.failed.len();
        let mut winner = None;
        let mut pending = Vec::with_capacity(self.attempts.len());
        // Oldest first: of two that connected at once, the address
        // preferred wins.
        for (attempt, ready) in std::mem::take(&mut self.attempts).into_iter().zip(ready) {
            if !ready || winner.is_some() {
                pending.push(attempt);
                continue;
            }
            match attempt.tcp.take_error() {
                Ok(None) => winner = Some(attempt),
                Ok(Some(error)) | Err(error) => {
                    tell_failure(&self.tracer, attempt.addr, &error, self.waiting.front());
                    self.failed.push((attempt.addr, error));
                    // A failure lets the next address start at once.
                    self.next_start = now;
                }
            }
        }
        self.attempts = pending;
        if let Some(winner) = winner {
            return Ok(Some(self.won(winner)));
        }
        let due = self.attempts.is_empty() || now >= self.next_start;
        if due && !self.waiting.is_empty() {
            // A failure told already that the next address is tried.
            if let (true, Some(silent), Some(next)) = (
                self.failed.len() == failures,
                self.attempts.last(),
                self.waiting.front(),
            ) {
                trace!(
                    self.tracer,
                    Level::Info,
                    "connect to {}: no answer after {}, trying {next}",
                    silent.addr,
                    Took(now.saturating_duration_since(silent.started)),
                );
            }
            self.launch(now);
        }
        if self.attempts.is_empty() {
            return Err(all_failed(std::mem::take(&mut self.failed)));
        }
        Ok(None)
    }

    /// Starts the next waiting address, and the ones after it as long as
    /// they fail at once.
    fn launch(&mut self, now: Instant) {
        while let Some(addr) = self.waiting.pop_front() {
            self.tried += 1;
            match socket::start_connect(&addr) {
                Ok(tcp) => {
                    self.attempts.push(Attempt {
                        addr,
                        tcp: Arc::new(tcp),
                        started: now,
                    });
                    self.next_start = now + ATTEMPT_DELAY;
                    return;
                }
                Err(error) => {
                    tell_failure(&self.tracer, addr, &error, self.waiting.front());
                    self.failed.push((addr, error));
                }
            }
        }
    }

    /// `winner` connected: the other attempts are closed now.
    fn won(&mut self, winner: Attempt) -> Arc<TcpStream> {
        for loser in self.attempts.drain(..) {
            // Shut down, not only dropped: a cancel token or a transfer
            // may still hold the socket for a moment.
            let _ = loser.tcp.shutdown(Shutdown::Both);
        }
        if self.tried > 1 {
            trace!(
                self.tracer,
                Level::Debug,
                "connected to {} after {} ({} of {} addresses tried)",
                winner.addr,
                Took(self.started.elapsed()),
                self.tried,
                self.tried + self.waiting.len()
            );
        }
        winner.tcp
    }

    /// Waits until an attempt connects or fails, the next attempt is due,
    /// or `until` passes. `Ok(false)`: nothing happened in time.
    pub(crate) fn wait(&self, until: Instant) -> io::Result<bool> {
        let until = match self.waiting.is_empty() {
            true => until,
            false => until.min(self.next_start),
        };
        let sockets: Vec<&TcpStream> = self.attempts.iter().map(|a| &*a.tcp).collect();
        let ready = socket::ready_many(&sockets, Interest::Write, until)?;
        Ok(ready.contains(&true))
    }

    /// When a host that waits on [`socket`](Self::socket) alone must poll
    /// again, whatever that socket does: when the next attempt is due, and
    /// while several race, within [`RECHECK`] (see the module's note).
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        let next = (!self.waiting.is_empty()).then_some(self.next_start);
        if self.attempts.len() > 1 {
            let recheck = Instant::now() + RECHECK;
            return Some(next.map_or(recheck, |next| next.min(recheck)));
        }
        next
    }

    /// The error when the client's timeout passed before any address
    /// answered: what became of each.
    pub(crate) fn timed_out(&self, timeout: Duration) -> io::Error {
        let mut what = Vec::new();
        if !self.attempts.is_empty() {
            what.push(format!(
                "no answer from {}",
                list(self.attempts.iter().map(|a| a.addr))
            ));
        }
        for (addr, error) in &self.failed {
            what.push(format!("{addr} failed ({error})"));
        }
        if !self.waiting.is_empty() {
            what.push(format!("not tried: {}", list(self.waiting.iter().copied())));
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "could not connect within the client's timeout of {timeout:?}: {}",
                what.join("; ")
            ),
        )
    }
}

/// The addresses in the order to try them: families alternating, the
/// first family the first address's (RFC 8305 §4), each family in the
/// order given; each address once.
fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let Some(first) = addrs.first() else {
        return VecDeque::new();
    };
    let first_v6 = first.is_ipv6();
    let (mut mine, mut other): (VecDeque<_>, VecDeque<_>) =
        addrs.iter().partition(|a| a.is_ipv6() == first_v6);
    let mut order = VecDeque::with_capacity(addrs.len());
    loop {
        let (a, b) = (mine.pop_front(), other.pop_front());
        if a.is_none() && b.is_none() {
            return order;
        }
        for addr in [a, b].into_iter().flatten() {
            if !order.contains(addr) {
                order.push_back(*addr);
            }
        }
    }
}

/// Tells that the attempt to `addr` failed, and the address tried next if
/// there is one (it is started at once).
fn tell_failure(tracer: &Tracer, addr: SocketAddr, error: &io::Error, next: Option<&SocketAddr>) {
    match next {
        Some(next) => trace!(
            tracer,
            Level::Info,
            "connect to {addr} failed: {error}; trying {next}"
        ),
        None => trace!(tracer, Level::Info, "connect to {addr} failed: {error}"),
    }
}

/// The error once every address has failed: the last failure's kind (for
/// the retry rules), with every address and why it failed.
fn all_failed(mut failed: Vec<(SocketAddr, io::Error)>) -> io::Error {
    let Some((addr, last)) = failed.pop() else {
        return io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    };
    let mut text = String::new();
    for (addr, error) in &failed {
        text.push_str(&format!("connect to {addr} failed: {error}; "));
    }
    text.push_str(&format!("connect to {addr} failed: {last}"));
    io::Error::new(last.kind(), text)
}

fn list(addrs: impl Iterator<Item = SocketAddr>) -> String {
    addrs.map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn families_alternate_from_the_first_given() {
        let order = |list: &[&str]| -> Vec<String> {
            interleave(addrs(list))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            order(&["[::1]:1", "[::2]:1", "[::3]:1", "10.0.0.1:1", "10.0.0.2:1"]),
            ["[::1]:1", "10.0.0.1:1", "[::2]:1", "10.0.0.2:1", "[::3]:1"]
        );
        assert_eq!(
            order(&["10.0.0.1:1", "10.0.0.2:1", "[::1]:1"]),
            ["10.0.0.1:1", "[::1]:1", "10.0.0.2:1"]
        );
        assert_eq!(
            order(&["10.0.0.1:1", "10.0.0.2:1", "10.0.0.1:1"]),
            ["10.0.0.1:1", "10.0.0.2:1"]
        );
        assert!(order(&[]).is_empty());
    }

    #[test]
    fn when_all_fail_the_error_names_each_address() {
        let error = all_failed(vec![
            (
                "10.0.0.1:80".parse().unwrap(),
                io::Error::from(io::ErrorKind::NetworkUnreachable),
            ),
            (
                "10.0.0.2:80".parse().unwrap(),
                io::Error::from(io::ErrorKind::ConnectionRefused),
            ),
        ]);
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        let text = error.to_string();
        assert!(text.contains("10.0.0.1:80 failed") && text.contains("10.0.0.2:80 failed"));
    }
}
