//! Where a redirect leads: the pure URL rules behind the redirects a
//! request follows (the following itself is in [`crate::api::client`]).

use crate::error::Error;

/// How many redirects one attempt follows.
pub(crate) const MAX_REDIRECTS: usize = 5;

pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The absolute URL a `Location` header points to from `base`.
pub(crate) fn redirect_target(base: &str, location: &str) -> Result<String, Error> {
    let location = location.trim();
    let bad = || Error::InvalidResponse(format!("the redirect location {location:?} is not a URL"));
    if location.starts_with("http://") || location.starts_with("https://") {
        let uri: ureq_proto::http::Uri = location.parse().map_err(|_| bad())?;
        return uri.host().map(|_| location.to_string()).ok_or_else(bad);
    }
    if location.contains("://") {
        return Err(Error::Transport(format!(
            "refused to follow a redirect to {location}: only http and https are supported"
        )));
    }
    let origin = origin(base);
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split(':').next().unwrap_or("https");
        return Ok(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{origin}{location}"));
    }
    // A relative path: next to the last segment of the base's path.
    let path = &base[origin.len()..];
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Ok(format!("{origin}{dir}{location}"))
}

/// `scheme://authority` of an absolute URL, lowercased.
pub(crate) fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    url[..end].to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets() {
        let base = "https://h:1/v1/chat/completions";
        let t = |l: &str| redirect_target(base, l).unwrap();
        assert_eq!(t("https://other/x"), "https://other/x");
        assert_eq!(t("/v2/chat/completions"), "https://h:1/v2/chat/completions");
        assert_eq!(t("//mirror:2/v1"), "https://mirror:2/v1");
        assert_eq!(t("completions2"), "https://h:1/v1/chat/completions2");
        assert!(redirect_target(base, "ftp://x/y").is_err());
        assert!(redirect_target(base, "http://").is_err());
        assert_eq!(origin("HTTP://Example.com:80/a?b"), "http://example.com:80");
        assert_eq!(origin("http://h"), "http://h");
    }
}
