//! tls-alpn-01 (RFC 8737) end to end: Pebble's tlsPort is HAProxy's TCP frontend (the
//! README's port 443), which sends ClientHellos offering acme-tls/1 to certctl's listener
//! and every other one to the HTTPS frontend. While an order waits for validation (held at
//! the CA front, no clock involved) ordinary TLS on that port keeps getting the site's
//! certificate and the validator's view gets the challenge certificate; an IP address by
//! tls-alpn-01; renew repeats the stored challenge; the bad input exits 2, nothing changed.

use crate::common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::ca_front::{CaFront, Fault};
use common::fixtures::{both_snapshots, certctl_with, serial_hex};
use common::{Lab, LabOptions, Output, run_command, tls};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ip_address::{bundle_leaf, names};

/// id-pe-acmeIdentifier.
const ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";

fn lab() -> Lab {
    Lab::start_with(LabOptions {
        tls_alpn_front: true,
        ..Default::default()
    })
}

/// A handshake on the lab's port 443 offering `protocols`: the leaf served and the protocol
/// chosen.
fn handshake(lab: &Lab, sni: &str, protocols: &[&str]) -> Result<(Vec<u8>, String), String> {
    let mut config = (*tls::config_accepting_anything()).clone();
    config.alpn_protocols = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
    let stream = tls::handshake(lab.tls_front_addr(), sni, Arc::new(config))?;
    let chosen = stream
        .conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let leaf = tls::peer_chain(&stream)
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok((leaf, chosen))
}

/// The acmeIdentifier extension of a certificate: (critical, value).
fn acme_identifier(der: &[u8]) -> Option<(bool, Vec<u8>)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER)
        .map(|e| (e.critical, e.value.to_vec()))
}

fn request_alpn(lab: &Lab, args: &[&str]) -> Output {
    let alpn = lab.tls_alpn_addr();
    let mut all = vec![
        "request",
        "--agree-tos",
        "--challenge",
        "tls-alpn-01",
        "--tls-alpn-addr",
        alpn.as_str(),
    ];
    all.extend_from_slice(args);
    lab.run(&all)
}

#[test]
fn tls_alpn_01_behind_haproxy_while_the_sites_keep_their_tls() {
    let lab = lab();
    // 1. a certificate proved by tls-alpn-01 alone, through HAProxy's port 443; HAProxy
    //    reloaded to serve it
    let reload = lab.reload_command();
    request_alpn(&lab, &["site.mon-app.test", "--post-hook", &reload]).assert_success();
    let site = bundle_leaf(&lab, "site.mon-app.test");
    assert_eq!(names(&site).0, ["DNS:site.mon-app.test"]);
    // no order runs: nothing answers acme-tls/1 (HAProxy's backend has no server)
    assert!(handshake(&lab, "site.mon-app.test", &["acme-tls/1"]).is_err());

    // 2. another order, held at the CA front once certctl has presented its answer and
    //    tells the CA the challenge is ready
    let front = CaFront::start(&lab);
    front.set_fault("/chalZ/", Fault::Hold);
    let server = front.directory_url();
    let mut command = certctl_with(&lab, &[("--server", server.as_ref())]);
    let alpn = lab.tls_alpn_addr();
    command.args([
        "request",
        "--agree-tos",
        "--challenge",
        "tls-alpn-01",
        "--tls-alpn-addr",
        &alpn,
        "other.mon-app.test",
    ]);
    let order = thread::spawn(move || run_command(command));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !front
        .requests()
        .iter()
        .any(|r| r.starts_with("POST /chalZ/"))
    {
        assert!(
            !order.is_finished() && Instant::now() < deadline,
            "certctl never said the challenge was ready: {:?}",
            front.requests()
        );
        thread::sleep(Duration::from_millis(20));
    }

    // while it waits for validation: ordinary TLS on the same port gets the site's
    // certificate and its own protocol
    let (leaf, chosen) = handshake(&lab, "site.mon-app.test", &["h2", "http/1.1"]).unwrap();
    assert_eq!(
        leaf, site,
        "the site's certificate on port 443 during validation"
    );
    assert!(chosen == "h2" || chosen == "http/1.1", "{chosen:?}");
    // ... and the validator's view (acme-tls/1) the challenge certificate
    let (challenge, chosen) = handshake(&lab, "other.mon-app.test", &["acme-tls/1"]).unwrap();
    assert_eq!(chosen, "acme-tls/1");
    let (critical, value) = acme_identifier(&challenge).expect("acmeIdentifier extension");
    assert!(critical);
    assert_eq!(
        value.len(),
        34,
        "OCTET STRING of a SHA-256 digest: {value:?}"
    );
    assert_eq!(names(&challenge).0, ["DNS:other.mon-app.test"]);
    // a site client asking for that name never sees the challenge certificate
    let (leaf, _) = handshake(&lab, "other.mon-app.test", &["http/1.1"]).unwrap();
    assert_eq!(acme_identifier(&leaf), None);

    front.release();
    let out = order.join().expect("the certctl run");
    out.assert_success();
    let other = bundle_leaf(&lab, "other.mon-app.test");
    assert_eq!(names(&other).0, ["DNS:other.mon-app.test"]);
    // the order is over: nothing answers acme-tls/1 any more
    assert!(handshake(&lab, "other.mon-app.test", &["acme-tls/1"]).is_err());
}

