//! The transport: where requests go and how they get there.
//!
//! A client's [`route::Route`] (the server, its addresses, a proxy,
//! credentials, TLS, retries, the pool), one [`request::Request`] from its
//! first attempt to its answer's head (retries, redirects, where
//! credentials go), the 2xx [`reply::Reply`] whose body is read, the
//! sans-IO HTTP/1.1 exchange ([`http`]) and the sockets and TLS under it
//! ([`net`]); the endpoints after the client's own ([`endpoints`],
//! [`failover`], [`race`]); and the exchange a host carries
//! ([`detached`]).
//!
//! The network itself is the `net` feature: without it, `net` is
//! `offline.rs`, which holds the settings' types and makes no call.

pub(crate) mod detached;
pub(crate) mod endpoints;
#[cfg(feature = "net")]
pub(crate) mod failover;
pub(crate) mod http;
#[cfg(feature = "net")]
pub(crate) mod net;
/// Without the network, its place holds the settings' types and no I/O.
#[cfg(not(feature = "net"))]
#[path = "offline.rs"]
pub(crate) mod net;
pub(crate) mod proxy;
#[cfg(feature = "net")]
pub(crate) mod race;
pub(crate) mod redirect;
#[cfg(feature = "net")]
pub(crate) mod reply;
#[cfg(feature = "net")]
pub(crate) mod request;
pub(crate) mod resolve;
pub(crate) mod retry;
pub(crate) mod route;
