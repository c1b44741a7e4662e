//! The C API: every `extern "C"` function of `include/modelapi.h`, in one
//! file per object: the client and its settings (`client`), the calls
//! (`calls`), streams (`stream`) and their events (`event`), cancel tokens
//! (`cancel`); what is left here belongs to the library as a whole.
//!
//! Each function checks its pointers, converts its arguments, calls the
//! safe Rust API, and maps the outcome in one place
//! (`boundary::guard`), which also keeps panics from unwinding into C.
//! This module knows nothing of HTTP.

mod args;
mod boundary;

// In the order of the header: cbindgen writes each file's items in turn.
mod client;

mod calls;

mod stream;

mod feed;

mod event;

mod cancel;

mod library;

mod request_builder;

mod embed;

mod models;

use boundary::Failure;
pub use boundary::ModelApiStatus;
pub use calls::*;
pub use cancel::*;
pub use client::*;
pub use embed::*;
pub use event::*;
pub use feed::*;
pub use library::*;
pub use models::*;
pub use request_builder::*;
pub use stream::*;

use crate::ModelApi;

/// A client for a call that may run on several threads at once.
fn shared<'a>(api: *mut ModelApiHandle) -> Result<&'a ModelApi, Failure> {
    args::required(api, "api").map(|handle| &handle.api)
}

fn required_out<T>(out: *mut *mut T, name: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid(format!("{name} is NULL")));
    }
    Ok(())
}
