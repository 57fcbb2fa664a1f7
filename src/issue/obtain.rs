//! Getting a certificate: an ACME order (checked before it is returned, nothing written)
//! or a signature of the local CA; and the CA's renewal window (ARI) for what was issued.

use anyhow::Context;

use super::{Issued, JobCert, date, join, now};
use crate::acme;
use crate::challenge::Solvers;
use crate::pem::{self, Chain};
use crate::settings::CertSettings;
use crate::store::Store;
use crate::types::{CertName, Server};

/// Orders one certificate and checks what came back; writes nothing. The solvers answer its
/// challenges (a responder they use is bound by the caller and shared by every order).
pub async fn order(
    account: &instant_acme::Account,
    solvers: &Solvers,
    name: &CertName,
    wanted: &CertSettings,
    replaces: Option<&instant_acme::CertificateIdentifier<'static>>,
) -> anyhow::Result<(Issued, bool)> {
    let key = crate::keys::generate(wanted.cert.key_type)?;
    let csr = crate::keys::csr(&wanted.cert.domains, &key)?;
    crate::log::verbose(format_args!(
        "{name}: ordering a certificate for {} from {}",
        join(&wanted.cert.domains),
        wanted.cert.server
    ));
    let acme::Issuance {
        chain_pem,
        replaces_mishandled,
    } = acme::issue(
        account,
        &wanted.cert.server,
        &wanted.cert.domains,
        &csr,
        solvers,
        replaces,
        &acme::Choices {
            profile: wanted.cert.profile.as_deref(),
            preferred_chain: wanted.cert.preferred_chain.as_deref(),
        },
    )
    .await?;
    let key_pem = key.serialize_pem();
    let chain = Chain::parse(&chain_pem).context("reading the certificate the CA sent")?;
    // never install a certificate that is not the one asked for
    let names: Vec<String> = wanted.cert.domains.iter().map(|d| d.to_string()).collect();
    let expected = pem::Expected {
        names: Some(&names),
        now: Some(now()),
        issuer_in_chain: true,
    };
    pem::check_chain(&chain, &key_pem, expected).context("refusing the certificate the CA sent")?;
    let info = pem::cert_info(&chain.leaf).context("reading the certificate the CA sent")?;
    let issued = Issued {
        key_pem,
        chain,
        info,
    };
    Ok((issued, replaces_mishandled))
}

/// A certificate from the local CA (created on first use): no network, no account.
pub fn issue_local(store: &Store, wanted: &CertSettings) -> anyhow::Result<Issued> {
    let ca = crate::local_ca::LocalCa::open_or_create(store)?;
    let key = crate::keys::generate(wanted.cert.key_type)?;
    let days = wanted.cert.days.unwrap_or(crate::local_ca::DEFAULT_DAYS);
    let (chain, info) = ca.sign(&wanted.cert.domains, &key, days, wanted.cert.client_auth)?;
    Ok(Issued {
        key_pem: key.serialize_pem(),
        chain,
        info,
    })
}

/// Fetches the CA's renewal window for `cert`, records it (not in a dry run), and says
/// whether it is due now: Some(the leaf it replaces) when due.
pub(super) async fn ask_ca(
    store: &Store,
    account: &instant_acme::Account,
    cert: &JobCert,
    dry_run: bool,
) -> anyhow::Result<Option<Option<Vec<u8>>>> {
    let leaf = store.live_leaf(&cert.name)?;
    let server = &cert.settings.cert.server;
    // a dry run asks as a real run does, and decides on the answer without recording it
    let ari = if dry_run {
        fetch_ari(account, server, &leaf).await.unwrap_or_else(|e| {
            crate::log::warn(format_args!(
                "{}: {e:#}; renewal falls back to the certificate's lifetime",
                cert.name
            ));
            None
        })
    } else {
        refresh_ari(store, account, &cert.name, server, &leaf).await;
        store.ari(&cert.name)
    };
    let meta = store
        .lineage(&cert.name)?
        .with_context(|| format!("{} is no longer managed", cert.name))?
        .info;
    let decision = pem::decide(now(), meta.not_before, meta.not_after, ari.as_ref(), false);
    if decision != pem::Decision::Due {
        let says = format!(
            "{}: not due; the CA's renewal window starts {}",
            cert.name,
            ari.map_or_else(|| "nowhere (no ARI)".to_owned(), |a| date(a.window_start))
        );
        if dry_run {
            crate::log::info(format_args!("dry run: {says}"));
        } else {
            crate::log::verbose(format_args!("{says}"));
        }
        return Ok(None);
    }
    Ok(Some(Some(leaf)))
}

/// The renewal window an ARI CA (RFC 9773) gives for `leaf_der`; None from a CA without ARI.
async fn fetch_ari(
    account: &instant_acme::Account,
    server: &Server,
    leaf_der: &[u8],
) -> anyhow::Result<Option<pem::AriState>> {
    Ok(acme::renewal_info(account, server, leaf_der)
        .await?
        .map(|(window, retry_after)| {
            pem::AriState::new(
                window.start.unix_timestamp(),
                window.end.unix_timestamp(),
                random_fraction(),
                now(),
                retry_after.as_secs(),
            )
        }))
}

/// Asks an ARI CA (RFC 9773) for the new certificate's renewal window and records it, so
/// `renew` follows the CA's schedule; with a CA without ARI this sends nothing. A failure
/// only costs the window: the lifetime rule then decides, so it is a warning.
pub async fn refresh_ari(
    store: &Store,
    account: &instant_acme::Account,
    name: &CertName,
    server: &Server,
    leaf_der: &[u8],
) {
    let result = async {
        let ari = fetch_ari(account, server, leaf_der).await?;
        store.save_ari(name, ari.as_ref())
    }
    .await;
    if let Err(e) = result {
        // a stale window must not decide: without one the lifetime rule does
        let _ = store.save_ari(name, None);
        crate::log::warn(format_args!(
            "{name}: {e:#}; renewal falls back to the certificate's lifetime"
        ));
    }
}

/// A number in [0, 1) that differs between runs and hosts (to spread renewals in a window).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}
