//! Where a certificate says its revocation is published: the URIs of its CRL distribution
//! points (RFC 5280 §4.2.1.13). Pure; nothing fetches them. OCSP is gone from the public
//! CAs (Let's Encrypt ended it in 2025): certctl neither reads nor needs it.

use x509_parser::extensions::DistributionPointName;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

/// The URIs of `der`'s CRL distribution points, in order (empty when it has none or does
/// not parse).
pub fn crl_distribution_points(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut uris = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                for name in names {
                    if let GeneralName::URI(uri) = name {
                        uris.push((*uri).to_owned());
                    }
                }
            }
        }
    }
    uris
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crl_uris_of_a_certificate_are_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.fr".to_owned()]).unwrap();
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec!["http://crl.ca.test/1.crl".to_owned()],
        }];
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            crl_distribution_points(cert.der()),
            vec!["http://crl.ca.test/1.crl"]
        );
        let plain = rcgen::CertificateParams::new(vec!["b.fr".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(crl_distribution_points(plain.der()).is_empty());
        assert!(crl_distribution_points(b"junk").is_empty());
    }
}
