//! The HTTPS client that carries every ACME exchange: the system's roots plus `--ca-bundle`,
//! a timeout on every request, a GET or HEAD sent again when the retry policy says so, and
//! the nonces of the CA's answers kept for the next request (one newNonce per run).
//! It knows HTTP and nonces only: what a step means, and its errors, belong to `order`,
//! `retry` and `problem`.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::Request;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use super::retry::Step;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Nonces kept per CA for later requests; the newest is used first.
const NONCES_KEPT: usize = 16;
const REPLAY_NONCE: &str = "replay-nonce";
/// instant-acme adds a Retry-After in seconds to the clock unchecked, which panics for a
/// huge one: anything longer than a year reaches it as a year (which ends any polling just
/// the same, and which `renew` clamps to a week anyway).
const RETRY_AFTER_CAP: u64 = 365 * 86_400;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The HTTPS client for the ACME server: the system's roots plus `--ca-bundle`, a timeout
/// on every request, and the nonces of the CA's answers kept for the next request.
#[derive(Clone)]
pub struct AcmeHttp {
    client: HyperClient<Connector, BodyWrapper<Bytes>>,
    nonces: Nonces,
}

/// Every answer of the CA carries a fresh nonce (RFC 8555 §7.2). instant-acme keeps one per
/// order and asks newNonce for each new order; kept here instead, shared by every order of
/// the run, a run asks newNonce once. Each nonce is taken out of the answer it came with
/// and handed out once, so it is never used twice. Keyed by the CA's host and port.
///
/// Orders running side by side (`renew --jobs`) would each ask newNonce at the start, when
/// no answer has brought one yet. So a nonce handed out is counted until the POST that spends
/// it is answered: while one is on its way back, the next order waits for it (at most
/// [`NONCE_WAIT`]) instead of asking newNonce. Waiting for an answer already on its way
/// takes at most one round trip, which is what newNonce takes; past the bound, against a
/// slow or distant CA, a fresh nonce is asked for, and more nonces go round from then on.
#[derive(Clone, Default)]
struct Nonces {
    pools: Arc<std::sync::Mutex<HashMap<String, NoncePool>>>,
    changed: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct NoncePool {
    kept: Vec<http::HeaderValue>,
    /// Nonces handed out (or being fetched) whose POST has not been answered yet.
    on_their_way: usize,
}

/// How long an order waits for a nonce from another order's answer before asking newNonce.
const NONCE_WAIT: Duration = Duration::from_millis(50);

impl Nonces {
    fn pool<T>(&self, authority: &str, f: impl FnOnce(&mut NoncePool) -> T) -> T {
        let mut map = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(authority.to_owned()).or_default())
    }

    fn put(&self, authority: &str, nonce: http::HeaderValue) {
        self.pool(authority, |pool| {
            if pool.kept.len() >= NONCES_KEPT {
                pool.kept.remove(0);
            }
            pool.kept.push(nonce);
        });
        self.changed.notify_waiters();
    }

    /// A kept nonce, or one another request brings back within `wait`. When none is on its
    /// way, or it did not come in time, the caller is to ask newNonce: it gets a
    /// [`NonceReturn`] to hold meanwhile, so that other orders wait for that nonce.
    async fn take_or_wait(
        &self,
        authority: &str,
        wait: Duration,
    ) -> Result<http::HeaderValue, NonceReturn> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let coming = self.pool(authority, |pool| {
                if let Some(nonce) = pool.kept.pop() {
                    pool.on_their_way += 1;
                    return Ok(nonce);
                }
                Err(pool.on_their_way > 0)
            });
            match coming {
                Ok(nonce) => return Ok(nonce),
                Err(true) if tokio::time::timeout_at(deadline, changed).await.is_ok() => {}
                Err(_) => return Err(self.on_its_way(authority)),
            }
        }
    }

    /// Counts a nonce as on its way until the returned guard is dropped: the answer to the
    /// POST that spent it (or the failure of newNonce) ends it.
    fn on_its_way(&self, authority: &str) -> NonceReturn {
        self.pool(authority, |pool| pool.on_their_way += 1);
        self.coming_back(authority)
    }

    /// For a POST: it spent a nonce counted as on its way, and its answer brings one back.
    fn coming_back(&self, authority: &str) -> NonceReturn {
        NonceReturn {
            nonces: self.clone(),
            authority: authority.to_owned(),
            armed: true,
        }
    }

    /// The POST that spent a nonce handed out was answered (or failed): one fewer to wait for.
    fn returned(&self, authority: &str) {
        self.pool(authority, |pool| {
            pool.on_their_way = pool.on_their_way.saturating_sub(1)
        });
        self.changed.notify_waiters();
    }
}

/// A nonce on its way back: dropped when the request that brings it back ends, however it
/// ends (answer, error, timeout, cancelled).
struct NonceReturn {
    nonces: Nonces,
    authority: String,
    armed: bool,
}

impl NonceReturn {
    /// newNonce answered: the nonce now travels with the POST that spends it, which
    /// accounts for it.
    fn handed_on(mut self) {
        self.armed = false;
    }
}

impl Drop for NonceReturn {
    fn drop(&mut self) {
        if self.armed {
            self.nonces.returned(&self.authority);
        }
    }
}

/// What newNonce would answer, made from a nonce already received.
fn nonce_answer(nonce: http::HeaderValue) -> BytesResponse {
    let mut rsp = http::Response::new(http_body_util::Empty::<Bytes>::new());
    rsp.headers_mut().insert(REPLAY_NONCE, nonce);
    BytesResponse::from(rsp)
}

