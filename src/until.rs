//! [`Until`]: how long a step of a call may wait, for the network or for
//! the host that feeds a detached stream.

use std::time::{Duration, Instant};

/// How long a step may wait for the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// As long as it takes (each wait up to the client's timeout): the
    /// blocking calls.
    Forever,
    /// Not at all: a poll with a wait of zero, which reads no clock for
    /// it.
    Now,
    /// Up to this instant.
    At(Instant),
}

impl Until {
    /// `wait` from now: a wait of zero reads no clock.
    pub(crate) fn after(wait: Duration) -> Until {
        if wait.is_zero() {
            return Until::Now;
        }
        Instant::now()
            .checked_add(wait)
            .map_or(Until::Forever, Until::At)
    }

    /// The earlier of this and `at`.
    pub(crate) fn or_before(self, at: Instant) -> Until {
        match self {
            Until::Now => Until::Now,
            Until::Forever => Until::At(at),
            Until::At(mine) => Until::At(mine.min(at)),
        }
    }
}
