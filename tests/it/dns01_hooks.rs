//! DNS-01 beyond certctl's own updates, against real BIND: certbot-style hook scripts that
//! call `nsupdate` (and one that fails), lego's exec convention, certbot's lineages taken
//! over (one that certbot itself issued with its rfc2136 plugin, and manual hooks), and the
//! bad inputs of the DNS-01 flags, each refused (exit 2) before anything is written.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::bind::{Bind, KEY_NAME, Zone};
use common::certbot::{CertbotDirs, FakeLineage, certonly_rfc2136};
use common::fixtures::{both_snapshots, snapshot};
use common::{Lab, LabOptions, Output};
use serde_json::Value;

fn dns_lab(zones: &[Zone]) -> (Bind, Lab) {
    let bind = Bind::start(zones);
    let lab = Lab::start_with(LabOptions {
        dns_server: Some(bind.addr()),
        haproxy: false,
        ..LabOptions::default()
    });
    (bind, lab)
}

/// An executable script in the lab's directory.
fn script(lab: &Lab, name: &str, body: &str) -> PathBuf {
    let path = lab.root().join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The shell lines that pipe one nsupdate command (`update add|delete ...`) to BIND.
fn nsupdate(bind: &Bind, update: &str) -> String {
    format!(
        "printf 'server 127.0.0.1 {}\\nzone example.test\\n{update}\\nsend\\n' | nsupdate -k {}",
        bind.addr().port(),
        bind.key_file().display()
    )
}

fn settings(lab: &Lab, name: &str) -> Value {
    let path = lab
        .state_dir()
        .join("certs")
        .join(name)
        .join("settings.json");
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

fn hook_request(lab: &Lab, bind: &Bind, names: &[&str], hooks: &[&str]) -> Output {
    let resolver = bind.addr_arg();
    let mut args = vec!["request", "--agree-tos", "--challenge", "dns-01"];
    args.extend(["--dns-resolver", &resolver]);
    args.extend_from_slice(hooks);
    args.extend_from_slice(names);
    lab.run(&args)
}

#[test]
fn certbot_style_hooks_calling_nsupdate_work_unchanged() {
    let (bind, lab) = dns_lab(&[Zone::new("example.test")]);
    let log = lab.root().join("hooks.log");
    let add = nsupdate(&bind, "update add _acme-challenge.%s. 60 TXT \"%s\"");
    let delete = nsupdate(&bind, "update delete _acme-challenge.%s. TXT \"%s\"");
    // the values reach nsupdate as printf arguments, never spliced into the script
    let auth_body = format!(
        "echo \"auth $CERTBOT_DOMAIN $CERTBOT_REMAINING_CHALLENGES $CERTBOT_ALL_DOMAINS\" >> {log}\n\
         {add}\necho \"made-$CERTBOT_DOMAIN\"\n",
        log = log.display(),
        add = add.replace(
            "\\nsend\\n'",
            "\\nsend\\n' \"$CERTBOT_DOMAIN\" \"$CERTBOT_VALIDATION\""
        )
    );
    let auth = script(&lab, "auth.sh", &auth_body);
    let cleanup = script(
        &lab,
        "cleanup.sh",
        &format!(
            "echo \"cleanup $CERTBOT_DOMAIN $CERTBOT_AUTH_OUTPUT\" >> {log}\n{delete}\n",
            log = log.display(),
            delete = delete.replace(
                "\\nsend\\n'",
                "\\nsend\\n' \"$CERTBOT_DOMAIN\" \"$CERTBOT_VALIDATION\""
            )
        ),
    );
    let (auth, cleanup) = (auth.display().to_string(), cleanup.display().to_string());
    let hooks = [
        "--dns-hook",
        auth.as_str(),
        "--dns-cleanup-hook",
        cleanup.as_str(),
    ];
    let out = hook_request(
        &lab,
        &bind,
        &["hook.example.test", "*.hook.example.test"],
        &hooks,
    );
    out.assert_success();
    let mut lines: Vec<String> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "auth hook.example.test 0 hook.example.test,*.hook.example.test",
            "auth hook.example.test 1 hook.example.test,*.hook.example.test",
            "cleanup hook.example.test made-hook.example.test",
            "cleanup hook.example.test made-hook.example.test",
        ]
    );
    assert!(bind.txt("_acme-challenge.hook.example.test").is_empty());
    let stored = settings(&lab, "hook.example.test");
    assert_eq!(stored["challenge"]["provider"], "hook");
    assert_eq!(stored["challenge"]["hook"], auth.as_str());

    // a failing auth hook: its stderr in the error, the cleanup hook still run, nothing left
    fs::remove_file(&log).unwrap();
    let before = both_snapshots(&lab);
    let failing = script(
        &lab,
        "failing.sh",
        &format!("{auth_body}echo 'the zone is frozen for maintenance' >&2\nexit 1\n"),
    );
    let failing = failing.display().to_string();
    let hooks = [
        "--dns-hook",
        failing.as_str(),
        "--dns-cleanup-hook",
        cleanup.as_str(),
    ];
    let out = hook_request(
        &lab,
        &bind,
        &["hook.example.test", "*.hook.example.test", "--force"],
        &hooks,
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("the zone is frozen for maintenance"),
        "{}",
        out.stderr
    );
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("cleanup hook.example.test"),
        "the cleanup hook ran:\n{log_text}"
    );
    assert!(bind.txt("_acme-challenge.hook.example.test").is_empty());
    let (state, ssl) = both_snapshots(&lab);
    assert!(ssl == before.1, "the bundle is untouched");
    let certs = |s: &common::fixtures::Snapshot| -> Vec<_> {
        s.iter()
            .filter(|(p, _)| p.starts_with(lab.state_dir().join("certs")))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    };
    assert!(
        certs(&state) == certs(&before.0),
        "the old certificate and settings are untouched"
    );
}

