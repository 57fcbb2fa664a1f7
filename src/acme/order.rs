//! The order flow (RFC 8555 §7.4): a new order (with `replaces`, RFC 9773, and the CA's
//! profile), its authorizations and, for each, the challenge its solver answers;
//! validation, finalization and the download; also the CA's renewal window (ARI). Every
//! exchange runs as a `retry` step. It never answers a challenge itself: the solvers do
//! (crate::challenge), under a guard that takes their answers down whatever happens.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use instant_acme::{
    Account, AuthorizationState, AuthorizationStatus, CertificateIdentifier, NewOrder, OrderStatus,
    RetryPolicy,
};

use super::chains;
use super::problem::{error_chain, explain, problem_text};
use super::retry::{self, Failed};
use crate::challenge::{ChallengeType, Guard, Identifier, KeyAuthorization, Solvers, Task, Token};
use crate::types::{DomainName, Server};

/// Polling: a short first delay (a CA that validates in milliseconds is not kept waiting),
/// doubling each time, so a CA that takes seconds is asked about as often as with a longer
/// first delay (10 ms to 2.5 s: 8 polls); Retry-After from the CA wins (instant-acme
/// honours it).
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(10))
    .backoff(2.0)
    .timeout(Duration::from_secs(180));

/// The CA's renewal window for a certificate (RFC 9773) and how long to wait before asking
/// again; None when the CA offers no renewalInfo (then no request is sent at all).
pub async fn renewal_info(
    account: &Account,
    server: &Server,
    leaf_der: &[u8],
) -> anyhow::Result<Option<(instant_acme::SuggestedWindow, Duration)>> {
    let id = cert_id(leaf_der)?;
    match retry::once(account.renewal_info(&id)).await {
        Ok((info, retry_after)) => Ok(Some((info.suggested_window, retry_after))),
        Err(Failed {
            error: instant_acme::Error::Unsupported(_),
            ..
        }) => Ok(None),
        Err(failed) => {
            Err(failed.explain(server)).context("asking the CA for its renewal window (ARI)")
        }
    }
}

/// The ARI identifier of a certificate: authority key identifier and serial.
pub fn cert_id(leaf_der: &[u8]) -> anyhow::Result<CertificateIdentifier<'static>> {
    let der = rustls_pki_types::CertificateDer::from(leaf_der.to_vec());
    CertificateIdentifier::try_from(&der)
        .map(CertificateIdentifier::into_owned)
        .map_err(|e| anyhow!("cannot name the certificate for ARI: {e}"))
}

/// Runs one order for `domains` to the end and returns the chain PEM the CA issued. Each
/// identifier's challenge is answered by its solver in `solvers`; whatever was presented is
/// taken down before this returns, and if this future is dropped, by the guard.
pub async fn issue(
    account: &Account,
    server: &Server,
    domains: &[DomainName],
    csr_der: &[u8],
    solvers: &Solvers,
    replaces: Option<&CertificateIdentifier<'static>>,
    choices: &Choices<'_>,
) -> anyhow::Result<Issuance> {
    // a stored profile the CA stopped offering fails here, before anything is sent
    if let Some(profile) = choices.profile {
        let offered = account
            .profiles()
            .map(|p| (p.name.to_owned(), p.description.to_owned()))
            .collect();
        super::check_profile(server, profile, &offered, true)?;
    }
    let identifiers: Vec<Identifier> = domains.iter().map(Identifier::from).collect();
    let mut guard = Guard::new(solvers);
    let order = Flow {
        account,
        server,
        identifiers: &identifiers,
        solvers,
        choices,
        mishandled: std::sync::atomic::AtomicBool::new(false),
    };
    let result = order.run(csr_der, replaces, &mut guard).await;
    if let Err(e) = guard.cleanup().await {
        crate::log::warn(format_args!("{e:#}"));
    }
    Ok(Issuance {
        chain_pem: result?,
        replaces_mishandled: order.mishandled.into_inner(),
    })
}

/// What the certificate's settings ask of each order: the CA's profile to issue under, and
/// the chain to prefer among those the CA offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Choices<'a> {
    pub profile: Option<&'a str>,
    /// The common name the chain's top certificate is issued by (or is).
    pub preferred_chain: Option<&'a str>,
}

/// What an order brought: the chain, and whether the CA mishandled `replaces` (took it but
/// did not echo it, or called it malformed), which its caller remembers for that CA.
pub struct Issuance {
    pub chain_pem: String,
    pub replaces_mishandled: bool,
}

/// What one order needs from its caller.
struct Flow<'a> {
    account: &'a Account,
    server: &'a Server,
    identifiers: &'a [Identifier],
    solvers: &'a Solvers,
    choices: &'a Choices<'a>,
    /// Set when the CA mishandled `replaces` and the order went again without it.
    mishandled: std::sync::atomic::AtomicBool,
}

