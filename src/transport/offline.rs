//! The network's place in a build without it (`cargo build
//! --no-default-features`): the types a client's settings hold, and no
//! I/O at all. The calls that need the network say so
//! ([`no_network`]); detached streams and canned replies work.

use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
pub(crate) use crate::until::Until;

/// The error of every call that needs the network.
pub(crate) fn no_network() -> Error {
    Error::Transport(
        "this build of modelapi has no network support (built without the \
         \"net\" feature): use detached streams, whose bytes the host carries \
         (stream_detached), or canned replies"
            .into(),
    )
}

/// No connections to keep.
#[derive(Default)]
pub(crate) struct Pool {
    _none: (),
}

impl Pool {
    pub(crate) fn clear(&self) {}
}

/// No TLS settings.
#[derive(Clone)]
pub(crate) struct TlsConfig;

pub(crate) fn tls_config(_: Option<&[u8]>) -> TlsConfig {
    TlsConfig
}

/// A CA file has no use without the network.
pub(crate) fn load_ca_file(path: &Path) -> Result<Arc<[u8]>, Error> {
    Err(Error::InvalidArgument(format!(
        "ca_file {}: this build of modelapi has no network support (built \
         without the \"net\" feature), so no TLS to trust it for",
        path.display()
    )))
}