#[test]
fn an_ip_address_by_tls_alpn_01_and_renew_repeats_it() {
    let lab = lab();
    let out = request_alpn(&lab, &["127.0.0.1", "-vv"]);
    out.assert_success();
    // Pebble's validation reached certctl's listener through HAProxy, asking by the
    // address's reverse-DNS name (RFC 8738 §6)
    assert!(
        out.stderr
            .contains("ClientHello for \"1.0.0.127.in-addr.arpa\", acme-tls/1 offered: answered"),
        "{}",
        out.stderr
    );
    let leaf = bundle_leaf(&lab, "127.0.0.1");
    assert_eq!(names(&leaf).0, ["IP:127.0.0.1"]);
    let settings =
        std::fs::read_to_string(lab.state_dir().join("certs/127.0.0.1/settings.json")).unwrap();
    assert!(settings.contains("tls-alpn-01"), "{settings}");
    // renew uses the stored challenge and address: no flag
    let out = lab.run(&["renew", "--force", "-vv"]);
    out.assert_success();
    assert!(
        out.stderr.contains("acme-tls/1 offered: answered"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("tls-alpn-01 listening on"),
        "{}",
        out.stderr
    );
    let renewed = bundle_leaf(&lab, "127.0.0.1");
    assert_ne!(serial_hex(&renewed), serial_hex(&leaf));
    // reconfigured to HTTP-01, renew answers by HTTP-01 and listens for no acme-tls/1
    let http = lab.http_addr();
    let out = lab.run(&[
        "reconfigure",
        "127.0.0.1",
        "--challenge",
        "standalone",
        "--http-addr",
        &http,
    ]);
    out.assert_success();
    assert!(
        out.stderr.contains("tls-alpn-01 on"),
        "the change shown: {}",
        out.stderr
    );
    let out = lab.run(&["renew", "--force", "-vv"]);
    out.assert_success();
    assert!(
        !out.stderr.contains("tls-alpn-01 listening"),
        "{}",
        out.stderr
    );
    assert_ne!(
        serial_hex(&bundle_leaf(&lab, "127.0.0.1")),
        serial_hex(&renewed)
    );
}

#[test]
fn bad_tls_alpn_input_exits_2_and_changes_nothing() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let before = both_snapshots(&lab);
    let run = |extra: &[&str]| {
        let mut args = vec!["request", "--agree-tos", "mon-app.test"];
        args.extend_from_slice(extra);
        lab.run(&args)
    };
    let check = |extra: &[&str], says: &str| {
        let out = run(extra);
        assert_eq!(out.code(), Some(2), "{extra:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{extra:?}: {}", out.stderr);
        assert_eq!(both_snapshots(&lab), before, "{extra:?} changed something");
        out
    };
    check(
        &["--challenge", "tls-alpn-01", "--tls-alpn-addr", "localhost"],
        "--tls-alpn-addr \"localhost\" is not an address:port",
    );
    check(
        &["--tls-alpn-addr", "127.0.0.1:2032"],
        "applies to tls-alpn-01",
    );
    // the address in use: named, with the process that holds it (this test)
    let taken = std::net::TcpListener::bind(lab.tls_alpn_addr()).unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = check(
        &["--challenge", "tls-alpn-01", "--tls-alpn-addr", &addr],
        &format!("cannot listen on {addr} for tls-alpn-01: the address is already in use by"),
    );
    let pid = format!("(pid {})", std::process::id());
    assert!(
        out.stderr.contains(&pid),
        "the holder named: {}",
        out.stderr
    );
    drop(taken);
}

#[test]
fn an_ipv6_address_by_tls_alpn_01() {
    // no HAProxy: Pebble's tlsPort is certctl's listener, which listens on [::1]
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let port = lab.tls_alpn_addr().rsplit_once(':').unwrap().1.to_owned();
    let v6_addr = format!("[::1]:{port}");
    let out = lab.run(&[
        "request",
        "--agree-tos",
        "--challenge",
        "tls-alpn-01",
        "--tls-alpn-addr",
        &v6_addr,
        "::1",
        "-vv",
    ]);
    out.assert_success();
    let reverse = format!("{}.ip6.arpa", ["0"; 31].join("."));
    let asked = format!("ClientHello for \"1.{reverse}\", acme-tls/1 offered: answered");
    assert!(out.stderr.contains(&asked), "{}", out.stderr);
    assert_eq!(names(&bundle_leaf(&lab, "__1")).0, ["IP:::1"]);
}
