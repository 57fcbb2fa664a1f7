//! What a person reads when the CA says no: instant-acme's errors and the CA's problem
//! documents (RFC 7807) turned into messages. The CA's problem reaches the user unchanged,
//! followed by what to do where there is something to do (an unknown account, a rate limit,
//! an untrusted TLS certificate). Pure functions: nothing here sends or retries.

use anyhow::anyhow;
use instant_acme::Problem;

use super::answer::Exchange;
use super::retry::RetryAfter;
use crate::types::Server;

const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";
const RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";
const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// The CA does not know the account that signed a request (deactivated, or the CA was
/// reset): the caller may register a new one and try again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AccountGone(String);

/// Whether `err` (or what it wraps) says the CA does not know the account.
pub fn account_gone(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<AccountGone>())
}

pub(super) fn is_bad_nonce(err: &instant_acme::Error) -> bool {
    matches!(err, instant_acme::Error::Api(p) if p.r#type.as_deref() == Some(BAD_NONCE))
}

/// A problem that says the CA is overloaded or failing: 429, 5xx or rateLimited.
pub(super) fn overloaded(p: &Problem) -> bool {
    p.status.is_some_and(|s| s == 429 || s >= 500) || p.r#type.as_deref() == Some(RATE_LIMITED)
}

/// The problem's detail, type and subproblems, as the CA wrote them.
pub(super) fn problem_text(p: &Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_else(|| "no detail given".into());
    if let Some(t) = &p.r#type {
        text.push_str(&format!(" ({t})"));
    }
    for sub in &p.subproblems {
        text.push_str(&format!("; {sub}"));
    }
    text
}

/// Turns an instant-acme error into one a person can act on. `wait` is the Retry-After of
/// the answer that failed, if the CA sent one.
pub fn explain(
    err: instant_acme::Error,
    server: &Server,
    wait: Option<&RetryAfter>,
) -> anyhow::Error {
    match err {
        instant_acme::Error::Api(problem) => {
            if problem.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST) {
                return AccountGone(format!(
                    "the CA refused: {}; the CA ({server}) does not know certctl's stored account \
                     (deactivated, or the CA was reset): move its file out of <state-dir>/accounts/ \
                     and run again to register a new one",
                    problem_text(&problem)
                ))
                .into();
            }
            match (overloaded(&problem), wait) {
                (true, Some(wait)) => {
                    let message = format!(
                        "the CA refused: {}; it asks to retry after {wait}; certctl does not wait \
                         that long, and remembers not to contact it before then",
                        problem_text(&problem)
                    );
                    super::limits::RateLimited::new(message, wait.clone(), &problem).into()
                }
                _ => anyhow!("the CA refused: {}", problem_text(&problem)),
            }
        }
        instant_acme::Error::Timeout(_) => {
            anyhow!("the CA ({server}) did not finish in time; try again later")
        }
        instant_acme::Error::Other(inner) if inner.is::<Exchange>() => {
            let Ok(exchange) = inner.downcast::<Exchange>() else {
                return anyhow!("the ACME server {server} failed");
            };
            exchange_failure(*exchange, server)
        }
        instant_acme::Error::Json(e) => anyhow!(
            "the ACME server {server} sent an answer that is not the ACME JSON expected ({e}); \
             is --server an ACME CA?"
        ),
        other => anyhow!(
            "the exchange with the ACME server {server} failed: {}",
            error_chain(&other)
        ),
    }
}

/// The words for an exchange that failed before ACME could read it: "cannot reach" only
/// when no connection was made.
fn exchange_failure(exchange: Exchange, server: &Server) -> anyhow::Error {
    let text = exchange.to_string();
    if !exchange.no_connection() {
        let more = match &exchange {
            Exchange::NoAnswer { .. } | Exchange::Stalled { .. } => {
                "; the CA is slow or stuck: try again later (CERTCTL_HTTP_TIMEOUT sets the wait)"
            }
            _ => "",
        };
        return anyhow!("the ACME server {server} failed: {text}{more}");
    }
    let lower = text.to_lowercase();
    if lower.contains("certificate")
        && (lower.contains("unknown") || lower.contains("invalid peer") || lower.contains("issuer"))
    {
        anyhow!(
            "cannot reach the ACME server {server}: its TLS certificate is not trusted ({text}); \
             for a private or test CA, pass its root with --ca-bundle PEM"
        )
    } else {
        anyhow!(
            "cannot reach the ACME server {server}: {text}; check this host's network \
             access to it (DNS, firewall, proxy), or --server if that is not the CA meant"
        )
    }
}

/// An error and its sources on one line, each said once.
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> instant_acme::Error {
        instant_acme::Error::Api(serde_json::from_str(json).unwrap())
    }

    fn server() -> Server {
        Server::parse("letsencrypt").unwrap()
    }

    #[test]
    fn rate_limit_message_carries_retry_after() {
        let limited = r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates","status":429}"#;
        let wait = RetryAfter::Seconds(3600);
        let text = explain(problem(limited), &server(), Some(&wait)).to_string();
        assert!(
            text.contains("too many certificates")
                && text.contains("urn:ietf:params:acme:error:rateLimited"),
            "{text}"
        );
        assert!(text.contains("retry after 3600"), "{text}");
        // without a Retry-After of its own, no wait is made up
        let text = explain(problem(limited), &server(), None).to_string();
        assert!(!text.contains("retry after"), "{text}");
    }

    #[test]
    fn a_retry_after_is_shown_only_for_an_overloaded_ca() {
        let malformed =
            r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"bad CSR","status":400}"#;
        let wait = RetryAfter::Seconds(5);
        let text = explain(problem(malformed), &server(), Some(&wait)).to_string();
        assert_eq!(
            text,
            "the CA refused: bad CSR (urn:ietf:params:acme:error:malformed)"
        );
    }

    #[test]
    fn an_unknown_account_says_what_to_do() {
        let gone = r#"{"type":"urn:ietf:params:acme:error:accountDoesNotExist","detail":"no such account","status":400}"#;
        let err = explain(problem(gone), &server(), None);
        assert!(account_gone(&err.context("placing the order")));
        let text = explain(problem(gone), &server(), None).to_string();
        assert!(
            text.contains("no such account") && text.contains("accounts/"),
            "{text}"
        );
    }
}
