//! The local CA (issue 6) with real HAProxy: TLS termination with a local-CA certificate
//! (DNS and IP names), seed 003's re-encryption with `verify required ca-file`, a revoked
//! backend refused through `crl-file`, renew with no network, and `ca install`.

use crate::common;

use std::ffi::OsStr;
use std::process::Command;

use common::fixtures::{certctl_with, serial_hex};
use common::proxy::Proxy;
use common::{Lab, Output, run_command, tls};

/// `certctl --server local ARGS` with the lab's directories.
fn local(lab: &Lab, args: &[&str]) -> Output {
    let mut cmd: Command = certctl_with(
        lab,
        &[
            ("--server", OsStr::new("local")),
            ("--ca-bundle", OsStr::new("")),
        ],
    );
    cmd.args(args);
    run_command(cmd)
}

fn ca_der(lab: &Lab) -> Vec<u8> {
    let out = local(lab, &["ca", "show"]);
    out.assert_success();
    pem::parse(out.stdout.as_bytes()).unwrap().into_contents()
}

fn bundle_serial(lab: &Lab, name: &str) -> String {
    let blocks =
        pem::parse_many(std::fs::read(lab.ssl_dir().join(format!("{name}.pem"))).unwrap()).unwrap();
    serial_hex(blocks[0].contents())
}

/// A plain-HTTP front proxy re-encrypting to `backend` (HTTPS) with the given checks.
fn front(
    lab: &Lab,
    name: &str,
    backend: std::net::SocketAddr,
    server_opts: &str,
) -> (Proxy, std::net::SocketAddr) {
    let port = common::process::free_port();
    let proxy = Proxy::start(
        lab,
        name,
        "",
        &format!(
            "frontend plain\n    bind 127.0.0.1:{port}\n    default_backend reencrypt\n\n\
             backend reencrypt\n    server app {backend} ssl {server_opts}\n"
        ),
    );
    (proxy, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn haproxy_serves_a_local_ca_certificate_that_clients_trusting_the_ca_verify() {
    let lab = Lab::start();
    let out = local(&lab, &["request", "app.lan", "127.0.0.1", "--days", "30"]);
    out.assert_success();
    assert!(
        out.stderr.contains("created the local CA"),
        "{}",
        out.stderr
    );
    lab.reload_haproxy();
    let trust = tls::config_trusting(&[ca_der(&lab)]);
    let stream = tls::handshake(lab.https_addr(), "app.lan", trust.clone()).unwrap();
    assert_eq!(
        serial_hex(&tls::peer_chain(&stream)[0]),
        bundle_serial(&lab, "app.lan")
    );
    // by IP address: a client sends no SNI, so the bind's own certificate answers
    let port = common::process::free_port();
    let bundle = lab.ssl_dir().join("app.lan.pem");
    let _by_ip = Proxy::start(
        &lab,
        "by-ip",
        "",
        &format!(
            "frontend ip
    bind 127.0.0.1:{port} ssl crt {}
    http-request return status 200
",
            bundle.display()
        ),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream =
        tls::handshake(addr, "127.0.0.1", trust.clone()).unwrap_or_else(|e| panic!("by IP: {e}"));
    assert_eq!(
        serial_hex(&tls::peer_chain(&stream)[0]),
        bundle_serial(&lab, "app.lan")
    );
    // a client that trusts only Pebble refuses it
    let pebble_only = tls::config_trusting(&lab.pebble_roots());
    assert!(tls::handshake(lab.https_addr(), "app.lan", pebble_only).is_err());
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(lab.state_dir().join("ca/ca.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
}

#[test]
fn reencryption_to_a_backend_verifies_it_with_the_local_ca_and_its_crl() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    local(&lab, &["request", "backend.lan", "--client-auth"]).assert_success();
    // the backend: an HTTPS server holding the local-CA certificate (from the ssl dir)
    let backend = Proxy::start(&lab, "backend", "", "");
    let ca_file = lab.root().join("certctl-ca.pem");
    std::fs::write(&ca_file, local(&lab, &["ca", "show"]).stdout).unwrap();
    let checks = format!(
        "verify required ca-file {} sni str(backend.lan) verifyhost backend.lan",
        ca_file.display()
    );

    let (_good, good_addr) = front(&lab, "front", backend.https, &checks);
    let reply = tls::http_get(good_addr, "app", "/").unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "backend\n");

    // a front that trusts another CA refuses the backend
    let other_ca = lab.root().join("other-ca.pem");
    std::fs::write(
        &other_ca,
        common::pki::self_signed(&["other.test"]).cert_pem,
    )
    .unwrap();
    let other = format!(
        "verify required ca-file {} sni str(backend.lan) verifyhost backend.lan",
        other_ca.display()
    );
    let (_bad, bad_addr) = front(&lab, "front-other-ca", backend.https, &other);
    assert_eq!(tls::http_get(bad_addr, "app", "/").unwrap().status, 503);

    // revoked (bundle kept so the backend still serves it): a front loading the CRL refuses it
    local(
        &lab,
        &[
            "revoke",
            "backend.lan",
            "--yes",
            "--keep-bundle",
            "--reason",
            "keycompromise",
        ],
    )
    .assert_success();
    let crl = local(&lab, &["ca", "crl"]);
    crl.assert_success();
    let crl_file = lab.state_dir().join("ca/crl.pem");
    assert_eq!(std::fs::read_to_string(&crl_file).unwrap(), crl.stdout);
    let with_crl = format!("{checks} crl-file {}", crl_file.display());
    let (_revoked, revoked_addr) = front(&lab, "front-crl", backend.https, &with_crl);
    assert_eq!(
        tls::http_get(revoked_addr, "app", "/").unwrap().status,
        503,
        "revoked backend refused"
    );
    // the front without the CRL still accepts it: the CRL is what made the difference
    assert_eq!(tls::http_get(good_addr, "app", "/").unwrap().status, 200);
}

#[test]
fn local_certificates_renew_with_no_network_and_keep_their_settings() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    local(&lab, &["request", "short.lan", "10.1.2.3", "--days", "2"]).assert_success();
    let first = bundle_serial(&lab, "short.lan");
    lab.stop_pebble();
    // not due yet (a 2-day certificate is due at half its life): nothing happens
    let out = local(&lab, &["renew"]);
    out.assert_success();
    assert_eq!(bundle_serial(&lab, "short.lan"), first);
    let out = local(&lab, &["renew", "--force", "--json"]);
    out.assert_success();
    let second = bundle_serial(&lab, "short.lan");
    assert_ne!(first, second);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json[0]["status"], "renewed");
    let pem_text = std::fs::read(lab.state_dir().join("certs/short.lan/live/cert.pem")).unwrap();
    let der = pem::parse(pem_text).unwrap().into_contents();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        (2 * 86_400..2 * 86_400 + 900).contains(&lifetime),
        "--days 2 kept: {lifetime}"
    );
    let list = local(&lab, &["list", "--json"]);
    list.assert_success();
    assert!(
        list.stdout.contains("\"server\": \"local\""),
        "{}",
        list.stdout
    );
}

