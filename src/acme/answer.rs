//! What an HTTP answer must be before instant-acme sees it: whole within the deadline,
//! bounded in size, and ACME (JSON, a problem document, or a PEM chain; not a redirect,
//! an HTML page or a bare error status). Anything else becomes an `Exchange` error that says
//! what came back, so a person reads "an HTML page" or "404", never "cannot deserialize
//! JSON"; and "cannot reach" only when no connection was made.

use bytes::Bytes;

/// The largest JSON answer read (a directory, an order with many authorizations).
pub const MAX_JSON: usize = 1 << 20;
/// The largest certificate chain read (a leaf and a few intermediates are a few KiB).
pub const MAX_CHAIN: usize = 4 << 20;

/// Why an exchange with the CA failed before ACME could make sense of it.
#[derive(Debug, thiserror::Error)]
pub enum Exchange {
    /// No connection was made (refused, no route, DNS, TLS handshake).
    #[error("{0}")]
    Connect(String),
    /// Connected, but no answer came within the deadline.
    #[error("no answer from {url} within {secs}s")]
    NoAnswer { url: String, secs: u64 },
    /// The answer began but did not end within the deadline (stalled, or trickling).
    #[error("{url} did not send its whole answer within {secs}s")]
    Stalled { url: String, secs: u64 },
    /// The answer went on past the bound.
    #[error("{url} sent an answer larger than {} KiB; certctl stopped reading it", limit / 1024)]
    TooLarge { url: String, limit: usize },
    /// The connection broke in the middle of the answer.
    #[error("{url} broke off its answer: {reason}")]
    Broken { url: String, reason: String },
    #[error(
        "{url} answered with a redirect (HTTP {status}) to {location}; ACME URLs do not \
         redirect: if that is the CA's directory, give it as --server"
    )]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    #[error(
        "{url} answered with an HTML page (HTTP {status}), not ACME; is --server the CA's directory URL?"
    )]
    Html { url: String, status: u16 },
    #[error("{url} answered HTTP {status} without an ACME problem document: {hint}")]
    Status {
        url: String,
        status: u16,
        hint: &'static str,
    },
}

impl Exchange {
    /// Whether no connection was made at all.
    pub fn no_connection(&self) -> bool {
        matches!(self, Exchange::Connect(_))
    }
}

/// The size bound for an answer with these headers.
pub fn limit(headers: &http::HeaderMap) -> usize {
    match content_type(headers) {
        Some(t) if t.contains("pem-certificate-chain") => MAX_CHAIN,
        _ => MAX_JSON,
    }
}

fn content_type(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
}

/// Checks that a whole answer is one ACME can read; the error says what it is instead.
pub fn check(url: &str, parts: &http::response::Parts, body: &Bytes) -> Result<(), Exchange> {
    let status = parts.status;
    let kind = content_type(&parts.headers).unwrap_or_default();
    let html = kind.contains("html")
        || (!kind.contains("json") && body.trim_ascii_start().starts_with(b"<"));
    if status.is_redirection() {
        let location = parts
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nowhere")
            .chars()
            .take(200)
            .collect();
        return Err(Exchange::Redirect {
            url: url.to_owned(),
            status: status.as_u16(),
            location,
        });
    }
    if html {
        return Err(Exchange::Html {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    if (status.is_client_error() || status.is_server_error()) && !kind.contains("json") {
        let hint = match status.as_u16() {
            404 => "there is nothing at this URL (is --server the CA's directory URL?)",
            405 => "the server does not take this request here (is --server an ACME CA?)",
            401 | 403 => "the server refuses certctl (a proxy or firewall in the way?)",
            s if s >= 500 => "the server failed; try again later",
            _ => "not an answer ACME defines",
        };
        return Err(Exchange::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            hint,
        });
    }
    Ok(())
}

/// What the HTTP client's error means: no connection, or a connection that broke.
pub fn client_error(url: &str, err: &hyper_util::client::legacy::Error) -> Exchange {
    let text = super::problem::error_chain(err);
    if err.is_connect() {
        Exchange::Connect(text)
    } else {
        Exchange::Broken {
            url: url.to_owned(),
            reason: text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut rsp = http::Response::builder().status(status);
        for (k, v) in headers {
            rsp = rsp.header(*k, *v);
        }
        rsp.body(()).unwrap().into_parts().0
    }

    fn verdict(status: u16, headers: &[(&str, &str)], body: &str) -> Result<(), String> {
        check(
            "https://ca.test/dir",
            &parts(status, headers),
            &Bytes::from(body.to_owned()),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_of_non_acme_answer_gets_its_own_message() {
        let json = [("content-type", "application/json")];
        let problem = [("content-type", "application/problem+json")];
        let html = [("content-type", "text/html; charset=utf-8")];
        assert!(verdict(200, &json, "{}").is_ok());
        assert!(verdict(400, &problem, "{\"type\":\"x\"}").is_ok());
        assert!(
            verdict(
                200,
                &[("content-type", "application/pem-certificate-chain")],
                "-----BEGIN"
            )
            .is_ok()
        );
        let err = verdict(200, &html, "<html>hello</html>").unwrap_err();
        assert!(err.contains("an HTML page (HTTP 200)"), "{err}");
        let err = verdict(200, &[], "  <!DOCTYPE html>").unwrap_err();
        assert!(err.contains("HTML page"), "{err}");
        let err = verdict(302, &[("location", "https://ca.test/v2/dir")], "").unwrap_err();
        assert!(
            err.contains("redirect (HTTP 302) to https://ca.test/v2/dir"),
            "{err}"
        );
        let err = verdict(404, &[("content-type", "text/plain")], "not found").unwrap_err();
        assert!(
            err.contains("HTTP 404") && err.contains("nothing at this URL"),
            "{err}"
        );
        let err = verdict(500, &[], "oops").unwrap_err();
        assert!(err.contains("HTTP 500") && err.contains("failed"), "{err}");
        let err = verdict(503, &html, "<h1>down</h1>").unwrap_err();
        assert!(err.contains("HTML page (HTTP 503)"), "{err}");
    }

    #[test]
    fn a_chain_may_be_larger_than_json() {
        let chain = parts(
            200,
            &[("content-type", "application/pem-certificate-chain")],
        );
        assert_eq!(limit(&chain.headers), MAX_CHAIN);
        assert_eq!(limit(&parts(200, &[]).headers), MAX_JSON);
    }
}
