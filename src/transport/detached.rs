//! Streams whose bytes the host carries: the request as the client would
//! send it ([`HostRequest`]), and the answer as the host's HTTP stack
//! delivers it ([`HostFeed`]), fed to the same decoder as the library's own
//! connections feed (see [`crate::api::stream`]).
//!
//! The feed keeps the order of an exchange: the head (status and
//! `Content-Type`), then body bytes in pieces of any size, then the end.
//! A call out of that order is refused and changes nothing.

use std::fmt;

use crate::decoder::head::{append_capped, MAX_ERROR_BODY_BYTES};
use crate::error::Error;
use crate::secrets::is_credential_header;

/// The request of a detached stream, for the host to send: `POST` to
/// [`url`](Self::url) with these [`headers`](Self::headers) and this
/// [`body`](Self::body).
///
/// The headers are those the client sends on its own connections (the
/// JSON content type, `Accept: text/event-stream`, its `User-Agent`, the
/// key as `Authorization: Bearer ...` and the client's own headers),
/// without the framing ones (`Host`, `Content-Length`), which the host's
/// HTTP stack writes. The key is in them: send them to this URL only.
pub struct HostRequest {
    url: String,
    headers: Vec<(String, String)>,
    /// The body, followed by a NUL that is not part of it (for C).
    body_with_nul: Vec<u8>,
}

impl HostRequest {
    pub(crate) fn new(url: String, headers: Vec<(String, String)>, body: Vec<u8>) -> HostRequest {
        let mut body_with_nul = body;
        body_with_nul.push(0);
        HostRequest {
            url,
            headers,
            body_with_nul,
        }
    }

    /// The URL to `POST` to: `{api_base}/v1/chat/completions`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers to send, as (name, value) pairs.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The JSON body to send.
    pub fn body(&self) -> &[u8] {
        &self.body_with_nul[..self.body_with_nul.len() - 1]
    }

    /// The body followed by a NUL, for C.
    pub(crate) fn body_with_nul(&self) -> &[u8] {
        &self.body_with_nul
    }
}

impl fmt::Debug for HostRequest {
    /// Credential headers show as `[REDACTED]`; the body as its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if is_credential_header(name) {
                    "[REDACTED]"
                } else {
                    value.as_str()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("HostRequest")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body_bytes", &self.body().len())
            .finish()
    }
}

/// A detached stream's side of the exchange: the request to send, and
/// what has been fed of the answer.
#[derive(Debug)]
pub(crate) struct Detached {
    pub(crate) request: HostRequest,
    pub(crate) feed: HostFeed,
}

/// The head of the answer, as fed.
#[derive(Debug, Clone)]
pub(crate) struct HostHead {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
}

/// What the host has fed of the answer, and what the stream has not read
/// of it yet.
#[derive(Debug, Default)]
pub(crate) struct HostFeed {
    head: Option<HostHead>,
    /// Fed body bytes; `pending[read..]` are not read yet.
    pending: Vec<u8>,
    read: usize,
    ended: bool,
    /// A canned reply answers: what is fed is accepted and dropped.
    ignored: bool,
}

impl HostFeed {
    /// A feed whose bytes are accepted and dropped (a canned reply
    /// answers the stream).
    pub(crate) fn ignored() -> HostFeed {
        HostFeed {
            ignored: true,
            ..HostFeed::default()
        }
    }

    /// The head: once, first.
    pub(crate) fn head(&mut self, status: u16, content_type: Option<&str>) -> Result<(), Error> {
        if self.head.is_some() {
            return Err(out_of_order("the head was fed already"));
        }
        if !(200..=599).contains(&status) {
            return Err(Error::InvalidArgument(format!(
                "http_status {status} is not the status of a final answer: feed the \
                 status line's code (200 to 599) once the final head has come"
            )));
        }
        self.head = Some(HostHead {
            status,
            content_type: content_type.map(str::to_string),
        });
        Ok(())
    }