#[test]
fn bad_local_input_is_refused() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let out = lab.run(&[
        "request",
        "a.lan",
        "--days",
        "10",
        "--agree-tos",
        "--http-addr",
        &lab.http_addr(),
    ]);
    assert_eq!(
        out.code(),
        Some(2),
        "--days with an ACME CA: {}",
        out.stderr
    );
    assert!(out.stderr.contains("local CA only"), "{}", out.stderr);
    let out = local(&lab, &["request", "a.lan", "--days", "0"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    let out = local(&lab, &["ca", "crl"]);
    assert_eq!(out.code(), Some(1), "no CA yet: {}", out.stderr);
    assert!(out.stderr.contains("ca show"), "{}", out.stderr);
}

#[test]
fn ca_install_asks_and_adds_the_ca_to_the_trust_store() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    local(&lab, &["ca", "show"]).assert_success();
    let root = lab.root().join("trust-root");
    std::fs::create_dir_all(&root).unwrap();
    // no terminal and no --yes: refused, nothing written
    let mut cmd = certctl_with(&lab, &[("--server", OsStr::new("local"))]);
    cmd.args(["ca", "install"]).env("CERTCTL_TRUST_ROOT", &root);
    let out = run_command(cmd);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(!root.join("usr").exists());

    // with --yes: the real update-ca-certificates, pointed at the trust root
    let mut cmd = certctl_with(&lab, &[("--server", OsStr::new("local"))]);
    cmd.args(["ca", "install", "--yes"])
        .env("CERTCTL_TRUST_ROOT", &root);
    run_command(cmd).assert_success();
    let bundle = std::fs::read(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let ours = ca_der(&lab);
    let trusted: Vec<Vec<u8>> = pem::parse_many(bundle)
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect();
    assert!(
        trusted.contains(&ours),
        "the system bundle now holds the local CA"
    );
}
