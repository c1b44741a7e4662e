//! When to send a request again, and how long to wait first. Pure: the
//! client does the sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest `Retry-After` honoured; a longer one falls back to backoff.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The longest backoff between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Statuses worth another attempt: request timeout, conflict (a lock held
/// by another request), rate limit, and server errors.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500..=599)
}

/// Connection failures worth another attempt: the server is not there or
/// dropped the connection before answering. It may have acted on a request
/// it read whole, so these count as retries (`max_retries`), except the
/// one resend after a dead pooled connection (see `Request::failed`). TLS
/// failures, bad URLs and timeouts are not retried.
pub(crate) fn is_retryable_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    // Not InvalidData: that is how a TLS failure arrives. Not TimedOut.
    matches!(
        err.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | BrokenPipe
            | UnexpectedEof
            | NotConnected
            | HostUnreachable
            | NetworkUnreachable
    )
}

/// The wait before retry number `attempt` (0 for the first retry):
/// `base` doubling per attempt, capped at [`MAX_BACKOFF`], less up to 25 %
/// of random jitter so that many clients do not retry in step.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF);
    full.mul_f64(1.0 - 0.25 * random_fraction())
}

/// The wait the server asked for with `retry-after-ms` (milliseconds) or
/// `Retry-After` (seconds or an HTTP date), when it is within (0, 60 s].
pub(crate) fn server_delay(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    let from_ms = retry_after_ms
        .and_then(|v| decimal(v, 1_000))
        .filter(|micros| *micros > 0)
        .map(Duration::from_micros);
    let delay = from_ms.or_else(|| {
        let value = retry_after?.trim();
        match decimal(value, 1_000_000) {
            Some(micros) if micros > 0 => Some(Duration::from_micros(micros)),
            Some(_) => None,
            None => http_date(value)?.duration_since(now).ok(),
        }
    })?;
    (!delay.is_zero() && delay <= MAX_RETRY_AFTER).then_some(delay)
}

/// A non-negative decimal number of units (`12`, `0.5`, `250.75`) in
/// millionths of a second, given how many millionths one unit is. Parsed by
/// hand: a float parser would add 10 KiB to the library for this alone.
fn decimal(text: &str, micros_per_unit: u64) -> Option<u64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut micros = whole.checked_mul(micros_per_unit)?;
    let mut scale = micros_per_unit;
    for digit in fraction.bytes().take(12) {
        scale /= 10;
        micros = micros.checked_add(u64::from(digit - b'0') * scale)?;
    }
    Some(micros)
}

/// A number in [0, 1) from the standard library's per-process random keys.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, the form
/// RFC 9110 requires senders to use.
fn http_date(value: &str) -> Option<SystemTime> {
    let mut parts = value.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    // A second of 60 is a leap second; anything past it is no time of day.
    let out_of_range = year < 1970 || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60;
    if parts.next()? != "GMT" || out_of_range {
        return None;
    }
    // Days from 1970-01-01 to the date (proleptic Gregorian calendar).
    // Checked: the year is the server's text, and may be any number.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era_days = y
        .checked_mul(365)?
        .checked_add(y / 4 - y / 100 + y / 400 + (153 * mo + 2) / 5 + day - 1)?;
    let days = era_days.checked_sub(719_468)?;
    let secs = days
        .checked_mul(86_400)?
        .checked_add(h * 3600 + m * 60 + s)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        for s in [408, 409, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 422] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(500);
        for (attempt, full) in [
            (0, 500),
            (1, 1000),
            (2, 2000),
            (3, 4000),
            (4, 8000),
            (9, 8000),
        ] {
            let d = backoff(base, attempt).as_millis();
            assert!(d <= full && d >= full * 3 / 4, "attempt {attempt}: {d}");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal("250", 1_000), Some(250_000));
        assert_eq!(decimal(" 0.5 ", 1_000_000), Some(500_000));
        assert_eq!(decimal("1.25", 1_000), Some(1_250));
        assert_eq!(decimal(".5", 1_000_000), Some(500_000));
        for bad in ["", ".", "-1", "1e3", "soon", "1.2.3", "Sun, 06 Nov 1994"] {
            assert_eq!(decimal(bad, 1_000), None, "{bad}");
        }
    }

    #[test]
    fn server_delays() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_700);
        let d = |ms: Option<&str>, ra: Option<&str>| server_delay(ms, ra, now);
        assert_eq!(d(Some("250"), Some("9")), Some(Duration::from_millis(250)));
        assert_eq!(d(None, Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(d(None, Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(d(None, Some("0")), None);
        assert_eq!(d(None, Some("61")), None);
        assert_eq!(d(None, Some("soon")), None);
        // 1994-11-06 08:49:37 GMT is 784111777.
        let date = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(d(None, date), None, "77 s away is over the 60 s limit");
        let close = UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(
            server_delay(None, date, close),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn absurd_values_are_no_delay_and_no_panic() {
        let now = SystemTime::now();
        for ra in [
            "Sun, 06 Nov 18446744073709551615 08:49:37 GMT",
            "Sun, 06 Nov 99999999999999 08:49:37 GMT",
            "Sun, 06 Nov 584554051223 08:49:37 GMT",
            "Sun, 06 Nov 2030 08:49:10000000000000000000 GMT",
            "Sun, 06 Nov 2030 08:49:61 GMT",
            "10000000000000000000",
            "99999999999999999999999",
        ] {
            assert_eq!(server_delay(None, Some(ra), now), None, "{ra}");
        }
        for ms in ["99999999999999999999999", "18446744073709551615"] {
            assert_eq!(server_delay(Some(ms), None, now), None, "{ms}");
        }
    }
}
