//! The one error type of the crate.
//!
//! Every variant says what went wrong and, where the caller can do something
//! about it, what to do. No variant ever holds the API key: texts that come
//! from the server are scrubbed of it before they are stored (see
//! [`crate::api::client`]).

use std::io;

use serde_json::Value;

/// Everything that can go wrong in a call.
///
/// The C layer maps each variant to one `ModelApiStatus`; the table is in
/// the README ("Failure behaviour").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a non-2xx status.
    ///
    /// `message` is the server's own explanation: OpenAI's
    /// `{"error": {"message": ..}}` when the body has that shape, otherwise
    /// the body itself (trimmed), otherwise the status's reason phrase.
    #[error("HTTP {status} from the server: {message}")]
    Http {
        /// The HTTP status code, e.g. 401 or 429.
        status: u16,
        /// The server's error message.
        message: String,
        /// `error.type` of an OpenAI error body, e.g. `"invalid_request_error"`.
        error_type: Option<String>,
        /// `error.code` of an OpenAI error body, as text (`429` and `"429"` both
        /// become `"429"`).
        code: Option<String>,
        /// The raw response body (capped at 64 KiB).
        body: String,
    },

    /// The server reported an error inside a successful (2xx) response: a
    /// `data: {"error": ..}` event, an `event: error`, an `error:` line, or a
    /// 2xx JSON body holding `{"error": ..}`.
    #[error("the server reported an error: {message}")]
    Server {
        /// The server's error message.
        message: String,
        /// The raw error payload (the event's data or the body).
        body: String,
    },

    /// The connection could not be made or broke: DNS, connect, TLS, a reset,
    /// or a stream that ended before `[DONE]` or a `finish_reason`.
    #[error("transport error: {0}")]
    Transport(String),

    /// One wait on the network (connect, send, response head, or the gap
    /// between two reads of the body) took longer than the client's timeout.
    #[error("timed out: {0}")]
    Timeout(String),

    /// The server's answer is not OpenAI-format JSON, or is larger than the
    /// configured caps.
    #[error("invalid response from the server: {0}")]
    InvalidResponse(String),

    /// [`ModelApi::close`](crate::ModelApi::close) was called on this client.
    #[error("the client is closed: create a new ModelApi to make more calls")]
    Closed,

    /// An argument or a setting is not usable; the text says which and why.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The call was stopped on the caller's request: the chunk callback of
    /// [`ModelApi::stream_with`](crate::ModelApi::stream_with) asked to stop.
    #[error("aborted: {0}")]
    Aborted(String),

    /// A read of a detached stream (see
    /// [`ModelApi::stream_detached`](crate::ModelApi::stream_detached))
    /// needs bytes the host has not fed yet. The stream goes on: feed them
    /// and read again (or read with
    /// [`ChatStream::poll_event`](crate::ChatStream::poll_event), which
    /// gives `Poll::Pending` instead).
    #[error("pending: {0}")]
    Pending(String),
}

/// A response part over one of the caps, as an I/O error of the layer that
/// found it.
#[derive(Debug)]
pub(crate) struct Oversized(pub(crate) String);

impl std::fmt::Display for Oversized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Oversized {}

/// A transport error from a lower layer's text; certificate failures get
/// a hint of what to do.
fn transport_error(text: String) -> Error {
    if text.contains("certificate") {
        return Error::Transport(format!(
            "TLS: the server's certificate is not trusted or not valid for this host \
             ({text}); trust a private CA or a self-signed certificate with ca_file"
        ));
    }
    Error::Transport(text)
}

