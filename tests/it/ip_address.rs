//! IP address identifiers (RFC 8738) end to end against real Pebble: `request 127.0.0.1`
//! (with a DNS name beside it) validated by HTTP-01 through HAProxy, the address an iPAddress
//! subjectAltName and never the Common Name; `list`, `renew` and `revoke` on it; IPv6 (`::1`)
//! with its colon-free certificate name; and the bad input (a wildcard on an address, DNS-01
//! for an address) refused with exit 2 and nothing changed.

use crate::common;

use std::fs;
use std::path::PathBuf;

use common::fixtures::{both_snapshots, request, serial_hex};
use common::{Lab, LabOptions};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

/// The leaf of `name`'s bundle, DER.
pub fn bundle_leaf(lab: &Lab, name: &str) -> Vec<u8> {
    let path = lab.ssl_dir().join(format!("{name}.pem"));
    let text = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    pem::parse_many(&text)
        .unwrap()
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .expect("a certificate in the bundle")
        .into_contents()
}

/// The subjectAltName entries of a certificate ("DNS:a" or "IP:1.2.3.4"), sorted, and the
/// subject's Common Names.
pub fn names(der: &[u8]) -> (Vec<String>, Vec<String>) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let mut sans = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                    GeneralName::IPAddress(ip) => {
                        let ip: std::net::IpAddr = match ip.len() {
                            4 => <[u8; 4]>::try_from(*ip).unwrap().into(),
                            _ => <[u8; 16]>::try_from(*ip).unwrap().into(),
                        };
                        sans.push(format!("IP:{ip}"));
                    }
                    other => sans.push(format!("{other:?}")),
                }
            }
        }
    }
    sans.sort();
    let cns = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap_or("?").to_owned())
        .collect();
    (sans, cns)
}

fn cert_dir(lab: &Lab, name: &str) -> PathBuf {
    lab.state_dir().join("certs").join(name)
}

#[test]
fn an_ip_address_certificate_is_issued_listed_renewed_and_revoked() {
    let lab = Lab::start();
    // Pebble validates 127.0.0.1 by HTTP on its httpPort: HAProxy, which forwards to certctl
    let out = request(&lab, &["127.0.0.1", "ip.mon-app.test"]);
    out.assert_success();
    let leaf = bundle_leaf(&lab, "127.0.0.1");
    let (sans, cns) = names(&leaf);
    assert_eq!(sans, ["DNS:ip.mon-app.test", "IP:127.0.0.1"]);
    assert!(
        cns.iter().all(|cn| cn.parse::<std::net::IpAddr>().is_err()),
        "an IP address in the Common Name: {cns:?}"
    );
    // Pebble saw an `ip` identifier (it refuses an address sent as `dns`)
    let settings = fs::read_to_string(cert_dir(&lab, "127.0.0.1").join("settings.json")).unwrap();
    assert!(settings.contains("\"127.0.0.1\""), "{settings}");

    let out = lab.run(&["list", "--json"]);
    out.assert_success();
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let row = &rows[0];
    assert_eq!(row["name"], "127.0.0.1", "{row}");
    assert!(row.to_string().contains("\"127.0.0.1\""), "{row}");

    lab.run(&["renew", "--force"]).assert_success();
    let renewed = bundle_leaf(&lab, "127.0.0.1");
    assert_ne!(
        serial_hex(&renewed),
        serial_hex(&leaf),
        "renew --force issued anew"
    );
    assert_eq!(names(&renewed).0, sans);

    let serial = serial_hex(&renewed);
    lab.run(&["revoke", "127.0.0.1", "--yes"]).assert_success();
    assert!(lab.cert_status(&serial).contains("Revoked"));
    assert!(!lab.ssl_dir().join("127.0.0.1.pem").exists());
    assert!(!cert_dir(&lab, "127.0.0.1").exists());
}

#[test]
fn an_ipv6_address_is_named_without_colons() {
    // no HAProxy: Pebble connects to [::1] on its httpPort, where certctl's responder listens
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let port = lab.http_addr().rsplit_once(':').unwrap().1.to_owned();
    let v6_addr = format!("[::1]:{port}");
    let out = lab.run(&["request", "--agree-tos", "--http-addr", &v6_addr, "::1"]);
    out.assert_success();
    // the store directory and bundle: '_' for ':' (HAProxy's crt-list commands read
    // `file:line`, so a ':' in a bundle name is ambiguous there)
    assert!(cert_dir(&lab, "__1").is_dir());
    // (Pebble itself copies the first identifier into the Common Name when the CSR has
    // none; certctl's CSR carries no subject: keys.rs tests it)
    let (sans, _) = names(&bundle_leaf(&lab, "__1"));
    assert_eq!(sans, ["IP:::1"]);
    let out = lab.run(&["list"]);
    out.assert_success();
    assert!(out.stdout.contains("::1"), "{}", out.stdout);
}

#[test]
fn bad_ip_input_exits_2_and_changes_nothing() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let before = both_snapshots(&lab);
    for (args, says) in [
        (vec!["*.1.2.3.4"], "wildcard on an IP address"),
        (
            vec!["*.mon-app.test", "*.127.0.0.1"],
            "wildcard on an IP address",
        ),
        (vec!["[2001:db8::1]"], "without brackets"),
        (
            vec![
                "127.0.0.1",
                "--challenge",
                "dns-01",
                "--dns-hook",
                "true",
                "--dns-cleanup-hook",
                "true",
            ],
            "DNS-01 cannot prove",
        ),
    ] {
        let out = request(&lab, &args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert_eq!(both_snapshots(&lab), before, "{args:?} changed something");
    }
}
