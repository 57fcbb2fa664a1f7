//! The only module that speaks ACME (RFC 8555), on top of instant-acme. It adds what that
//! crate lacks: trust of a `--ca-bundle` with many certificates, request timeouts, bounded
//! retries of a step after a badNonce, and problem documents turned into clear errors.
//! It knows nothing of files: callers pass credentials in and store what comes out.

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
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse,
    CertificateIdentifier, ChallengeType, HttpClient, Identifier, NewAccount, NewOrder,
    OrderStatus, Problem, RetryPolicy,
};

use crate::http01::{Tokens, valid_token};
use crate::types::{DomainName, Server};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times one protocol step is tried again after the CA rejected its nonce.
const BAD_NONCE_TRIES: u32 = 12;
/// Polling: a short first delay (a CA that validates in milliseconds is not kept waiting),
/// doubling each time, so a CA that takes seconds is asked about as often as with a longer
/// first delay (10 ms to 2.5 s: 8 polls); Retry-After from the CA wins (instant-acme
/// honours it).
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(10))
    .backoff(2.0)
    .timeout(Duration::from_secs(180));
/// Nonces kept per CA for later requests; the newest is used first.
const NONCES_KEPT: usize = 16;
const REPLAY_NONCE: &str = "replay-nonce";

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
            let bytes = crate::settings::read_small_file(path)
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
            // spent), so the step that sent it decides (see `retry`).
            let replayable =
                req.method() == http::Method::GET || req.method() == http::Method::HEAD;
            let (method, uri, headers) = (
                req.method().clone(),
                req.uri().clone(),
                req.headers().clone(),
            );
            let mut next = Some(req);
            let mut attempt = 0;
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
                let overloaded =
                    status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                let retry_after = rsp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok());
                if overloaded {
                    note_retry_after(retry_after);
                }
                match retry_delay(overloaded && replayable, retry_after, attempt) {
                    Some(delay) => {
                        crate::log::verbose(format_args!(
                            "{uri}: HTTP {status}; trying again in {delay:?}"
                        ));
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => {
                        let mut rsp = BytesResponse::from(rsp);
                        // a HEAD's nonce is what its caller asked for, and goes on with
                        // the POST that spends it; any other is kept
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
                }
            }
        })
    }
}

/// The last Retry-After the CA sent with a 429 or 5xx answer, for the error message.
static LAST_RETRY_AFTER: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn note_retry_after(value: Option<&str>) {
    if let Some(v) = value {
        *LAST_RETRY_AFTER.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.trim().to_owned());
    }
}

/// How long to wait before sending a GET again after a 429 or 5xx: the CA's Retry-After
/// when it is short, otherwise 1 s, 2 s; never more than three tries and never more than
/// 10 s, so an overloaded CA is not hammered and cron never hangs.
fn retry_delay(retryable: bool, retry_after: Option<&str>, attempt: u32) -> Option<Duration> {
    const MAX_ATTEMPTS: u32 = 2;
    const MAX_WAIT: Duration = Duration::from_secs(10);
    if !retryable || attempt >= MAX_ATTEMPTS {
        return None;
    }
    match retry_after.map(str::trim).map(str::parse::<u64>) {
        Some(Ok(secs)) if Duration::from_secs(secs) <= MAX_WAIT => Some(Duration::from_secs(secs)),
        Some(_) => None, // a long wait, or a date: give up now and say when to come back
        None => Some(Duration::from_secs(1 << attempt)),
    }
}

/// Restores a stored account: only the directory is fetched, no new-account round trip.
pub async fn restore_account(
    http: &AcmeHttp,
    server: &Server,
    credentials: AccountCredentials,
) -> anyhow::Result<Account> {
    Account::builder_with_http(Box::new(http.clone()))
        .from_credentials(credentials)
        .await
        .map_err(|e| explain(e, server))
}

/// Registers a new account (the caller has made sure the terms were agreed to).
pub async fn create_account(
    http: &AcmeHttp,
    server: &Server,
    email: Option<&str>,
) -> anyhow::Result<(Account, AccountCredentials)> {
    let contact = email.map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let mut tries = 0;
    loop {
        let builder = Account::builder_with_http(Box::new(http.clone()));
        match builder.create(&new, server.url().to_owned(), None).await {
            Err(e) if is_bad_nonce(&e) && tries < BAD_NONCE_TRIES => tries += 1,
            other => {
                return other
                    .map_err(|e| explain(e, server))
                    .context("creating the ACME account");
            }
        }
    }
}