#[test]
fn lego_exec_style_gets_action_fqdn_and_value() {
    let (bind, lab) = dns_lab(&[Zone::new("example.test")]);
    let log = lab.root().join("lego.log");
    let add = nsupdate(&bind, "update add %s 60 TXT \"%s\"");
    let delete = nsupdate(&bind, "update delete %s TXT \"%s\"");
    let with_args = |line: &str| line.replace("\\nsend\\n'", "\\nsend\\n' \"$2\" \"$3\"");
    let lego = script(
        &lab,
        "lego-exec.sh",
        &format!(
            "echo \"$1 $2\" >> {log}\ncase \"$1\" in\n  present) {};;\n  cleanup) {};;\n  *) exit 2;;\nesac\n",
            with_args(&add),
            with_args(&delete),
            log = log.display()
        ),
    );
    let lego = lego.display().to_string();
    let hooks = ["--dns-hook", lego.as_str(), "--dns-hook-style", "lego"];
    hook_request(&lab, &bind, &["lego.example.test"], &hooks).assert_success();
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "present _acme-challenge.lego.example.test.\ncleanup _acme-challenge.lego.example.test.\n"
    );
    assert!(bind.txt("_acme-challenge.lego.example.test").is_empty());
    assert_eq!(
        settings(&lab, "lego.example.test")["challenge"]["style"],
        "lego"
    );
}

