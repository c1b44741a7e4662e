//! One call's way through its endpoints ([`Failover`]): the requests it
//! starts, one per endpoint in order (the client's own, then each
//! fallback), each with its own route, key and body (its model); and
//! [`Sequential`], the requests of a call that waits for one response
//! head at a time (`complete`), moving on past an endpoint that fails or
//! misses the first-token deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::error::Error;
use crate::trace::{trace, Level, Took};
use crate::transport::endpoints::{falls_back, Payload, Plan};
use crate::transport::net::Until;
use crate::transport::reply::Reply;
use crate::transport::request::Request;
use crate::transport::route::Route;

/// The endpoints of one call, and the next one to start.
pub(crate) struct Failover {
    primary: Arc<Route>,
    plan: Arc<Plan>,
    /// The body, for the endpoints not started yet.
    payload: Option<Payload>,
    accept: &'static str,
    cancel: CancelToken,
    next: usize,
    /// When the call began, for the trace.
    started: Instant,
}

/// One endpoint's request.
pub(crate) struct Attempt {
    /// 0 for the client's own endpoint, then the fallbacks in order.
    pub(crate) endpoint: usize,
    pub(crate) request: Request,
    /// When its request was made: the first-token deadline runs from here.
    pub(crate) started: Instant,
    /// When it fails if no event has come (the first-token deadline).
    pub(crate) deadline: Option<Instant>,
}

impl Failover {
    pub(crate) fn new(
        primary: Arc<Route>,
        plan: Arc<Plan>,
        payload: Payload,
        accept: &'static str,
        cancel: CancelToken,
    ) -> Failover {
        Failover {
            primary,
            plan,
            payload: Some(payload),
            accept,
            cancel,
            next: 0,
            started: Instant::now(),
        }
    }

    /// How many endpoints the call has.
    fn count(&self) -> usize {
        1 + self.plan.fallbacks.len()
    }

    /// Whether an endpoint is left to start.
    pub(crate) fn has_next(&self) -> bool {
        self.next < self.count()
    }

    pub(crate) fn route(&self, endpoint: usize) -> &Arc<Route> {
        match endpoint {
            0 => &self.primary,
            i => &self.plan.fallbacks[i - 1].route,
        }
    }

    /// The call's cancel token.
    pub(crate) fn cancel(&self) -> &CancelToken {
        &self.cancel
    }

    /// The first-token deadline.
    pub(crate) fn first_token(&self) -> Option<Duration> {
        self.plan.first_token
    }

    /// The hedge delay, when another endpoint is left to hedge with.
    pub(crate) fn hedge(&self) -> Option<Duration> {
        self.plan.hedge.filter(|_| self.has_next())
    }

    /// Starts the request to the next endpoint, if one is left.
    pub(crate) fn start(&mut self) -> Option<Attempt> {
        if !self.has_next() {
            return None;
        }
        let endpoint = self.next;
        self.next += 1;
        let last = !self.has_next();
        let body = match endpoint {
            0 if last => self.payload.take()?.into_bytes(),
            0 => self.payload.as_ref()?.clone().into_bytes(),
            i => {
                let body = self
                    .payload
                    .as_ref()?
                    .for_model(&self.plan.fallbacks[i - 1].model);
                if last {
                    self.payload = None;
                }
                body
            }
        };
        let route = Arc::clone(self.route(endpoint));
        if endpoint > 0 {
            trace!(
                route.tracer,
                Level::Info,
                "endpoint {} of {}: {} ({} after the call began)",
                endpoint + 1,
                self.count(),
                route.endpoint,
                Took(self.started.elapsed())
            );
        }
        let started = Instant::now();
        let deadline = self.plan.first_token.and_then(|d| started.checked_add(d));
        Some(Attempt {
            endpoint,
            request: Request::new(route, body, self.accept, self.cancel.clone()),
            started,
            deadline,
        })
    }

    /// Whether a call whose attempt at `endpoint` failed with `error`
    /// before any event goes on with the next endpoint (told in the
    /// trace).
    pub(crate) fn moves_on(&self, endpoint: usize, error: &Error) -> bool {
        let moves_on = self.has_next() && falls_back(error) && !self.cancel.is_cancelled();
        if moves_on {
            let route = self.route(endpoint);
            trace!(
                route.tracer,
                Level::Warn,
                "falling back from {}: {}",
                route.endpoint,
                error.trace_summary()
            );
        }
        moves_on
    }
}

/// The error of an attempt that missed the first-token deadline.
pub(crate) fn first_token_missed(route: &Route, deadline: Duration) -> Error {
    Error::Timeout(format!(
        "no first token from {} within the first-token deadline of {}",
        route.endpoint,
        Took(deadline)
    ))
}

/// The requests of a call that waits for one response head at a time.
pub(crate) struct Sequential {
    failover: Failover,
    attempt: Attempt,
}

impl Sequential {
    pub(crate) fn new(mut failover: Failover) -> Sequential {
        let attempt = failover.start().expect("a call has an endpoint");
        Sequential { failover, attempt }
    }

    /// The response head of the first endpoint to give a 2xx one by its
    /// deadline, with that endpoint's route; `Ok(None)` when none has by
    /// `until`.
    pub(crate) fn poll(&mut self, until: Until) -> Result<Option<(Reply, Arc<Route>)>, Error> {
        loop {
            let attempt = &mut self.attempt;
            let wait = match attempt.deadline {
                Some(at) => until.or_before(at),
                None => until,
            };
            let result = match attempt.request.poll(wait) {
                Ok(None) if attempt.deadline.is_some_and(|at| Instant::now() >= at) => {
                    let deadline = self.failover.first_token().unwrap_or_default();
                    Err(first_token_missed(
                        self.failover.route(attempt.endpoint),
                        deadline,
                    ))
                }
                other => other,
            };
            match result {
                Ok(Some(reply)) => {
                    let route = Arc::clone(self.failover.route(self.attempt.endpoint));
                    return Ok(Some((reply, route)));
                }
                Ok(None) if until == Until::Forever => continue,
                Ok(None) => return Ok(None),
                Err(error) => {
                    if !self.failover.moves_on(self.attempt.endpoint, &error) {
                        return Err(error);
                    }
                    self.attempt = self.failover.start().expect("has_next() said so");
                }
            }
        }
    }
}
