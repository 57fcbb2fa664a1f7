//! The HTTPS client that carries every ACME exchange: the system's roots plus `--ca-bundle`,
//! one deadline for each whole exchange (headers and body: a CA that stalls or trickles
//! fails the exchange, never hangs the run), bounded bodies, a GET or HEAD sent again when
//! the retry policy says so, and the nonces of the CA's answers kept for the next request
//! (`nonces`). An answer that is not ACME is an `answer::Exchange` error saying what it is.
//! It knows HTTP only: what a step means, and its errors, belong to `order`, `retry` and
//! `problem`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use super::answer::{self, Exchange};
use super::nonces::{NONCE_WAIT, Nonces, REPLAY_NONCE, nonce_answer};
use super::retry::Step;

/// How long one exchange (connect, headers, whole body) may take when CERTCTL_HTTP_TIMEOUT
/// does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// instant-acme adds a Retry-After in seconds to the clock unchecked, which panics for a
/// huge one: anything longer than a year reaches it as a year (which ends any polling just
/// the same, and which `renew` clamps to eight hours anyway).
const RETRY_AFTER_CAP: u64 = 365 * 86_400;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The HTTPS client for the ACME server: the system's roots plus `--ca-bundle`, a deadline
/// on every exchange, and the nonces of the CA's answers kept for the next request.
#[derive(Clone)]
pub struct AcmeHttp {
    client: HyperClient<Connector, BodyWrapper<Bytes>>,
    nonces: Nonces,
    timeout: Duration,
}

impl AcmeHttp {
    /// A client trusting the system's roots and `ca_bundle`, each exchange bounded by
    /// `timeout` from connect to the last byte of the body.
    pub fn new(ca_bundle: Option<&Path>, timeout: Duration) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_bundle {
            let bytes = crate::durable::read_small_file(path)
                .with_context(|| format!("reading --ca-bundle {}", path.display()))?;
            for der in crate::pem::certificates(&bytes)? {
                roots.add(der.into()).with_context(|| {
                    format!(
                        "--ca-bundle {} holds a certificate rustls cannot use",
                        path.display()
                    )
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("setting up TLS")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // TCP_NODELAY: a JWS POST leaves as two small TLS writes (headers, body); with
        // Nagle on, the second waits for the CA's delayed ACK, 40 ms on every POST.
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        Ok(Self {
            client: HyperClient::builder(TokioExecutor::new()).build(connector),
            nonces: Nonces::default(),
            timeout,
        })
    }

    /// GET a URL and return its body (the directory, for the terms of service).
    pub async fn get(&self, url: &str) -> Result<Bytes, instant_acme::Error> {
        let req = Request::builder()
            .uri(url)
            .body(BodyWrapper::default())
            .map_err(instant_acme::Error::Http)?;
        let mut rsp = self.request(req).await?;
        let status = rsp.parts.status;
        let body = rsp
            .body
            .into_bytes()
            .await
            .map_err(instant_acme::Error::Other)?;
        if !status.is_success() {
            return Err(instant_acme::Error::Other(
                format!("GET {url}: HTTP {status}").into(),
            ));
        }
        Ok(body)
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let authority = req
            .uri()
            .authority()
            .map_or_else(String::new, |a| a.to_string());
        let client = self.client.clone();
        let nonces = self.nonces.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            // the step this exchange belongs to: it counts the tries and keeps the CA's wait
            let step = Step::current();
            // instant-acme sends HEAD only to newNonce: a nonce already received, or one on
            // its way back with another order's answer, answers it. Whatever is sent is
            // accounted for until it is answered: a newNonce in flight, or the nonce a POST
            // spent, which its answer brings back.
            let mut on_its_way = match *req.method() {
                http::Method::HEAD => match nonces.take_or_wait(&authority, NONCE_WAIT).await {
                    Ok(nonce) => return Ok(nonce_answer(nonce)),
                    Err(fetching) => Some(fetching),
                },
                http::Method::POST => Some(nonces.coming_back(&authority)),
                _ => None,
            };
            crate::log::debug(format_args!("acme: {} {}", req.method(), req.uri()));
            // GET and HEAD carry no nonce and can be sent again; a POST cannot (its nonce is
            // spent), so the step that sent it is run again (see `retry::run`)
            let replayable =
                req.method() == http::Method::GET || req.method() == http::Method::HEAD;
            let (method, uri, headers) = (
                req.method().clone(),
                req.uri().clone(),
                req.headers().clone(),
            );
            let mut next = Some(req);
            loop {
                let req = match next.take() {
                    Some(req) => req,
                    None => {
                        let mut req = Request::new(BodyWrapper::default());
                        *req.method_mut() = method.clone();
                        *req.uri_mut() = uri.clone();
                        *req.headers_mut() = headers.clone();
                        req
                    }
                };
                step.sending();
                let url = uri.to_string();
                let failed = |e: Exchange| instant_acme::Error::Other(Box::new(e));
                let deadline = tokio::time::Instant::now() + timeout;
                let rsp = match tokio::time::timeout_at(deadline, client.request(req)).await {
                    Ok(Ok(rsp)) => rsp,
                    Ok(Err(e)) => return Err(failed(answer::client_error(&url, &e))),
                    Err(_) => {
                        return Err(failed(Exchange::NoAnswer {
                            url,
                            secs: timeout.as_secs(),
                        }));
                    }
                };
                let status = rsp.status();
                crate::log::debug(format_args!("acme: {method} {uri} -> {status}"));
                let retry_after = rsp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok());
                if let Some(delay) = step.answered(status, retry_after, replayable) {
                    crate::log::verbose(format_args!(
                        "{uri}: HTTP {status}; trying again in {delay:?}"
                    ));
                    tokio::time::sleep(delay).await;
                    continue;
                }
                // the whole body, bounded in time (the same deadline) and in size
                let (parts, body) = rsp.into_parts();
                let limit = answer::limit(&parts.headers);
                let read = http_body_util::Limited::new(body, limit).collect();
                let body = match tokio::time::timeout_at(deadline, read).await {
                    Ok(Ok(collected)) => collected.to_bytes(),
                    Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                        return Err(failed(Exchange::TooLarge { url, limit }));
                    }
                    Ok(Err(e)) => {
                        return Err(failed(Exchange::Broken {
                            url,
                            reason: super::problem::error_chain(e.as_ref()),
                        }));
                    }
                    Err(_) => {
                        return Err(failed(Exchange::Stalled {
                            url,
                            secs: timeout.as_secs(),
                        }));
                    }
                };
                answer::check(&url, &parts, &body).map_err(failed)?;
                super::chains::record(&parts.headers, &body);
                let mut rsp = BytesResponse::from(http::Response::from_parts(
                    parts,
                    http_body_util::Full::new(body),
                ));
                cap_retry_after(&mut rsp.parts.headers);
                // a HEAD's nonce is what its caller asked for, and goes on with the POST
                // that spends it; any other is kept
                if method == http::Method::HEAD {
                    if let (true, Some(fetching)) = (
                        rsp.parts.headers.contains_key(REPLAY_NONCE),
                        on_its_way.take(),
                    ) {
                        fetching.handed_on();
                    }
                } else if let Some(nonce) = rsp.parts.headers.remove(REPLAY_NONCE) {
                    nonces.put(&authority, nonce);
                }
                return Ok(rsp);
            }
        })
    }
}

