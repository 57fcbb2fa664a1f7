//! `certctl check` as Nagios/Icinga run it (exit codes 0-3, one status line with performance
//! data, --json), `--probe` against the lab's real HAProxy, `--metrics-file` on check and
//! renew checked with Prometheus' own `promtool`, and journald priorities on stderr.
//! Time is moved with Debian's `faketime` instead of waiting for it.

use crate::common;

use std::fs;
use std::process::Command;

use common::fixtures::request;
use common::{Lab, LabOptions, Output, run_command};

const DAY: u64 = 86_400;

fn lab(validity_days: u64, haproxy: bool) -> Lab {
    Lab::start_with(LabOptions {
        validity_secs: Some(validity_days * DAY),
        haproxy,
        ..Default::default()
    })
}

/// The path of a tool the test needs; a missing one fails the test with how to install it.
fn tool(name: &str, package: &str) -> String {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .expect("running sh");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        found.status.success() && !path.is_empty(),
        "{name} is missing: install it with `apt-get install {package}` (scripts/test.sh does)"
    );
    path
}

/// `certctl <lab flags> <args>` as if `days` later (libfaketime).
fn later(lab: &Lab, days: u64, args: &[&str]) -> Output {
    let faketime = tool("faketime", "faketime");
    let certctl = lab.certctl();
    let mut command = Command::new(faketime);
    command.arg("-f").arg(format!("+{days}d"));
    command.arg(certctl.get_program());
    command.args(certctl.get_args());
    for (key, value) in certctl.get_envs() {
        match value {
            Some(v) => command.env(key, v),
            None => command.env_remove(key),
        };
    }
    command.stdin(std::process::Stdio::null());
    command.args(args);
    run_command(command)
}

fn status_line(out: &Output) -> &str {
    out.stdout.lines().next().unwrap_or("")
}

