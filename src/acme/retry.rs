//! When an ACME exchange is tried again: one policy (`again`) for a rejected nonce, a CA
//! that is overloaded (429) or failing (5xx). The transport sends a GET or HEAD again; the
//! step runner (`run`) runs a POST step again with a fresh nonce. The wait the CA asked for
//! travels with the step that failed (a task-local record), never through a global, and is
//! never slept when long: the error reports it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use super::problem;
use crate::types::Server;

/// How many times one step is run again after the CA rejected its nonce.
pub(super) const BAD_NONCE_TRIES: u32 = 12;
/// How many times an exchange is tried again after a 429 or 5xx answer.
const OVERLOADED_TRIES: u32 = 2;
/// The longest wait before trying again: an overloaded CA is not hammered, cron never hangs.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// The wait a CA asked for with `Retry-After` (RFC 9110 §10.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    /// delay-seconds; a number too large for u64 saturates at u64::MAX
    Seconds(u64),
    /// an HTTP-date, or anything else that is not a number, as sent (at most 64 characters)
    Date(String),
}

impl RetryAfter {
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        if raw.bytes().all(|b| b.is_ascii_digit()) {
            // all digits: only an overflow can fail
            return Some(Self::Seconds(raw.parse().unwrap_or(u64::MAX)));
        }
        Some(Self::Date(raw.chars().take(64).collect()))
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Seconds(secs) => write!(f, "{secs} seconds"),
            Self::Date(date) => f.write_str(date),
        }
    }
}

/// What went wrong with one exchange, as far as trying again is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The CA rejected the nonce (badNonce): the step may run again with another one.
    BadNonce,
    /// 429 or 5xx, with the wait the CA asked for.
    Overloaded(Option<RetryAfter>),
    /// Anything else: trying again would not help.
    Other,
}

/// Tries already spent on one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tries {
    pub bad_nonce: u32,
    pub overloaded: u32,
}

impl Tries {
    fn spend(&mut self, failure: &Failure) {
        match failure {
            Failure::BadNonce => self.bad_nonce += 1,
            Failure::Overloaded(_) => self.overloaded += 1,
            Failure::Other => {}
        }
    }
}

/// The policy: after `failure`, with `tries` spent, how long to wait before trying again,
/// or None to give up. A rejected nonce: at once, 12 times. A 429 or 5xx: twice, after the
/// CA's Retry-After when it is at most 10 s, otherwise after 1 s then 2 s; a longer
/// Retry-After (or a date) is not slept: the step fails and its error says when to come back.
pub fn again(failure: &Failure, tries: Tries) -> Option<Duration> {
    match failure {
        Failure::BadNonce if tries.bad_nonce < BAD_NONCE_TRIES => Some(Duration::ZERO),
        Failure::Overloaded(wait) if tries.overloaded < OVERLOADED_TRIES => match wait {
            None => Some(Duration::from_secs(1 << tries.overloaded)),
            Some(RetryAfter::Seconds(secs)) if *secs <= MAX_WAIT.as_secs() => {
                Some(Duration::from_secs(*secs))
            }
            Some(_) => None,
        },
        _ => None,
    }
}

tokio::task_local! {
    /// The step whose exchanges are being sent, set by `run` around each try.
    static STEP: Step;
}

/// The record of one step, shared by the transport (which sees the CA's answers) and the
/// step runner (which sees instant-acme's error): tries spent, and what the last answer
/// stands for.
#[derive(Clone, Default)]
pub(super) struct Step(Arc<Mutex<Record>>);

struct Record {
    tries: Tries,
    /// Overloaded when the last answer was a 429 or 5xx; Other before any answer.
    last: Failure,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            tries: Tries::default(),
            last: Failure::Other,
        }
    }
}

impl Step {
    /// The step the running exchange belongs to; outside any, a record of its own.
    pub(super) fn current() -> Self {
        STEP.try_with(Clone::clone).unwrap_or_default()
    }

    fn record<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// An exchange is being sent: an earlier answer no longer explains a failure.
    pub(super) fn sending(&self) {
        self.record(|r| r.last = Failure::Other);
    }

