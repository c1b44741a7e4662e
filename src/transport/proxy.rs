//! An explicit HTTP proxy (`ModelApiBuilder::proxy`, `modelapi_set_proxy`):
//! HTTPS goes through a `CONNECT` tunnel, so the proxy sees only the
//! server's name and encrypted bytes and TLS is verified end to end with
//! the server; plain HTTP is forwarded (the request names the whole URL).
//! Proxy credentials (`http://user:password@proxy:3128`) go to the proxy
//! only, as `Proxy-Authorization: Basic`. Proxies from the environment
//! (`HTTPS_PROXY`, ...) are never used: a proxy is named or there is none.

use std::fmt;

use ureq_proto::http::{HeaderValue, Uri};

use crate::base64::base64;
use crate::error::Error;

#[derive(Clone)]
pub(crate) struct Proxy {
    /// `http://host:port`, without the credentials.
    pub(crate) uri: Uri,
    /// `Basic <base64(user:password)>`, marked sensitive.
    pub(crate) authorization: Option<HeaderValue>,
    /// What must never be shown: `user:password`, the password, and its
    /// base64 form.
    pub(crate) secrets: Vec<String>,
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (port 80 by default).
    pub(crate) fn parse(url: &str) -> Result<Proxy, Error> {
        let url = url.trim();
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "proxy {:?} is not usable: {why}; give it as http://host:port or \
                 http://user:password@host:port",
                shown(url)
            ))
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// proxies are supported (https goes through them)"))?;
        let rest = rest.trim_end_matches('/');
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        if address.is_empty() || address.contains(['/', '?', '#']) {
            return Err(bad("it needs a host (and no path)"));
        }
        let uri: Uri = format!("http://{address}")
            .parse()
            .map_err(|_| bad("the host is not valid"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        let (authorization, secrets) = match credentials {
            None => (None, Vec::new()),
            Some(credentials) => {
                let credentials = percent_decoded(credentials);
                let token = base64(credentials.as_bytes());
                let mut value = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| bad("the credentials hold characters HTTP cannot carry"))?;
                value.set_sensitive(true);
                let mut secrets = vec![credentials.clone(), token];
                if let Some((_, password)) = credentials.split_once(':') {
                    secrets.push(password.to_string());
                }
                (Some(value), secrets)
            }
        };
        Ok(Proxy {
            uri,
            authorization,
            secrets,
        })
    }

    /// The `CONNECT` request that opens a tunnel to `host:port`.
    pub(crate) fn connect_request(&self, host: &str, port: u16) -> Vec<u8> {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {}\r\n",
            crate::transport::http::USER_AGENT_VALUE
        )
        .into_bytes();
        if let Some(authorization) = &self.authorization {
            request.extend_from_slice(b"Proxy-Authorization: ");
            request.extend_from_slice(authorization.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.uri.to_string().trim_end_matches('/'))
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("uri", &self.to_string())
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

/// A proxy URL as it may be shown: without its credentials.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}[REDACTED]@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// `%XX` escapes of a URL's user part decoded (e.g. `%40` for `@`).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_parse_with_and_without_credentials() {
        let p = Proxy::parse("http://proxy.local:3128").unwrap();
        assert_eq!(p.to_string(), "http://proxy.local:3128");
        assert!(p.authorization.is_none());
        let p = Proxy::parse("http://al%40ice:s3cr%3At@10.0.0.1:8080/").unwrap();
        assert_eq!(p.to_string(), "http://10.0.0.1:8080");
        // "al@ice:s3cr:t"
        assert_eq!(
            p.authorization.unwrap().to_str().unwrap(),
            format!("Basic {}", base64(b"al@ice:s3cr:t"))
        );
        assert!(p.secrets.contains(&"s3cr:t".to_string()));
        for bad in [
            "https://p:1",
            "p:3128",
            "http://",
            "http://u:pw@",
            "http://p/x",
        ] {
            let err = Proxy::parse(bad).unwrap_err().to_string();
            assert!(err.contains("proxy"), "{bad}: {err}");
            assert!(!err.contains("pw"), "{bad}: {err}");
        }
    }

    #[test]
    fn connect_requests_name_the_server_and_carry_the_credentials() {
        let p = Proxy::parse("http://u:p@proxy:3128").unwrap();
        let request = String::from_utf8(p.connect_request("api.example.com", 443)).unwrap();
        assert!(request.starts_with("CONNECT api.example.com:443 HTTP/1.1\r\n"));
        assert!(request.contains("Proxy-Authorization: Basic dTpw\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
        let request = String::from_utf8(p.connect_request("::1", 8443)).unwrap();
        assert!(request.starts_with("CONNECT [::1]:8443 HTTP/1.1\r\n"));
    }
}
