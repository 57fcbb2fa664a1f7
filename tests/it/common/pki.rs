//! Test-time certificates made with rcgen: the CA and leaf for Pebble's own HTTPS listener,
//! HAProxy's placeholder, and self-signed bundles for tests. Never touches the network or
//! the lab's processes; callers decide where the PEM goes.

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate with its private key, both PEM, plus the certificate's DER.
pub struct Bundle {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl Bundle {
    /// Certificate then key: the single-file layout HAProxy's `crt` expects.
    pub fn haproxy_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// The CA that signs Pebble's HTTPS listener (`Lab::ca_bundle`) and that listener's leaf.
pub struct ListenerPki {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub leaf: Bundle,
}

/// A fresh CA and a leaf for `localhost` and 127.0.0.1 signed by it.
pub fn listener_pki() -> ListenerPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("empty CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certctl lab listener CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("generating CA key");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-signing CA");

    let mut leaf_params = CertificateParams::new(Vec::<String>::new()).expect("empty leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().expect("valid DNS name")),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    ];
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().expect("generating leaf key");
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &ca)
        .expect("signing listener leaf");

    ListenerPki {
        ca_pem: ca.pem(),
        ca_der: ca.der().to_vec(),
        leaf: Bundle {
            cert_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
            cert_der: leaf_cert.der().to_vec(),
        },
    }
}

/// A self-signed leaf for `names` (DNS names; the first is also the CN), with its key.
pub fn self_signed(names: &[&str]) -> Bundle {
    let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(owned).expect("valid subject alt names");
    if let Some(first) = names.first() {
        params.distinguished_name.push(DnType::CommonName, *first);
    }
    let key = KeyPair::generate().expect("generating key");
    let cert = params.self_signed(&key).expect("self-signing leaf");
    Bundle {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
    }
}
