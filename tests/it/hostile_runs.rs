//! Runs that used to panic, leak a key or outlive certctl, through the binary with the local
//! CA: inputs that panicked, a closed stdout or stderr, key material in hook output, the
//! repair path given a damaged stored generation, and SIGTERM/SIGINT while a hook runs.
//! Each test is a table of cases and prints how many it ran and how many failed.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::bounded::{Cases, expect, run, run_as_set};
use common::hermetic;
use common::host::{BOUND, Host, check, ok};

/// A pipe whose reading end is closed: writing to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe(2) with a live array of two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] is ours and closed once.
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is ours; Stdio takes ownership.
    Stdio::from(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) })
}

#[test]
fn inputs_that_used_to_panic_end_with_a_message() {
    let mut cases = Cases::new("no panics, messages");
    let host = Host::new();
    ok(&host.run(&["request", "a.test"])).unwrap();

    let with_env = |var: &str, value: &str, args: &[&str]| {
        let mut cmd = host.certctl(args);
        cmd.env(var, value);
        run(cmd, BOUND)
    };
    let out = with_env(
        "CERTCTL_LOCK_TIMEOUT",
        "18446744073709551615",
        &["renew", "--force"],
    );
    cases.check("a huge CERTCTL_LOCK_TIMEOUT", expect(&out, 0, &[]));
    let out = with_env("CERTCTL_LOCK_TIMEOUT", "abc", &["list"]);
    cases.check(
        "CERTCTL_LOCK_TIMEOUT=abc",
        expect(&out, 2, &["CERTCTL_LOCK_TIMEOUT"]),
    );
    let out = with_env("CERTCTL_HTTP_TIMEOUT", "-1", &["list"]);
    cases.check(
        "CERTCTL_HTTP_TIMEOUT=-1",
        expect(&out, 2, &["CERTCTL_HTTP_TIMEOUT"]),
    );
    for (server, needle) in [
        ("https://u@127.0.0.1/dir", "user name"),
        ("https://127.0.0.1:99999/dir", "port"),
    ] {
        let mut cmd = hermetic::certctl_in(host.root());
        cmd.args(["--state-dir", &host.state().display().to_string()])
            .args(["--server", server, "list"]);
        cases.check(
            &format!("--server {server}"),
            expect(&run(cmd, BOUND), 2, &[needle]),
        );
    }
    let nul = host.file("nul.toml", "deploy_hook = \"echo \\u0000 done\"\n", 0o644);
    let out = host.run(&["--config", &nul.display().to_string(), "request", "n.test"]);
    cases.check(
        "a NUL in a config value",
        expect(&out, 2, &["NUL"])
            .and_then(|()| check(!host.state().join("certs/n.test").exists(), "issued anyway")),
    );

    // a damaged revoked list
    fs::write(
        host.state().join("ca/revoked.json"),
        r#"[{"serial":"éé","revoked_at":0,"reason":1}]"#,
    )
    .unwrap();
    let out = host.run(&["ca", "crl"]);
    cases.check(
        "ca crl with a damaged revoked.json",
        expect(&out, 1, &["revoked.json"]),
    );
    fs::write(host.state().join("ca/revoked.json"), "[]").unwrap();

    // a reader that went away, a closed stderr: the exit code is the work's
    for args in [
        &["renew", "--force", "--json"][..],
        &["list", "--json"],
        &["ca", "show"],
    ] {
        let mut cmd = host.certctl(args);
        cmd.stdout(closed_pipe()).stderr(Stdio::piped());
        let out = run_as_set(cmd, BOUND);
        cases.check(&format!("{args:?} | (closed)"), expect(&out, 0, &[]));
    }
    let mut cmd = host.certctl(&["renew", "--force"]);
    cmd.stdout(Stdio::piped()).stderr(closed_pipe());
    let out = run_as_set(cmd, BOUND);
    cases.check("renew 2>(closed)", expect(&out, 0, &[]));
    cases.finish();
}

