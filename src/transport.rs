//! The HTTP agent: ureq configured for per-wait timeouts, pooled
//! keep-alive connections, and no threads.
//!
//! Every timeout of ureq but three is a deadline for a whole phase
//! (`recv_body`, `global`, `per_call` would cut a healthy stream that runs
//! long), and a `global`, `per_call` or `resolve` timeout makes ureq's
//! resolver start a thread per DNS lookup. So only these are set, each to
//! the client's timeout:
//!
//! - `timeout_connect`: one connection attempt;
//! - `timeout_per_write`: each write of the request;
//! - `timeout_per_read`: each read, of the response head and of the body,
//!   so a stream that keeps sending is never cut, and one that goes silent
//!   fails after one timeout.

use std::time::Duration;

use ureq::config::RedirectAuthHeaders;
use ureq::Agent;

/// The `User-Agent` header: the library and its version.
pub(crate) const USER_AGENT: &str = concat!("modelapi/", env!("CARGO_PKG_VERSION"));

/// Idle connections kept per host: enough for many threads sharing one
/// client against one server.
const IDLE_CONNECTIONS_PER_HOST: usize = 16;

/// Builds the agent of one client.
pub(crate) fn agent(timeout: Duration) -> Agent {
    let config = Agent::config_builder()
        // Non-2xx answers come back as responses, so their bodies (the
        // server's error message) can be read.
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .user_agent(USER_AGENT)
        // Proxies from the environment are not used: the key goes to the
        // configured server and nowhere else.
        .proxy(None)
        // A redirect keeps the Authorization header only on the same host.
        .redirect_auth_headers(RedirectAuthHeaders::SameHost)
        .max_idle_connections(2 * IDLE_CONNECTIONS_PER_HOST)
        .max_idle_connections_per_host(IDLE_CONNECTIONS_PER_HOST)
        // uvicorn (vLLM, LiteLLM, most Python servers) closes idle
        // connections after 5 s: reusing one older than that would race
        // the server closing it.
        .max_idle_age(Duration::from_secs(4))
        .build();
    Agent::new_with_config(config)
}
