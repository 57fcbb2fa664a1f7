//! The local CA (`--server local`): a CA certctl keeps in the state (`<state-dir>/ca/` with
//! the file backend), created on first use, that signs leaf certificates directly with no
//! network, for closed networks (seed 002) and re-encrypted backends (seed 003). It also
//! keeps the list of revoked serials and the CRL HAProxy's `crl-file` reads. It stores
//! through the state interface only.

use anyhow::{Context, anyhow};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::pem::{CertInfo, Chain};
use crate::store::{Key, Store};
use crate::types::DomainName;

const CA_YEARS: i64 = 10;
/// A CRL is valid this long; `certctl ca crl` and every revoke issue a fresh one.
const CRL_DAYS: i64 = 30;
pub const DEFAULT_DAYS: u32 = 90;

pub struct LocalCa {
    cert_pem: String,
    key: KeyPair,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Revoked {
    /// lowercase hex
    serial: String,
    revoked_at: i64,
    reason: u8,
}

impl LocalCa {
    /// The CA of the state, or None when none was created yet.
    pub fn open(store: &Store) -> anyhow::Result<Option<Self>> {
        let Some(cert) = store.read(&Key::CaCert)? else {
            return Ok(None);
        };
        let cert_pem = String::from_utf8(cert)
            .map_err(|_| anyhow!("{} is not text", store.label(&Key::CaCert)))?;
        let key_pem = store
            .read(&Key::CaKey)?
            .with_context(|| format!("{} is missing", store.label(&Key::CaKey)))?;
        let key = std::str::from_utf8(&key_pem)
            .ok()
            .and_then(|pem| KeyPair::from_pem(pem).ok())
            .ok_or_else(|| anyhow!("{} is not a usable key", store.label(&Key::CaKey)))?;
        Ok(Some(Self { cert_pem, key }))
    }

    /// Opens the CA, creating it first when there is none (the caller holds the lock).
    pub fn open_or_create(store: &Store) -> anyhow::Result<Self> {
        if let Some(ca) = Self::open(store)? {
            return Ok(ca);
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| anyhow!("generating the CA key: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("certctl local CA on {}", hostname()),
        );
        dn.push(DnType::OrganizationName, "certctl");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(365 * CA_YEARS);
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| anyhow!("signing the CA certificate: {e}"))?;
        // key first: a CA certificate without its key would be useless
        store.write(&Key::CaKey, key.serialize_pem().as_bytes())?;
        store.write(&Key::CaCert, cert.pem().as_bytes())?;
        let ca = Self {
            cert_pem: cert.pem(),
            key,
        };
        ca.write_crl(store)?;
        crate::log::info(format_args!(
            "created the local CA {}",
            store.label(&Key::CaCert)
        ));
        Ok(ca)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn issuer(&self) -> anyhow::Result<Issuer<'static, &KeyPair>> {
        Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|e| anyhow!("reading the local CA certificate: {e}"))
    }

    /// Signs a leaf for `names` (DNS names or IP addresses) with `key`, valid `days`.
    pub fn sign(
        &self,
        names: &[DomainName],
        key: &KeyPair,
        days: u32,
        client_auth: bool,
    ) -> anyhow::Result<(Chain, CertInfo)> {
        let mut params = CertificateParams::new(
            names
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect::<Vec<_>>(),
        )
        .context("building the certificate")?;
        let mut dn = DistinguishedName::new();
        if let Some(first) = names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(i64::from(days));
        params.serial_number = Some(random_serial());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if client_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(key, &self.issuer()?)
            .map_err(|e| anyhow!("signing the certificate: {e}"))?;
        let chain = Chain {
            leaf: cert.der().to_vec(),
            intermediates: Vec::new(),
        };
        let info = crate::pem::cert_info(&chain.leaf)?;
        Ok((chain, info))
    }

    fn revoked(store: &Store) -> anyhow::Result<Vec<Revoked>> {
        match store.read(&Key::CaRevoked)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is damaged", store.label(&Key::CaRevoked))),
            None => Ok(Vec::new()),
        }
    }

    /// Adds `serial` (hex) to the revoked list and writes a fresh CRL (the caller holds the lock).
    pub fn revoke(&self, store: &Store, serial: &str, reason: u8) -> anyhow::Result<()> {
        let mut revoked = Self::revoked(store)?;
        if !revoked.iter().any(|r| r.serial == serial) {
            revoked.push(Revoked {
                serial: serial.to_owned(),
                revoked_at: OffsetDateTime::now_utc().unix_timestamp(),
                reason,
            });
            store.write(&Key::CaRevoked, &serde_json::to_vec_pretty(&revoked)?)?;
        }
        self.write_crl(store)
    }

    /// A CRL of every revoked serial, valid for the next 30 days.
    pub fn crl_pem(&self, store: &Store) -> anyhow::Result<String> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = Self::revoked(store)?
            .into_iter()
            .map(|r| {
                let serial = hex_bytes(&r.serial).with_context(|| {
                    format!(
                        "{} is damaged: {:?} is not a serial number in hex",
                        store.label(&Key::CaRevoked),
                        r.serial.chars().take(64).collect::<String>()
                    )
                })?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: OffsetDateTime::from_unix_timestamp(r.revoked_at)
                        .unwrap_or(now),
                    reason_code: reason_code(r.reason),
                    invalidity_date: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(CRL_DAYS),
            crl_number: SerialNumber::from_slice(&now.unix_timestamp().to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.issuer()?)
            .map_err(|e| anyhow!("signing the CRL: {e}"))?;
        crl.pem().map_err(|e| anyhow!("encoding the CRL: {e}"))
    }

    /// Writes the CRL afresh (`ca/crl.pem`), for HAProxy's `crl-file`.
    pub fn write_crl(&self, store: &Store) -> anyhow::Result<()> {
        store.write(&Key::Crl, self.crl_pem(store)?.as_bytes())
    }
}