#[test]
fn keys_in_hook_output_are_redacted_and_the_repair_path_checks_what_it_installs() {
    let mut cases = Cases::new("redaction, repair");
    let host = Host::new();
    // a hook that prints the key, with and without its PEM lines
    let hook = "cat \"$CERTCTL_KEY\"; grep -v -- ----- \"$CERTCTL_KEY\"; echo hook done";
    let out = host.run(&["request", "a.test", "--deploy-hook", hook]);
    let key = fs::read_to_string(host.live("a.test").join("key.pem")).unwrap_or_default();
    cases.check(
        "a hook printing the key",
        expect(&out, 0, &["[private key redacted]", "hook done"]).and_then(|()| {
            let stderr = &out.as_ref().unwrap().output.stderr;
            let leaked: Vec<&str> = key
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 8 && stderr.contains(l))
                .collect();
            check(leaked.is_empty(), format!("key lines shown: {leaked:?}"))
        }),
    );

    // the repair path: a bundle that is not the stored certificate's
    for name in ["b.test", "c.test"] {
        ok(&host.run(&["request", name])).unwrap();
    }
    let bundle = host.ssl().join("b.test.pem");
    fs::write(&bundle, "stale\n").unwrap();
    let out = host.run(&["renew", "--json"]);
    cases.check(
        "a good repair says reinstalled",
        expect(&out, 0, &["reinstalled"]).and_then(|()| {
            let json = &out.as_ref().unwrap().output.stdout;
            check(json.contains("\"reinstalled\""), format!("json: {json}"))
        }),
    );
    // another key in the stored generation: no bundle written, list says damaged
    fs::write(&bundle, "stale\n").unwrap();
    let foreign = rcgen::KeyPair::generate().unwrap().serialize_pem();
    fs::write(host.live("b.test").join("key.pem"), &foreign).unwrap();
    let out = host.run(&["renew"]);
    cases.check(
        "repair with another key",
        expect(&out, 1, &["key check failed"]).and_then(|()| {
            check(
                fs::read(&bundle).unwrap() == b"stale\n",
                "the bundle was written",
            )
        }),
    );
    let out = host.run(&["list"]);
    cases.check(
        "list flags a stored generation with another key",
        expect(&out, 1, &["damaged: b.test"]).and_then(|()| {
            let table = &out.as_ref().unwrap().output.stdout;
            check(table.contains("key check failed"), format!("list: {table}"))
        }),
    );
    // a certificate for other names in the generation
    let c_live = host.live("c.test");
    for file in [
        "cert.pem",
        "key.pem",
        "chain.pem",
        "fullchain.pem",
        "meta.json",
    ] {
        fs::copy(c_live.join(file), host.live("b.test").join(file)).unwrap();
    }
    // renew gets one for b.test instead of installing c.test's
    let out = host.run(&["renew", "b.test"]);
    cases.check(
        "a generation for other names is replaced, never installed",
        expect(&out, 0, &[]).and_then(|()| {
            let bundle = fs::read_to_string(&bundle).unwrap_or_default();
            let der = pem::parse(bundle.as_bytes())
                .map_err(|e| format!("bundle: {e}"))?
                .into_contents();
            let names = common::fixtures::san_dns_names(&der);
            check(names == ["b.test"], format!("the bundle is for {names:?}"))
        }),
    );
    cases.finish();
}

/// Waits (bounded) for `path` to hold a pid.
fn pid_in(path: &Path) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(pid) = fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Whether `pid` is gone (or a zombie) within a generous bound.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        // SAFETY: kill with signal 0 only checks that the process exists.
        let exists = unsafe { libc::kill(pid, 0) } == 0;
        let zombie =
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "));
        if !exists || zombie {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_signal_while_a_hook_runs_stops_the_hook_too() {
    let mut cases = Cases::new("signals during hooks");
    let host = Host::new();
    for (name, hook, signal, code) in [
        ("deploy.test", "--deploy-hook", libc::SIGTERM, 143),
        ("pre.test", "--pre-hook", libc::SIGINT, 130),
    ] {
        let pid_file = host.root().join(format!("{name}.pid"));
        let command = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let mut cmd = host.certctl(&["request", name, hook, &command]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let sleeper = pid_in(&pid_file);
        let outcome = match sleeper {
            None => Err("the hook never started".to_owned()),
            Some(sleeper) => {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(child.id() as i32, signal) };
                let deadline = Instant::now() + Duration::from_secs(60);
                let status = loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break Some(status),
                        _ if Instant::now() >= deadline => break None,
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                };
                match status {
                    None => Err("certctl did not exit after the signal".to_owned()),
                    Some(status) => check(
                        status.code() == Some(code),
                        format!("exit {status}, want {code}"),
                    )
                    .and_then(|()| {
                        check(
                            gone(sleeper),
                            format!("the hook's child {sleeper} outlived certctl"),
                        )
                    }),
                }
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        if let Some(sleeper) = sleeper {
            // SAFETY: kill(2) on a process the test's hook started (a leftover on failure).
            unsafe { libc::kill(sleeper, libc::SIGKILL) };
        }
        cases.check(&format!("signal {signal} during {hook}"), outcome);
    }
    cases.finish();
}
