//! One JSON exchange with another endpoint of the client's server
//! (`/v1/embeddings`, `/v1/models`): the request through the one transport
//! ([`Request`]: retries, redirects, credentials, timeouts, trace), the
//! whole body read within the client's cap. A build without the network
//! (`--no-default-features`) answers with its transport error.

use ureq_proto::http::Method;

use crate::api::client::ModelApi;
use crate::cancel::CancelToken;
use crate::error::Error;

/// Sends `body` (nothing for a GET) to `{api_base}/v1/{path}` with
/// `method`, and returns the 2xx answer's body as text. Errors are those
/// of every call (scrubbed of secrets, traced).
#[cfg(feature = "net")]
pub(crate) fn fetch(
    api: &ModelApi,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> Result<String, Error> {
    use std::sync::Arc;
    use std::time::Instant;

    use crate::transport::request::Request;
    use crate::until::Until;

    let cancel = CancelToken::new();
    let started = Instant::now();
    let endpoint = api.route.sibling(path);
    let mut request = Request::to(
        Arc::clone(&api.route),
        method,
        endpoint,
        body,
        "application/json",
        cancel.clone(),
    );
    let mut answer = || {
        let reply = loop {
            if let Some(reply) = request.poll(Until::Forever)? {
                break reply;
            }
        };
        let bytes = reply.read_whole(api.max_response_bytes, started)?;
        String::from_utf8(bytes).map_err(|_| {
            Error::InvalidResponse(format!("the answer of /v1/{path} is not valid UTF-8"))
        })
    };
    answer().map_err(|e| api.call_error(e, &cancel))
}

#[cfg(not(feature = "net"))]
pub(crate) fn fetch(api: &ModelApi, _: Method, _: &str, _: Vec<u8>) -> Result<String, Error> {
    Err(api.call_error(crate::transport::net::no_network(), &CancelToken::new()))
}
