//! DNS-01 against real BIND 9: Pebble validates by asking the same `named` that certctl
//! updates (RFC 2136 with a `tsig-keygen` key, or hooks calling `nsupdate`), so a record
//! that is not really served fails the order. Every test also checks that no TXT value of
//! certctl's is left in the zone, and the failures that the old certificate is untouched.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::bind::{Bind, KEY_NAME, SilentServer, Update, UpdateCounter, Zone};
use common::fixtures::both_snapshots;
use common::{Lab, LabOptions, Output};
use serde_json::Value;

/// BIND with `zones`, and a lab whose Pebble validates against it (no HAProxy: HTTP-01,
/// where a test mixes it in, goes straight to the responder).
fn dns_lab(zones: &[Zone]) -> (Bind, Lab) {
    let bind = Bind::start(zones);
    let lab = Lab::start_with(LabOptions {
        dns_server: Some(bind.addr()),
        haproxy: false,
        ..LabOptions::default()
    });
    (bind, lab)
}

/// `request NAMES --challenge dns-01` by RFC 2136 to `server` (BIND or a relay in front of
/// it), lookups at BIND, plus `extra`.
fn request_rfc2136(
    lab: &Lab,
    bind: &Bind,
    server: &str,
    key: &Path,
    names: &[&str],
    extra: &[&str],
) -> Output {
    let key = key.display().to_string();
    let resolver = bind.addr_arg();
    let mut args = vec!["request", "--agree-tos", "--challenge", "dns-01"];
    args.extend([
        "--dns-server",
        server,
        "--tsig-key",
        &key,
        "--dns-resolver",
        &resolver,
    ]);
    args.extend_from_slice(names);
    args.extend_from_slice(extra);
    lab.run(&args)
}

fn settings(lab: &Lab, name: &str) -> Value {
    let path = lab
        .state_dir()
        .join("certs")
        .join(name)
        .join("settings.json");
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

fn pending(lab: &Lab, name: &str) -> std::path::PathBuf {
    lab.state_dir()
        .join("dns-pending")
        .join(format!("{name}.json"))
}

#[test]
fn one_name_by_rfc2136_then_renew_repeats_it_with_no_flags() {
    let (bind, lab) = dns_lab(&[Zone::new("example.test")]);
    let out = request_rfc2136(
        &lab,
        &bind,
        &bind.addr_arg(),
        &bind.key_file(),
        &["a.example.test"],
        &[],
    );
    out.assert_success();
    assert!(lab.ssl_dir().join("a.example.test.pem").exists());
    assert!(
        bind.txt("_acme-challenge.a.example.test").is_empty(),
        "the record is removed"
    );
    assert!(
        !pending(&lab, "a.example.test").exists(),
        "the journal is cleared"
    );

    // stored: the key by path, never its secret
    let stored = settings(&lab, "a.example.test");
    assert_eq!(stored["challenge"]["kind"], "dns-01");
    assert_eq!(stored["challenge"]["provider"], "rfc2136");
    assert_eq!(
        stored["challenge"]["tsig"]["key_file"],
        bind.key_file().display().to_string()
    );
    let secret = bind.key_secret();
    let raw =
        fs::read_to_string(lab.state_dir().join("certs/a.example.test/settings.json")).unwrap();
    assert!(!raw.contains(&secret), "the secret is stored: {raw}");

    // renew --force: the stored settings alone; no secret in its output or in list --json
    let renewed = lab.run(&["renew", "--force", "-vv"]);
    renewed.assert_success();
    assert!(!renewed.stderr.contains(&secret), "the secret is logged");
    let list = lab.run(&["list", "--json"]);
    list.assert_success();
    assert!(!list.stdout.contains(&secret));
    assert!(bind.txt("_acme-challenge.a.example.test").is_empty());
}

#[test]
fn wildcard_and_apex_share_one_name_and_other_records_stay() {
    let (bind, lab) = dns_lab(&[Zone {
        records: "_acme-challenge IN TXT \"not-certctl\"",
        ..Zone::new("example.test")
    }]);
    let relay = UpdateCounter::start(bind.addr());
    let out = request_rfc2136(
        &lab,
        &bind,
        &relay.addr_arg(),
        &bind.key_file(),
        &["*.example.test", "example.test"],
        &["--name", "wild"],
    );
    out.assert_success();
    // both values went out in one UPDATE (both present when Pebble validated), and one
    // UPDATE took both away
    let zone = |records| Update {
        zone: "example.test".into(),
        records,
    };
    assert_eq!(relay.updates(), vec![zone(2), zone(2)]);
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        vec!["not-certctl".to_owned()]
    );
}

