//! [`Reply`]: a 2xx response whose body is still to be read, by polls.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq_proto::http::Response;

use crate::error::Error;
use crate::trace::{trace, Level, Took};
use crate::transport::net::{Interest, Transfer, Until};
use crate::transport::route::Route;

/// A 2xx response, its body still to read. Dropped after its body was read
/// to the end, it hands its connection back to the pool; before, it closes
/// it.
pub(crate) struct Reply {
    head: Response<()>,
    transfer: Option<Transfer>,
    route: Arc<Route>,
    /// The pool's key for the connection.
    server: String,
}

impl Reply {
    /// The reply of `head`, its body to be read from `transfer`, whose
    /// connection goes back to `route`'s pool under `server`'s key.
    pub(crate) fn new(
        head: Response<()>,
        transfer: Transfer,
        route: Arc<Route>,
        server: String,
    ) -> Reply {
        Reply {
            head,
            transfer: Some(transfer),
            route,
            server,
        }
    }

    /// The route the reply came by.
    pub(crate) fn route(&self) -> &Arc<Route> {
        &self.route
    }

    /// A response header, when it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    /// Whether the body is JSON (see [`crate::decoder::head::is_json`]).
    pub(crate) fn is_json(&self) -> bool {
        crate::decoder::head::is_json(self.header("content-type"))
    }

    /// How long the reply may be left alone before its timeout would expire.
    pub(crate) fn wake_in(&self) -> Duration {
        self.transfer
            .as_ref()
            .map_or(Duration::ZERO, Transfer::wake_in)
    }

    /// The socket the body is read from, and what it waits for.
    pub(crate) fn waits_on(&self) -> Option<(RawFd, Interest)> {
        self.transfer.as_ref().map(Transfer::waits_on)
    }

    /// Reads body bytes into `out`: `Ok(Some(0))` at the end of the body,
    /// `Ok(None)` when none came by `until` (`None`: wait as long as it
    /// takes).
    pub(crate) fn poll_body(
        &mut self,
        out: &mut [u8],
        until: Until,
    ) -> Result<Option<usize>, Error> {
        let Some(transfer) = &mut self.transfer else {
            return Ok(Some(0));
        };
        transfer.poll_body(out, until).map_err(Error::from_io)
    }

    /// Appends the body to `into`, up to its end: `Ok(false)` when it has
    /// not ended by `until`. A body over `limit` bytes is an error.
    pub(crate) fn poll_all(
        &mut self,
        into: &mut Vec<u8>,
        limit: u64,
        until: Until,
    ) -> Result<bool, Error> {
        if into.capacity() == 0 {
            // Sized by Content-Length up front (within the cap).
            let expected = self
                .header("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
                .min(limit);
            into.reserve(expected as usize + 1);
        }
        // Decoded into a piece on the stack, then copied: no zeroing of
        // the vector's room per read.
        let mut piece = [0u8; 16 * 1024];
        loop {
            let n = match self.poll_body(&mut piece, until)? {
                Some(0) => return Ok(true),
                Some(n) => n,
                None => return Ok(false),
            };
            crate::decoder::head::append_capped(into, &piece[..n], limit)?;
        }
    }

    /// Reads the whole body, as long as it takes, within `limit` (see
    /// [`poll_all`](Self::poll_all)), and tells its size and the time since
    /// `started` to the trace; the connection then goes back to the pool.
    pub(crate) fn read_whole(mut self, limit: u64, started: Instant) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        while !self.poll_all(&mut bytes, limit, Until::Forever)? {}
        trace!(
            self.route.tracer,
            Level::Debug,
            "answer of {} bytes complete after {}",
            bytes.len(),
            Took(started.elapsed())
        );
        Ok(bytes)
    }

    fn release(&mut self) {
        if let Some(transfer) = self.transfer.take() {
            self.route.release(&self.server, transfer);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.release();
    }
}

/// A header of `head`, when it is text.
pub(crate) fn header<'a>(head: &'a Response<()>, name: &str) -> Option<&'a str> {
    head.headers().get(name)?.to_str().ok()
}