/// The terms-of-service URL the directory announces, if any.
pub async fn terms_of_service(http: &AcmeHttp, server: &Server) -> anyhow::Result<Option<String>> {
    let body = http
        .get(server.url())
        .await
        .map_err(|e| explain(instant_acme::Error::Other(e.into()), server))?;
    let dir: serde_json::Value =
        serde_json::from_slice(&body).context("the ACME directory is not JSON")?;
    Ok(dir["meta"]["termsOfService"].as_str().map(str::to_owned))
}

/// The CA's renewal window for a certificate (RFC 9773) and how long to wait before asking
/// again; None when the CA offers no renewalInfo (then no request is sent at all).
pub async fn renewal_info(
    account: &Account,
    server: &Server,
    leaf_der: &[u8],
) -> anyhow::Result<Option<(instant_acme::SuggestedWindow, Duration)>> {
    let id = cert_id(leaf_der)?;
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => Ok(Some((info.suggested_window, retry_after))),
        Err(instant_acme::Error::Unsupported(_)) => Ok(None),
        Err(e) => Err(explain(e, server)).context("asking the CA for its renewal window (ARI)"),
    }
}

/// The ARI identifier of a certificate: authority key identifier and serial.
pub fn cert_id(leaf_der: &[u8]) -> anyhow::Result<CertificateIdentifier<'static>> {
    let der = rustls_pki_types::CertificateDer::from(leaf_der.to_vec());
    CertificateIdentifier::try_from(&der)
        .map(CertificateIdentifier::into_owned)
        .map_err(|e| anyhow!("cannot name the certificate for ARI: {e}"))
}

