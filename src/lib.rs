//! # modelapi
//!
//! A blocking, thread-free client for OpenAI-compatible chat-completion
//! servers (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM, ...), with a C ABI.
//!
//! - [`ModelApi::complete`]: one request, the `chat.completion` object back.
//! - [`ModelApi::stream`]: the answer's content chunks, parsed from
//!   Server-Sent Events as they arrive, through an iterator
//!   ([`ChatStream`]) or a callback ([`ModelApi::stream_with`]); every
//!   kind of delta (reasoning, tool calls, refusals) as a [`StreamEvent`]
//!   ([`ChatStream::next_event`], [`ModelApi::stream_events_with`]), and
//!   the whole answer assembled as it arrives
//!   ([`ChatStream::completion`]).
//! - [`ModelApi::stream_start`] and [`ChatStream::poll_event`]: a stream
//!   driven without ever blocking, for game loops, UI threads and hosts
//!   with their own event loop; [`ChatStream::waits_on`] gives the socket
//!   to wait on. How it is built: see the design note of the `net` module
//!   (`src/transport/net/mod.rs`): one state machine serves blocking and polled
//!   calls alike.
//! - Staying responsive ([`ModelApiBuilder::first_token_timeout`],
//!   [`ModelApiBuilder::fallback`], [`ModelApiBuilder::hedge`]): a
//!   deadline on the first event, fallback endpoints (each with its own
//!   key) tried before any event was handed out, and hedged requests that
//!   race two endpoints to the first event, in the same thread.
//! - [`ModelApi::embed`]: embeddings (`/v1/embeddings`), and
//!   [`ModelApi::models`]: the model list (`/v1/models`).
//! - [`ModelApi::close`]: releases the pooled keep-alive connections.
//!
//! Every call runs on the caller's thread: the library never starts one,
//! and has no async runtime.
//!
//! ```
//! use modelapi::{Message, ModelApi};
//!
//! // Canned replies answer without a server, for tests and demos
//! // (DEBUG_MOCK_RESPONSES does the same from the environment).
//! let api = ModelApi::builder("my-model", "http://localhost:8000")
//!     .mock_responses(vec!["Hello!".into(), "Code flows like water".into()])
//!     .build()?;
//!
//! let answer = api.complete(&[Message::user("Hi")], None)?;
//! assert_eq!(answer.content(), Some("Hello!"));
//!
//! let mut text = String::new();
//! for chunk in api.stream(&[Message::user("Write a haiku about coding")], None)? {
//!     text.push_str(&chunk?);
//! }
//! assert_eq!(text, "Code flows like water");
//! api.close();
//! # Ok::<(), modelapi::Error>(())
//! ```
//!
//! ## Timeouts
//!
//! The timeout (default 60 s) bounds each single wait on the network:
//! connecting, sending, waiting for the response head, and waiting between
//! two reads of the body. A stream that keeps sending is never cut by it.
//! A polled stream counts the time without progress across polls.
//!
//! ## Retries
//!
//! A request is sent again (default: up to 2 more times) after a connection
//! failure (refused, reset or closed before the response head, unreachable)
//! or a 408, 409, 429 or 5xx status, after an exponential backoff with
//! jitter (0.5 s doubling, capped at 8 s) or the server's `Retry-After` /
//! `retry-after-ms` when it is at most 60 s. Timeouts and TLS failures are
//! not retried. Once a response has begun, nothing is retried.
//!
//! One resend does not count as a retry: when a pooled keep-alive
//! connection fails before any byte of an answer (most likely the server
//! closed it while it was idle, before the request reached it), the request
//! goes again at once, once per request, on a new connection (as curl and
//! browsers do). Any other
//! connection failure counts, also one after the whole request went on a
//! new connection (the server may have acted on it): with
//! `max_retries(0)` such a request is sent exactly once.

#![warn(missing_docs)]
// Without the network, the pure parts it uses (URL and proxy rules, the
// HTTP/1.1 writer) are still built, and not all of them are used.
#![cfg_attr(not(feature = "net"), allow(dead_code, unused_imports))]