#[test]
fn one_certificate_mixes_http01_and_dns01_and_renewals_repeat_it() {
    // an explicit A record: once _acme-challenge.mixed exists, the wildcard A no longer
    // answers for mixed.example.test itself
    let (bind, lab) = dns_lab(&[Zone {
        records: "mixed IN A 127.0.0.1",
        ..Zone::new("example.test")
    }]);
    let relay = UpdateCounter::start(bind.addr());
    let http_addr = lab.http_addr();
    let out = request_rfc2136(
        &lab,
        &bind,
        &relay.addr_arg(),
        &bind.key_file(),
        &["mixed.example.test", "*.mixed.example.test"],
        &["--challenge", "standalone", "--http-addr", &http_addr],
    );
    assert_eq!(out.code(), Some(2), "two defaults: {}", out.stderr);
    let key = bind.key_file().display().to_string();
    let resolver = bind.addr_arg();
    let server = relay.addr_arg();
    let args = [
        "request",
        "--agree-tos",
        "mixed.example.test",
        "*.mixed.example.test",
        "--http-addr",
        &http_addr,
        "--challenge",
        "*.mixed.example.test=dns-01",
        "--dns-server",
        &server,
        "--tsig-key",
        &key,
        "--dns-resolver",
        &resolver,
    ];
    lab.run(&args).assert_success();
    let stored = settings(&lab, "mixed.example.test");
    assert_eq!(stored["challenge"]["kind"], "standalone");
    assert_eq!(
        stored["challenges"]["*.mixed.example.test"]["kind"],
        "dns-01"
    );
    assert_eq!(
        relay.updates().len(),
        2,
        "one UPDATE each way: {:?}",
        relay.updates()
    );
    assert!(
        relay.updates().iter().all(|u| u.records == 1),
        "only the wildcard by DNS"
    );

    relay.clear();
    lab.run(&["renew", "--force"]).assert_success();
    assert_eq!(
        relay.updates().len(),
        2,
        "the renewal repeats it: {:?}",
        relay.updates()
    );
    assert!(bind.txt("_acme-challenge.mixed.example.test").is_empty());
}

#[test]
fn cname_delegation_updates_the_validation_zone() {
    let (bind, lab) = dns_lab(&[
        Zone {
            records: "_acme-challenge.c IN CNAME c.validation.test.",
            updatable: false,
            ..Zone::new("example.test")
        },
        Zone::new("validation.test"),
    ]);
    let relay = UpdateCounter::start(bind.addr());
    let out = request_rfc2136(
        &lab,
        &bind,
        &relay.addr_arg(),
        &bind.key_file(),
        &["c.example.test"],
        &[],
    );
    out.assert_success();
    let zone = |records| Update {
        zone: "validation.test".into(),
        records,
    };
    assert_eq!(relay.updates(), vec![zone(1), zone(1)]);
    assert!(bind.txt("c.validation.test").is_empty());
}

