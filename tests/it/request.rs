//! `certctl request` end to end against real Pebble behind real HAProxy: issuance, the
//! served chain, key types, account reuse, the not-due case, and every bad input and
//! failure leaving the state and ssl directories exactly as they were.

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::fixtures::{both_snapshots, certctl_with, request, serial_hex as serial};
use common::{Lab, run_command};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

fn sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let mut names = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for n in &san.general_names {
                if let GeneralName::DNSName(d) = n {
                    names.push(d.to_string());
                }
            }
        }
    }
    names.sort();
    names
}

fn bundle_certs(path: &Path) -> (Vec<Vec<u8>>, usize) {
    let text = fs::read(path).unwrap();
    let blocks = pem::parse_many(&text).unwrap();
    let keys = blocks
        .iter()
        .filter(|b| b.tag().ends_with("PRIVATE KEY"))
        .count();
    (
        blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.into_contents())
            .collect(),
        keys,
    )
}

#[test]
fn request_two_names_then_haproxy_serves_a_verified_chain() {
    let lab = Lab::start();
    let reload = lab.reload_command();
    let out = request(
        &lab,
        &[
            "mon-app.test",
            "WWW.mon-app.test",
            "--email",
            "ops@mon-app.test",
            "--post-hook",
            reload.as_str(),
        ],
    );
    out.assert_success();

    // the bundle: leaf, intermediates, key; 0600; no blank line
    let bundle = lab.ssl_dir().join("mon-app.test.pem");
    let text = fs::read_to_string(&bundle).unwrap();
    assert!(
        !text.lines().any(|l| l.trim().is_empty()),
        "blank line in bundle:\n{text}"
    );
    assert_eq!(
        fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (certs, keys) = bundle_certs(&bundle);
    assert!(certs.len() >= 2, "leaf and at least one intermediate");
    assert_eq!(keys, 1);
    assert!(
        text.trim_end().ends_with("PRIVATE KEY-----"),
        "key comes last"
    );
    assert_eq!(sans(&certs[0]), vec!["mon-app.test", "www.mon-app.test"]);

    // stored: key 0600, settings for renew
    let live = lab.state_dir().join("certs/mon-app.test/live");
    for f in ["key.pem", "cert.pem", "chain.pem", "fullchain.pem"] {
        assert!(live.join(f).is_file(), "{f} stored");
    }
    assert_eq!(
        fs::metadata(live.join("key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let settings: serde_json::Value = serde_json::from_slice(
        &fs::read(lab.state_dir().join("certs/mon-app.test/settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        settings["domains"],
        serde_json::json!(["mon-app.test", "www.mon-app.test"])
    );
    assert_eq!(settings["key_type"], "ec256");
    assert_eq!(settings["server"], lab.directory_url());
    assert_eq!(settings["hooks"]["post"], reload.as_str());
    assert_eq!(settings["challenge"]["http_addr"], lab.http_addr());
    let accounts: Vec<_> = fs::read_dir(lab.state_dir().join("accounts"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        accounts[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );

    // HAProxy, reloaded by the post-hook, serves the new chain for both names
    lab.reload_haproxy();
    for sni in ["mon-app.test", "www.mon-app.test"] {
        let chain = lab
            .verify_served(sni)
            .unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(
            serial(&chain[0]),
            serial(&certs[0]),
            "{sni} serves the new certificate"
        );
        assert_eq!(sans(&chain[0]), vec!["mon-app.test", "www.mon-app.test"]);
    }
}

#[test]
fn rsa_and_ecdsa_keys_and_account_reuse() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["ec.mon-app.test", "--key-type", "ec384"]).assert_success();
    let account_file = fs::read_dir(lab.state_dir().join("accounts"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let account_before = fs::read(&account_file).unwrap();

    // -vv logs every ACME request: the second request reuses the account, no newAccount
    let out = request(&lab, &["rsa.mon-app.test", "--key-type", "rsa2048", "-vv"]);
    out.assert_success();
    assert!(
        out.stderr.contains("acme: POST"),
        "debug output lists requests:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("sign-me-up"),
        "no new-account request on reuse:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("created an ACME account"));
    assert_eq!(fs::read(&account_file).unwrap(), account_before);
    assert_eq!(
        fs::read_dir(lab.state_dir().join("accounts"))
            .unwrap()
            .count(),
        1
    );

    let key = |name: &str| {
        fs::read_to_string(lab.state_dir().join(format!("certs/{name}/live/key.pem"))).unwrap()
    };
    let ec = rcgen::KeyPair::from_pem(&key("ec.mon-app.test")).unwrap();
    assert!(ec.is_compatible(&rcgen::PKCS_ECDSA_P384_SHA384));
    let rsa = rcgen::KeyPair::from_pem(&key("rsa.mon-app.test")).unwrap();
    assert!(rsa.is_compatible(&rcgen::PKCS_RSA_SHA256));
    let (certs, _) = bundle_certs(&lab.ssl_dir().join("rsa.mon-app.test.pem"));
    let (_, leaf) = X509Certificate::from_der(&certs[0]).unwrap();
    assert_eq!(
        leaf.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.1",
        "RSA leaf"
    );
}

#[test]
fn valid_certificate_is_not_requested_again_unless_forced_or_names_change() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["mon-app.test", "www.mon-app.test"]).assert_success();
    let before = both_snapshots(&lab);

    // same names (any order, any case): nothing to do, no request at all, even with Pebble gone
    lab.stop_pebble();
    let out = request(
        &lab,
        &["MON-APP.test", "www.mon-app.test", "mon-app.test", "-vv"],
    );
    out.assert_success();
    assert!(out.stderr.contains("not due"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("acme:"),
        "no ACME request:\n{}",
        out.stderr
    );
    assert_eq!(both_snapshots(&lab), before);

    // --force and a changed name list both go to the CA (which is down now: exit 1, unchanged)
    for extra in [
        vec!["mon-app.test", "www.mon-app.test", "--force"],
        vec!["mon-app.test", "api.mon-app.test", "--yes"],
    ] {
        let out = request(&lab, &extra);
        assert_eq!(out.code(), Some(1), "{extra:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot reach the ACME server"),
            "{}",
            out.stderr
        );
        assert_eq!(both_snapshots(&lab), before, "{extra:?} changed nothing");
    }
}

#[test]
fn force_replaces_the_certificate_and_keeps_the_paths() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["mon-app.test"]).assert_success();
    let bundle = lab.ssl_dir().join("mon-app.test.pem");
    let first = serial(&bundle_certs(&bundle).0[0]);
    let out = request(&lab, &["mon-app.test", "--force", "--json"]);
    out.assert_success();
    let second = serial(&bundle_certs(&bundle).0[0]);
    assert_ne!(first, second);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["status"], "issued");
    assert_eq!(json["serial"], second.as_str());
    assert_eq!(json["bundle"], bundle.display().to_string());
}

#[test]
fn hooks_get_environment_and_a_failing_hook_exits_1_with_the_certificate_installed() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let log = lab.root().join("hooks.log");
    let deploy = format!(
        "echo \"deploy $CERTCTL_NAME|$CERTCTL_DOMAINS|$CERTCTL_BUNDLE|$RENEWED_DOMAINS\" >> {}",
        log.display()
    );
    let post = format!(
        "echo \"post $CERTCTL_RENEWED_NAMES\" >> {}; exit 4",
        log.display()
    );
    let pre = format!("echo pre >> {}", log.display());
    let out = request(
        &lab,
        &[
            "mon-app.test",
            "www.mon-app.test",
            "--pre-hook",
            &pre,
            "--deploy-hook",
            &deploy,
            "--post-hook",
            &post,
        ],
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("post hook"), "{}", out.stderr);
    let bundle = lab.ssl_dir().join("mon-app.test.pem");
    assert!(bundle.is_file(), "the certificate stays installed");
    let lines = fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines,
        format!(
            "pre\ndeploy mon-app.test|mon-app.test www.mon-app.test|{}|mon-app.test www.mon-app.test\npost mon-app.test\n",
            bundle.display()
        )
    );
}

/// Bad input: exit 2, a message that names the problem, nothing written anywhere.
#[test]
fn bad_input_exits_2_and_changes_nothing() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["mon-app.test"]).assert_success();
    let before = both_snapshots(&lab);
    let empty_pem = lab.root().join("empty.pem");
    fs::write(&empty_pem, "not a certificate\n").unwrap();
    let long_label = format!("{}.mon-app.test", "a".repeat(64));
    let many: Vec<String> = (0..101).map(|i| format!("n{i}.mon-app.test")).collect();
    let mut many_args: Vec<&str> = many.iter().map(String::as_str).collect();
    many_args.push("--force");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![""], "empty name"),
        (vec!["a..mon-app.test"], "empty label"),
        (vec![long_label.as_str()], "longer than 63"),
        (vec!["mon-app.test/x"], "path separator"),
        (vec!["mon app.test"], "space"),
        (vec!["*.mon-app.test"], "wildcard"),
        (vec!["mon-app.test."], "trailing dot"),
        (vec!["xn--zz.test"], "not a valid domain name"),
        (vec!["localhost"], "single label"),
        (many_args, "at most 100"),
        (vec!["mon-app.test", "--key-type", "rsa1024"], "rsa1024"),
        (
            vec!["mon-app.test", "--server", "ftp://ca.test/dir"],
            "https",
        ),
        (
            vec!["mon-app.test", "--server", "nope"],
            "letsencrypt-staging",
        ),
        (
            vec!["mon-app.test", "--ca-bundle", "/nonexistent/ca.pem"],
            "--ca-bundle",
        ),
        (
            vec!["mon-app.test", "--ca-bundle", empty_pem.to_str().unwrap()],
            "no certificate",
        ),
        (
            vec!["mon-app.test", "--name", "../evil"],
            "certificate name",
        ),
        (
            vec!["mon-app.test", "--http-addr", "nowhere"],
            "--http-addr",
        ),
        (vec!["mon-app.test", "--email", "not an address"], "--email"),
    ];
    for (args, needle) in cases {
        // --server and --ca-bundle may only be given once: build those commands by hand
        let out = if args.contains(&"--server") || args.contains(&"--ca-bundle") {
            let mut cmd = certctl_with(
                &lab,
                &[
                    ("--server", OsStr::new("")),
                    ("--ca-bundle", OsStr::new("")),
                ],
            );
            cmd.arg("request").args(&args).arg("--agree-tos");
            if !args.contains(&"--server") {
                cmd.arg("--server").arg(lab.directory_url());
            }
            run_command(cmd)
        } else {
            request(&lab, &args)
        };
        assert_eq!(
            out.code(),
            Some(2),
            "{args:?} should exit 2: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(needle),
            "{args:?}: message should mention {needle:?}: {}",
            out.stderr
        );
        assert_eq!(
            both_snapshots(&lab),
            before,
            "{args:?} changed the directories"
        );
    }
}