impl Flow<'_> {
    async fn run(
        &self,
        csr_der: &[u8],
        replaces: Option<&CertificateIdentifier<'static>>,
        guard: &mut Guard,
    ) -> anyhow::Result<String> {
        let server = self.server;
        crate::progress::step("placing the order");
        let mut order = self.place(replaces).await?;
        crate::log::verbose(format_args!("order {}", order.url()));

        // 2. fetch every authorization (a walk run again after a badNonce skips those
        //    fetched), choose the challenge of each pending one, present them all
        crate::progress::step("answering the challenges");
        retry::step(server, "fetching the order's authorizations", async || {
            let mut authorizations = order.authorizations();
            while let Some(next) = authorizations.next().await {
                next?;
            }
            Ok(())
        })
        .await?;
        let tasks = self.tasks(&mut order).await?;
        let http01 = tasks
            .iter()
            .any(|(_, t)| t.challenge == ChallengeType::Http01);
        guard
            .present(self.solvers, tasks.iter().map(|(_, t)| t.clone()).collect())
            .await?;
        // 3. tell the CA each challenge is ready, then wait for validation; an invalid
        //    order is explained by its challenges' errors
        self.ready(&mut order, &tasks).await?;
        crate::progress::step("waiting for validation");
        let polled = retry::run("waiting for validation", async || {
            order.poll_ready(&POLL).await
        })
        .await;
        match polled {
            Ok(OrderStatus::Ready) => {}
            Ok(_)
            | Err(Failed {
                error: instant_acme::Error::Api(_),
                ..
            }) => return Err(validation_failure(&mut order, server, http01).await),
            Err(failed) => return Err(failed.explain(server)).context("waiting for validation"),
        }

        // 4. finalize and download
        crate::progress::step("finalizing");
        retry::step(server, "finalizing the order", async || {
            order.finalize_csr(csr_der).await
        })
        .await?;
        crate::progress::step("downloading the certificate");
        let (default, seen) = chains::capture(retry::step(
            server,
            "downloading the certificate",
            async || order.poll_certificate(&POLL).await,
        ))
        .await;
        let default = default?;
        match self.choices.preferred_chain {
            // 5. `--preferred-chain`
            Some(preferred) => {
                Ok(chains::preferred(self.account, server, default, &seen, preferred).await)
            }
            None => Ok(default),
        }
    }

    /// 1. The new order. `replaces` (RFC 9773) tells an ARI CA which certificate this renews.
    ///    It is a courtesy, never a condition: when the CA refuses it (the certificate was
    ///    replaced already, say by an order whose certificate was never installed) or no
    ///    longer offers ARI, the order goes again without it rather than fail at every run
    ///    until the certificate expires.
    async fn place(
        &self,
        replaces: Option<&CertificateIdentifier<'static>>,
    ) -> anyhow::Result<instant_acme::Order> {
        let identifiers: Vec<instant_acme::Identifier> =
            self.identifiers.iter().map(acme_identifier).collect();
        let new_order = || match self.choices.profile {
            Some(profile) => NewOrder::new(&identifiers).profile(profile),
            None => NewOrder::new(&identifiers),
        };
        let plain = new_order();
        let replacing = replaces.map(|id| new_order().replaces(id.clone()));
        let mut with_replaces = replacing.is_some();
        let account = self.account;
        retry::step(self.server, "placing the order", async || {
            if let (true, Some(new_order)) = (with_replaces, &replacing) {
                match account.new_order(new_order).await {
                    Err(e) if replaces_refused(&e) => {
                        let why = match &e {
                            instant_acme::Error::Api(p) => problem_text(p),
                            other => error_chain(other),
                        };
                        if replaces_mishandled(&e) {
                            self.mishandled
                                .store(true, std::sync::atomic::Ordering::Relaxed);
                            crate::log::info(format_args!(
                                "{}: the CA mishandles `replaces` ({why}); ordering without it, \
                                 and from now on for this CA",
                                self.server
                            ));
                        } else {
                            crate::log::verbose(format_args!(
                                "the CA does not take `replaces` ({why}); ordering without `replaces`"
                            ));
                        }
                        with_replaces = false;
                    }
                    other => return other,
                }
            }
            account.new_order(&plain).await
        })
        .await
    }

    /// The task of each pending authorization, with the authorization's URL. The states are
    /// fetched already: this sends nothing.
    async fn tasks(&self, order: &mut instant_acme::Order) -> anyhow::Result<Vec<(String, Task)>> {
        let mut tasks = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            let mut authz = next.map_err(|e| explain(e, self.server, None))?;
            let url = authz.url().to_owned();
            let Some((identifier, challenge, token)) =
                choose(&authz, self.identifiers, self.solvers)?
            else {
                continue;
            };
            let handle = authz
                .challenge(acme_type(challenge))
                .ok_or_else(|| anyhow!("the {challenge} challenge for {identifier} vanished"))?;
            let key_authorization = KeyAuthorization::new(handle.key_authorization().as_str());
            let task = Task {
                identifier,
                challenge,
                token,
                key_authorization,
            };
            tasks.push((url, task));
        }
        Ok(tasks)
    }

    /// Tells the CA that the challenge of each task is ready to be validated.
    async fn ready(
        &self,
        order: &mut instant_acme::Order,
        tasks: &[(String, Task)],
    ) -> anyhow::Result<()> {
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            let mut authz = next.map_err(|e| explain(e, self.server, None))?;
            let url = authz.url().to_owned();
            let Some((_, task)) = tasks.iter().find(|(u, _)| *u == url) else {
                continue;
            };
            let identifier = &task.identifier;
            let mut challenge = authz.challenge(acme_type(task.challenge)).ok_or_else(|| {
                anyhow!("the {} challenge for {identifier} vanished", task.challenge)
            })?;
            let what = format!("starting validation of {identifier}");
            retry::step(self.server, &what, async || challenge.set_ready().await).await?;
        }
        Ok(())
    }
}

