//! Staying responsive: the endpoints a call may go to after the client's
//! own (fallbacks, each its own [`Route`] with its own key), the
//! first-token deadline and the hedge delay ([`Plan`]); and which failures
//! move a call on to the next endpoint.

use std::sync::Arc;
use std::time::Duration;

use ureq_proto::http::HeaderValue;

use crate::error::Error;
use crate::transport::route::Route;

/// An endpoint tried after the client's own: its model, and its route
/// (its server, its key alone, its own pool of connections; the other
/// settings are the client's).
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) model: String,
    pub(crate) route: Arc<Route>,
}

/// How a call stays responsive: the fallbacks in order, the first-token
/// deadline and the hedge delay (all off by default).
#[derive(Clone, Default)]
pub(crate) struct Plan {
    pub(crate) fallbacks: Vec<Endpoint>,
    /// The longest wait from sending a request to its first event.
    pub(crate) first_token: Option<Duration>,
    /// After this long without a first event, the next endpoint is
    /// started too.
    pub(crate) hedge: Option<Duration>,
}

/// A route to another endpoint, with the settings of `like` (timeout,
/// TLS, retries, proxy, name table, tracer, the headers that carry no
/// credential) and `authorization` alone: no credential of `like` goes
/// there.
pub(crate) fn fallback_route(
    like: &Route,
    endpoint: String,
    authorization: Option<HeaderValue>,
) -> Route {
    let mut route = like.clone();
    route.endpoint_uri = endpoint.parse().expect("checked by builder::endpoint()");
    route.endpoint = endpoint;
    route.authorization = authorization;
    route
        .headers
        .retain(|(name, _)| !crate::secrets::is_credential_header(name.as_str()));
    route
}

/// Whether a failure before any event moves a call on to the next
/// endpoint: a connection or TLS failure, a 5xx or a 429 (after their
/// retries), a timeout (the first-token deadline among them). Not a 4xx
/// that the next endpoint would give too, a cancel, a closed client or an
/// invalid argument.
pub(crate) fn falls_back(error: &Error) -> bool {
    match error {
        Error::Http { status, .. } => *status == 429 || *status >= 500,
        Error::Transport(_) | Error::Timeout(_) => true,
        _ => false,
    }
}

/// A request body whose `"model"` can be changed for another endpoint:
/// it starts `{"model":<model>,`.
#[derive(Clone)]
pub(crate) struct Payload {
    bytes: Vec<u8>,
    /// Where the model's JSON value ends (it starts after `{"model":`).
    model_end: usize,
}

const MODEL_KEY: &[u8] = b"{\"model\":";

impl Payload {
    /// `bytes` must start with `{"model":<model>` and that value ends at
    /// `model_end`.
    pub(crate) fn new(bytes: Vec<u8>, model_end: usize) -> Payload {
        debug_assert!(bytes.starts_with(MODEL_KEY));
        Payload { bytes, model_end }
    }

    /// The body as it is (for the client's own endpoint).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The body with `model` in place of its own.
    pub(crate) fn for_model(&self, model: &str) -> Vec<u8> {
        let rest = &self.bytes[self.model_end..];
        let mut bytes = Vec::with_capacity(self.bytes.len() + model.len());
        bytes.extend_from_slice(MODEL_KEY);
        serde_json::to_writer(&mut bytes, model).expect("a string serializes");
        bytes.extend_from_slice(rest);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_replaced() {
        let body = br#"{"model":"a","messages":[],"stream":true}"#.to_vec();
        let payload = Payload::new(body, 12);
        assert_eq!(
            payload.for_model("b\"c"),
            br#"{"model":"b\"c","messages":[],"stream":true}"#.to_vec()
        );
    }

    #[test]
    fn which_failures_fall_back() {
        let http = |status| Error::Http {
            status,
            message: String::new(),
            error_type: None,
            code: None,
            body: String::new(),
        };
        assert!(falls_back(&http(503)) && falls_back(&http(429)));
        assert!(!falls_back(&http(401)) && !falls_back(&http(400)));
        assert!(falls_back(&Error::Timeout("t".into())));
        assert!(!falls_back(&Error::Aborted("a".into())));
    }
}