    /// The CA answered `status`, with `retry_after`. For an exchange that may be sent again
    /// (`replayable`: a GET or HEAD), how long to wait before sending it again.
    pub(super) fn answered(
        &self,
        status: http::StatusCode,
        retry_after: Option<&str>,
        replayable: bool,
    ) -> Option<Duration> {
        let overloaded = status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        self.record(|r| {
            r.last = match overloaded {
                true => Failure::Overloaded(retry_after.and_then(RetryAfter::parse)),
                false => Failure::Other,
            };
            if !(overloaded && replayable) {
                return None;
            }
            let delay = again(&r.last, r.tries)?;
            let failure = r.last.clone();
            r.tries.spend(&failure);
            Some(delay)
        })
    }

    /// What an error of instant-acme stands for, told by the answer that caused it.
    fn failure(&self, err: &instant_acme::Error) -> Failure {
        let last = self.record(|r| r.last.clone());
        match (err, last) {
            (e, _) if problem::is_bad_nonce(e) => Failure::BadNonce,
            (_, last @ Failure::Overloaded(_)) => last,
            (instant_acme::Error::Api(p), _) if problem::overloaded(p) => Failure::Overloaded(None),
            _ => Failure::Other,
        }
    }
}

/// A step that failed for good: instant-acme's error, and the wait the CA asked for with
/// the answer that failed (so a message never shows another step's wait).
pub(super) struct Failed {
    pub error: instant_acme::Error,
    pub retry_after: Option<RetryAfter>,
}

impl Failed {
    pub(super) fn explain(self, server: &Server) -> anyhow::Error {
        problem::explain(self.error, server, self.retry_after.as_ref())
    }
}

/// Runs one step of the protocol, and again while the policy says so.
pub(super) async fn run<T>(
    what: &str,
    mut step: impl AsyncFnMut() -> Result<T, instant_acme::Error>,
) -> Result<T, Failed> {
    let record = Step::default();
    loop {
        let error = match STEP.scope(record.clone(), step()).await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let failure = record.failure(&error);
        let tries = record.record(|r| r.tries);
        let Some(delay) = again(&failure, tries) else {
            let retry_after = match failure {
                Failure::Overloaded(wait) => wait,
                _ => None,
            };
            return Err(Failed { error, retry_after });
        };
        record.record(|r| r.tries.spend(&failure));
        if failure == Failure::BadNonce {
            let n = tries.bad_nonce + 1;
            crate::log::debug(format_args!("{what}: bad nonce, trying again ({n})"));
        } else {
            crate::log::verbose(format_args!(
                "{what}: {}; trying again in {delay:?}",
                problem::error_chain(&error)
            ));
        }
        tokio::time::sleep(delay).await;
    }
}

/// One exchange whose step is not run again (its input is spent, as an account's
/// credentials are); the transport still sends a GET again.
pub(super) async fn once<T>(
    exchange: impl Future<Output = Result<T, instant_acme::Error>>,
) -> Result<T, Failed> {
    let record = Step::default();
    STEP.scope(record.clone(), exchange)
        .await
        .map_err(|error| Failed {
            retry_after: match record.failure(&error) {
                Failure::Overloaded(wait) => wait,
                _ => None,
            },
            error,
        })
}

