//! Private keys and certificate signing requests for the certificates certctl orders.
//! Keys are generated fresh for every order and never logged.

use anyhow::{Context, anyhow};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, RsaKeySize};

use crate::types::{DomainName, KeyType};

pub fn generate(key_type: KeyType) -> anyhow::Result<KeyPair> {
    let key = match key_type {
        KeyType::Ec256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::Ec384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
    };
    key.map_err(|e| anyhow!("generating a {key_type:?} key: {e}"))
}

/// A DER CSR naming every domain as a subjectAltName and nothing in the subject.
pub fn csr(domains: &[DomainName], key: &KeyPair) -> anyhow::Result<Vec<u8>> {
    let mut params = CertificateParams::new(
        domains
            .iter()
            .map(|d| d.as_str().to_owned())
            .collect::<Vec<_>>(),
    )
    .context("building the certificate request")?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(key)
        .context("signing the certificate request")?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_signs_a_csr() {
        let domains = vec![DomainName::parse("a.fr").unwrap()];
        for kt in [KeyType::Ec256, KeyType::Ec384, KeyType::Rsa2048] {
            let key = generate(kt).unwrap();
            assert!(!csr(&domains, &key).unwrap().is_empty());
        }
    }

    #[test]
    fn ip_addresses_are_ip_sans_and_never_the_common_name() {
        use x509_parser::prelude::{
            FromDer, GeneralName, ParsedExtension, X509CertificationRequest,
        };
        let domains = crate::types::parse_domains(
            &["203.0.113.7".into(), "2001:db8::1".into(), "a.fr".into()],
            false,
        )
        .unwrap();
        let der = csr(&domains, &generate(KeyType::Ec256).unwrap()).unwrap();
        let (_, request) = X509CertificationRequest::from_der(&der).unwrap();
        let info = &request.certification_request_info;
        assert_eq!(info.subject.iter_common_name().count(), 0, "no Common Name");
        let mut sans = Vec::new();
        for ext in request.requested_extensions().into_iter().flatten() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    sans.push(match name {
                        GeneralName::IPAddress(ip) => format!("ip {}", ip.len()),
                        GeneralName::DNSName(d) => format!("dns {d}"),
                        other => format!("{other:?}"),
                    });
                }
            }
        }
        assert_eq!(sans, ["ip 4", "ip 16", "dns a.fr"]);
    }
}