#[test]
fn two_certificates_renewed_in_one_run_share_one_update_per_zone() {
    let (bind, lab) = dns_lab(&[Zone::new("example.test"), Zone::new("validation.test")]);
    let relay = UpdateCounter::start(bind.addr());
    for n in ["one", "two"] {
        let names = [format!("{n}.example.test"), format!("{n}.validation.test")];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        request_rfc2136(
            &lab,
            &bind,
            &relay.addr_arg(),
            &bind.key_file(),
            &names,
            &[],
        )
        .assert_success();
    }
    relay.clear();
    lab.run(&["renew", "--force"]).assert_success();
    let mut updates = relay.updates();
    updates.sort_by(|a, b| a.zone.cmp(&b.zone));
    let both = |zone: &str| Update {
        zone: zone.into(),
        records: 2,
    };
    assert_eq!(
        updates,
        vec![
            both("example.test"),
            both("example.test"),
            both("validation.test"),
            both("validation.test")
        ],
        "per zone one UPDATE adding both certificates' records and one removing them"
    );
    for name in [
        "_acme-challenge.one.example.test",
        "_acme-challenge.two.validation.test",
    ] {
        assert!(bind.txt(name).is_empty(), "{name}");
    }
}

/// A key file like `bind`'s with another secret, or another name.
fn wrong_key(bind: &Bind, dir: &Path, rename: bool) -> std::path::PathBuf {
    let text = fs::read_to_string(bind.key_file()).unwrap();
    let text = match rename {
        true => text.replace(KEY_NAME, "stranger-key"),
        false => text.replace(
            &bind.key_secret(),
            "c2VjcmV0IHRoYXQgQklORCBkb2VzIG5vdCBrbm93IQ==",
        ),
    };
    let path = dir.join(if rename { "stranger.key" } else { "wrong.key" });
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn a_wrong_key_or_a_silent_server_fails_naming_why_and_leaves_everything_as_it_was() {
    let (bind, lab) = dns_lab(&[Zone::new("example.test")]);
    let name = ["k.example.test"];
    request_rfc2136(&lab, &bind, &bind.addr_arg(), &bind.key_file(), &name, &[]).assert_success();
    let before = both_snapshots(&lab);
    let force = ["--force"];
    let clean = |out: &Output| assert!(!pending(&lab, "k.example.test").exists(), "{}", out.stderr);

    let wrong = wrong_key(&bind, lab.root(), false);
    let out = request_rfc2136(&lab, &bind, &bind.addr_arg(), &wrong, &name, &force);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("BADSIG"), "{}", out.stderr);
    assert!(out.stderr.contains(&bind.addr_arg()), "{}", out.stderr);
    clean(&out);

    let stranger = wrong_key(&bind, lab.root(), true);
    let out = request_rfc2136(&lab, &bind, &bind.addr_arg(), &stranger, &name, &force);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("BADKEY"), "{}", out.stderr);
    clean(&out);

    let silent = SilentServer::start();
    let started = Instant::now();
    let out = request_rfc2136(
        &lab,
        &bind,
        &silent.addr_arg(),
        &bind.key_file(),
        &name,
        &["--force", "--dns-timeout", "3"],
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&silent.addr_arg()),
        "names the server: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did not answer") && out.stderr.contains("--dns-timeout"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "bounded by the deadline"
    );

    let (state, ssl) = both_snapshots(&lab);
    let certs = |s: &common::fixtures::Snapshot| -> Vec<_> {
        s.iter()
            .filter(|(p, _)| p.starts_with(lab.state_dir().join("certs")))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    };
    assert!(ssl == before.1, "the bundle is untouched");
    assert!(
        certs(&state) == certs(&before.0),
        "the old certificate and its settings are untouched"
    );
    assert!(bind.txt("_acme-challenge.k.example.test").is_empty());

    // a refused update placed nothing; an unanswered one may have: it is written down, and
    // the next run removes it before anything else
    assert!(
        pending(&lab, "k.example.test").exists(),
        "the unanswered update is remembered"
    );
    let renewed = lab.run(&["renew", "--force"]);
    renewed.assert_success();
    assert!(
        renewed.stderr.contains("an earlier run left in place"),
        "{}",
        renewed.stderr
    );
    assert!(!pending(&lab, "k.example.test").exists());
}

/// A zone whose second nameserver never serves anything (nothing listens on 127.0.0.2):
/// records placed there never propagate, so a run waits until its deadline.
fn slow_zone() -> Zone<'static> {
    Zone {
        records: "@ IN NS ns2.slow.test.\nns2 IN A 127.0.0.2",
        ..Zone::new("slow.test")
    }
}