/// `run`, its error explained and named after the step.
pub(super) async fn step<T>(
    server: &Server,
    what: &str,
    step: impl AsyncFnMut() -> Result<T, instant_acme::Error>,
) -> anyhow::Result<T> {
    run(what, step)
        .await
        .map_err(|f| f.explain(server))
        .context(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tries(bad_nonce: u32, overloaded: u32) -> Tries {
        Tries {
            bad_nonce,
            overloaded,
        }
    }

    fn overloaded(raw: &str) -> Failure {
        Failure::Overloaded(RetryAfter::parse(raw))
    }

    #[test]
    fn overloaded_exchanges_are_retried_briefly_and_never_forever() {
        let secs = Duration::from_secs;
        assert_eq!(again(&overloaded(""), tries(0, 0)), Some(secs(1)));
        assert_eq!(again(&overloaded(""), tries(0, 1)), Some(secs(2)));
        assert_eq!(again(&overloaded(""), tries(0, 2)), None);
        assert_eq!(again(&overloaded("3"), tries(0, 0)), Some(secs(3)));
        assert_eq!(
            again(&overloaded("3600"), tries(0, 0)),
            None,
            "a long Retry-After is reported, not slept"
        );
        assert_eq!(
            again(&overloaded("Wed, 21 Oct 2026 07:28:00 GMT"), tries(0, 0)),
            None
        );
        assert_eq!(again(&Failure::Other, tries(0, 0)), None);
    }

    #[test]
    fn a_huge_retry_after_saturates_and_is_reported() {
        for raw in ["18446744073709551615", "99999999999999999999999999"] {
            assert_eq!(RetryAfter::parse(raw), Some(RetryAfter::Seconds(u64::MAX)));
            assert_eq!(again(&overloaded(raw), tries(0, 0)), None);
        }
        assert_eq!(RetryAfter::parse(" 120 "), Some(RetryAfter::Seconds(120)));
        assert_eq!(RetryAfter::parse("  "), None);
        let long = RetryAfter::parse(&"x".repeat(1000)).unwrap().to_string();
        assert_eq!(long.len(), 64, "bounded in a message");
    }

    #[test]
    fn a_rejected_nonce_is_retried_at_once_twelve_times() {
        assert_eq!(again(&Failure::BadNonce, tries(0, 2)), Some(Duration::ZERO));
        assert_eq!(
            again(&Failure::BadNonce, tries(BAD_NONCE_TRIES - 1, 0)),
            Some(Duration::ZERO)
        );
        assert_eq!(again(&Failure::BadNonce, tries(BAD_NONCE_TRIES, 0)), None);
    }

    #[test]
    fn a_post_is_never_resent_by_the_transport() {
        let step = Step::default();
        let unavailable = http::StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(step.answered(unavailable, None, false), None);
        assert_eq!(
            step.answered(unavailable, None, true),
            Some(Duration::from_secs(1))
        );
        assert_eq!(step.answered(http::StatusCode::OK, Some("5"), true), None);
    }

    fn problem(status: u16) -> instant_acme::Error {
        instant_acme::Error::Api(
            serde_json::from_value(serde_json::json!({
                "type": "urn:ietf:params:acme:error:rateLimited",
                "detail": "too many certificates",
                "status": status,
            }))
            .unwrap(),
        )
    }

    /// Two steps of two certificates at once, in one task: each error carries the wait of
    /// its own answer.
    #[tokio::test]
    async fn each_step_reports_the_wait_of_its_own_answer() {
        let exchange = |wait: &'static str| async move {
            for _ in 0..3 {
                tokio::task::yield_now().await;
                let step = Step::current();
                step.sending();
                step.answered(http::StatusCode::TOO_MANY_REQUESTS, Some(wait), false);
            }
            Err::<(), _>(problem(429))
        };
        let (a, b) = tokio::join!(
            run("a", async || exchange("3600").await),
            run("b", async || exchange("Wed, 21 Oct 2026 07:28:00 GMT")
                .await),
        );
        let (a, b) = (a.err().unwrap(), b.err().unwrap());
        assert_eq!(a.retry_after, Some(RetryAfter::Seconds(3600)));
        assert_eq!(
            b.retry_after,
            Some(RetryAfter::Date("Wed, 21 Oct 2026 07:28:00 GMT".into()))
        );
        let server = Server::parse("letsencrypt").unwrap();
        let text = a.explain(&server).to_string();
        assert!(text.contains("retry after 3600 seconds"), "{text}");
        assert!(!text.contains("2026"), "{text}");
    }

    #[tokio::test]
    async fn a_failing_post_step_runs_again_then_gives_up() {
        let mut runs = 0;
        let failed = run("finalizing", async || {
            runs += 1;
            let step = Step::current();
            step.sending();
            // Retry-After: 0, so that the test does not wait
            step.answered(http::StatusCode::SERVICE_UNAVAILABLE, Some("0"), false);
            Err::<(), _>(problem(503))
        })
        .await
        .err()
        .unwrap();
        assert_eq!(runs, 1 + OVERLOADED_TRIES);
        assert_eq!(failed.retry_after, Some(RetryAfter::Seconds(0)));
    }
}
