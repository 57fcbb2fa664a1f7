//! What admins hit in the first months (issue 14), through the binary against Pebble:
//! requesting again keeps stored settings and asks before removing names, `reconfigure`
//! changes settings without an order, the ssl dir is stored per certificate, and `[y/N]`
//! reads a whole line.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::fixtures::{
    both_snapshots, certctl_with, on_terminal, on_terminal_answering, request, serial_hex,
};
use common::{Lab, LabOptions, run_command};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

fn lab() -> Lab {
    Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    })
}

fn settings(lab: &Lab, name: &str) -> serde_json::Value {
    let path = lab
        .state_dir()
        .join("certs")
        .join(name)
        .join("settings.json");
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

/// The leaf of a bundle: its serial, names and whether its key is RSA.
fn leaf(bundle: &Path) -> (String, Vec<String>, bool) {
    let pem = fs::read(bundle).unwrap_or_else(|e| panic!("{}: {e}", bundle.display()));
    let first = ::pem::parse_many(&pem).unwrap().remove(0);
    let (_, cert) = X509Certificate::from_der(first.contents()).unwrap();
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
    let rsa = cert.public_key().algorithm.algorithm.to_id_string() == "1.2.840.113549.1.1.1";
    (serial_hex(first.contents()), names, rsa)
}

fn lines(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[test]
fn request_again_keeps_stored_settings_and_removing_a_name_needs_yes() {
    let lab = lab();
    let marker = lab.root().join("post-hook-ran");
    let hook = format!("echo ran >> {}", marker.display());
    request(
        &lab,
        &[
            "mon-app.test",
            "www.mon-app.test",
            "--post-hook",
            &hook,
            "--key-type",
            "rsa2048",
        ],
    )
    .assert_success();
    assert_eq!(lines(&marker), 1);
    let bundle = lab.ssl_dir().join("mon-app.test.pem");
    let before = both_snapshots(&lab);

    // without www and with no terminal: refused, exit 2, nothing changed; the message says
    // which name would go and how to say yes
    let out = request(&lab, &["mon-app.test"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("names removed: www.mon-app.test"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(both_snapshots(&lab), before);

    // with --yes: issued without www, and the post-hook and key type stored before are kept
    let out = request(&lab, &["mon-app.test", "--yes"]);
    out.assert_success();
    let (_, names, rsa) = leaf(&bundle);
    assert_eq!(names, ["mon-app.test"]);
    assert!(rsa, "the stored key type was kept");
    assert_eq!(lines(&marker), 2, "the stored post-hook ran");
    let stored = settings(&lab, "mon-app.test");
    assert_eq!(stored["hooks"]["post"], hook.as_str());
    assert_eq!(stored["key_type"], "rsa2048");

    // a name added is shown, and goes to the CA with the stored settings
    let out = request(&lab, &["mon-app.test", "api.mon-app.test"]);
    out.assert_success();
    assert!(
        out.stderr.contains("names added: api.mon-app.test"),
        "{}",
        out.stderr
    );
    assert_eq!(leaf(&bundle).1, ["api.mon-app.test", "mon-app.test"]);
    assert_eq!(lines(&marker), 3);

    // an option given replaces the stored value even when nothing is due; '' clears it
    let out = request(
        &lab,
        &["mon-app.test", "api.mon-app.test", "--post-hook", ""],
    );
    out.assert_success();
    assert!(out.stderr.contains("post-hook:"), "{}", out.stderr);
    assert!(
        settings(&lab, "mon-app.test")["hooks"]
            .get("post")
            .is_none()
    );
    assert_eq!(lines(&marker), 3);
}

#[test]
fn removing_a_name_on_a_terminal_takes_a_whole_line() {
    let lab = lab();
    request(&lab, &["mon-app.test", "www.mon-app.test"]).assert_success();
    let before = both_snapshots(&lab);
    let http_addr = lab.http_addr();
    let args = ["request", "mon-app.test", "--http-addr", http_addr.as_str()];

    // "n" then Enter, Enter alone, and end of input: no, nothing changed, exit 0
    for answer in ["n\r", "\r", "\x04"] {
        let out = on_terminal(&lab, answer, &args);
        out.assert_success();
        assert!(out.stdout.contains("[y/N]"), "{answer:?}: {}", out.stdout);
        assert!(
            out.stdout.contains("request cancelled; nothing changed"),
            "{}",
            out.stdout
        );
        assert_eq!(both_snapshots(&lab), before, "{answer:?}");
    }

    // "y" then Enter: yes
    on_terminal(&lab, "y\r", &args).assert_success();
    assert_eq!(
        leaf(&lab.ssl_dir().join("mon-app.test.pem")).1,
        ["mon-app.test"]
    );
}

#[test]
fn reconfigure_changes_settings_without_an_order_and_a_new_key_type_renews() {
    let lab = lab();
    request(&lab, &["mon-app.test"]).assert_success();
    let bundle = lab.ssl_dir().join("mon-app.test.pem");
    let (serial, _, rsa) = leaf(&bundle);
    assert!(!rsa);
    let before = both_snapshots(&lab);

    // --dry-run shows the change and saves nothing
    let out = lab.run(&[
        "reconfigure",
        "mon-app.test",
        "--post-hook",
        "true",
        "--key-type",
        "rsa2048",
        "--dry-run",
    ]);
    out.assert_success();
    assert!(
        out.stderr.contains("post-hook: (none) -> true"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("key type: ec256 -> rsa2048"),
        "{}",
        out.stderr
    );
    assert_eq!(both_snapshots(&lab), before);

    // for real: stored, no order (Pebble is down and it still works), same certificate
    lab.stop_pebble();
    let out = lab.run(&[
        "reconfigure",
        "mon-app.test",
        "--post-hook",
        "true",
        "--key-type",
        "rsa2048",
    ]);
    out.assert_success();
    assert!(
        out.stderr.contains("next `certctl renew`"),
        "{}",
        out.stderr
    );
    let stored = settings(&lab, "mon-app.test");
    assert_eq!(stored["hooks"]["post"], "true");
    assert_eq!(stored["key_type"], "rsa2048");
    assert_eq!(leaf(&bundle).0, serial);

    // the next renew (no --force) issues an RSA certificate; the one after has nothing to
    // do. The restarted Pebble has forgotten the account: a new one is made, and said
    lab.restart_pebble();
    let out = lab.run(&["renew"]);
    out.assert_success();
    assert!(
        out.stderr.contains("registered a new one"),
        "{}",
        out.stderr
    );
    let (renewed, _, rsa) = leaf(&bundle);
    assert_ne!(renewed, serial);
    assert!(rsa);
    let out = lab.run(&["renew", "-v"]);
    out.assert_success();
    assert_eq!(leaf(&bundle).0, renewed);

    // nothing to change: said, exit 0; unknown name: exit 2
    let out = lab.run(&["reconfigure", "mon-app.test", "--post-hook", "true"]);
    out.assert_success();
    assert!(out.stderr.contains("nothing to change"), "{}", out.stderr);
    assert_eq!(lab.run(&["reconfigure", "other.test"]).code(), Some(2));
}

#[test]
fn the_ssl_dir_is_stored_per_certificate() {
    let lab = lab();
    let other: PathBuf = lab.root().join("other-ssl");
    let mut cmd = certctl_with(&lab, &[("--ssl-dir", other.as_os_str())]);
    let http_addr = lab.http_addr();
    cmd.args([
        "request",
        "backend.test",
        "--agree-tos",
        "--http-addr",
        &http_addr,
    ]);
    run_command(cmd).assert_success();
    request(&lab, &["mon-app.test"]).assert_success();
    let in_other = other.join("backend.test.pem");
    let (first, _, _) = leaf(&in_other);

    // renew with the lab's (default) ssl dir: each bundle goes where it was requested
    lab.run(&["renew", "--force"]).assert_success();
    let (renewed, _, _) = leaf(&in_other);
    assert_ne!(renewed, first);
    assert!(!lab.ssl_dir().join("backend.test.pem").exists());
    assert!(lab.ssl_dir().join("mon-app.test.pem").exists());
    let out = lab.run(&["list", "--json"]);
    assert!(
        out.stdout.contains(&in_other.display().to_string()),
        "{}",
        out.stdout
    );

    // reconfigure moves it: the bundle is written in the new dir at once
    let third = lab.root().join("third-ssl");
    let mut cmd = certctl_with(&lab, &[("--ssl-dir", third.as_os_str())]);
    cmd.args(["reconfigure", "backend.test"]);
    run_command(cmd).assert_success();
    assert_eq!(leaf(&third.join("backend.test.pem")).0, renewed);
    lab.run(&["concat"]).assert_success();
    assert_eq!(
        settings(&lab, "backend.test")["ssl_dir"],
        third.display().to_string()
    );
}

#[test]
fn renew_counts_hook_failures_apart_from_failed_renewals() {
    let lab = lab();
    request(&lab, &["a.test"]).assert_success();
    request(&lab, &["b.test"]).assert_success();
    lab.run(&["reconfigure", "a.test", "--deploy-hook", "exit 3"])
        .assert_success();
    request(&lab, &["broken.test"]).assert_success();
    // broken: its CA is now one that nothing answers at (a Pebble that reuses the earlier
    // authorization would let a mere change of responder address succeed)
    let nowhere = format!("https://127.0.0.1:{}/dir", common::process::free_port());
    let mut cmd = certctl_with(&lab, &[("--server", std::ffi::OsStr::new(&nowhere))]);
    cmd.args(["reconfigure", "broken.test"]);
    run_command(cmd).assert_success();

    let out = lab.run(&["renew", "--force", "--post-hook", "exit 4"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("a.test: renewed; "), "{}", out.stderr);
    assert!(out.stderr.contains("post-hook failed: "), "{}", out.stderr);
    let last = out.stderr.lines().last().unwrap();
    assert_eq!(
        last,
        "certctl: 2 renewed (1 with a failed hook or proxy: a.test); post-hook failed, \
         1 failed: renewal failed for: broken.test",
        "{}",
        out.stderr
    );
}

#[test]
fn dry_run_with_nothing_due_says_how_to_rehearse_and_no_network_names_the_ca() {
    let lab = lab();
    request(&lab, &["mon-app.test"]).assert_success();
    let out = lab.run(&["renew", "--dry-run"]);
    out.assert_success();
    assert!(
        out.stderr.contains("no certificate is due"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--dry-run --force"), "{}", out.stderr);
    let out = lab.run(&["renew", "--dry-run", "--force", "-vv"]);
    out.assert_success();
    assert!(
        out.stderr.contains("dry run: the CA would issue"),
        "{}",
        out.stderr
    );
    // -vv: each ACME request with the status of its answer, never a JWS
    assert!(out.stderr.contains("/dir -> 200 OK"), "{}", out.stderr);
    assert!(!out.stderr.contains("\"protected\""), "{}", out.stderr);

    // no network to the CA: the error names its URL and what to check
    let nowhere = format!("https://127.0.0.1:{}/dir", common::process::free_port());
    let mut cmd = lab.certctl_with_server(&nowhere);
    cmd.args(["request", "other.test", "--agree-tos"]);
    let out = run_command(cmd);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    for needle in [nowhere.as_str(), "network", "--server"] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
}

#[test]
fn output_files_are_written_with_owner_and_mode_before_the_deploy_hook() {
    use std::os::unix::fs::MetadataExt;
    let lab = lab();
    let out_dir = lab.root().join("unbound");
    fs::create_dir(&out_dir).unwrap();
    let (cert, key, chain, full) = (
        out_dir.join("cert.pem"),
        out_dir.join("key.pem"),
        out_dir.join("chain.pem"),
        out_dir.join("fullchain.pem"),
    );
    let seen = lab.root().join("seen-by-hook.pem");
    let hook = format!("cp {} {}", cert.display(), seen.display());
    let (c, k, ch, f) = (
        cert.display().to_string(),
        key.display().to_string(),
        chain.display().to_string(),
        full.display().to_string(),
    );
    let args = [
        "mon-app.test",
        "--cert-file",
        &c,
        "--key-file",
        &k,
        "--chain-file",
        &ch,
        "--fullchain-file",
        &f,
        "--owner",
        "nobody:nogroup",
        "--mode",
        "640",
    ];
    request(&lab, &args).assert_success();
    let bundle = lab.ssl_dir().join("mon-app.test.pem");
    let bundle_text = fs::read_to_string(&bundle).unwrap();
    for path in [&cert, &key, &chain, &full] {
        let meta = fs::metadata(path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640, "{}", path.display());
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "{}",
            path.display()
        );
        let text = fs::read_to_string(path).unwrap();
        assert!(
            bundle_text.contains(text.trim()),
            "{} is part of the bundle",
            path.display()
        );
    }
    assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
    assert!(!fs::read_to_string(&full).unwrap().contains("PRIVATE KEY"));

    // stored: a renewal rewrites them before the deploy hook runs, which sees the new one
    lab.run(&["reconfigure", "mon-app.test", "--deploy-hook", &hook])
        .assert_success();
    let (old, _, _) = leaf(&bundle);
    lab.run(&["renew", "--force"]).assert_success();
    let (new, _, _) = leaf(&bundle);
    assert_ne!(new, old);
    assert_eq!(fs::read(&seen).unwrap(), fs::read(&cert).unwrap());
    assert_eq!(leaf(&cert).0, new);

    // bad values are bad input; '' removes an output from the settings
    let out = lab.run(&["reconfigure", "mon-app.test", "--mode", "999"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    let out = lab.run(&[
        "reconfigure",
        "mon-app.test",
        "--owner",
        "no-such-user:nogroup",
    ]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    lab.run(&["reconfigure", "mon-app.test", "--key-file", ""])
        .assert_success();
    let outputs = &settings(&lab, "mon-app.test")["outputs"];
    assert!(outputs.get("key_file").is_none(), "{outputs}");
    assert_eq!(outputs["cert_file"], c.as_str());
}

#[test]
fn a_failed_push_stays_pending_until_renew_or_deploy_gets_it_through() {
    let lab = Lab::start_with(LabOptions::default());
    let admin = lab.admin_socket();
    // a socket that is not there yet (the proxy is down), beside the real one
    let later = lab.root().join("later.sock");
    let (admin_s, later_s) = (admin.display().to_string(), later.display().to_string());
    let out = request(
        &lab,
        &[
            "mon-app.test",
            "--haproxy-socket",
            &admin_s,
            "--haproxy-socket",
            &later_s,
        ],
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let bundle = lab.ssl_dir().join("mon-app.test.pem");
    let (serial, _, _) = leaf(&bundle);

    // nothing due, but the push is pending: renew says so and exits 1, every run
    for _ in 0..2 {
        let out = lab.run(&["renew"]);
        assert_eq!(out.code(), Some(1), "{}", out.stderr);
        assert!(out.stderr.contains("deploy pending"), "{}", out.stderr);
        assert!(out.stderr.contains(&later_s), "{}", out.stderr);
    }
    let out = lab.run(&["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows[0]["pending_deploys"], serde_json::json!([later_s]));
    let out = lab.run(&["list"]);
    assert!(out.stdout.contains("deploy pending"), "{}", out.stdout);
    assert_eq!(lab.run(&["deploy", "mon-app.test"]).code(), Some(1));

    // the proxy is back: the next renew pushes, and the one after is silent again
    std::os::unix::fs::symlink(&admin, &later).unwrap();
    let out = lab.run(&["renew"]);
    out.assert_success();
    assert!(
        out.stderr.contains("pending from an earlier run"),
        "{}",
        out.stderr
    );
    let out = lab.run(&["renew"]);
    out.assert_success();
    assert_eq!(out.stderr, "");
    let out = lab.run(&["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows[0]["pending_deploys"], serde_json::json!([]));
    let pushed = settings_dir_file(&lab, "mon-app.test", "pushed.json");
    assert_eq!(pushed[&later_s], serial.as_str());

    // deploy pushes now, to every stored socket
    lab.run(&["deploy"]).assert_success();
    assert_eq!(
        lab.verify_served("mon-app.test").map(|c| serial_hex(&c[0])),
        Ok(serial)
    );
}

fn settings_dir_file(lab: &Lab, name: &str, file: &str) -> serde_json::Value {
    let path = lab.state_dir().join("certs").join(name).join(file);
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

#[test]
fn revoke_and_delete_take_the_certificate_out_of_the_running_haproxy() {
    let lab = Lab::start_with(LabOptions::default());
    let admin = lab.admin_socket();
    let admin_s = admin.display().to_string();
    let loaded = |name: &str| {
        common::haproxy::admin_command(&admin, "show ssl cert")
            .unwrap()
            .contains(&format!("{name}.pem"))
    };
    for name in ["a.test", "b.test"] {
        request(&lab, &[name, "--haproxy-socket", &admin_s]).assert_success();
        assert!(loaded(name), "{name} pushed");
    }

    // delete: out of HAProxy with no reload, then its post-hook
    let marker = lab.root().join("delete-post-hook");
    let hook = format!("echo \"$CERTCTL_NAME\" > {}", marker.display());
    let out = lab.run(&["delete", "a.test", "--yes", "--post-hook", &hook]);
    out.assert_success();
    assert!(out.stderr.contains("no longer serves it"), "{}", out.stderr);
    assert!(!loaded("a.test"));
    assert_eq!(fs::read_to_string(&marker).unwrap().trim(), "a.test");

    // revoke: the same
    lab.run(&["revoke", "b.test", "--yes"]).assert_success();
    assert!(!loaded("b.test"));
}

#[test]
fn a_bundle_named_in_the_haproxy_configuration_stays_in_place() {
    let lab = lab();
    for name in ["dns.test", "web.test"] {
        request(&lab, &[name]).assert_success();
    }
    let dns = lab.ssl_dir().join("dns.test.pem");
    let cfg = lab.root().join("haproxy.cfg");
    fs::write(
        &cfg,
        format!(
            "frontend dot\n    bind :853 ssl crt {}\nfrontend web\n    bind :443 ssl crt {}/\n",
            dns.display(),
            lab.ssl_dir().display()
        ),
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();

    // named by a bind line: archived, but the bundle stays, and the message says where
    let out = lab.run(&["delete", "dns.test", "--yes", "--haproxy-config", &cfg_s]);
    out.assert_success();
    assert!(dns.exists(), "HAProxy can still start");
    assert!(
        out.stderr.contains(&format!("{cfg_s}, line 2")),
        "{}",
        out.stderr
    );
    assert!(!lab.state_dir().join("certs/dns.test").exists());

    // in a crt directory only: the bundle goes, as before
    let out = lab.run(&["delete", "web.test", "--yes", "--haproxy-config", &cfg_s]);
    out.assert_success();
    assert!(!lab.ssl_dir().join("web.test.pem").exists());
}

#[test]
fn a_bundle_haproxy_loads_by_name_is_found_through_its_runtime_api() {
    let lab = Lab::start_with(LabOptions::default());
    let admin = lab.admin_socket();
    let admin_s = admin.display().to_string();
    for name in ["dns.test", "web.test"] {
        request(&lab, &[name, "--haproxy-socket", &admin_s]).assert_success();
    }
    // the running HAProxy names dns.test's bundle on a bind line of its own (seed 004)
    let dns = lab.ssl_dir().join("dns.test.pem");
    let cfg = lab.root().join("haproxy.cfg");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\nfrontend dot\n    mode tcp\n    bind 127.0.0.1:{} ssl crt {}\n",
        common::process::free_port(),
        dns.display()
    ));
    fs::write(&cfg, text).unwrap();
    lab.reload_haproxy();
    // a configuration certctl is pointed at that says nothing: only HAProxy itself can tell
    let quiet = lab.root().join("other.cfg");
    fs::write(&quiet, "global\n").unwrap();
    let quiet_s = quiet.display().to_string();
    let delete = ["delete", "dns.test", "--haproxy-config", &quiet_s];

    // no terminal, --yes: archived, the bundle stays and stays loaded, the message says why
    let out = lab.run(&[&delete[..], &["--yes"]].concat());
    out.assert_success();
    assert!(dns.exists(), "HAProxy can still start");
    assert!(
        out.stderr.contains(&format!("HAProxy at {admin_s}"))
            && out.stderr.contains(&format!("{}, line", cfg.display())),
        "{}",
        out.stderr
    );
    assert!(!lab.state_dir().join("certs/dns.test").exists());
    lab.try_reload_haproxy().expect("HAProxy still starts");

    // on a terminal: asked whether to move it anyway; Enter keeps it
    request(&lab, &["dns.test", "--haproxy-socket", &admin_s]).assert_success();
    let out = on_terminal_answering(&lab, &["\r", "y\r"], &delete);
    out.assert_success();
    assert!(out.stdout.contains("anyway"), "{}", out.stdout);
    assert!(dns.exists());
    assert!(!lab.state_dir().join("certs/dns.test").exists());

    // yes, then yes: the bundle goes to the archive with the rest
    request(&lab, &["dns.test", "--haproxy-socket", &admin_s]).assert_success();
    let out = on_terminal_answering(&lab, &["yes\r", "y\r"], &delete);
    out.assert_success();
    assert!(!dns.exists(), "{}", out.stdout);

    // a bundle HAProxy loads from its crt directory: moved without a question
    let out = lab.run(&["delete", "web.test", "--yes", "--haproxy-config", &quiet_s]);
    out.assert_success();
    assert!(!lab.ssl_dir().join("web.test.pem").exists());
}

/// The local CA's CRL (thisUpdate, nextUpdate, revoked serials in hex).
fn crl(lab: &Lab) -> (i64, i64, Vec<String>) {
    let bytes = fs::read(lab.state_dir().join("ca/crl.pem")).unwrap();
    let der = ::pem::parse(bytes).unwrap().into_contents();
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
    let serials = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial_as_string().replace(':', ""))
        .collect();
    (
        crl.last_update().timestamp(),
        crl.next_update().unwrap().timestamp(),
        serials,
    )
}

/// `faketime -f OFFSET certctl <lab flags, local CA> <args>`: the clock moved for certctl only.
fn local_at(lab: &Lab, offset: &str, args: &[&str]) -> common::Output {
    let mut inner = lab.certctl_with_server("local");
    inner.args(args);
    let mut launcher = std::process::Command::new("faketime");
    launcher.args(["-f", offset]);
    run_command(common::hermetic::through(launcher, &inner))
}

#[test]
fn renew_signs_the_local_crl_again_past_half_its_validity() {
    let lab = lab();
    for name in ["backend.lan", "revoked.lan"] {
        local_at(&lab, "+0d", &["request", name]).assert_success();
    }
    local_at(&lab, "+0d", &["revoke", "revoked.lan", "--yes"]).assert_success();
    let (this0, next0, revoked) = crl(&lab);
    assert_eq!(revoked.len(), 1);
    assert!(next0 - this0 >= 29 * 86_400);
    let out = local_at(&lab, "+0d", &["ca", "show"]);
    assert!(out.stderr.contains("CRL"), "{}", out.stderr);

    // ten days on: nothing to do, not a word
    let out = local_at(&lab, "+10d", &["renew"]);
    out.assert_success();
    assert_eq!(out.stderr, "");
    assert_eq!(crl(&lab).0, this0);

    // 31 days on (the CRL expired a day ago): one cron run signs it again, with the revoked
    // serial, and runs the post-hook since no HAProxy took it through its runtime API
    let marker = lab.root().join("crl-post-hook");
    let hook = format!("echo \"$CERTCTL_CRL\" > {}", marker.display());
    let out = local_at(&lab, "+31d", &["renew", "--post-hook", &hook]);
    out.assert_success();
    assert!(out.stderr.contains("CRL again"), "{}", out.stderr);
    let (this1, next1, revoked1) = crl(&lab);
    assert!(this1 >= this0 + 30 * 86_400, "{this0} -> {this1}");
    assert!(next1 >= this1 + 29 * 86_400);
    assert_eq!(revoked1, revoked);
    assert!(fs::read_to_string(&marker).unwrap().contains("crl.pem"));
}

#[test]
fn the_crl_signed_again_reaches_a_running_haproxy_through_its_runtime_api() {
    let lab = lab();
    local_at(&lab, "+0d", &["request", "backend.lan"]).assert_success();
    let ca = lab.root().join("certctl-ca.pem");
    fs::write(&ca, local_at(&lab, "+0d", &["ca", "show"]).stdout).unwrap();
    let crl_path = lab.state_dir().join("ca/crl.pem");
    let socket = lab.root().join("mtls-admin.sock");
    let cfg = lab.root().join("mtls.cfg");
    fs::write(
        &cfg,
        format!(
            "global\n    stats socket {} level admin\ndefaults\n    mode http\n    timeout connect 5s\n    \
             timeout client 30s\n    timeout server 30s\nfrontend mtls\n    bind 127.0.0.1:{} ssl crt {} \
             ca-file {} crl-file {} verify optional\n    http-request return status 200\n",
            socket.display(),
            common::process::free_port(),
            lab.ssl_dir().join("backend.lan.pem").display(),
            ca.display(),
            crl_path.display()
        ),
    )
    .unwrap();
    let mut command = std::process::Command::new("haproxy");
    command.args(["-db", "-f"]).arg(&cfg);
    let mut haproxy = common::process::ProcessGuard::spawn(
        "haproxy (crl-file)",
        command,
        lab.root().join("mtls-haproxy.log"),
    );
    haproxy.wait_until(
        "its admin socket",
        std::time::Duration::from_secs(60),
        || common::haproxy::admin_command(&socket, "show ssl crl-file").is_ok(),
    );
    let show = || {
        common::haproxy::admin_command(
            &socket,
            &format!("show ssl crl-file {}", crl_path.display()),
        )
        .unwrap()
    };
    let before = show();

    let sock = socket.display().to_string();
    let out = local_at(&lab, "+31d", &["renew", "--haproxy-socket", &sock]);
    out.assert_success();
    assert!(
        out.stderr.contains("now uses the new CRL"),
        "{}",
        out.stderr
    );
    assert_ne!(show(), before, "HAProxy holds the new CRL");
}

/// `GET path` on 127.0.0.1:port (plain HTTP/1.0): the status code HAProxy answers.
fn status_of(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: front\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"))
}

/// Starts `haproxy -W -db -f cfg` (master-worker, foreground), its clock moved by `offset`
/// when given (libfaketime preloaded into HAProxy itself, so that the guard's pid is the
/// master's), waits for its admin socket, and writes `<label>-reload.sh` (reloads it and
/// waits for the new worker).
fn haproxy_at(
    lab: &Lab,
    label: &str,
    offset: Option<&str>,
    socket: &Path,
    config: &str,
) -> common::process::ProcessGuard {
    let cfg = lab.root().join(format!("{label}.cfg"));
    fs::write(&cfg, config).unwrap();
    let mut command = std::process::Command::new("haproxy");
    command.args(["-W", "-db", "-f"]).arg(&cfg);
    if let Some(offset) = offset {
        let lib = format!(
            "/usr/lib/{}-linux-gnu/faketime/libfaketime.so.1",
            std::env::consts::ARCH
        );
        assert!(
            Path::new(&lib).exists(),
            "{lib} is missing: apt-get install faketime (scripts/test.sh does)"
        );
        command
            .env("LD_PRELOAD", &lib)
            .env("FAKETIME", offset)
            .env("FAKETIME_DONT_RESET", "1");
    }
    let log = lab.root().join(format!("{label}.log"));
    let mut guard = common::process::ProcessGuard::spawn(label, command, log.clone());
    let script = common::haproxy::reload_script(
        guard.pid(),
        &log,
        &lab.root().join(format!("{label}-reload.lock")),
    );
    fs::write(lab.root().join(format!("{label}-reload.sh")), script).unwrap();
    guard.wait_until(
        "its admin socket",
        std::time::Duration::from_secs(60),
        || common::haproxy::admin_command(socket, "show info").is_ok(),
    );
    guard
}

#[test]
fn after_a_month_and_one_cron_run_haproxy_accepts_a_valid_backend_and_refuses_a_revoked_one() {
    let lab = lab();
    for name in ["backend.lan", "revoked.lan"] {
        local_at(&lab, "+0d", &["request", name]).assert_success();
    }
    // the revoked backend keeps serving its certificate: HAProxy must refuse it
    let revoked_pem = lab.root().join("revoked-backend.pem");
    fs::copy(lab.ssl_dir().join("revoked.lan.pem"), &revoked_pem).unwrap();
    local_at(&lab, "+0d", &["revoke", "revoked.lan", "--yes"]).assert_success();
    let ca = lab.root().join("certctl-ca.pem");
    fs::write(&ca, local_at(&lab, "+0d", &["ca", "show"]).stdout).unwrap();
    let crl_path = lab.state_dir().join("ca/crl.pem");

    // the two backends, on today's clock
    let (valid_port, revoked_port, front_port) = (
        common::process::free_port(),
        common::process::free_port(),
        common::process::free_port(),
    );
    let defaults = "defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n    \
                    timeout server 60s\n";
    let backends_socket = lab.root().join("backends.sock");
    let _backends = haproxy_at(
        &lab,
        "backends",
        None,
        &backends_socket,
        &format!(
            "global\n    stats socket {} level admin\n{defaults}\
             frontend valid\n    bind 127.0.0.1:{valid_port} ssl crt {}\n    http-request return status 200\n\
             frontend revoked\n    bind 127.0.0.1:{revoked_port} ssl crt {}\n    http-request return status 200\n",
            backends_socket.display(),
            lab.ssl_dir().join("backend.lan.pem").display(),
            revoked_pem.display(),
        ),
    );

    // the proxy in front (serving the ssl dir too), its clock 31 days on: the CRL it loaded
    // has expired
    let front_socket = lab.root().join("front.sock");
    let server = |port: u16, name: &str| {
        format!(
            "server s 127.0.0.1:{port} ssl verify required ca-file {} crl-file {} sni str({name}) \
             verifyhost {name}",
            ca.display(),
            crl_path.display()
        )
    };
    let _front = haproxy_at(
        &lab,
        "front",
        Some("+31d"),
        &front_socket,
        &format!(
            "global\n    stats socket {} level admin\n{defaults}\
             frontend https\n    bind 127.0.0.1:{} ssl crt {}/\n    default_backend valid\n\
             frontend http\n    bind 127.0.0.1:{front_port}\n    \
             use_backend revoked if {{ path /revoked }}\n    default_backend valid\n\
             backend valid\n    {}\nbackend revoked\n    {}\n",
            front_socket.display(),
            common::process::free_port(),
            lab.ssl_dir().display(),
            server(valid_port, "backend.lan"),
            server(revoked_port, "revoked.lan"),
        ),
    );
    assert_eq!(status_of(front_port, "/valid"), 503, "the CRL has expired");
    assert_eq!(status_of(front_port, "/revoked"), 503);

    // one cron run, 31 days on, as the README's cron line (the reload as post-hook): the CRL
    // is signed again and handed to the running HAProxy, which takes it for its bind lines
    // only (HAProxy 2.6); its server lines use it once the post-hook has reloaded it
    let sock = front_socket.display().to_string();
    let reload = format!("sh {}", lab.root().join("front-reload.sh").display());
    let out = local_at(
        &lab,
        "+31d",
        &["renew", "--haproxy-socket", &sock, "--post-hook", &reload],
    );
    out.assert_success();
    assert!(out.stderr.contains("after a reload"), "{}", out.stderr);
    assert_eq!(status_of(front_port, "/valid"), 200, "a valid backend");
    assert_eq!(status_of(front_port, "/revoked"), 503, "a revoked backend");

    // half a month later without the post-hook: signed again and pushed, but the run says
    // that the server lines need a reload, and fails
    let out = local_at(&lab, "+47d", &["renew", "--haproxy-socket", &sock]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("until it reloads") && out.stderr.contains("--post-hook"),
        "{}",
        out.stderr
    );
}