    /// Body bytes: after the head, before the end.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.check_open("body bytes")?;
        if !self.ignored {
            // What was read goes once it is half the queue: a host that
            // feeds faster than it reads keeps at most twice what is unread.
            if self.read > 0 && self.read * 2 >= self.pending.len() {
                self.pending.drain(..self.read);
                self.read = 0;
            }
            self.pending.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// The end of the body.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        self.check_open("the end")?;
        self.ended = true;
        Ok(())
    }

    fn check_open(&self, what: &str) -> Result<(), Error> {
        if self.head.is_none() {
            return Err(out_of_order(&format!(
                "{what} before the head: feed the status and Content-Type first \
                 (a transfer that failed before any answer: cancel or free the stream)"
            )));
        }
        if self.ended {
            return Err(out_of_order(&format!("{what} after the end of the body")));
        }
        Ok(())
    }

    /// From now on what is fed is accepted and dropped: the stream is
    /// over (finished, failed or cancelled), nothing will read it.
    pub(crate) fn drop_the_rest(&mut self) {
        self.ignored = true;
        self.pending = Vec::new();
        self.read = 0;
    }

    /// The head, once fed.
    pub(crate) fn fed_head(&self) -> Option<&HostHead> {
        self.head.as_ref()
    }

    /// Whether fed bytes wait to be read, or the end to be seen.
    pub(crate) fn has_unread(&self) -> bool {
        self.read < self.pending.len() || self.ended
    }

    /// Appends what was fed and not read to `into`, within `limit` (a
    /// plain JSON answer, read whole as a network one is): `Ok(true)` once
    /// the body has ended.
    pub(crate) fn read_all(&mut self, into: &mut Vec<u8>, limit: u64) -> Result<bool, Error> {
        append_capped(into, &self.pending[self.read..], limit)?;
        self.read = self.pending.len();
        Ok(self.ended)
    }

    /// Keeps what was fed of an error answer's body (its first
    /// [`MAX_ERROR_BODY_BYTES`], as on the network): `true` once the body
    /// has ended.
    pub(crate) fn read_error_body(&mut self, into: &mut Vec<u8>) -> bool {
        let unread = &self.pending[self.read..];
        let room = MAX_ERROR_BODY_BYTES.saturating_sub(into.len());
        into.extend_from_slice(&unread[..unread.len().min(room)]);
        self.read = self.pending.len();
        self.ended
    }

    /// Reads fed body bytes into `out`, as a network read does:
    /// `Some(0)` at the end of the body, `None` when the host has fed
    /// nothing more yet.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Option<usize> {
        let unread = &self.pending[self.read..];
        if unread.is_empty() {
            return self.ended.then_some(0);
        }
        let n = unread.len().min(out.len());
        out[..n].copy_from_slice(&unread[..n]);
        self.read += n;
        Some(n)
    }
}

fn out_of_order(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "{what}: a detached stream is fed its answer in order: the head \
         (modelapi_stream_feed_head / ChatStream::feed_head) once, then body \
         bytes, then the end; this call changed nothing"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_and_the_end_after_them() {
        let mut feed = HostFeed::default();
        assert!(feed.bytes(b"x").is_err(), "no bytes before the head");
        assert!(feed.end().is_err(), "no end before the head");
        feed.head(200, Some("text/event-stream")).unwrap();
        assert!(feed.head(200, None).is_err(), "one head");
        feed.bytes(b"hello ").unwrap();
        feed.bytes(b"world").unwrap();
        let mut out = [0u8; 4];
        let mut got = Vec::new();
        while let Some(n) = feed.read(&mut out) {
            got.extend_from_slice(&out[..n]);
        }
        assert_eq!(got, b"hello world");
        feed.end().unwrap();
        assert_eq!(feed.read(&mut out), Some(0));
        assert!(feed.bytes(b"late").is_err(), "no bytes after the end");
        assert!(feed.end().is_err(), "one end");
    }

    #[test]
    fn a_status_that_is_no_final_answer_is_refused() {
        let mut feed = HostFeed::default();
        for status in [0, 100, 199, 600] {
            assert!(feed.head(status, None).is_err(), "{status}");
        }
        assert!(feed.fed_head().is_none());
    }
}
