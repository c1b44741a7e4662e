//! The decoder: bytes in, events and the assembled answer out, no I/O.
//!
//! A stream's body goes through [`body::BodyDecoder`]: the SSE decoder
//! ([`sse`]) cuts it into events, the chunk reader ([`chunk`]) reads each
//! event's `chat.completion.chunk` into the queue of events the caller
//! reads ([`event`]) and into the whole answer ([`answer`]). [`head`] says
//! what an answer's head means (a plain JSON answer or events; the error
//! of a non-2xx status). Every stream (the library's own connections, the
//! bytes a host carries, canned replies) and every attempt of a race to
//! the first event decode through these, the same way.

pub(crate) mod answer;
pub(crate) mod body;
pub(crate) mod chunk;
pub(crate) mod event;
pub(crate) mod head;
pub mod sse;