/// How the order's challenges get answered.
pub enum Answer<'a> {
    /// Tokens served by certctl's responder.
    Responder(&'a Tokens),
    /// Token files under `<webroot>/.well-known/acme-challenge/`.
    Webroot(&'a Path),
    /// The proxy answers from the account thumbprint; nothing to set up.
    Stateless,
}

/// Runs one order for `domains` to the end and returns the chain PEM the CA issued.
pub async fn issue(
    account: &Account,
    server: &Server,
    domains: &[DomainName],
    csr_der: &[u8],
    answer: &Answer<'_>,
    replaces: Option<&CertificateIdentifier<'static>>,
) -> anyhow::Result<String> {
    let identifiers: Vec<Identifier> = domains
        .iter()
        .map(|d| Identifier::Dns(d.as_str().to_owned()))
        .collect();
    let mut placed = Vec::new();
    let result = run_order(
        account,
        server,
        &identifiers,
        csr_der,
        answer,
        replaces,
        &mut placed,
    )
    .await;
    for token in placed {
        match answer {
            Answer::Responder(tokens) => tokens.remove(&token),
            Answer::Webroot(dir) => {
                let _ = std::fs::remove_file(dir.join(".well-known/acme-challenge").join(&token));
            }
            Answer::Stateless => {}
        }
    }
    result
}

async fn run_order(
    account: &Account,
    server: &Server,
    identifiers: &[Identifier],
    csr_der: &[u8],
    answer: &Answer<'_>,
    replaces: Option<&CertificateIdentifier<'static>>,
    placed: &mut Vec<String>,
) -> anyhow::Result<String> {
    crate::progress::step("placing the order");
    // 1. new order; `replaces` (RFC 9773) tells an ARI CA which certificate this renews.
    //    It is a courtesy, never a condition: when the CA refuses it (the certificate was
    //    replaced already, say by an order whose certificate was never installed) or no
    //    longer offers ARI, the order goes again without it rather than fail at every run
    //    until the certificate expires
    let plain = NewOrder::new(identifiers);
    let replacing = replaces.map(|id| NewOrder::new(identifiers).replaces(id.clone()));
    let mut with_replaces = replacing.is_some();
    let mut order = retry(server, "placing the order", async || {
        if let (true, Some(new_order)) = (with_replaces, &replacing) {
            match account.new_order(new_order).await {
                Err(e) if replaces_refused(&e) => {
                    let why = match &e {
                        instant_acme::Error::Api(p) => problem_text(p),
                        other => error_chain(other),
                    };
                    crate::log::verbose(format_args!(
                        "the CA does not take `replaces` ({why}); ordering without `replaces`"
                    ));
                    with_replaces = false;
                }
                other => return other,
            }
        }
        account.new_order(&plain).await
    })
    .await?;
    crate::log::verbose(format_args!("order {}", order.url()));

    crate::progress::step("answering the challenges");
    // 2. answer every pending authorization; a badNonce restarts the walk, which skips
    //    authorizations already answered
    let mut answered: Vec<String> = Vec::new();
    let mut tries = 0;
    loop {
        let mut failure = None;
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            let mut authz = match next {
                Ok(authz) => authz,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let url = authz.url().to_owned();
            if answered.contains(&url) {
                continue;
            }
            let identifier = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Valid => {
                    answered.push(url);
                    continue;
                }
                AuthorizationStatus::Pending => {}
                other => {
                    bail!("the CA's authorization for {identifier} is {other:?}; request again")
                }
            }
            let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                anyhow!("the CA offers no HTTP-01 challenge for {identifier}; certctl answers HTTP-01 only")
            })?;
            if !valid_token(&challenge.token) {
                bail!(
                    "the CA sent a malformed challenge token for {identifier}; refusing to use it"
                );
            }
            let key_authorization = challenge.key_authorization();
            let token = challenge.token.clone();
            match answer {
                Answer::Responder(tokens) => tokens.insert(&token, key_authorization.as_str()),
                Answer::Webroot(dir) => {
                    write_webroot_token(dir, &token, key_authorization.as_str())?
                }
                Answer::Stateless => {}
            }
            placed.push(token);
            let mut ready_tries = 0;
            loop {
                match challenge.set_ready().await {
                    Err(e) if is_bad_nonce(&e) && ready_tries < BAD_NONCE_TRIES => ready_tries += 1,
                    other => {
                        other
                            .map_err(|e| explain(e, server))
                            .with_context(|| format!("starting validation of {identifier}"))?;
                        break;
                    }
                }
            }
            answered.push(url);
        }
        match failure {
            None => break,
            Some(e) if is_bad_nonce(&e) && tries < BAD_NONCE_TRIES => tries += 1,
            Some(e) => {
                return Err(explain(e, server)).context("fetching the order's authorizations");
            }
        }
    }

    // 3. wait for validation; an invalid order is explained by its challenges' errors
    crate::progress::step("waiting for validation");
    let mut tries = 0;
    loop {
        match order.poll_ready(&POLL).await {
            Ok(OrderStatus::Ready) => break,
            Err(e) if is_bad_nonce(&e) && tries < BAD_NONCE_TRIES => tries += 1,
            Ok(_) | Err(instant_acme::Error::Api(_)) => {
                return Err(validation_failure(&mut order, server).await);
            }
            Err(e) => return Err(explain(e, server)).context("waiting for validation"),
        }
    }

    // 4. finalize and download
    crate::progress::step("finalizing");
    retry(server, "finalizing the order", async || {
        order.finalize_csr(csr_der).await
    })
    .await?;
    crate::progress::step("downloading the certificate");
    retry(server, "downloading the certificate", async || {
        order.poll_certificate(&POLL).await
    })
    .await
}