impl Error {
    /// The HTTP status of an [`Error::Http`], else `None`.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether a new attempt of the same request may succeed: connection
    /// failures and statuses 408, 409, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Http { status, .. } => crate::transport::retry::is_retryable_status(*status),
            Error::Transport(_) => true,
            _ => false,
        }
    }

    /// Maps an I/O error of the network layer to ours.
    pub(crate) fn from_io(err: io::Error) -> Error {
        if let Some(Oversized(what)) = err.get_ref().and_then(|e| e.downcast_ref()) {
            return Error::InvalidResponse(what.clone());
        }
        let what = match err.kind() {
            io::ErrorKind::TimedOut => return Error::Timeout(err.to_string()),
            io::ErrorKind::UnexpectedEof => {
                "the server closed the connection before the whole response arrived"
            }
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                "the server reset the connection"
            }
            io::ErrorKind::ConnectionRefused => "the server refused the connection",
            io::ErrorKind::BrokenPipe => "the server closed the connection while it was sent to",
            io::ErrorKind::Interrupted => return Error::Aborted(err.to_string()),
            _ => return transport_error(err.to_string()),
        };
        let detail = err.to_string();
        if detail == what {
            return Error::Transport(detail);
        }
        Error::Transport(format!("{what} ({detail})"))
    }

    /// The error for a trace line: what happened, without any text that
    /// came from the server or from the request (a server may echo the
    /// messages it was sent), which the returned error holds in full.
    pub(crate) fn trace_summary(&self) -> String {
        let len = |text: &str| text.len();
        match self {
            Error::Http {
                status,
                message,
                error_type,
                code,
                ..
            } => {
                let mut summary = format!("HTTP {status} from the server");
                if let Some(kind) = error_type {
                    summary.push_str(&format!(", type {}", summary_word(kind)));
                }
                if let Some(code) = code {
                    summary.push_str(&format!(", code {}", summary_word(code)));
                }
                format!("{summary} ({} bytes of message)", len(message))
            }
            Error::Server { message, .. } => format!(
                "the server reported an error in its answer ({} bytes of message)",
                len(message)
            ),
            Error::InvalidResponse(detail) => format!(
                "invalid response from the server ({} bytes of detail in the returned error)",
                len(detail)
            ),
            Error::InvalidArgument(detail) => format!(
                "invalid argument ({} bytes of detail in the returned error)",
                len(detail)
            ),
            // Texts of this library and of the network layer: no content.
            Error::Transport(_)
            | Error::Timeout(_)
            | Error::Aborted(_)
            | Error::Pending(_)
            | Error::Closed => self.to_string(),
        }
    }

    /// Names the request (`method`, `url`) a transport failure or timeout
    /// happened on.
    pub(crate) fn in_context(self, method: &str, url: &str) -> Error {
        match self {
            Error::Transport(m) => Error::Transport(format!("{method} {url}: {m}")),
            Error::Timeout(m) => Error::Timeout(format!("{method} {url}: {m}")),
            other => other,
        }
    }

    /// The error with every text it holds passed through `r` (the
    /// secrets' scrubbing: see [`crate::secrets::Secrets::redact`]).
    pub(crate) fn map_texts(self, r: impl Fn(String) -> String) -> Error {
        let r = &r;
        match self {
            Error::Http {
                status,
                message,
                error_type,
                code,
                body,
            } => Error::Http {
                status,
                message: r(message),
                error_type: error_type.map(r),
                code: code.map(r),
                body: r(body),
            },
            Error::Server { message, body } => Error::Server {
                message: r(message),
                body: r(body),
            },
            Error::Transport(s) => Error::Transport(r(s)),
            Error::Timeout(s) => Error::Timeout(r(s)),
            Error::InvalidResponse(s) => Error::InvalidResponse(r(s)),
            Error::InvalidArgument(s) => Error::InvalidArgument(r(s)),
            Error::Aborted(s) => Error::Aborted(r(s)),
            Error::Pending(s) => Error::Pending(r(s)),
            Error::Closed => Error::Closed,
        }
    }
}

/// A server's short identifier (an error type or code) for a trace line, or
/// a note that it is not one.
fn summary_word(word: &str) -> &str {
    let plain = word.len() <= 64
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain {
        word
    } else {
        "(not shown)"
    }
}

/// At most 1 KiB of `text`, cut at a character boundary, for messages.
pub(crate) fn truncate(text: &str) -> String {
    const MAX: usize = 1024;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len())
}

/// The human message of an error value in the shapes servers use:
/// `{"error": {"message": ..}}`, `{"message": ..}`, `{"error": ".."}`,
/// `{"content": ..}` (llama.cpp) or a bare string.
pub(crate) fn error_message(error: &Value) -> String {
    // A server's text, so at most 1 KiB of it: error texts stay small.
    truncate(&error_text(error))
}

fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(object) => {
            for key in ["message", "error", "content", "detail"] {
                match object.get(key) {
                    Some(Value::String(s)) if !s.is_empty() => return s.clone(),
                    Some(nested @ Value::Object(_)) => return error_text(nested),
                    _ => {}
                }
            }
            error.to_string()
        }
        other => other.to_string(),
    }
}
