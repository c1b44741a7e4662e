//! A stream's way to its first event across endpoints ([`Race`]): one
//! attempt at a time, or two while a hedge runs, each with its own
//! decoder, until one produces an event (or the end of its answer). The
//! first-token deadline ends an attempt that is too slow; an attempt that
//! fails before its first event hands over to the next endpoint (see
//! [`crate::transport::failover`]); the winner's rival is dropped, which closes its
//! connection at once, so its server stops generating.
//!
//! No thread: a blocking wait waits on every attempt's socket at once
//! (one poll(2)); a host that drives the stream by polls waits on one
//! descriptor, the newest attempt's, so the wake time given to it is,
//! while two race, never more than [`RECHECK`] away (as the connect's
//! Happy Eyeballs race does, `src/transport/net/connect.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::decoder::body::{BodyDecoder, Decoded};
use crate::error::Error;
use crate::trace::{trace, Level, Took};
use crate::transport::failover::{first_token_missed, Attempt, Failover};
use crate::transport::net::{ready_any, Interest, Until};
use crate::transport::reply::Reply;
use crate::transport::route::Route;

/// While two attempts race, how long a host waiting on the newest one's
/// descriptor may sleep before it looks at the other: a first event
/// seen up to 10 ms late, for 100 wake-ups a second during the race only.
pub(crate) const RECHECK: Duration = Duration::from_millis(10);

/// The attempt that produced the first event.
pub(crate) struct Winner {
    pub(crate) reply: Box<Reply>,
    /// Its body's decoder, with the chunks it has read: the stream's from
    /// now on (unused for a plain JSON answer).
    pub(crate) decoder: BodyDecoder,
    pub(crate) route: Arc<Route>,
}

/// One endpoint's attempt, and its body's decoder.
struct Runner {
    attempt: Attempt,
    /// Once the 2xx head has come.
    reply: Option<Box<Reply>>,
    decoder: BodyDecoder,
}

/// Attempts under way towards a stream's first event.
pub(crate) struct Race {
    failover: Failover,
    /// One, or two while a hedge runs; oldest first.
    runners: Vec<Runner>,
    /// The cap on one event, for each attempt's decoder.
    max_event_bytes: usize,
    /// When the next endpoint starts as a hedge.
    hedge_at: Option<Instant>,
    /// When the race began.
    started: Instant,
}

impl Race {
    pub(crate) fn new(failover: Failover, max_event_bytes: usize) -> Race {
        let mut race = Race {
            runners: Vec::with_capacity(2),
            hedge_at: None,
            started: Instant::now(),
            max_event_bytes,
            failover,
        };
        race.start_next();
        race
    }

    /// Starts the next endpoint's attempt (and times its hedge).
    fn start_next(&mut self) -> bool {
        let Some(attempt) = self.failover.start() else {
            return false;
        };
        let now = Instant::now();
        self.hedge_at = self
            .failover
            .hedge()
            .and_then(|delay| now.checked_add(delay));
        self.runners.push(Runner {
            attempt,
            reply: None,
            decoder: BodyDecoder::new(self.max_event_bytes),
        });
        true
    }

    /// The winner once an attempt has produced an event; `Ok(None)` when
    /// none has by `until`; the error when every endpoint failed.
    pub(crate) fn poll(&mut self, until: Until) -> Result<Option<Winner>, Error> {
        loop {
            if self.runners.len() == 1 && self.hedge_at.is_some_and(|at| Instant::now() >= at) {
                self.hedge();
            }
            let mut i = 0;
            while i < self.runners.len() {
                match self.step(i) {
                    Ok(true) => return Ok(Some(self.win(i))),
                    Ok(false) => i += 1,
                    Err(error) => self.lose(i, error)?,
                }
            }
            // Waiting here is on every attempt's socket: no recheck.
            let wake = Instant::now() + self.next_wake().unwrap_or(Duration::ZERO);
            let wait_until = match until.or_before(wake) {
                Until::Now => return Ok(None),
                Until::At(at) => at,
                Until::Forever => wake,
            };
            let now = Instant::now();
            if wait_until <= now {
                if matches!(until, Until::At(at) if at <= now) {
                    return Ok(None);
                }
                continue;
            }
            let fds: Vec<_> = self.runners.iter().filter_map(|r| r.waits_on()).collect();
            if fds.is_empty() {
                self.failover.cancel().sleep(wait_until - now);
            } else {
                ready_any(&fds, wait_until).map_err(Error::from_io)?;
            }
        }
    }

    /// Starts the next endpoint too: the current one has been silent for
    /// the hedge delay.
    fn hedge(&mut self) {
        let silent = self.runners[0].attempt.started.elapsed();
        let from = self
            .failover
            .route(self.runners[0].attempt.endpoint)
            .endpoint
            .clone();
        if self.start_next() {
            let to = self.failover.route(self.runners[1].attempt.endpoint);
            trace!(
                to.tracer,
                Level::Info,
                "hedging: {} silent for {}, starting {} too",
                from,
                Took(silent),
                to.endpoint
            );
        }
        self.hedge_at = None;
    }

