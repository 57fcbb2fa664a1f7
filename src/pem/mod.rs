//! Pure functions over certificate and key bytes: parse, split a chain, build a bundle,
//! check that a key matches a certificate, and decide when a certificate is due.
//! No I/O and no clock here: callers pass `now` in.

mod check;
mod crl;

pub use crl::crl_distribution_points;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

pub use check::{Expected, check_chain};

/// What certctl needs to know about an issued leaf, kept in meta.json so that deciding
/// whether to renew never parses a PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names and IP addresses from subjectAltName.
    pub names: Vec<String>,
    /// Issuer distinguished name, as text.
    pub issuer: String,
}

/// Splits PEM text into its DER certificates, in order; other blocks are skipped.
pub fn certificates(pem_bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let blocks = pem::parse_many(pem_bytes).map_err(|e| anyhow!("not valid PEM: {e}"))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect())
}

/// PEM text of one DER certificate, LF line endings, ending with a newline.
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The leaf and the rest of a chain as the CA sent it (leaf first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub leaf: Vec<u8>,
    pub intermediates: Vec<Vec<u8>>,
}

impl Chain {
    pub fn parse(pem_text: &str) -> anyhow::Result<Self> {
        let mut certs = certificates(pem_text.as_bytes())?.into_iter();
        let leaf = certs.next().context("the CA sent no certificate")?;
        Ok(Self {
            leaf,
            intermediates: certs.collect(),
        })
    }

    pub fn leaf_pem(&self) -> String {
        certificate_pem(&self.leaf)
    }

    pub fn chain_pem(&self) -> String {
        self.intermediates
            .iter()
            .map(|c| certificate_pem(c))
            .collect()
    }

    pub fn fullchain_pem(&self) -> String {
        self.leaf_pem() + &self.chain_pem()
    }
}

/// Parses a leaf certificate into the facts certctl keeps.
pub fn cert_info(der: &[u8]) -> anyhow::Result<CertInfo> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| anyhow!("not a valid X.509 certificate: {e}"))?;
    let mut names = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => names.push(d.to_string()),
                    GeneralName::IPAddress(ip) => names.push(ip_text(ip)),
                    _ => {}
                }
            }
        }
    }
    Ok(CertInfo {
        serial: cert
            .tbs_certificate
            .raw_serial()
            .iter()
            .skip_while(|b| **b == 0)
            .map(|b| format!("{b:02x}"))
            .collect(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        names,
        issuer: cert.issuer().to_string(),
    })
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => String::from("?"),
    }
}

/// The SubjectPublicKeyInfo DER of a certificate.
fn cert_spki(der: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| anyhow!("not a valid X.509 certificate: {e}"))?;
    Ok(cert.public_key().raw.to_vec())
}

/// Checks that the private key (PEM) belongs to the certificate (DER).
pub fn check_key_matches(cert_der: &[u8], key_pem: &str) -> anyhow::Result<()> {
    use rcgen::PublicKeyData;
    let key = rcgen::KeyPair::from_pem(key_pem)
        .map_err(|e| anyhow!("the private key is not usable: {e}"))?;
    if key.subject_public_key_info() != cert_spki(cert_der)? {
        bail!("the private key does not match the certificate");
    }
    Ok(())
}

/// A bundle as HAProxy loads it: leaf, intermediates, private key; no blank lines, since
/// HAProxy's runtime API stops reading a payload at the first blank line.
pub fn bundle(chain: &Chain, key_pem: &str) -> String {
    let mut out = chain.fullchain_pem();
    for line in key_pem.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// When a certificate becomes due: a third of its lifetime before expiry, or half of it
/// when the lifetime is under ten days (short-lived certificates need more slack).
pub fn renewal_time(not_before: i64, not_after: i64) -> i64 {
    // saturating: meta.json is a file, and a wrapped subtraction would decide anything
    let lifetime = not_after.saturating_sub(not_before).max(0);
    let margin = if lifetime < 10 * 86_400 {
        lifetime / 2
    } else {
        lifetime / 3
    };
    not_after.saturating_sub(margin)
}

/// True when a certificate valid from `not_before` to `not_after` is due at `now`.
pub fn renewal_due(now: i64, not_before: i64, not_after: i64) -> bool {
    now >= renewal_time(not_before, not_after)
}

/// What the CA's ARI answer (RFC 9773) said, kept beside the certificate so that a cron
/// run decides without asking again before `next_check` (the CA's Retry-After).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AriState {
    pub window_start: i64,
    pub window_end: i64,
    /// The random point of the window chosen when it was fetched.
    pub renew_at: i64,
    pub next_check: i64,
}

