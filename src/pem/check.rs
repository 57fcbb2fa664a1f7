//! Whether a chain may be installed: the leaf names exactly what was asked for, is valid at
//! `now`, goes with our key, and every certificate of the chain is signed by the next one
//! (a leaf with nothing to link it to its CA is refused where an issuer is expected). Each
//! refusal names the check that failed. Pure: the caller passes the names and the time.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Chain, cert_info, check_key_matches};

/// Clock difference tolerated between certctl's host and the CA's (a leaf valid from a few
/// seconds in the future is fine).
const CLOCK_SKEW: i64 = 300;

/// What a chain is checked against; a check whose input is None is skipped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// The identifiers asked for (DNS names, IP addresses), exactly.
    pub names: Option<&'a [String]>,
    /// The time the leaf must be valid at.
    pub now: Option<i64>,
    /// Whether the leaf's issuer must be in the chain (an ACME CA sends its intermediate;
    /// the local CA signs leaves directly and its root is trusted on its own).
    pub issuer_in_chain: bool,
}

/// Checks `chain` and `key_pem` against `expected`; the error names the check that failed.
pub fn check_chain(chain: &Chain, key_pem: &str, expected: Expected<'_>) -> anyhow::Result<()> {
    let info = cert_info(&chain.leaf)?;
    if let Some(wanted) = expected.names {
        let got = name_set(&info.names);
        let asked = name_set(wanted);
        if got != asked {
            bail!(
                "names check failed: the certificate is for {}, not for {}",
                join(&got),
                join(&asked)
            );
        }
    }
    if let Some(now) = expected.now {
        if info.not_before > now + CLOCK_SKEW || info.not_after <= now {
            bail!(
                "validity check failed: the certificate is valid from {} to {}, not now ({})",
                utc(info.not_before),
                utc(info.not_after),
                utc(now)
            );
        }
    }
    check_key_matches(&chain.leaf, key_pem).map_err(|e| anyhow!("key check failed: {e:#}"))?;
    check_links(chain, expected.issuer_in_chain).map_err(|e| anyhow!("chain check failed: {e}"))
}

/// Each certificate is issued (name and signature) by the next one.
fn check_links(chain: &Chain, issuer_in_chain: bool) -> Result<(), String> {
    let ders: Vec<&[u8]> = std::iter::once(chain.leaf.as_slice())
        .chain(chain.intermediates.iter().map(Vec::as_slice))
        .collect();
    let certs = ders
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| format!("certificate {} of the chain is not X.509: {e}", i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, pair) in certs.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if child.issuer() != parent.subject() {
            return Err(format!(
                "certificate {} ({}) is issued by {}, but the next one in the chain is {}",
                i + 1,
                child.subject(),
                child.issuer(),
                parent.subject()
            ));
        }
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|e| {
                format!(
                    "certificate {} ({}) does not carry a valid signature of {}: {e}",
                    i + 1,
                    child.subject(),
                    parent.subject()
                )
            })?;
    }
    let leaf = &certs[0];
    if issuer_in_chain && certs.len() == 1 && leaf.issuer() != leaf.subject() {
        return Err(format!(
            "the CA sent the certificate without its issuer {} (the intermediate is missing); \
             clients could not verify it",
            leaf.issuer()
        ));
    }
    Ok(())
}

/// Names compared as the CA writes them: DNS names without case, IP addresses by value.
fn name_set(names: &[String]) -> BTreeSet<String> {
    names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => n.trim_end_matches('.').to_ascii_lowercase(),
        })
        .collect()
}

/// A time as RFC 3339, UTC.
fn utc(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

fn join(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "no name".into();
    }
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;

    struct Ca {
        key: KeyPair,
        params: CertificateParams,
    }

    fn new_ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca { key, params }
    }

    impl Ca {
        fn der(&self) -> Vec<u8> {
            self.params
                .clone()
                .self_signed(&self.key)
                .unwrap()
                .der()
                .to_vec()
        }

        /// A leaf for `names` with `key`, valid `days_from` to `days_to` days from now.
        fn leaf(&self, names: &[&str], key: &KeyPair, days: (i64, i64)) -> Vec<u8> {
            let mut params =
                CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now + time::Duration::days(days.0);
            params.not_after = now + time::Duration::days(days.1);
            let issuer = Issuer::from_params(&self.params, &self.key);
            params.signed_by(key, &issuer).unwrap().der().to_vec()
        }
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn only_the_certificate_asked_for_passes_and_each_failure_names_its_check() {
        let ca = new_ca("Test CA");
        let key = KeyPair::generate().unwrap();
        let key_pem = key.serialize_pem();
        let wanted = vec!["a.test".to_owned(), "10.0.0.5".to_owned()];
        let expected = Expected {
            names: Some(&wanted),
            now: Some(now()),
            issuer_in_chain: true,
        };
        let good = Chain {
            leaf: ca.leaf(&["a.test", "10.0.0.5"], &key, (-1, 30)),
            intermediates: vec![ca.der()],
        };
        check_chain(&good, &key_pem, expected).unwrap();

        let failure = |chain: &Chain, key_pem: &str| {
            format!("{:#}", check_chain(chain, key_pem, expected).unwrap_err())
        };
        let other_names = Chain {
            leaf: ca.leaf(&["b.test"], &key, (-1, 30)),
            ..good.clone()
        };
        let err = failure(&other_names, &key_pem);
        assert!(
            err.starts_with("names check failed") && err.contains("b.test"),
            "{err}"
        );
        let one_more = Chain {
            leaf: ca.leaf(&["a.test", "10.0.0.5", "c.test"], &key, (-1, 30)),
            ..good.clone()
        };
        assert!(failure(&one_more, &key_pem).starts_with("names check failed"));
        let expired = Chain {
            leaf: ca.leaf(&["a.test", "10.0.0.5"], &key, (-30, -1)),
            ..good.clone()
        };
        assert!(failure(&expired, &key_pem).starts_with("validity check failed"));
        let not_yet = Chain {
            leaf: ca.leaf(&["a.test", "10.0.0.5"], &key, (2, 30)),
            ..good.clone()
        };
        assert!(failure(&not_yet, &key_pem).starts_with("validity check failed"));
        let other_key = KeyPair::generate().unwrap().serialize_pem();
        assert!(failure(&good, &other_key).starts_with("key check failed"));
        let no_intermediate = Chain {
            intermediates: vec![],
            ..good.clone()
        };
        let err = failure(&no_intermediate, &key_pem);
        assert!(err.contains("the intermediate is missing"), "{err}");
        let wrong_intermediate = Chain {
            intermediates: vec![new_ca("Other CA").der()],
            ..good.clone()
        };
        let err = failure(&wrong_intermediate, &key_pem);
        assert!(err.starts_with("chain check failed"), "{err}");
        // same name, another key: the signature gives it away
        let impostor = Ca {
            key: KeyPair::generate().unwrap(),
            params: ca.params.clone(),
        };
        let forged = Chain {
            intermediates: vec![impostor.der()],
            ..good.clone()
        };
        let err = failure(&forged, &key_pem);
        assert!(err.contains("valid signature"), "{err}");
        // the local CA's leaves come alone: no issuer expected in the chain
        let local = Expected {
            issuer_in_chain: false,
            ..expected
        };
        check_chain(&no_intermediate, &key_pem, local).unwrap();
    }
}