#[test]
fn no_terminal_and_no_agree_tos_names_the_flag() {
    let lab = Lab::start_with(common::LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let out = lab.run(&["request", "mon-app.test", "--http-addr", &lab.http_addr()]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--agree-tos"), "{}", out.stderr);
    assert!(!lab.state_dir().join("accounts").exists());
    assert_eq!(fs::read_dir(lab.ssl_dir()).unwrap().count(), 0);
}

/// Failures: exit 1, a message saying what to do, the existing certificate untouched.
#[test]
fn failures_exit_1_and_keep_the_existing_certificate() {
    let lab = Lab::start();
    request(&lab, &["mon-app.test"]).assert_success();
    let before = both_snapshots(&lab);

    // the responder's address is taken
    let squatter = std::net::TcpListener::bind(lab.http_addr()).unwrap();
    let out = request(&lab, &["mon-app.test", "--force"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&lab.http_addr()) && out.stderr.contains("already in use"),
        "{}",
        out.stderr
    );
    drop(squatter);
    assert_eq!(both_snapshots(&lab), before);

    // the CA cannot validate: the responder listens where HAProxy does not forward (a port
    // of the lab's own: one bound and dropped here could go to a test running beside)
    let elsewhere = format!("127.0.0.1:{}", common::process::free_port());
    let out = lab.run(&[
        "request",
        "mon-app.test",
        "--force",
        "--agree-tos",
        "--http-addr",
        &elsewhere,
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("could not validate") && out.stderr.contains("returned 503"),
        "the CA's problem detail, unchanged: {}",
        out.stderr
    );
    assert!(out.stderr.contains("unchanged"), "{}", out.stderr);
    assert_eq!(both_snapshots(&lab), before);

    // the ACME server's certificate is not trusted: suggest --ca-bundle
    let other_ca = lab.root().join("other-ca.pem");
    fs::write(
        &other_ca,
        common::pki::self_signed(&["other.test"]).cert_pem,
    )
    .unwrap();
    let mut cmd = certctl_with(&lab, &[("--ca-bundle", other_ca.as_os_str())]);
    cmd.args([
        "request",
        "mon-app.test",
        "--force",
        "--agree-tos",
        "--http-addr",
        &lab.http_addr(),
    ]);
    let out = run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("--ca-bundle") && out.stderr.contains("not trusted"),
        "{}",
        out.stderr
    );
    assert_eq!(both_snapshots(&lab), before);

    // the ssl directory cannot be written: found before any order is placed
    let blocked = lab.root().join("not-a-dir");
    fs::write(&blocked, "").unwrap();
    let mut cmd = certctl_with(&lab, &[("--ssl-dir", blocked.as_os_str())]);
    cmd.args([
        "request",
        "other.mon-app.test",
        "--agree-tos",
        "--http-addr",
        &lab.http_addr(),
        "-vv",
    ]);
    let out = run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("ssl directory"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("acme:"),
        "no request was sent:\n{}",
        out.stderr
    );
    assert_eq!(both_snapshots(&lab), before);

    // the ACME server is down
    lab.stop_pebble();
    let out = request(&lab, &["mon-app.test", "--force"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot reach the ACME server"),
        "{}",
        out.stderr
    );
    assert_eq!(both_snapshots(&lab), before);
}