    /// Moves attempt `i` on without waiting: `Ok(true)` once it has an
    /// event (or its answer's end, or a plain JSON answer).
    fn step(&mut self, i: usize) -> Result<bool, Error> {
        let runner = &mut self.runners[i];
        if runner.reply.is_none() {
            match runner.attempt.request.poll(Until::Now)? {
                Some(reply) if reply.is_json() => {
                    runner.reply = Some(Box::new(reply));
                    return Ok(true);
                }
                Some(reply) => runner.reply = Some(Box::new(reply)),
                None => return self.check_deadline(i).map(|()| false),
            }
        }
        let runner = &mut self.runners[i];
        let reply = runner.reply.as_mut().expect("set above");
        let decoder = &mut runner.decoder;
        loop {
            // Comments, keep-alive bytes and chunks without an event
            // (role-only, empty deltas) do not count.
            match decoder.next()? {
                Decoded::Chunk if decoder.events.has_next() => return Ok(true),
                Decoded::Chunk => continue,
                Decoded::Done => return Ok(true),
                Decoded::BodyEnd => return decoder.end_of_body().map(|()| true),
                Decoded::NeedBytes => {}
            }
            if runner
                .attempt
                .deadline
                .is_some_and(|at| Instant::now() >= at)
            {
                break;
            }
            match reply.poll_body(decoder.room(), Until::Now)? {
                None => break,
                Some(n) => decoder.filled(n),
            }
        }
        self.check_deadline(i).map(|()| false)
    }

    /// The first-token deadline of attempt `i`, if it has passed.
    fn check_deadline(&self, i: usize) -> Result<(), Error> {
        let attempt = &self.runners[i].attempt;
        match (attempt.deadline, self.failover.first_token()) {
            (Some(at), Some(deadline)) if Instant::now() >= at => Err(first_token_missed(
                self.failover.route(attempt.endpoint),
                deadline,
            )),
            _ => Ok(()),
        }
    }

    /// Attempt `i` failed before its first event: the race goes on with
    /// the other, or the next endpoint, or ends with `error`.
    fn lose(&mut self, i: usize, error: Error) -> Result<(), Error> {
        let lost = self.runners.remove(i);
        if !self.runners.is_empty() {
            // The one left races alone: a hedge to the next endpoint, if
            // any, is due after the delay again.
            self.hedge_at = self
                .failover
                .hedge()
                .and_then(|delay| Instant::now().checked_add(delay));
            let route = self.failover.route(lost.attempt.endpoint);
            trace!(
                route.tracer,
                Level::Warn,
                "{} failed while the other endpoint races on: {}",
                route.endpoint,
                error.trace_summary()
            );
            return Ok(());
        }
        if self.failover.moves_on(lost.attempt.endpoint, &error) && self.start_next() {
            return Ok(());
        }
        Err(error)
    }

    /// Attempt `i` won: the other, if any, is dropped (its connection
    /// closed at once).
    fn win(&mut self, i: usize) -> Winner {
        let winner = self.runners.swap_remove(i);
        let route = Arc::clone(self.failover.route(winner.attempt.endpoint));
        for loser in self.runners.drain(..) {
            let lost = self.failover.route(loser.attempt.endpoint);
            trace!(
                route.tracer,
                Level::Info,
                "{} gave the first event first (after {}); {} cancelled",
                route.endpoint,
                Took(self.started.elapsed()),
                lost.endpoint
            );
        }
        Winner {
            reply: winner.reply.expect("a winner has its reply"),
            decoder: winner.decoder,
            route,
        }
    }

    /// The socket a host waits on: the newest attempt's.
    pub(crate) fn waits_on(&self) -> Option<(std::os::fd::RawFd, Interest)> {
        self.runners.iter().rev().find_map(Runner::waits_on)
    }

    /// The longest a host may wait before it must poll again: the sooner
    /// of every attempt's own wake time, deadline and the hedge; within
    /// [`RECHECK`] while two race.
    pub(crate) fn wake_in(&self) -> Option<Duration> {
        let wake = self.next_wake()?;
        Some(if self.runners.len() > 1 {
            wake.min(RECHECK)
        } else {
            wake
        })
    }

    /// When something is due whatever the sockets do: an attempt's own
    /// wake time (its backoff, its connect's next address, its timeout),
    /// its deadline, or the hedge.
    fn next_wake(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut wake = self
            .runners
            .iter()
            .map(|r| {
                let own = r.wake_in();
                match r.attempt.deadline {
                    Some(at) => own.min(at.saturating_duration_since(now)),
                    None => own,
                }
            })
            .min()?;
        if let Some(at) = self.hedge_at.filter(|_| self.runners.len() == 1) {
            wake = wake.min(at.saturating_duration_since(now));
        }
        Some(wake)
    }
}

impl Runner {
    fn waits_on(&self) -> Option<(std::os::fd::RawFd, Interest)> {
        match &self.reply {
            Some(reply) => reply.waits_on(),
            None => self.attempt.request.waits_on(),
        }
    }

    fn wake_in(&self) -> Duration {
        match &self.reply {
            Some(reply) => reply.wake_in(),
            None => self.attempt.request.wake_in(),
        }
    }
}