// The three layers, one folder each (see the README's "Layout"): bytes in,
// events and the answer out; sockets, TLS, HTTP, retries and where
// requests go; the calls. The C API is a thin skin over the API.
mod api;
mod decoder;
pub mod ffi;
mod transport;

// What every layer shares.
mod base64;
mod cancel;
mod error;
mod secrets;
mod trace;
mod types;
mod until;

pub use decoder::sse;

pub use api::builder::ModelApiBuilder;
pub use api::chat_request::ChatRequest;
pub use api::client::Cancellable;
pub use api::client::{
    ModelApi, DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF, DEFAULT_TIMEOUT,
};
pub use api::embed::{Embeddings, MOCK_EMBEDDING_DIMENSION};
pub use api::mock::{error_sentinels, MOCK_ENV_VAR, MOCK_TEXT_BEFORE_ERROR};
pub use api::models::{ModelInfo, ModelList};
#[cfg(feature = "net")]
pub use api::stream::WaitsOn;
pub use api::stream::{ChatStream, PartialText};
pub use cancel::CancelToken;
pub use decoder::answer::StreamMetadata;
pub use decoder::event::StreamEvent;
pub use error::Error;
pub use trace::{Level as TraceLevel, TraceHook, LOG_TARGET};
pub use transport::detached::HostRequest;
pub use types::{ChatCompletion, Choice, Message, ResponseMessage, Usage};

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Entry points for the fuzz tests (tests/fuzz.rs): the parsers of the
/// crate, reachable without a server. Not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    use crate::decoder::answer::Answer;
    use crate::decoder::chunk::{read_event, Received};
    use crate::decoder::event::{Events, StreamEvent};
    use crate::decoder::sse::Event;

    /// Interprets one event's data as a streamed chunk: its content.
    pub fn chunk(event_type: &str, data: &str) -> Result<Option<String>, crate::Error> {
        let (events, _) = chunk_events(event_type, data)?;
        let content: String = events
            .iter()
            .filter_map(|e| e.strip_prefix("content:"))
            .collect();
        Ok(Some(content).filter(|c| !c.is_empty()))
    }

    /// Interprets one event's data as a streamed chunk: its events (as
    /// `kind:text`, tool calls as `tool:index:id:name:arguments`) and the
    /// answer it assembles to.
    pub fn chunk_events(
        event_type: &str,
        data: &str,
    ) -> Result<(Vec<String>, crate::ChatCompletion), crate::Error> {
        let (mut events, mut answer) = (Events::default(), Answer::default());
        let event = Event { event_type, data };
        let mut received = Received {
            events: &mut events,
            answer: &mut answer,
        };
        read_event(&event, &mut received)?;
        let mut all = Vec::new();
        while let Some(at) = events.take() {
            all.push(match events.event(at) {
                StreamEvent::Content(t) => format!("content:{t}"),
                StreamEvent::Reasoning(t) => format!("reasoning:{t}"),
                StreamEvent::Refusal(t) => format!("refusal:{t}"),
                StreamEvent::ToolCall {
                    index,
                    id,
                    name,
                    arguments,
                } => format!(
                    "tool:{index}:{}:{}:{arguments}",
                    id.unwrap_or("-"),
                    name.unwrap_or("-")
                ),
            });
        }
        Ok((all, answer.completion()))
    }

    /// Whether the fast chunk reader read `data` (`Ok(true)`) or left it to
    /// serde_json (`Ok(false)`); `Err` says how the two readers disagree.
    pub fn chunk_fast_reader_agrees(data: &str) -> Result<bool, String> {
        crate::decoder::chunk::check_fast_reader(data)
    }

    /// Whether reading `events` (type and data) in order with one reader,
    /// which remembers the shape of chunks, gives what reading each alone
    /// gives: `Ok(n)` when it does (`n` events repeated a remembered chunk).
    pub fn chunk_reader_memory_agrees(events: &[(&str, &str)]) -> Result<usize, String> {
        crate::decoder::chunk::check_reader_memory(events)
    }

    /// Parses a non-streamed response body.
    pub fn completion(body: &str) -> Result<crate::ChatCompletion, crate::Error> {
        crate::ChatCompletion::from_body(body.to_string())
    }
}
