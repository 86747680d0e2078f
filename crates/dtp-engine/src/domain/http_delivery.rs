//! The rules of HTTP-target delivery: what a target's answer means for the attempt, how
//! long a `Retry-After` asks to wait, and the one line that records a failed delivery.
//! Redirects are never followed, so a 3xx is an answer like any other.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How much of a failing answer's body its error line keeps.
pub const ERROR_BODY_PREFIX_BYTES: usize = 512;

/// What a target's HTTP status means for the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryVerdict {
    /// 2xx: the task SUCCEEDED.
    Delivered,
    /// 408, 429, 5xx: the attempt failed; retry after the backoff, or after the target's
    /// `Retry-After` when it sent one with a 429 or 503.
    Retry { after: Option<Duration> },
    /// Any other 4xx, or a 3xx: the request itself is wrong, and sending it again would not help.
    NotRetryable,
}

/// Judges a target's answer; `retry_after` is the header's value, if any, read at `now`.
pub fn judge_answer(status: u16, retry_after: Option<&str>, now: DateTime<Utc>) -> DeliveryVerdict {
    match status {
        200..=299 => DeliveryVerdict::Delivered,
        429 | 503 => DeliveryVerdict::Retry {
            after: retry_after.and_then(|value| parse_retry_after(value, now)),
        },
        408 | 500..=599 => DeliveryVerdict::Retry { after: None },
        _ => DeliveryVerdict::NotRetryable,
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The error line of a delivery the target answered with a failure status, e.g.
/// `HTTP 503 from http://127.0.0.1:9000/hooks: busy`.
pub fn failed_answer_line(status: u16, url: &str, body_prefix: &[u8]) -> String {
    let end = body_prefix.len().min(ERROR_BODY_PREFIX_BYTES);
    let body = String::from_utf8_lossy(&body_prefix[..end]);
    let body: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let body = body.trim();
    if body.is_empty() {
        format!("HTTP {status} from {url}")
    } else {
        format!("HTTP {status} from {url}: {body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn every_status_class_has_its_verdict() {
        for status in [200, 201, 204, 299] {
            assert_eq!(judge_answer(status, None, now()), DeliveryVerdict::Delivered);
        }
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(
                judge_answer(status, None, now()),
                DeliveryVerdict::Retry { after: None },
                "{status}"
            );
        }
        for status in [
            300, 301, 302, 307, 308, 400, 401, 403, 404, 409, 410, 422, 499, 100,
        ] {
            assert_eq!(
                judge_answer(status, None, now()),
                DeliveryVerdict::NotRetryable,
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_counts_only_on_429_and_503() {
        let asked = Some(Duration::from_secs(7));
        assert_eq!(
            judge_answer(429, Some("7"), now()),
            DeliveryVerdict::Retry { after: asked }
        );
        assert_eq!(
            judge_answer(503, Some("7"), now()),
            DeliveryVerdict::Retry { after: asked }
        );
        assert_eq!(
            judge_answer(500, Some("7"), now()),
            DeliveryVerdict::Retry { after: None }
        );
        assert_eq!(
            judge_answer(429, Some("soon"), now()),
            DeliveryVerdict::Retry { after: None }
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 120 ", now()), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 12:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 11:00:00 GMT", now()),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        for bad in ["", "-5", "1.5", "tomorrow", "99999999999999999999999"] {
            let parsed = parse_retry_after(bad, now());
            assert!(
                parsed.is_none() || bad.starts_with('9'),
                "{bad:?} gave {parsed:?}"
            );
        }
    }

    #[test]
    fn a_failed_answer_is_one_line_with_the_start_of_the_body() {
        let url = "http://127.0.0.1:9000/hooks/send-email";
        assert_eq!(
            failed_answer_line(503, url, b"busy\nretry later"),
            "HTTP 503 from http://127.0.0.1:9000/hooks/send-email: busy retry later"
        );
        assert_eq!(failed_answer_line(404, url, b""), format!("HTTP 404 from {url}"));
        let long = vec![b'a'; 2_000];
        let line = failed_answer_line(500, url, &long);
        assert_eq!(
            line.len(),
            format!("HTTP 500 from {url}: ").len() + ERROR_BODY_PREFIX_BYTES
        );
        // A multi-byte character cut at the limit does not break the line.
        let mut cut = vec![b'a'; ERROR_BODY_PREFIX_BYTES - 1];
        cut.extend_from_slice("é".as_bytes());
        assert!(failed_answer_line(500, url, &cut).ends_with('\u{fffd}'));
    }
}
