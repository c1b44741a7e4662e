//! One HTTP/1.1 exchange, sans I/O: the bytes of a request (a POST, or a
//! GET), then the response
//! head and body parsed from whatever bytes the connection hands over.
//! ureq's own protocol core (ureq-proto) does the parsing: sized, chunked
//! and close-delimited bodies, informational 1xx heads, keep-alive.

use std::io;

use ureq_proto::client::state::{RecvBody, RecvResponse};
use ureq_proto::client::{Call, RecvBodyResult, RecvResponseResult, SendRequestResult};
use ureq_proto::http::{header, HeaderName, HeaderValue, Method, Request, Response, Uri};
use ureq_proto::BodyMode;

/// The `User-Agent` header: the library and its version.
pub(crate) const USER_AGENT_VALUE: &str = concat!("modelapi/", env!("CARGO_PKG_VERSION"));

/// Where one exchange is.
pub(crate) enum Exchange {
    /// Waiting for (the rest of) the response head.
    Head(Call<RecvResponse>),
    /// Reading the body.
    Body(Call<RecvBody>),
    /// The body is complete; `keep_alive`: the connection may serve
    /// another request.
    Ended { keep_alive: bool },
}

/// The bytes of a `method` request (POST or GET) of `body` to `uri` with
/// `headers` (the `Host` header is added, and `Content-Length` for a method
/// that sends a body), and the exchange awaiting its answer. `to_proxy`:
/// the request line names the whole URL, as a forwarding proxy needs.
pub(crate) fn send(
    method: Method,
    uri: &Uri,
    headers: impl Iterator<Item = (HeaderName, HeaderValue)>,
    body: &[u8],
    to_proxy: bool,
) -> io::Result<(Vec<u8>, Exchange)> {
    let with_body = method == Method::POST;
    let mut request = Request::builder().method(method).uri(uri.clone());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if with_body {
        request = request.header(header::CONTENT_LENGTH, body.len());
    }
    let request = request.body(()).map_err(invalid)?;
    let mut call = Call::new(request).map_err(invalid)?.proceed();
    let mut bytes = vec![0; 1024];
    let mut used = 0;
    while !call.can_proceed() {
        if bytes.len() - used < 1024 {
            bytes.resize(bytes.len().saturating_mul(2), 0);
        }
        match call.write(&mut bytes[used..]) {
            Ok(n) => used += n,
            // ureq-proto writes whole lines only: a line longer than the
            // room left (a 12 KB bearer token, a long custom header) needs
            // more room, not a failure. Nothing was written: grow, retry.
            Err(ureq_proto::Error::OutputOverflow) => {
                bytes.resize(bytes.len().saturating_mul(2), 0);
            }
            Err(e) => return Err(invalid(e)),
        }
    }
    bytes.truncate(used);
    if to_proxy {
        absolute_form(&mut bytes, uri);
    }
    let call = match call.proceed().map_err(invalid)? {
        Some(SendRequestResult::SendBody(mut call)) => {
            // The body goes out right behind the head, in the same write.
            call.consume_direct_write(body.len()).map_err(invalid)?;
            bytes.extend_from_slice(body);
            call.proceed()
        }
        Some(SendRequestResult::RecvResponse(call)) => Some(call),
        _ => None,
    };
    let call = call.ok_or_else(|| invalid("the request could not be written"))?;
    Ok((bytes, Exchange::Head(call)))
}

/// Replaces the request line's path with the whole URL (`POST
/// http://host:port/path HTTP/1.1`, and so for a GET).
fn absolute_form(bytes: &mut Vec<u8>, uri: &Uri) {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    let line = &bytes[..line_end];
    let (Some(first), Some(last)) = (
        line.iter().position(|&b| b == b' '),
        line.iter().rposition(|&b| b == b' '),
    ) else {
        return;
    };
    if first < last {
        bytes.splice(first + 1..last, uri.to_string().into_bytes());
    }
}

impl Exchange {
    /// Parses the response head from `input`: the bytes used, and the head
    /// once it is complete (informational 1xx heads are skipped).
    pub(crate) fn head(&mut self, input: &[u8]) -> io::Result<(usize, Option<Response<()>>)> {
        let Exchange::Head(call) = self else {
            return Ok((0, None));
        };
        let (used, response) = call.try_response(input, false).map_err(malformed)?;
        let Some(response) = response else {
            return Ok((used, None));
        };
        let Exchange::Head(call) = std::mem::replace(self, Exchange::Ended { keep_alive: false })
        else {
            unreachable!("matched above")
        };
        *self = match call.proceed() {
            Some(RecvResponseResult::RecvBody(body)) => Exchange::Body(body),
            Some(RecvResponseResult::Cleanup(end)) => Exchange::Ended {
                keep_alive: !end.must_close_connection(),
            },
            // A redirect with no body: its connection is not kept.
            Some(RecvResponseResult::Redirect(_)) | None => Exchange::Ended { keep_alive: false },
        };
        Ok((used, Some(response)))
    }

    /// Decodes body bytes from `input` into `output`: `(input used, output
    /// written)`.
    pub(crate) fn body(&mut self, input: &[u8], output: &mut [u8]) -> io::Result<(usize, usize)> {
        let Exchange::Body(call) = self else {
            return Ok((0, 0));
        };
        let moved = call.read(input, output).map_err(malformed)?;
        let sized_end = call.body_mode() != BodyMode::CloseDelimited && call.can_proceed();
        if sized_end {
            self.end();
        }
        Ok(moved)
    }

    /// The connection brought no more bytes: fine for a body that ends with
    /// the connection (or a chunked one that got its last chunk), a
    /// truncated answer otherwise.
    pub(crate) fn at_eof(&mut self) -> io::Result<()> {
        match self {
            Exchange::Ended { keep_alive } => {
                *keep_alive = false;
                Ok(())
            }
            Exchange::Body(call)
                if call.body_mode() == BodyMode::CloseDelimited || call.is_ended_chunked() =>
            {
                *self = Exchange::Ended { keep_alive: false };
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before the whole response arrived",
            )),
        }
    }

    pub(crate) fn is_ended(&self) -> bool {
        matches!(self, Exchange::Ended { .. })
    }

    /// Whether the connection may serve another request.
    pub(crate) fn keeps_alive(&self) -> bool {
        matches!(self, Exchange::Ended { keep_alive: true })
    }

    fn end(&mut self) {
        let Exchange::Body(call) = std::mem::replace(self, Exchange::Ended { keep_alive: false })
        else {
            return;
        };
        if let Some(RecvBodyResult::Cleanup(end)) = call.proceed() {
            *self = Exchange::Ended {
                keep_alive: !end.must_close_connection(),
            };
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

fn malformed(e: ureq_proto::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server's answer is not valid HTTP/1.1: {e}"),
    )
}