/// The longest certctl waits before asking the CA's window again, whatever its Retry-After:
/// under a twice-daily timer every run asks, so a 6-day certificate whose window moves (a
/// revocation, a CA incident) is renewed within hours.
pub const ARI_LONGEST_WAIT: i64 = 8 * 3600;

impl AriState {
    /// `fraction` in [0, 1) picks the point of the window, so that many clients spread out.
    pub fn new(
        window_start: i64,
        window_end: i64,
        fraction: f64,
        now: i64,
        retry_after_secs: u64,
    ) -> Self {
        let span = window_end.saturating_sub(window_start).max(0) as f64;
        let retry = i64::try_from(retry_after_secs)
            .unwrap_or(i64::MAX)
            .clamp(60, ARI_LONGEST_WAIT);
        Self {
            window_start,
            window_end,
            renew_at: window_start.saturating_add((span * fraction.clamp(0.0, 1.0)) as i64),
            next_check: now.saturating_add(retry),
        }
    }
}

/// What `renew` does with one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Due,
    NotDue,
    /// The CA's renewal window must be fetched again before deciding.
    AskCa,
}

/// Whether a certificate is due: inside the CA's ARI window when the CA offers one (asking
/// again once its Retry-After has passed), otherwise by lifetime (`renewal_due`). Even with
/// ARI, a certificate with under a tenth of its lifetime left is renewed: a CA whose
/// window never arrives must not let a site expire.
pub fn decide(
    now: i64,
    not_before: i64,
    not_after: i64,
    ari: Option<&AriState>,
    force: bool,
) -> Decision {
    if force {
        return Decision::Due;
    }
    let Some(ari) = ari else {
        return if renewal_due(now, not_before, not_after) {
            Decision::Due
        } else {
            Decision::NotDue
        };
    };
    let last_tenth = not_after.saturating_sub(not_after.saturating_sub(not_before).max(0) / 10);
    if now >= ari.renew_at || now >= last_tenth {
        Decision::Due
    } else if now >= ari.next_check {
        Decision::AskCa
    } else {
        Decision::NotDue
    }
}