impl AcmeHttp {
    pub fn new(ca_bundle: Option<&Path>) -> anyhow::Result<Self> {
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
        })
    }

    /// GET a URL and return its body (the directory, for the terms of service).
    pub async fn get(&self, url: &str) -> anyhow::Result<Bytes> {
        let req = Request::builder().uri(url).body(BodyWrapper::default())?;
        let mut rsp = self.request(req).await?;
        if !rsp.parts.status.is_success() {
            bail!("GET {url}: HTTP {}", rsp.parts.status);
        }
        rsp.body
            .into_bytes()
            .await
            .map_err(|e| anyhow!("GET {url}: {e}"))
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
                let rsp = match tokio::time::timeout(REQUEST_TIMEOUT, client.request(req)).await {
                    Ok(Ok(rsp)) => rsp,
                    Ok(Err(e)) => return Err(instant_acme::Error::Other(Box::new(e))),
                    Err(_) => {
                        return Err(instant_acme::Error::Other(
                            format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()).into(),
                        ));
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
                let mut rsp = BytesResponse::from(rsp);
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
#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(s).unwrap()
    }

    /// A kept nonce without waiting.
    fn take(nonces: &Nonces, authority: &str) -> Option<http::HeaderValue> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(nonces.take_or_wait(authority, Duration::ZERO))
            .ok()
    }

    #[test]
    fn nonces_are_handed_out_once_newest_first_per_ca() {
        let nonces = Nonces::default();
        nonces.put("ca.test:443", value("a"));
        nonces.put("ca.test:443", value("b"));
        nonces.put("other.test:443", value("c"));
        assert_eq!(take(&nonces, "ca.test:443"), Some(value("b")));
        assert_eq!(take(&nonces, "ca.test:443"), Some(value("a")));
        assert_eq!(
            take(&nonces, "ca.test:443"),
            None,
            "each nonce is used once"
        );
        assert_eq!(take(&nonces, "other.test:443"), Some(value("c")));
    }

    #[test]
    fn only_the_newest_nonces_are_kept() {
        let nonces = Nonces::default();
        for i in 0..NONCES_KEPT + 3 {
            nonces.put("ca.test:443", value(&i.to_string()));
        }
        let mut taken = Vec::new();
        while let Some(n) = take(&nonces, "ca.test:443") {
            taken.push(n.to_str().unwrap().to_owned());
        }
        assert_eq!(taken.len(), NONCES_KEPT);
        assert_eq!(taken.first().map(String::as_str), Some("18"));
        assert_eq!(taken.last().map(String::as_str), Some("3"));
    }

    #[tokio::test]
    async fn with_nothing_on_its_way_new_nonce_is_asked_at_once() {
        let nonces = Nonces::default();
        let started = std::time::Instant::now();
        let fetching = nonces
            .take_or_wait("ca.test:443", Duration::from_secs(30))
            .await;
        assert!(fetching.is_err(), "nothing kept: ask newNonce");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A first order asks newNonce (nothing is kept yet); 20 ms later a second order is
    /// asking for a nonce too, willing to wait 30 s.
    async fn two_orders(
        nonces: &Nonces,
    ) -> (
        NonceReturn,
        tokio::task::JoinHandle<Result<http::HeaderValue, NonceReturn>>,
    ) {
        let fetching = nonces
            .take_or_wait("ca.test:443", Duration::ZERO)
            .await
            .expect_err("nothing kept yet");
        let second = tokio::spawn({
            let nonces = nonces.clone();
            async move {
                nonces
                    .take_or_wait("ca.test:443", Duration::from_secs(30))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        (fetching, second)
    }

    #[tokio::test]
    async fn an_order_waits_for_the_nonce_another_order_brings_back() {
        let nonces = Nonces::default();
        // the first order asks newNonce; the second, meanwhile, waits instead of asking too
        let (fetching, second) = two_orders(&nonces).await;
        assert!(
            !second.is_finished(),
            "a nonce is on its way: the second order waits"
        );
        // newNonce answers the first order, whose POST then spends the nonce and is answered
        fetching.handed_on();
        let post = nonces.coming_back("ca.test:443");
        nonces.put("ca.test:443", value("from the answer"));
        drop(post);
        assert_eq!(second.await.unwrap().ok(), Some(value("from the answer")));
    }

    #[tokio::test]
    async fn a_failed_request_lets_the_waiting_order_ask_new_nonce_at_once() {
        let nonces = Nonces::default();
        let started = std::time::Instant::now();
        let (fetching, second) = two_orders(&nonces).await;
        drop(fetching); // newNonce failed: nothing is on its way any more
        assert!(
            second.await.unwrap().is_err(),
            "the second order asks newNonce"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "without waiting 30 s"
        );
    }

    #[tokio::test]
    async fn a_nonce_that_does_not_come_back_in_time_is_not_waited_for() {
        let nonces = Nonces::default();
        let _post = nonces.on_its_way("ca.test:443"); // a POST the CA never answers
        let started = std::time::Instant::now();
        let got = nonces
            .take_or_wait("ca.test:443", Duration::from_millis(50))
            .await;
        assert!(got.is_err(), "past the bound: ask newNonce");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_kept_nonce_answers_new_nonce_without_a_request() {
        let http = AcmeHttp::new(None).unwrap();
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
