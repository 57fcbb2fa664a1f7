//! A broken or hostile CA, through the binary: the lab's Pebble behind `CaFront`, which
//! swaps the issued certificate for one that is not the one asked for, stalls or trickles
//! a body, sends one without end, answers with an HTML page, a redirect or a bare status, or
//! a Retry-After no clock can hold; and accounts of two directory URLs that differ only where
//! the old file names could not tell them apart. Deadlines are set small through
//! CERTCTL_HTTP_TIMEOUT; every assertion is about the outcome (exit code, message, files),
//! with generous bounds only against hangs. Prints the peak RSS under the endless body.

use crate::common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::bounded::{Cases, Run, expect, run};
use common::ca_front::{CaFront, Fault, WrongCert};
use common::{Lab, LabOptions};

/// A hang guard for a run that should end within its CA deadline.
const BOUND: Duration = Duration::from_secs(150);
/// The whole-exchange deadline the stalling cases run with.
const SHORT: &str = "3";

fn lab() -> Lab {
    Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    })
}

/// `certctl --server <server> <args>` with the lab's other global flags and `env`.
fn certctl(lab: &Lab, server: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = lab.certctl_with_server(server);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `certctl request` with the lab's responder and the terms agreed to.
fn request(lab: &Lab, server: &str, names: &[&str], env: &[(&str, &str)]) -> Result<Run, String> {
    let http = lab.http_addr();
    let mut args = vec!["request", "--http-addr", &http, "--agree-tos"];
    args.extend_from_slice(names);
    run(certctl(lab, server, &args, env), BOUND)
}

fn bundle(lab: &Lab, name: &str) -> PathBuf {
    lab.ssl_dir().join(format!("{name}.pem"))
}

fn check(condition: bool, what: impl Into<String>) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what.into()) }
}

/// The case's outcome, and the bundle of `name` byte for byte as `before`.
fn unchanged(outcome: Result<(), String>, path: &Path, before: &[u8]) -> Result<(), String> {
    outcome.and_then(|()| {
        check(
            fs::read(path).unwrap_or_default() == before,
            format!("{} changed", path.display()),
        )
    })
}

fn not_said(run: &Result<Run, String>, words: &str) -> Result<(), String> {
    match run {
        Ok(run) if run.output.stderr.contains(words) => {
            Err(format!("says {words:?}: {}", run.output.stderr.trim()))
        }
        _ => Ok(()),
    }
}