/// The stored CRL's thisUpdate and nextUpdate (Unix seconds); None when there is none or
/// it cannot be read.
pub fn crl_validity(store: &Store) -> Option<(i64, i64)> {
    use x509_parser::prelude::FromDer;
    let pem_bytes = store.read(&Key::Crl).ok()??;
    let der = ::pem::parse(&pem_bytes).ok()?.into_contents();
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).ok()?;
    let next = crl.next_update()?.timestamp();
    Some((crl.last_update().timestamp(), next))
}

/// Whether a CRL valid from `this_update` to `next_update` is to be signed again at `now`:
/// once more than half of its validity has passed.
pub fn crl_due(now: i64, this_update: i64, next_update: i64) -> bool {
    now >= this_update + (next_update - this_update) / 2
}

/// Signs the CRL again when it is due (or unreadable) and the CA exists; returns the new
/// CRL (the caller holds the lock).
pub fn refresh_crl(store: &Store, now: i64) -> anyhow::Result<Option<String>> {
    if crl_validity(store).is_some_and(|(this, next)| !crl_due(now, this, next)) {
        return Ok(None);
    }
    let Some(ca) = LocalCa::open(store)? else {
        return Ok(None);
    };
    let crl = ca.crl_pem(store)?;
    store.write(&Key::Crl, crl.as_bytes())?;
    Ok(Some(crl))
}

fn reason_code(reason: u8) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason::*;
    Some(match reason {
        1 => KeyCompromise,
        3 => AffiliationChanged,
        4 => Superseded,
        5 => CessationOfOperation,
        _ => Unspecified,
    })
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // a failing system RNG would make every key unsafe too; fall back to the clock only
    // to keep serials distinct
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = nanos.to_be_bytes();
    }
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte to strip
    SerialNumber::from_slice(&bytes)
}

/// The bytes of a serial written in hex: 1 to 20 bytes (RFC 5280), None for anything else
/// (a damaged revoked.json may hold any text).
fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || hex.len() > 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "this host".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Certificate};

    #[test]
    fn ca_signs_dns_and_ip_leaves_that_chain_to_it() {
        let state = tempfile::tempdir().unwrap();
        let store = Store::files(state.path());
        let ca = LocalCa::open_or_create(&store).unwrap();
        let ca_der = crate::pem::certificates(ca.cert_pem().as_bytes())
            .unwrap()
            .remove(0);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        let bc = ca_cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca && bc.path_len_constraint == Some(0));
        assert!(
            ca_cert
                .subject()
                .to_string()
                .contains("certctl local CA on")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(state.path().join("ca/ca.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );

        let names = vec![
            DomainName::parse_local("backend.lan").unwrap(),
            DomainName::parse_local("10.0.0.5").unwrap(),
        ];
        let key = KeyPair::generate().unwrap();
        let (chain, info) = ca.sign(&names, &key, 30, true).unwrap();
        assert_eq!(info.names, vec!["backend.lan", "10.0.0.5"]);
        assert!((info.not_after - info.not_before - 30 * 86_400).abs() < 600);
        let (_, leaf) = X509Certificate::from_der(&chain.leaf).unwrap();
        assert!(leaf.verify_signature(Some(ca_cert.public_key())).is_ok());
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);

        // reopened from disk, the same CA
        let again = LocalCa::open_or_create(&store).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
    }

    #[test]
    fn a_damaged_revoked_list_is_an_error_not_a_panic() {
        let state = tempfile::tempdir().unwrap();
        let store = Store::files(state.path());
        let ca = LocalCa::open_or_create(&store).unwrap();
        for serial in ["\u{e9}\u{e9}", "", "zz", &"ab".repeat(21), "0a:1b"] {
            let json = format!(r#"[{{"serial":"{serial}","revoked_at":0,"reason":1}}]"#);
            store.write(&Key::CaRevoked, json.as_bytes()).unwrap();
            let err = format!("{:#}", ca.crl_pem(&store).unwrap_err());
            assert!(err.contains("revoked.json is damaged"), "{serial:?}: {err}");
        }
        for json in [
            "{",
            "[{\"serial\":\"0a\",\"revoked_at\":1e99,\"reason\":1}]",
            "[{\"serial\":\"0a\",\"revoked_at\":0,\"reason\":300}]",
        ] {
            store.write(&Key::CaRevoked, json.as_bytes()).unwrap();
            assert!(ca.crl_pem(&store).is_err(), "{json}");
        }
        let huge_time = r#"[{"serial":"0a","revoked_at":9223372036854775807,"reason":1}]"#;
        store.write(&Key::CaRevoked, huge_time.as_bytes()).unwrap();
        ca.crl_pem(&store).unwrap();
    }

    #[test]
    fn the_crl_is_signed_again_past_half_its_validity() {
        let day = 86_400;
        assert!(!crl_due(14 * day, 0, 30 * day));
        assert!(crl_due(15 * day, 0, 30 * day));
        assert!(crl_due(31 * day, 0, 30 * day));
    }

    #[test]
    fn revoked_serials_are_in_the_crl() {
        let state = tempfile::tempdir().unwrap();
        let store = Store::files(state.path());
        let ca = LocalCa::open_or_create(&store).unwrap();
        ca.revoke(&store, "0a1b2c", 1).unwrap();
        ca.revoke(&store, "0a1b2c", 1).unwrap();
        let der = pem::parse(ca.crl_pem(&store).unwrap())
            .unwrap()
            .into_contents();
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
        let serials: Vec<String> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial_as_string())
            .collect();
        assert_eq!(serials, vec!["0a:1b:2c"]);
    }
}