/// For one authorization: None when it is valid already, otherwise the identifier it is
/// for, the challenge type its solver answers and the token of that challenge.
fn choose(
    authz: &AuthorizationState,
    identifiers: &[Identifier],
    solvers: &Solvers,
) -> anyhow::Result<Option<(Identifier, ChallengeType, Token)>> {
    let named = authz.identifier().to_string();
    match authz.status {
        AuthorizationStatus::Valid => return Ok(None),
        AuthorizationStatus::Pending => {}
        other => bail!("the CA's authorization for {named} is {other:?}; request again"),
    }
    let identifier = identifiers
        .iter()
        .find(|i| i.to_string().eq_ignore_ascii_case(&named))
        .ok_or_else(|| {
            anyhow!("the CA sent an authorization for {named}, which the order does not name")
        })?;
    let wanted = solvers.solver(identifier).challenge_type();
    let Some(challenge) = authz
        .challenges
        .iter()
        .find(|c| c.r#type == acme_type(wanted))
    else {
        let offered: Vec<String> = authz
            .challenges
            .iter()
            .map(|c| type_name(&c.r#type))
            .collect();
        bail!(
            "the CA offers no {wanted} challenge for {identifier} (it offers: {}); choose another --challenge",
            offered.join(", ")
        );
    };
    let token = Token::parse(&challenge.token).ok_or_else(|| {
        anyhow!("the CA sent a malformed challenge token for {identifier}; refusing to use it")
    })?;
    Ok(Some((identifier.clone(), wanted, token)))
}

fn acme_type(challenge: ChallengeType) -> instant_acme::ChallengeType {
    match challenge {
        ChallengeType::Http01 => instant_acme::ChallengeType::Http01,
        ChallengeType::Dns01 => instant_acme::ChallengeType::Dns01,
        ChallengeType::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
    }
}

/// A challenge type as the CA names it.
fn type_name(offered: &instant_acme::ChallengeType) -> String {
    use instant_acme::ChallengeType as Offered;
    match offered {
        Offered::Http01 => "http-01".into(),
        Offered::Dns01 => "dns-01".into(),
        Offered::TlsAlpn01 => "tls-alpn-01".into(),
        Offered::DeviceAttest01 => "device-attest-01".into(),
        Offered::Unknown(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

fn acme_identifier(identifier: &Identifier) -> instant_acme::Identifier {
    match identifier {
        Identifier::Dns(name) => instant_acme::Identifier::Dns(name.as_str().to_owned()),
        Identifier::Ip(ip) => instant_acme::Identifier::Ip(*ip),
    }
}

/// Whether a new order failed only because of its `replaces` field: the directory has no
/// renewalInfo (instant-acme then refuses to send it), the CA answers alreadyReplaced
/// (RFC 9773 §7.4), a malformed problem about `replaces` (Boulder before that type), or the
/// CA took the order without echoing `replaces` (instant-acme: "replaces field mismatch").
fn replaces_refused(err: &instant_acme::Error) -> bool {
    match err {
        instant_acme::Error::Unsupported(_) => true,
        instant_acme::Error::Other(_) => replaces_mishandled(err),
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

/// Why an order went invalid: the challenge errors the CA recorded, unchanged.
async fn validation_failure(
    order: &mut instant_acme::Order,
    server: &Server,
    http01: bool,
) -> anyhow::Error {
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
    } else if http01 {
        anyhow!(
            "the CA could not validate the challenge:\n  {}\nhint: the CA must reach http://<name>/.well-known/acme-challenge/ \
             and the proxy must forward it to certctl's responder (--http-addr)",
            reasons.join("\n  ")
        )
    } else {
        anyhow!(
            "the CA could not validate the challenge:\n  {}",
            reasons.join("\n  ")
        )
    }
}

/// Whether the CA got `replaces` wrong (no echo, or malformed): unlike alreadyReplaced,
/// which concerns one certificate, that holds for every order to this CA.
fn replaces_mishandled(err: &instant_acme::Error) -> bool {
    match err {
        instant_acme::Error::Other(e) => e.to_string().contains("replaces field mismatch"),
        instant_acme::Error::Api(p) => {
            p.r#type.as_deref() == Some("urn:ietf:params:acme:error:malformed")
                && p.detail
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains("replaces"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::challenge::{Pending, Solver};

    struct Answers(ChallengeType);

    impl Solver for Answers {
        fn challenge_type(&self) -> ChallengeType {
            self.0
        }
        fn present<'a>(&'a self, _: &'a [Task]) -> Pending<'a> {
            Box::pin(std::future::ready(Ok(())))
        }
        fn cleanup<'a>(&'a self, _: &'a [Task]) -> Pending<'a> {
            Box::pin(std::future::ready(Ok(())))
        }
    }

    fn authorization(name: &str, status: &str) -> AuthorizationState {
        serde_json::from_value(serde_json::json!({
            "identifier": {"type": "dns", "value": name},
            "status": status,
            "challenges": [
                {"type": "http-01", "url": "https://ca.test/c/1", "token": "http-token", "status": "pending"},
                {"type": "dns-01", "url": "https://ca.test/c/2", "token": "dns-token", "status": "pending"},
                {"type": "tls-alpn-01", "url": "https://ca.test/c/3", "token": "bad/token", "status": "pending"},
            ],
        }))
        .unwrap()
    }

    fn dns(name: &str) -> Identifier {
        Identifier::Dns(DomainName::parse(name).unwrap())
    }

    #[test]
    fn each_identifier_gets_the_challenge_of_its_own_solver() {
        let identifiers = [dns("a.test"), dns("b.test")];
        let solvers = Solvers::new(Arc::new(Answers(ChallengeType::Http01)))
            .with(dns("b.test"), Arc::new(Answers(ChallengeType::Dns01)));
        let chosen = |name: &str| {
            let (identifier, challenge, token) =
                choose(&authorization(name, "pending"), &identifiers, &solvers)
                    .unwrap()
                    .unwrap();
            (identifier.to_string(), challenge, token.as_str().to_owned())
        };
        assert_eq!(
            chosen("a.test"),
            ("a.test".into(), ChallengeType::Http01, "http-token".into())
        );
        assert_eq!(
            chosen("b.test"),
            ("b.test".into(), ChallengeType::Dns01, "dns-token".into())
        );
        let valid = choose(&authorization("a.test", "valid"), &identifiers, &solvers).unwrap();
        assert_eq!(valid, None, "nothing to answer");
    }

    #[test]
    fn a_challenge_the_ca_cannot_give_is_refused_before_anything_is_presented() {
        let identifiers = [dns("a.test")];
        let alpn = Solvers::new(Arc::new(Answers(ChallengeType::TlsAlpn01)));
        let err = choose(&authorization("a.test", "pending"), &identifiers, &alpn).unwrap_err();
        assert!(
            err.to_string().contains("malformed challenge token"),
            "{err}"
        );
        let only_http = Solvers::new(Arc::new(Answers(ChallengeType::Dns01)));
        let mut state = authorization("a.test", "pending");
        state
            .challenges
            .retain(|c| c.r#type != instant_acme::ChallengeType::Dns01);
        let err = choose(&state, &identifiers, &only_http).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the CA offers no dns-01 challenge for a.test (it offers: http-01, tls-alpn-01); \
             choose another --challenge"
        );
        let err = choose(&authorization("c.test", "pending"), &identifiers, &alpn).unwrap_err();
        assert!(err.to_string().contains("does not name"), "{err}");
        let err = choose(&authorization("a.test", "invalid"), &identifiers, &alpn).unwrap_err();
        assert!(err.to_string().contains("Invalid; request again"), "{err}");
    }

    #[test]
    fn replaces_is_dropped_only_when_the_ca_objects_to_it() {
        let problem = |json: &str| instant_acme::Error::Api(serde_json::from_str(json).unwrap());
        assert!(replaces_refused(&instant_acme::Error::Unsupported(
            "ACME renewal information (ARI)"
        )));
        let mismatch = instant_acme::Error::Other(
            "replaces field mismatch: expected Some(..), found None"
                .to_owned()
                .into(),
        );
        assert!(replaces_refused(&mismatch) && replaces_mishandled(&mismatch));
        assert!(!replaces_mishandled(&problem(
            r#"{"type":"urn:ietf:params:acme:error:alreadyReplaced","status":409}"#
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
}