#[test]
fn a_broken_or_hostile_ca_fails_its_certificate_and_only_that_one() {
    let mut cases = Cases::new("hostile CA");
    let lab = lab();
    let front = CaFront::start(&lab);
    let via = front.directory_url();
    let direct = lab.directory_url();
    let short = [("CERTCTL_HTTP_TIMEOUT", SHORT)];
    request(&lab, &via, &["a.test"], &[])
        .and_then(|r| check(r.output.success(), r.output.stderr.clone()))
        .expect("a first certificate through the front");
    request(&lab, &direct, &["c.test"], &[])
        .and_then(|r| check(r.output.success(), r.output.stderr.clone()))
        .expect("a certificate straight from Pebble");
    let a_bundle = bundle(&lab, "a.test");
    let mut a_before = fs::read(&a_bundle).unwrap();

    // 5. never install a certificate that is not the one asked for
    for (kind, needle) in [
        (WrongCert::OtherName, "names check failed"),
        (WrongCert::Expired, "validity check failed"),
        (WrongCert::NoIntermediate, "the intermediate is missing"),
        (WrongCert::BrokenLink, "chain check failed"),
    ] {
        front.set_fault("/certZ/", Fault::Cert(kind));
        let out = request(&lab, &via, &["a.test", "--force"], &[]);
        cases.check(
            &format!("the CA sends {kind:?}"),
            unchanged(expect(&out, 1, &[needle]), &a_bundle, &a_before),
        );
    }
    front.clear_faults();

    // 14. what the CA's URL answers instead of ACME, each said as it is
    for (fault, needle) in [
        (Fault::Html, "an HTML page"),
        (Fault::Redirect, "a redirect (HTTP 302)"),
        (Fault::Status(404), "HTTP 404"),
        (Fault::Status(500), "HTTP 500"),
    ] {
        front.set_fault("/dir", fault);
        let out = request(&lab, &via, &["a.test", "--force"], &[]);
        cases.check(
            &format!("the directory answers {fault:?}"),
            unchanged(expect(&out, 1, &[needle]), &a_bundle, &a_before)
                .and_then(|()| not_said(&out, "cannot reach"))
                .and_then(|()| not_said(&out, "deserialize")),
        );
    }
    front.clear_faults();
    let closed = format!("https://127.0.0.1:{}/dir", common::process::free_port());
    let out = request(&lab, &closed, &["b.test"], &[]);
    cases.check(
        "no connection is 'cannot reach'",
        expect(&out, 1, &["cannot reach the ACME server"]),
    );

    // 9. a body that stalls, or trickles: that exchange fails at the deadline
    for fault in [Fault::StallBody, Fault::Trickle] {
        front.set_fault("/certZ/", fault);
        let out = request(&lab, &via, &["a.test", "--force"], &short);
        cases.check(
            &format!("the certificate download {fault:?}"),
            unchanged(
                expect(&out, 1, &["did not send its whole answer within 3s"]),
                &a_bundle,
                &a_before,
            )
            .and_then(|()| not_said(&out, "cannot reach")),
        );
    }
    // ... and the certificates of other CAs are renewed meanwhile
    let c_before = fs::read(bundle(&lab, "c.test")).unwrap();
    let out = run(certctl(&lab, &direct, &["renew", "--force"], &short), BOUND);
    cases.check(
        "a stalled CA fails its certificate; the other CA's is renewed",
        unchanged(
            expect(&out, 1, &["a.test", "whole answer"]),
            &a_bundle,
            &a_before,
        )
        .and_then(|()| {
            check(
                fs::read(bundle(&lab, "c.test")).unwrap_or_default() != c_before,
                "c.test was not renewed",
            )
        }),
    );

    // 12. a Retry-After no clock can hold on every answer of an order (whether the order
    //     has to wait or not, nothing overflows), and on a refusal
    for prefix in [
        "/order-plz",
        "/authZ/",
        "/chalZ/",
        "/finalize-order/",
        "/my-order/",
        "/certZ/",
    ] {
        front.set_fault(prefix, Fault::HugeRetryAfter);
    }
    let c_before = fs::read(bundle(&lab, "c.test")).unwrap();
    let out = run(certctl(&lab, &direct, &["renew", "--force"], &[]), BOUND);
    cases.check(
        "a huge Retry-After on every answer of an order",
        match &out {
            Ok(r) if r.output.code() == Some(1) => expect(&out, 1, &["a.test"]),
            _ => expect(&out, 0, &[]),
        }
        .and_then(|()| {
            check(
                fs::read(bundle(&lab, "c.test")).unwrap_or_default() != c_before,
                "c.test was not renewed",
            )
        }),
    );
    front.clear_faults();
    a_before = fs::read(&a_bundle).unwrap();
    front.set_fault("/order-plz", Fault::Overloaded);
    let out = request(&lab, &via, &["a.test", "--force"], &[]);
    cases.check(
        "a huge Retry-After on a refusal",
        unchanged(
            expect(&out, 1, &["18446744073709551615 seconds"]),
            &a_bundle,
            &a_before,
        ),
    );
    front.clear_faults();
    // the CA's wait is remembered (at most a week): forgotten here, so that the next
    // cases reach the front
    for entry in fs::read_dir(lab.state_dir().join("accounts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rate-limit") {
            fs::remove_file(path).unwrap();
        }
    }

    // 10. a body without end: a clear error past the bound, and little memory
    front.set_fault("/dir", Fault::Endless);
    let mut cmd = certctl(
        &lab,
        &via,
        &[
            "request",
            "--http-addr",
            &lab.http_addr(),
            "--agree-tos",
            "a.test",
            "--force",
        ],
        &[],
    );
    // a safety net for a build that reads without bound: it aborts at 2 GiB, the machine
    // is spared
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let out = run(cmd, BOUND);
    if let Ok(run) = &out {
        eprintln!(
            "peak RSS of certctl under an endless body: {} KiB ({} bytes sent by the front)",
            run.max_rss_kib,
            front.endless_bytes()
        );
    }
    cases.check(
        "an endless body",
        unchanged(
            expect(&out, 1, &["larger than 1024 KiB"]),
            &a_bundle,
            &a_before,
        )
        .and_then(|()| {
            let rss = out.as_ref().map_or(0, |r| r.max_rss_kib);
            check(rss < 200 * 1024, format!("peak RSS {rss} KiB"))
        }),
    );
    front.clear_faults();

    // 15. two directory URLs that the old account file names could not tell apart
    let accounts = || {
        fs::read_dir(lab.state_dir().join("accounts"))
            .unwrap()
            .count()
    };
    let before = accounts();
    let slash = format!("{}?a/b", front.directory_url());
    let underscore = format!("{}?a_b", front.directory_url());
    let first = request(&lab, &slash, &["d.test"], &[]);
    let second = request(&lab, &underscore, &["e.test"], &[]);
    cases.check(
        "an account per exact directory URL",
        expect(&first, 0, &["created an ACME account"])
            .and_then(|()| expect(&second, 0, &["created an ACME account"]))
            .and_then(|()| {
                check(
                    accounts() == before + 2,
                    format!("{} account files", accounts()),
                )
            }),
    );

    // 6. the repair path refuses a stored chain without its intermediate; list says so
    let c_live = lab.state_dir().join("certs/c.test/live");
    fs::write(c_live.join("chain.pem"), "").unwrap();
    let c_bundle = bundle(&lab, "c.test");
    fs::write(&c_bundle, "stale\n").unwrap();
    let out = run(certctl(&lab, &direct, &["renew", "c.test"], &[]), BOUND);
    cases.check(
        "repair with a chain without its intermediate",
        unchanged(
            expect(&out, 1, &["the intermediate is missing"]),
            &c_bundle,
            b"stale\n",
        ),
    );
    let out = run(certctl(&lab, &direct, &["list"], &[]), BOUND);
    cases.check(
        "list flags a stored chain without its intermediate",
        expect(&out, 1, &["damaged: c.test"]).and_then(|()| {
            let table = &out.as_ref().unwrap().output.stdout;
            check(
                table.contains("intermediate is missing"),
                format!("list: {table}"),
            )
        }),
    );

    // 11. a FIFO in place of the account file
    let account = fs::read_dir(lab.state_dir().join("accounts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            fs::read(p).is_ok_and(|b| {
                serde_json::from_slice::<serde_json::Value>(&b)
                    .is_ok_and(|v| v["server"] == via.as_str())
            })
        })
        .expect("the front's account file");
    fs::remove_file(&account).unwrap();
    let c = std::ffi::CString::new(account.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = request(&lab, &via, &["a.test", "--force"], &[]);
    cases.check(
        "the account file is a FIFO",
        unchanged(expect(&out, 1, &["named pipe"]), &a_bundle, &a_before),
    );
    cases.finish();
}

#[test]
fn a_symlinked_webroot_challenge_directory_is_refused_and_left_alone() {
    let mut cases = Cases::new("webroot link");
    let lab = lab();
    let direct = lab.directory_url();
    // 1. a webroot whose challenge directory is a link to somewhere else
    let webroot = lab.root().join("www");
    let elsewhere = lab.root().join("elsewhere");
    fs::create_dir_all(webroot.join(".well-known")).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, webroot.join(".well-known/acme-challenge")).unwrap();
    let mut cmd = certctl(
        &lab,
        &direct,
        &[
            "request",
            "--agree-tos",
            "--challenge",
            "webroot",
            "--webroot",
        ],
        &[],
    );
    cmd.arg(&webroot).arg("w.test");
    let out = run(cmd, BOUND);
    cases.check(
        "a symlinked .well-known/acme-challenge",
        expect(&out, 1, &["is a symlink"]).and_then(|()| {
            let mode = fs::metadata(&elsewhere).unwrap().permissions().mode() & 0o777;
            let entries = fs::read_dir(&elsewhere).unwrap().count();
            check(
                mode == 0o700 && entries == 0,
                format!("its target is now mode {mode:o} with {entries} files"),
            )
        }),
    );
    cases.finish();
}