fn write_webroot_token(webroot: &Path, token: &str, key_authorization: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = webroot.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for d in [webroot.join(".well-known"), dir.clone()] {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
    }
    let path = dir.join(token);
    std::fs::write(&path, key_authorization)
        .with_context(|| format!("writing the challenge file {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("making {} readable", path.display()))
}

/// Why an order went invalid: the challenge errors the CA recorded, unchanged.
async fn validation_failure(order: &mut instant_acme::Order, server: &Server) -> anyhow::Error {
    let order_problem = order.state().error.as_ref().map(problem_text);
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        // one more try covers a rejected nonce; without fresh state there is nothing to say
        if authz.refresh().await.is_err() && authz.refresh().await.is_err() {
            continue;
        }
        let identifier = authz.identifier().to_string();
        for ch in &authz.challenges {
            if let Some(problem) = &ch.error {
                reasons.push(format!("{identifier}: {}", problem_text(problem)));
            }
        }
    }
    if reasons.is_empty() {
        match order_problem {
            Some(problem) => anyhow!("the CA could not validate the order: {problem}"),
            None => anyhow!("the CA ({server}) marked the order invalid without saying why"),
        }
    } else {
        anyhow!(
            "the CA could not validate the challenge:\n  {}\nhint: the CA must reach http://<name>/.well-known/acme-challenge/ \
             and the proxy must forward it to certctl's responder (--http-addr)",
            reasons.join("\n  ")
        )
    }
}

/// Runs one protocol step, trying it again (boundedly) when the CA rejected the nonce.
async fn retry<T>(
    server: &Server,
    what: &str,
    mut step: impl AsyncFnMut() -> Result<T, instant_acme::Error>,
) -> anyhow::Result<T> {
    let mut tries = 0;
    let mut server_errors = 0;
    loop {
        match step().await {
            Err(e) if is_bad_nonce(&e) && tries < BAD_NONCE_TRIES => {
                tries += 1;
                crate::log::debug(format_args!("{what}: bad nonce, trying again ({tries})"));
            }
            // a CA error (5xx) on a step: the step is sent again with a fresh nonce, twice at most
            Err(instant_acme::Error::Api(p))
                if p.status.is_some_and(|s| s >= 500) && server_errors < 2 =>
            {
                server_errors += 1;
                crate::log::verbose(format_args!(
                    "{what}: the CA answered {:?}; trying again",
                    p.status
                ));
                tokio::time::sleep(Duration::from_secs(1 << server_errors)).await;
            }
            other => {
                return other
                    .map_err(|e| explain(e, server))
                    .context(what.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn gets_are_retried_briefly_and_never_forever() {
        assert_eq!(retry_delay(true, None, 0), Some(Duration::from_secs(1)));
        assert_eq!(retry_delay(true, None, 1), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(true, None, 2), None);
        assert_eq!(
            retry_delay(true, Some("3"), 0),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_delay(true, Some("3600"), 0),
            None,
            "a long Retry-After is reported, not slept"
        );
        assert_eq!(
            retry_delay(true, Some("Wed, 21 Oct 2026 07:28:00 GMT"), 0),
            None
        );
        assert_eq!(
            retry_delay(false, None, 0),
            None,
            "a POST is never resent with a spent nonce"
        );
    }

    #[test]
    fn replaces_is_dropped_only_when_the_ca_objects_to_it() {
        let problem = |json: &str| instant_acme::Error::Api(serde_json::from_str(json).unwrap());
        assert!(replaces_refused(&instant_acme::Error::Unsupported(
            "ACME renewal information (ARI)"
        )));
        assert!(replaces_refused(&problem(
            r#"{"type":"urn:ietf:params:acme:error:alreadyReplaced","status":409}"#
        )));
        assert!(replaces_refused(&problem(
            r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"Could not validate ARI 'replaces' field"}"#
        )));
        assert!(!replaces_refused(&problem(
            r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"Error parsing JWS"}"#
        )));
        assert!(!replaces_refused(&problem(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many replaces"}"#
        )));
    }

    #[test]
    fn rate_limit_message_carries_retry_after() {
        note_retry_after(Some("3600"));
        let problem: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates","status":429}"#,
        )
        .unwrap();
        let server = Server::parse("letsencrypt").unwrap();
        let text = explain(instant_acme::Error::Api(problem), &server).to_string();
        assert!(
            text.contains("too many certificates")
                && text.contains("urn:ietf:params:acme:error:rateLimited"),
            "{text}"
        );
        assert!(text.contains("retry after 3600"), "{text}");
    }
}

/// Whether a new order failed only because of its `replaces` field: the directory has no
/// renewalInfo (instant-acme then refuses to send it), the CA answers alreadyReplaced
/// (RFC 9773 §7.4), or a malformed problem about `replaces` (Boulder before that type).
fn replaces_refused(err: &instant_acme::Error) -> bool {
    match err {
        instant_acme::Error::Unsupported(_) => true,
        instant_acme::Error::Api(p) => match p.r#type.as_deref() {
            Some("urn:ietf:params:acme:error:alreadyReplaced") => true,
            Some("urn:ietf:params:acme:error:malformed") => p
                .detail
                .as_deref()
                .is_some_and(|d| d.to_lowercase().contains("replaces")),
            _ => false,
        },
        _ => false,
    }
}

fn is_bad_nonce(err: &instant_acme::Error) -> bool {
    matches!(err, instant_acme::Error::Api(p) if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce"))
}

fn problem_text(p: &Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_else(|| "no detail given".into());
    if let Some(t) = &p.r#type {
        text.push_str(&format!(" ({t})"));
    }
    for sub in &p.subproblems {
        text.push_str(&format!("; {sub}"));
    }
    text
}

const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// Turns an instant-acme error into one a person can act on.
pub fn explain(err: instant_acme::Error, server: &Server) -> anyhow::Error {
    match err {
        instant_acme::Error::Api(problem) => {
            let overloaded = problem.status.is_some_and(|s| s == 429 || s >= 500)
                || problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited");
            let wait = LAST_RETRY_AFTER
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if problem.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST) {
                return anyhow!(
                    "the CA refused: {}; the CA ({server}) does not know certctl's stored account \
                     (deactivated, or the CA was reset): move its file out of <state-dir>/accounts/ \
                     and run again to register a new one",
                    problem_text(&problem)
                );
            }
            match (overloaded, wait) {
                (true, Some(wait)) => anyhow!(
                    "the CA refused: {}; it asks to retry after {wait} (seconds or date); certctl does not loop, run it again then",
                    problem_text(&problem)
                ),
                _ => anyhow!("the CA refused: {}", problem_text(&problem)),
            }
        }
        instant_acme::Error::Timeout(_) => {
            anyhow!("the CA ({server}) did not finish in time; try again later")
        }
        other => {
            let text = error_chain(&other);
            let lower = text.to_lowercase();
            if lower.contains("certificate")
                && (lower.contains("unknown")
                    || lower.contains("invalid peer")
                    || lower.contains("issuer"))
            {
                anyhow!(
                    "cannot reach the ACME server {server}: its TLS certificate is not trusted ({text}); \
                     for a private or test CA, pass its root with --ca-bundle PEM"
                )
            } else {
                anyhow!("cannot reach the ACME server {server}: {text}")
            }
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
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

// --- revocation ---

const ALREADY_REVOKED: &str = "urn:ietf:params:acme:error:alreadyRevoked";

/// Revokes the certificate `leaf_der` at `server` (RFC 8555 §7.6), signed by the account that
/// issued it. Ok(true) when the CA revoked it now, Ok(false) when the CA answers that it was
/// revoked already, so that a run interrupted after revoking can still finish.
pub async fn revoke(
    account: &Account,
    server: &Server,
    leaf_der: &[u8],
    reason: crate::cli::RevocationReason,
) -> anyhow::Result<bool> {
    let certificate = rustls_pki_types::CertificateDer::from(leaf_der);
    let request = instant_acme::RevocationRequest {
        certificate: &certificate,
        reason: Some(revocation_reason(reason)),
    };
    retry(server, "revoking the certificate", async || {
        match account.revoke(&request).await {
            Ok(()) => Ok(true),
            Err(instant_acme::Error::Api(p)) if p.r#type.as_deref() == Some(ALREADY_REVOKED) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    })
    .await
}

/// The RFC 5280 reason code for a `--reason`.
fn revocation_reason(reason: crate::cli::RevocationReason) -> instant_acme::RevocationReason {
    use crate::cli::RevocationReason as Cli;
    use instant_acme::RevocationReason as Acme;
    match reason {
        Cli::Unspecified => Acme::Unspecified,
        Cli::Keycompromise => Acme::KeyCompromise,
        Cli::Superseded => Acme::Superseded,
        Cli::Cessationofoperation => Acme::CessationOfOperation,
        Cli::Affiliationchanged => Acme::AffiliationChanged,
    }
}

#[cfg(test)]
mod revocation_tests {
    use super::*;
    use crate::cli::RevocationReason as Cli;

    #[test]
    fn revocation_reasons_carry_their_rfc_5280_codes() {
        for (reason, code) in [
            (Cli::Unspecified, "0"),
            (Cli::Keycompromise, "1"),
            (Cli::Affiliationchanged, "3"),
            (Cli::Superseded, "4"),
            (Cli::Cessationofoperation, "5"),
        ] {
            let json = serde_json::to_string(&revocation_reason(reason)).unwrap();
            assert_eq!(json, code, "{reason:?}");
        }
    }
}

#[cfg(test)]
mod nonce_tests {
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
}