/// `certctl <args>` in the background, output in a file; killed if still running when dropped.
struct Background {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Background {
    fn start(lab: &Lab, args: &[&str]) -> Background {
        let log = lab.root().join("background.log");
        let out = fs::File::create(&log).unwrap();
        let mut command = lab.certctl();
        command
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        eprintln!("$ certctl {}", args.join(" "));
        Background {
            child: command.spawn().unwrap(),
            log,
        }
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until BIND serves a value at `name` (the UPDATE went through); panics when
    /// certctl exits first.
    fn wait_for_record(&mut self, bind: &Bind, name: &str) {
        let deadline = Instant::now() + common::STARTUP_TIMEOUT;
        while bind.txt(name).is_empty() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "certctl exited ({status}) before placing {name}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no record at {name}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` and waits for the exit; the exit code and the output.
    fn signal(&mut self, signal: libc::c_int) -> (Option<i32>, String) {
        // SAFETY: kill(2) has no memory-safety preconditions; the child is not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let output = self.output();
                eprintln!("{output}--- {status}");
                return (status.code(), output);
            }
            assert!(
                Instant::now() < deadline,
                "certctl still running:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn interrupted_runs_leave_no_record_behind() {
    let (bind, lab) = dns_lab(&[slow_zone()]);
    let key = bind.key_file().display().to_string();
    let resolver = bind.addr_arg();
    let owner = "_acme-challenge.s.slow.test";
    let args = |timeout: &'static str| -> Vec<String> {
        [
            "request",
            "--agree-tos",
            "s.slow.test",
            "--challenge",
            "dns-01",
            "--dns-server",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            resolver.clone(),
            "--tsig-key".into(),
            key.clone(),
            "--dns-resolver".into(),
        ])
        .chain([resolver.clone(), "--dns-timeout".into(), timeout.into()])
        .collect()
    };
    let run = |timeout| {
        let args = args(timeout);
        Background::start(&lab, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // SIGTERM while waiting for the records to propagate: they are removed before the exit
    let mut certctl = run("300");
    certctl.wait_for_record(&bind, owner);
    let (code, output) = certctl.signal(libc::SIGTERM);
    assert_eq!(code, Some(143), "{output}");
    assert!(
        bind.txt(owner).is_empty(),
        "SIGTERM left the record:\n{output}"
    );
    assert!(!pending(&lab, "s.slow.test").exists());

    // SIGKILL: the record stays, written down; the next run of the certificate removes it
    // first (its own order then fails, as this zone never propagates, and cleans up too)
    let mut certctl = run("300");
    certctl.wait_for_record(&bind, owner);
    let (code, _) = certctl.signal(libc::SIGKILL);
    assert_eq!(code, None, "killed by a signal");
    let left = bind.txt(owner);
    assert_eq!(left.len(), 1, "the killed run's record is still there");
    assert!(pending(&lab, "s.slow.test").exists(), "and written down");

    let out = lab.run(&args("2").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("an earlier run left in place: _acme-challenge.s.slow.test"),
        "{}",
        out.stderr
    );
    // the deadline names the nameserver that lacked the record
    assert!(
        out.stderr.contains("ns2.slow.test. (127.0.0.2:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("within 2 s (--dns-timeout)"),
        "{}",
        out.stderr
    );
    assert!(bind.txt(owner).is_empty(), "no record left");
    assert!(!pending(&lab, "s.slow.test").exists());
}

#[test]
fn a_name_in_no_zone_fails_before_anything_is_placed() {
    let (bind, lab) = dns_lab(&[Zone::new("example.test")]);
    let out = request_rfc2136(
        &lab,
        &bind,
        &bind.addr_arg(),
        &bind.key_file(),
        &["a.nowhere.test"],
        &[],
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no DNS zone found for _acme-challenge.a.nowhere.test"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--dns-zone"), "{}", out.stderr);
    assert!(!lab.state_dir().join("certs/a.nowhere.test").exists());
    assert!(!pending(&lab, "a.nowhere.test").exists());
}