/// A Retry-After of more seconds than `RETRY_AFTER_CAP` becomes the cap (see there).
fn cap_retry_after(headers: &mut http::HeaderMap) {
    let Some(value) = headers.get(http::header::RETRY_AFTER) else {
        return;
    };
    let digits = value.as_bytes().trim_ascii();
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        let secs = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        if secs > RETRY_AFTER_CAP {
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(RETRY_AFTER_CAP),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(s).unwrap()
    }

    #[tokio::test]
    async fn a_kept_nonce_answers_new_nonce_without_a_request() {
        let http = AcmeHttp::new(None, DEFAULT_TIMEOUT).unwrap();
        let url = "https://127.0.0.1:9/nonce-plz";
        http.nonces.put("127.0.0.1:9", value("kept"));
        let head = || {
            let mut req = Request::new(BodyWrapper::default());
            *req.method_mut() = http::Method::HEAD;
            *req.uri_mut() = url.parse().unwrap();
            req
        };
        // port 9 (discard) has no listener: only a kept nonce can answer
        let rsp = http.request(head()).await.unwrap();
        assert_eq!(rsp.parts.status, http::StatusCode::OK);
        assert_eq!(rsp.parts.headers.get(REPLAY_NONCE), Some(&value("kept")));
        assert!(
            http.request(head()).await.is_err(),
            "the nonce was used already"
        );
    }

    #[test]
    fn a_huge_retry_after_reaches_instant_acme_capped() {
        let capped = |raw: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, value(raw));
            cap_retry_after(&mut headers);
            headers[http::header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let cap = RETRY_AFTER_CAP.to_string();
        assert_eq!(capped("18446744073709551615"), cap);
        assert_eq!(capped("99999999999999999999999999"), cap);
        assert_eq!(capped("120"), "120");
        assert_eq!(
            capped("Wed, 21 Oct 2026 07:28:00 GMT"),
            "Wed, 21 Oct 2026 07:28:00 GMT"
        );
    }
}