#[test]
fn check_exit_codes_follow_the_plugin_conventions() {
    let lab = lab(30, false);
    request(&lab, &["a.test"]).assert_success();

    // fresh: OK, with performance data
    let out = lab.run(&["check"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        status_line(&out).starts_with("CERTCTL OK - 1 certificate(s)"),
        "{out:?}"
    );
    assert!(status_line(&out).contains(" | days_left="), "{out:?}");

    // 26 days later: 4 days left of 30, under a sixth of the lifetime (5 days): WARNING;
    // 28 days later: under a twelfth (2.5 days): CRITICAL; past the end: CRITICAL, expired
    let out = later(&lab, 26, &["check"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        status_line(&out).starts_with("CERTCTL WARNING - a.test: expires in "),
        "{out:?}"
    );
    let out = later(&lab, 28, &["check"]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        status_line(&out).starts_with("CERTCTL CRITICAL - a.test: expires in "),
        "{out:?}"
    );
    let out = later(&lab, 31, &["check", "--json"]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["status"], "CRITICAL");
    assert_eq!(json["code"], 2);
    assert_eq!(json["certificates"][0]["name"], "a.test");
    assert_eq!(json["certificates"][0]["reasons"][0], "expired");

    // bad input is UNKNOWN (3), whether clap, the thresholds or the names refuse it
    for args in [
        vec!["check", "--warning", "5", "--critical", "10"],
        vec!["check", "nope.test"],
        vec!["check", "--no-such-flag"],
        vec!["check", "--probe", "no-port"],
    ] {
        let out = lab.run(&args);
        assert_eq!(out.code(), Some(3), "{args:?}: {out:?}");
        assert!(
            status_line(&out).starts_with("CERTCTL UNKNOWN"),
            "{args:?}: {out:?}"
        );
    }
}

#[test]
fn check_reports_failed_renewals_pending_deploys_and_damage() {
    let lab = lab(30, false);
    request(&lab, &["a.test"]).assert_success();
    request(&lab, &["b.test"]).assert_success();

    // a renewal that fails (the CA is down) is a WARNING until one succeeds
    lab.stop_pebble();
    assert_eq!(lab.run(&["renew", "--force", "a.test"]).code(), Some(1));
    let out = lab.run(&["check"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        status_line(&out).contains("a.test: the last 1 renewal attempt(s) failed"),
        "{out:?}"
    );
    assert!(!status_line(&out).contains("b.test:"), "{out:?}");
    // Pebble forgets its accounts when restarted: certctl then registers a new one
    lab.restart_pebble();
    for entry in fs::read_dir(lab.state_dir().join("accounts")).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    lab.run(&["renew", "--force", "a.test"]).assert_success();
    assert_eq!(lab.run(&["check"]).code(), Some(0));

    // a bundle that is not the stored certificate is CRITICAL (a deploy is pending)
    fs::remove_file(lab.ssl_dir().join("b.test.pem")).unwrap();
    let out = lab.run(&["check"]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        status_line(&out)
            .contains("b.test: the bundle in the ssl directory is not the stored certificate"),
        "{out:?}"
    );
    lab.run(&["concat", "b.test"]).assert_success();
    assert_eq!(lab.run(&["check"]).code(), Some(0));

    // a damaged store is CRITICAL, naming the file
    fs::write(lab.state_dir().join("certs/b.test/live/meta.json"), "{").unwrap();
    let out = lab.run(&["check", "b.test"]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        status_line(&out).contains("meta.json is damaged"),
        "{out:?}"
    );
}

#[test]
fn probe_tells_a_proxy_that_was_never_reloaded() {
    let lab = lab(30, true);
    request(&lab, &["a.test"]).assert_success();
    lab.reload_haproxy();
    let probe = lab.https_addr().to_string();

    let out = lab.run(&["check", "--probe", &probe]);
    assert_eq!(out.code(), Some(0), "{out:?}");

    // renewed, but HAProxy was not reloaded: it still serves the old one
    lab.run(&["renew", "--force"]).assert_success();
    let out = lab.run(&["check", "--probe", &probe]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        status_line(&out).contains(&format!("{probe} serves an older certificate")),
        "{out:?}"
    );
    lab.reload_haproxy();
    assert_eq!(lab.run(&["check", "--probe", &probe]).code(), Some(0));

    // nothing listening: CRITICAL, saying so
    let closed = format!("127.0.0.1:{}", common::process::free_port());
    let out = lab.run(&["check", "--probe", &closed]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        status_line(&out).contains(&format!("probing {closed}")),
        "{out:?}"
    );
}

#[test]
fn metrics_files_pass_promtool() {
    let promtool = tool("promtool", "prometheus");
    let lab = lab(30, false);
    request(&lab, &["a.test"]).assert_success();
    request(&lab, &["b.test"]).assert_success();
    lab.stop_pebble();
    assert_eq!(lab.run(&["renew", "--force", "b.test"]).code(), Some(1));

    let renew_metrics = lab.root().join("renew.prom");
    // nothing due: no request (the CA is down), and the metrics are written all the same
    lab.run(&["renew", "--metrics-file", renew_metrics.to_str().unwrap()])
        .assert_success();
    let check_metrics = lab.root().join("check.prom");
    let out = lab.run(&["check", "--metrics-file", check_metrics.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "b.test's renewal failed: {out:?}");

    for path in [&renew_metrics, &check_metrics] {
        let text = fs::read_to_string(path).unwrap();
        let mut command = Command::new(&promtool);
        command
            .args(["check", "metrics"])
            .stdin(fs::File::open(path).unwrap());
        let checked = run_command(command);
        assert!(
            checked.success(),
            "promtool refused {}:\n{text}\n{checked:?}",
            path.display()
        );
        for needle in [
            "certctl_certificate_not_after_seconds{name=\"a.test\"} ",
            "certctl_certificate_renewal_due{name=\"a.test\"} 0",
            "certctl_renewal_last_success_timestamp_seconds{name=\"a.test\"} ",
            "certctl_renewal_failures_total{name=\"b.test\"} 1",
            "certctl_renewal_consecutive_failures{name=\"b.test\"} 1",
            "certctl_deploy_pending{name=\"a.test\"} 0",
            "certctl_run_duration_seconds ",
            "certctl_run_timestamp_seconds ",
        ] {
            assert!(
                text.contains(needle),
                "{} lacks {needle:?}:\n{text}",
                path.display()
            );
        }
    }
}

#[test]
fn under_journald_lines_carry_their_priority() {
    let lab = lab(30, false);
    let mut command = lab.certctl();
    command.env("JOURNAL_STREAM", "8:12345");
    command.args([
        "request",
        "a.test",
        "--agree-tos",
        "--http-addr",
        &lab.http_addr(),
    ]);
    let out = run_command(command);
    out.assert_success();
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("<6>a.test: issued for a.test")),
        "{out:?}"
    );
    assert!(out.stderr.lines().all(|l| l.starts_with('<')), "{out:?}");

    fs::write(lab.state_dir().join("certs/a.test/live/meta.json"), "{").unwrap();
    let mut command = lab.certctl();
    command.env("JOURNAL_STREAM", "8:12345");
    command.args(["renew", "--force"]);
    let out = run_command(command);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("<3>certctl: a.test: cannot read the stored certificate")),
        "{out:?}"
    );

    // without the journal, no prefix
    let out = lab.run(&["renew", "--force"]);
    assert!(out.stderr.lines().all(|l| !l.starts_with('<')), "{out:?}");
}
