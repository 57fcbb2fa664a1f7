//! A CA's "not before then" (RFC 8555 §6.6: a 429 or 503 with Retry-After): the error that
//! carries it, whether it concerns the certificate's names or the whole CA, and the time it
//! ends. Pure: the caller remembers it (store) and decides who may contact the CA.

use instant_acme::Problem;

use super::retry::RetryAfter;

/// Longest a remembered limit lasts, whatever the CA said (a huge Retry-After must not
/// silence renewals for good).
const LONGEST: i64 = 7 * 86_400;
/// A Retry-After that is not a number nor an HTTP-date still means "later": an hour.
const UNREADABLE: i64 = 3600;

/// The CA refused with a rate limit (or overload) and said when to come back.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RateLimited {
    message: String,
    pub wait: RetryAfter,
    /// The problem concerns the certificate's names (e.g. too many certificates for this
    /// exact set of identifiers), not every order to this CA.
    pub per_name: bool,
}

impl RateLimited {
    pub(super) fn new(message: String, wait: RetryAfter, problem: &Problem) -> Self {
        Self {
            message,
            wait,
            per_name: names_limited(problem),
        }
    }
}

/// The rate limit in `err`'s chain, if any.
pub fn rate_limited(err: &anyhow::Error) -> Option<&RateLimited> {
    err.chain().find_map(|e| e.downcast_ref::<RateLimited>())
}

/// Whether the problem is about the certificate's names rather than the account or the CA:
/// it has subproblems (per identifier) or its detail speaks of identifiers or domains.
fn names_limited(problem: &Problem) -> bool {
    let detail = problem.detail.as_deref().unwrap_or_default().to_lowercase();
    !problem.subproblems.is_empty()
        || ["identifier", "domain", "hostname"]
            .iter()
            .any(|w| detail.contains(w))
}

/// When a `wait` received at `now` ends (Unix seconds), at most a week away.
pub fn retry_at(wait: &RetryAfter, now: i64) -> i64 {
    let secs = match wait {
        RetryAfter::Seconds(secs) => i64::try_from(*secs).unwrap_or(i64::MAX),
        RetryAfter::Date(date) => http_date(date).map_or(UNREADABLE, |t| t.saturating_sub(now)),
    };
    now.saturating_add(secs.clamp(0, LONGEST))
}

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Wed, 21 Oct 2026 07:28:00 GMT`.
fn http_date(raw: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(raw.trim(), format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_at_most_a_week_away() {
        let now = 1_790_000_000;
        assert_eq!(retry_at(&RetryAfter::Seconds(120), now), now + 120);
        assert_eq!(retry_at(&RetryAfter::Seconds(u64::MAX), now), now + LONGEST);
        let date = RetryAfter::Date("Wed, 21 Oct 2026 07:28:00 GMT".into());
        assert_eq!(retry_at(&date, 1_792_567_000), 1_792_567_680);
        let junk = RetryAfter::Date("soon".into());
        assert_eq!(retry_at(&junk, now), now + UNREADABLE);
        let past = RetryAfter::Date("Wed, 21 Oct 2015 07:28:00 GMT".into());
        assert_eq!(retry_at(&past, now), now);
    }

    #[test]
    fn a_limit_on_names_is_told_from_one_on_the_ca() {
        let problem = |detail: &str| -> Problem {
            serde_json::from_value(serde_json::json!({
                "type": "urn:ietf:params:acme:error:rateLimited", "detail": detail, "status": 429
            }))
            .unwrap()
        };
        let names =
            problem("too many certificates (5) already issued for this exact set of identifiers");
        assert!(names_limited(&names));
        assert!(!names_limited(&problem("too many new orders recently")));
    }
}
