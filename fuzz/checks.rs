//! What each fuzz target checks on one input: no panic, and the invariants the rest of
//! certctl relies on. Shared by the cargo-fuzz targets (fuzz/fuzz_targets/) and by
//! tests/it/fuzz_seeds.rs, which runs the seed corpus and every crash found as plain tests.
//! Reads nothing from disk except what a config file's `ca_bundle` names.

use std::path::{Component, Path};

use certctl::deploy::haproxy::{Socket, find_cert, parse_cert_list, parse_serial};
use certctl::pem::{Chain, bundle, cert_info, certificates, check_key_matches};
use certctl::settings::{CertSettings, ConfigFile};
use certctl::types::{CertName, DomainName, parse_domains};

/// Names: DomainName::parse and parse_local, CertName::parse, a list of names.
pub fn names(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = DomainName::parse(raw) {
        let s = d.as_str();
        let host = s.strip_prefix("*.").unwrap_or(s);
        assert!(host.len() <= 253, "{raw:?} -> {s:?}");
        assert!(host.split('.').count() >= 2, "{raw:?} -> {s:?}");
        for label in host.split('.') {
            assert!((1..=63).contains(&label.len()), "{raw:?} -> {s:?}");
            assert!(
                label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{raw:?} -> {s:?}"
            );
            assert!(!label.starts_with('-') && !label.ends_with('-'), "{raw:?}");
        }
        assert_eq!(
            DomainName::parse(s).as_ref(),
            Ok(&d),
            "{raw:?} parses again"
        );
        check_cert_name_of(&d);
    }
    if let Ok(d) = DomainName::parse_local(raw) {
        let s = d.as_str();
        assert!(
            !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '\\'),
            "{raw:?} -> {s:?}"
        );
        assert_eq!(DomainName::parse_local(s).as_ref(), Ok(&d), "{raw:?}");
        check_cert_name_of(&d);
    }
    if let Ok(name) = CertName::parse(raw) {
        check_inside(&name);
    }
    let list: Vec<String> = raw.split_whitespace().map(str::to_owned).collect();
    if let Ok(domains) = parse_domains(&list, false) {
        assert!(!domains.is_empty() && domains.len() <= list.len());
    }
}

fn check_cert_name_of(d: &DomainName) {
    if let Ok(name) = CertName::from_domain(d) {
        assert_eq!(CertName::parse(name.as_str()).as_ref(), Ok(&name));
        check_inside(&name);
    }
}

fn check_inside(name: &CertName) {
    let parts: Vec<Component> = Path::new(name.as_str()).components().collect();
    assert!(
        matches!(parts.as_slice(), [Component::Normal(_)]) && !name.as_str().starts_with('.'),
        "{name:?} is not one plain file name"
    );
}

/// A P-256 key in PKCS#8, as certctl writes key.pem (a throwaway key, for the checks only).
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgnzM3b1MhEDMKp0nP
JJN+2HrOUb8Dx6UGZyjVc6Dow/ihRANCAASTrKYz2DqzRZHE88TPISyylxDIjwwa
4qo3sqg6EEXEJgewSlgxvVpYUGgBGGM6Mjp+meNrRfES8WZAkO3rGoCF
-----END PRIVATE KEY-----
";

/// PEM and certificates: certificates, Chain::parse, cert_info, bundle, check_key_matches.
pub fn pem(data: &[u8]) {
    let _ = cert_info(data);
    if let Ok(certs) = certificates(data) {
        for der in certs.iter().take(4) {
            if let Ok(info) = cert_info(der) {
                assert!(info.serial.bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(!info.serial.starts_with("00"), "{}", info.serial);
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(chain) = Chain::parse(text) {
        // what certctl writes reads back to the same certificates, leaf first
        let full = chain.fullchain_pem();
        let again = certificates(full.as_bytes()).expect("fullchain.pem parses");
        assert_eq!(again.first(), Some(&chain.leaf));
        assert_eq!(&again[1..], chain.intermediates.as_slice());
        // bundle() copies a key certctl generated or proved to match (check_key_matches):
        // that contract, not arbitrary text as a key
        let b = bundle(&chain, KEY);
        assert!(!b.lines().any(|l| l.trim().is_empty()), "no blank line");
        let back = pem::parse_many(b.as_bytes()).expect("the bundle parses");
        assert_eq!(back.len(), again.len() + 1);
        assert!(
            back[..again.len()]
                .iter()
                .zip(&again)
                .all(|(p, der)| p.contents() == der)
        );
        assert_eq!(back[again.len()].tag(), "PRIVATE KEY");
        let _ = check_key_matches(&chain.leaf, text);
    }
}

/// HAProxy's text replies: show ssl cert, the Serial line, the name lookup, socket specs.
pub fn haproxy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let list = parse_cert_list(&text);
    // names are never empty nor padded; a loaded certificate is never a `#` comment (a
    // transaction may name any file, `*#x` included)
    for name in list.transactions.iter().chain(&list.certificates) {
        assert!(!name.is_empty(), "{text:?}");
        assert_eq!(name.trim(), name, "{name:?}");
    }
    for name in &list.certificates {
        assert!(!name.starts_with('#') && !name.starts_with('*'), "{name:?}");
    }
    if let Some(serial) = parse_serial(&text) {
        assert_eq!(serial.trim(), serial);
    }
    for path in [
        "/etc/haproxy/ssl/a.pem",
        "/chroot/ssl/mon-app.fr.pem",
        "x.pem",
    ] {
        if let Ok(Some(name)) = find_cert(&list.certificates, Path::new(path)) {
            assert!(list.certificates.contains(&name), "{name:?}");
        }
    }
    if let Ok(socket) = Socket::parse(&text) {
        assert_eq!(Socket::parse(&socket.to_string()).ok(), Some(socket));
    }
}

/// The stored settings.json and the TOML config file.
pub fn settings(data: &[u8]) {
    if let Ok(settings) = serde_json::from_slice::<CertSettings>(data) {
        let json = serde_json::to_vec(&settings).expect("settings serialize");
        let again: CertSettings = serde_json::from_slice(&json).expect("settings read back");
        assert_eq!(again, settings);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = ConfigFile::parse(Path::new("/etc/certctl/config.toml"), text) {
            // every error names the file
            let message = format!("{e:#}");
            assert!(message.contains("/etc/certctl/config.toml"), "{message}");
        }
    }
}