#[test]
fn certbot_rfc2136_and_manual_lineages_are_taken_over_and_renewed() {
    let (bind, lab) = dns_lab(&[Zone::new("example.test")]);
    let dirs = CertbotDirs::new(lab.root());
    let config = dirs.config.display().to_string();
    let secret = bind.key_secret();
    let ini = lab.root().join("rfc2136.ini");
    fs::write(
        &ini,
        format!(
            "dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_port = {}\ndns_rfc2136_name = {KEY_NAME}\n\
             dns_rfc2136_secret = {secret}\ndns_rfc2136_algorithm = HMAC-SHA256\n",
            bind.addr().port()
        ),
    )
    .unwrap();
    fs::set_permissions(&ini, fs::Permissions::from_mode(0o600)).unwrap();
    certonly_rfc2136(
        &lab,
        &dirs,
        &ini,
        &["-d", "cb.example.test", "-d", "*.cb.example.test"],
    )
    .assert_success();
    assert!(
        bind.txt("_acme-challenge.cb.example.test").is_empty(),
        "certbot cleaned up"
    );

    // a manual lineage with DNS hooks (what certbot makes with --manual --preferred-challenges dns)
    let server = ("server", lab.directory_url());
    FakeLineage {
        name: "manual.example.test",
        names: &["manual.example.test", "*.manual.example.test"],
        params: &[
            ("authenticator", "manual"),
            ("manual_auth_hook", "/etc/letsencrypt/dns-auth.sh"),
            ("manual_cleanup_hook", "/etc/letsencrypt/dns-cleanup.sh"),
            ("pref_challs", "dns-01,"),
            (server.0, server.1.as_str()),
        ],
        extra: "",
        wrong_key: false,
    }
    .write(&dirs.config);
    let before = snapshot(&dirs.config);

    let out = lab.run(&["import", "certbot", &config, "--json"]);
    out.assert_success();
    assert!(
        !out.stdout.contains(&secret) && !out.stderr.contains(&secret),
        "the secret is shown"
    );
    let reports: Value = serde_json::from_str(&out.stdout).unwrap();
    for report in reports.as_array().unwrap() {
        assert_eq!(report["status"], "imported", "{report:#}");
    }
    let stored = settings(&lab, "cb.example.test");
    assert_eq!(stored["challenge"]["kind"], "dns-01");
    assert_eq!(stored["challenge"]["provider"], "rfc2136");
    assert_eq!(stored["challenge"]["server"], bind.addr_arg());
    assert_eq!(stored["challenge"]["tsig"]["name"], KEY_NAME);
    let settings_file = lab.state_dir().join("certs/cb.example.test/settings.json");
    assert_eq!(
        fs::metadata(&settings_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let manual = settings(&lab, "manual.example.test");
    assert_eq!(manual["challenge"]["provider"], "hook");
    assert_eq!(
        manual["challenge"]["cleanup_hook"],
        "/etc/letsencrypt/dns-cleanup.sh"
    );

    let list = lab.run(&["list", "--json"]);
    list.assert_success();
    assert!(!list.stdout.contains(&secret), "the secret in list --json");

    // renewed by certctl with what certbot had: the wildcard by RFC 2136 to the same BIND
    let renewed = lab.run(&["renew", "--force", "-v", "cb.example.test"]);
    renewed.assert_success();
    assert!(!renewed.stderr.contains(&secret));
    assert!(bind.txt("_acme-challenge.cb.example.test").is_empty());
    assert!(before == snapshot(&dirs.config), "certbot's files changed");
}

/// Bad DNS-01 input: exit 2, saying what is wrong and how to fix it, nothing written.
#[test]
fn bad_dns01_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let key = |name: &str, text: &str| -> String {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let good =
        "key \"k\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n";
    let unknown = key("unknown.key", &good.replace("hmac-sha256", "hmac-sha3"));
    let broken = key("broken.key", &good.replace("secret \"", "secrett \""));
    let missing = dir.path().join("missing.key").display().to_string();
    let dns = |key: &str| -> Vec<String> {
        [
            "--challenge",
            "dns-01",
            "--dns-server",
            "127.0.0.1:9",
            "--tsig-key",
            key,
        ]
        .map(String::from)
        .to_vec()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            [vec!["a.example.test".into()], dns(&unknown)].concat(),
            "line 2, field algorithm: unknown TSIG algorithm \"hmac-sha3\"",
        ),
        (
            [vec!["a.example.test".into()], dns(&broken)].concat(),
            "line 3: unknown field \"secrett\"",
        ),
        (
            [vec!["a.example.test".into()], dns(&missing)].concat(),
            "missing.key",
        ),
        (
            vec!["*.example.test".into()],
            "--challenge dns-01 with --dns-server",
        ),
        (
            vec![
                "a.example.test".into(),
                "--challenge".into(),
                "dns-01".into(),
            ],
            "needs --dns-server HOST --tsig-key FILE",
        ),
        (
            vec![
                "a.example.test".into(),
                "--dns-server".into(),
                "ns1.example.test".into(),
            ],
            "--dns-server applies to DNS-01",
        ),
        (
            vec![
                "a.example.test".into(),
                "--challenge".into(),
                "b.example.test=dns-01".into(),
            ],
            "not one of the certificate's names",
        ),
        (
            vec![
                "a.example.test".into(),
                "--challenge".into(),
                "dns01".into(),
            ],
            "dns01",
        ),
    ];
    for (args, needle) in cases {
        let mut command = common::hermetic::certctl_in(dir.path());
        command
            .arg("--state-dir")
            .arg(&state)
            .arg("--ssl-dir")
            .arg(dir.path().join("ssl"));
        command
            .args([
                "--server",
                "https://127.0.0.1:9/dir",
                "request",
                "--agree-tos",
            ])
            .args(&args);
        let out = common::run_command(command);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "{args:?}: expected {needle:?} in:\n{}",
            out.stderr
        );
        assert!(!out.stderr.contains("c2VjcmV0"), "a secret in an error");
        assert!(!state.exists(), "{args:?} wrote the state directory");
    }
}