/// The first time at which `decide` (without force) stops answering `NotDue`: the renewal
/// time, or with an ARI window its chosen point, its next check or the last tenth of the
/// lifetime, whichever comes first.
pub fn decision_changes_at(not_before: i64, not_after: i64, ari: Option<&AriState>) -> i64 {
    let Some(ari) = ari else {
        return renewal_time(not_before, not_after);
    };
    let last_tenth = not_after.saturating_sub(not_after.saturating_sub(not_before).max(0) / 10);
    ari.renew_at.min(last_tenth).min(ari.next_check)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn the_decision_changes_exactly_when_said() {
        let (nb, na) = (T0, T0 + 90 * DAY);
        let windows = [
            None,
            Some(AriState {
                window_start: T0 + 50 * DAY,
                window_end: T0 + 52 * DAY,
                renew_at: T0 + 51 * DAY,
                next_check: T0 + 10 * DAY,
            }),
            Some(AriState {
                window_start: T0 + 85 * DAY,
                window_end: T0 + 89 * DAY,
                renew_at: T0 + 88 * DAY,
                next_check: T0 + 87 * DAY,
            }),
        ];
        for ari in &windows {
            let at = decision_changes_at(nb, na, ari.as_ref());
            assert_eq!(
                decide(at - 1, nb, na, ari.as_ref(), false),
                Decision::NotDue
            );
            assert_ne!(decide(at, nb, na, ari.as_ref(), false), Decision::NotDue);
        }
    }
    // 2026-01-01T00:00:00Z
    const T0: i64 = 1_767_225_600;

    #[test]
    fn ninety_day_certificate_is_due_with_thirty_days_left() {
        let (nb, na) = (T0, T0 + 90 * DAY);
        assert!(!renewal_due(T0 + 59 * DAY, nb, na));
        assert!(renewal_due(T0 + 60 * DAY, nb, na));
        assert!(renewal_due(na + DAY, nb, na));
    }

    #[test]
    fn six_day_certificate_is_due_at_half_its_life() {
        let (nb, na) = (T0, T0 + 6 * DAY);
        assert!(!renewal_due(T0 + 2 * DAY, nb, na));
        assert!(renewal_due(T0 + 3 * DAY, nb, na));
    }

    #[test]
    fn renewal_never_uses_a_fixed_number_of_days() {
        // a one-year certificate is due four months before expiry, not thirty days
        let (nb, na) = (T0, T0 + 360 * DAY);
        assert_eq!(renewal_time(nb, na), T0 + 240 * DAY);
    }

    #[test]
    fn ari_window_decides_and_retry_after_is_honoured() {
        let (nb, na) = (T0, T0 + 90 * DAY);
        let ari = AriState::new(T0 + 10 * DAY, T0 + 12 * DAY, 0.5, T0, 6 * 3600);
        assert_eq!(ari.renew_at, T0 + 11 * DAY);
        assert_eq!(ari.next_check, T0 + 6 * 3600);
        // before Retry-After: no request, not due (even though ARI is far from the 1/3 rule)
        assert_eq!(
            decide(T0 + 3600, nb, na, Some(&ari), false),
            Decision::NotDue
        );
        // Retry-After passed, window not reached: ask again
        assert_eq!(
            decide(T0 + 7 * 3600, nb, na, Some(&ari), false),
            Decision::AskCa
        );
        // inside the window, at the chosen point: due
        assert_eq!(
            decide(T0 + 11 * DAY, nb, na, Some(&ari), false),
            Decision::Due
        );
        // without ARI the lifetime rule applies; --force always renews
        assert_eq!(decide(T0 + 11 * DAY, nb, na, None, false), Decision::NotDue);
        assert_eq!(decide(T0, nb, na, None, true), Decision::Due);
    }

    #[test]
    fn ari_never_lets_a_certificate_expire() {
        let (nb, na) = (T0, T0 + 90 * DAY);
        let far = AriState::new(na + DAY, na + 2 * DAY, 0.0, T0, 86_400 * 30);
        assert_eq!(
            decide(T0 + 82 * DAY, nb, na, Some(&far), false),
            Decision::Due
        );
    }

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn bundle_has_leaf_chain_key_and_no_blank_lines() {
        let (leaf, key) = self_signed(&["a.fr"]);
        let (inter, _) = self_signed(&["ca.test"]);
        let text = format!("{leaf}\n\n{inter}\n");
        let chain = Chain::parse(&text).unwrap();
        assert_eq!(chain.intermediates.len(), 1);
        let b = bundle(&chain, &format!("{key}\n\n"));
        assert!(!b.lines().any(|l| l.trim().is_empty()), "{b}");
        assert_eq!(certificates(b.as_bytes()).unwrap().len(), 2);
        assert!(b.trim_end().ends_with("-----END PRIVATE KEY-----"));
        assert!(b.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn key_match_is_checked() {
        let (leaf, key) = self_signed(&["a.fr", "www.a.fr"]);
        let (_, other_key) = self_signed(&["b.fr"]);
        let der = certificates(leaf.as_bytes()).unwrap().remove(0);
        check_key_matches(&der, &key).unwrap();
        assert!(check_key_matches(&der, &other_key).is_err());
        let info = cert_info(&der).unwrap();
        assert_eq!(info.names, vec!["a.fr", "www.a.fr"]);
        assert!(info.not_after > info.not_before);
    }
}
