//! What must never leak: the API key and credential-like headers. They are
//! scrubbed from every error text, and are sent only to the configured
//! server's origin (see the redirect rules in [`crate::api::client`]).

use std::fmt;

use ureq_proto::http::{HeaderName, HeaderValue};

use crate::error::Error;

/// Values that must never appear in an error: the API key, and the values
/// of headers whose names suggest a credential.
#[derive(Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    pub(crate) fn new(api_key: Option<&str>) -> Secrets {
        Secrets(api_key.map(str::to_string).into_iter().collect()).without_short()
    }

    /// Drops values too short to be credentials: scrubbing a one-letter
    /// "key" would mangle every word holding that letter.
    fn without_short(mut self) -> Secrets {
        self.0.retain(|s| s.len() >= 4);
        self
    }

    pub(crate) fn with_header(&self, (name, value): &(HeaderName, HeaderValue)) -> Secrets {
        let mut secrets = self.0.clone();
        if let (true, Ok(value)) = (is_credential_header(name.as_str()), value.to_str()) {
            secrets.push(value.to_string());
            // `Bearer sk-...`: the token alone is a secret too.
            if let Some((_, token)) = value.split_once(' ') {
                secrets.push(token.to_string());
            }
        }
        Secrets(secrets).without_short()
    }

    /// These secrets and `values` (e.g. a proxy's credentials).
    pub(crate) fn with_values(&self, values: &[String]) -> Secrets {
        let mut secrets = self.0.clone();
        secrets.extend(values.iter().cloned());
        Secrets(secrets).without_short()
    }

    /// `text` with every secret replaced by `[REDACTED]`.
    pub(crate) fn scrub(&self, text: String) -> String {
        if self.0.iter().any(|s| text.contains(s.as_str())) {
            let mut text = text;
            for secret in &self.0 {
                text = text.replace(secret.as_str(), "[REDACTED]");
            }
            text
        } else {
            text
        }
    }

    pub(crate) fn redact(&self, error: Error) -> Error {
        if self.0.is_empty() {
            error
        } else {
            error.map_texts(|text| self.scrub(text))
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

/// Whether a header's name says it carries a credential, so that it must
/// not follow a redirect to another origin, nor show in an error.
pub(crate) fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["auth", "key", "token", "secret", "cookie"]
        .iter()
        .any(|word| name.contains(word))
}

/// A header of the client's settings, checked.
pub(crate) fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        Error::InvalidArgument(format!(
            "header name {name:?} is not a valid HTTP header name"
        ))
    })?;
    let value = HeaderValue::from_str(value).map_err(|_| {
        Error::InvalidArgument(format!(
            "the value of header {name} holds characters not allowed in HTTP \
             (a line break or a control character?)"
        ))
    })?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed() {
        let secrets = Secrets::new(Some("sk-secret-123"))
            .with_header(&parse_header("api-key", "azure-key-456").unwrap())
            .with_header(&parse_header("x-trace", "not-secret").unwrap());
        let text = secrets.scrub("bad key sk-secret-123 and azure-key-456, not-secret".into());
        assert_eq!(text, "bad key [REDACTED] and [REDACTED], not-secret");
    }
}
