//! `certctl renew` against real Pebble (short validity makes renewal due for real) behind
//! real HAProxy: due vs not due, --force, failure isolation, the lock, hooks, --dry-run.

use crate::common;

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::fixtures::{request, serial_hex as serial, snapshot};
use common::process::free_port;
use common::{Lab, LabOptions};

/// A lab whose certificates live `secs` seconds, so they are due almost at once.
fn short_lab(secs: u64, haproxy: bool) -> Lab {
    Lab::start_with(LabOptions {
        validity_secs: Some(secs),
        haproxy,
        ..Default::default()
    })
}

fn served_serial(path: &Path) -> String {
    let blocks = pem::parse_many(fs::read(path).unwrap()).unwrap();
    serial(blocks[0].contents())
}

/// Waits until `certctl list` finds every certificate due, by the rule and the clock that
/// `renew` uses too. A fixed sleep would bet on how long the requests before it took and
/// on how Pebble rounds the validity; this holds however slow the machine is: time only
/// moves on, so what is due now is due for the `renew` that follows. Bounded by 60 s.
fn wait_until_due(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = lab.run(&["list", "--json"]);
        out.assert_success();
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
        assert!(!rows.is_empty(), "no certificate to wait for");
        if rows.iter().all(|row| row["renewal_due"] == true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not due after 60 s: {}",
            out.stdout
        );
        thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn nothing_due_is_silent_and_sends_no_request_even_with_the_ca_down() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["a.mon-app.test"]).assert_success();
    request(&lab, &["b.mon-app.test"]).assert_success();
    let before = (snapshot(&lab.state_dir()), snapshot(&lab.ssl_dir()));
    lab.stop_pebble();
    let out = lab.run(&["renew"]);
    out.assert_success();
    assert_eq!(out.stdout, "", "cron mails nothing");
    assert_eq!(out.stderr, "", "cron mails nothing");
    let out = lab.run(&["renew", "-vv"]);
    out.assert_success();
    assert!(out.stderr.contains("not due"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("acme:"),
        "no ACME request: {}",
        out.stderr
    );
    assert_eq!(
        (snapshot(&lab.state_dir()), snapshot(&lab.ssl_dir())),
        before
    );
}

#[test]
fn due_certificates_are_renewed_and_haproxy_serves_the_new_serial() {
    let lab = short_lab(3, true);
    let reload = lab.reload_command();
    let log = lab.root().join("hooks.log");
    let deploy = format!(
        "echo \"deploy $CERTCTL_NAME $CERTCTL_SERIAL\" >> {}",
        log.display()
    );
    let post = format!(
        "echo \"post $CERTCTL_RENEWED_NAMES\" >> {}; {reload}",
        log.display()
    );
    request(&lab, &["a.mon-app.test", "--deploy-hook", &deploy]).assert_success();
    request(&lab, &["b.mon-app.test"]).assert_success();
    fs::remove_file(&log).unwrap();
    let bundle_a = lab.ssl_dir().join("a.mon-app.test.pem");
    let bundle_b = lab.ssl_dir().join("b.mon-app.test.pem");
    let (old_a, old_b) = (served_serial(&bundle_a), served_serial(&bundle_b));
    wait_until_due(&lab); // half of a 3 s lifetime

    let pre = format!("echo pre >> {}", log.display());
    let out = lab.run(&[
        "renew",
        "--pre-hook",
        &pre,
        "--post-hook",
        &post,
        "--jobs",
        "2",
    ]);
    out.assert_success();
    let (new_a, new_b) = (served_serial(&bundle_a), served_serial(&bundle_b));
    assert_ne!(new_a, old_a);
    assert_ne!(new_b, old_b);
    // stored deploy hook for a only, post-hook once after both, pre-hook once before
    let lines = fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines,
        format!("pre\ndeploy a.mon-app.test {new_a}\npost a.mon-app.test b.mon-app.test\n")
    );
    // the post-hook reloaded HAProxy: it serves the new serial (chain checks need a valid cert;
    // a 3 s certificate may have expired by now, so compare serials without verification)
    let served = lab.served_chain("a.mon-app.test");
    assert_eq!(serial(&served[0]), new_a);
}

#[test]
fn force_renews_what_is_not_due_and_names_select_certificates() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["a.mon-app.test"]).assert_success();
    request(&lab, &["b.mon-app.test"]).assert_success();
    let bundle_a = lab.ssl_dir().join("a.mon-app.test.pem");
    let bundle_b = lab.ssl_dir().join("b.mon-app.test.pem");
    let (old_a, old_b) = (served_serial(&bundle_a), served_serial(&bundle_b));
    let out = lab.run(&["renew", "a.mon-app.test", "--force", "--json"]);
    out.assert_success();
    assert_ne!(served_serial(&bundle_a), old_a);
    assert_eq!(
        served_serial(&bundle_b),
        old_b,
        "only the named certificate"
    );
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json[0]["name"], "a.mon-app.test");
    assert_eq!(json[0]["status"], "renewed");

    let out = lab.run(&["renew", "nope.mon-app.test"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("certctl list"), "{}", out.stderr);
}

#[test]
fn one_failing_certificate_does_not_stop_the_others() {
    let lab = short_lab(3, true);
    for name in ["a.mon-app.test", "broken.mon-app.test", "c.mon-app.test"] {
        request(&lab, &[name]).assert_success();
    }
    // broken: its stored responder address is one HAProxy does not forward to
    let settings_path = lab
        .state_dir()
        .join("certs/broken.mon-app.test/settings.json");
    let mut settings: serde_json::Value =
        serde_json::from_slice(&fs::read(&settings_path).unwrap()).unwrap();
    // (a port of the lab's own: a port bound and dropped here could go to a parallel test)
    settings["challenge"]["http_addr"] = format!("127.0.0.1:{}", free_port()).into();
    fs::write(&settings_path, serde_json::to_vec(&settings).unwrap()).unwrap();
    let broken_state = snapshot(&lab.state_dir().join("certs/broken.mon-app.test"));
    let broken_bundle = fs::read(lab.ssl_dir().join("broken.mon-app.test.pem")).unwrap();
    let old_a = served_serial(&lab.ssl_dir().join("a.mon-app.test.pem"));
    let old_c = served_serial(&lab.ssl_dir().join("c.mon-app.test.pem"));
    wait_until_due(&lab);

    let out = lab.run(&["renew"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("renewal failed for: broken.mon-app.test"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("2 renewed, 1 failed"), "{}", out.stderr);
    assert_ne!(
        served_serial(&lab.ssl_dir().join("a.mon-app.test.pem")),
        old_a
    );
    assert_ne!(
        served_serial(&lab.ssl_dir().join("c.mon-app.test.pem")),
        old_c
    );
    assert_eq!(
        snapshot(&lab.state_dir().join("certs/broken.mon-app.test")),
        broken_state,
        "byte for byte"
    );
    assert_eq!(
        fs::read(lab.ssl_dir().join("broken.mon-app.test.pem")).unwrap(),
        broken_bundle
    );
}

#[test]
fn dry_run_writes_nothing_and_runs_no_hook() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["a.mon-app.test"]).assert_success();
    let marker = lab.root().join("hook-ran");
    let before = (snapshot(&lab.state_dir()), snapshot(&lab.ssl_dir()));
    let hook = format!("touch {}", marker.display());
    let out = lab.run(&[
        "renew",
        "--force",
        "--dry-run",
        "--deploy-hook",
        &hook,
        "--post-hook",
        &hook,
        "-v",
    ]);
    out.assert_success();
    assert!(out.stderr.contains("dry run"), "{}", out.stderr);
    assert!(!marker.exists(), "no hook ran");
    assert_eq!(
        (snapshot(&lab.state_dir()), snapshot(&lab.ssl_dir())),
        before
    );
}

#[test]
fn a_dry_run_says_what_a_real_run_would_repair_and_repairs_nothing() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["a.mon-app.test"]).assert_success();
    let bundle = lab.ssl_dir().join("a.mon-app.test.pem");
    fs::remove_file(&bundle).unwrap();
    let before = (snapshot(&lab.state_dir()), snapshot(&lab.ssl_dir()));

    let out = lab.run(&["renew", "--dry-run"]);
    out.assert_success();
    assert!(
        out.stderr
            .contains("dry run: a.mon-app.test: its bundle is not the stored certificate's"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("nothing to rehearse"),
        "{}",
        out.stderr
    );
    assert_eq!(
        (snapshot(&lab.state_dir()), snapshot(&lab.ssl_dir())),
        before
    );

    // the real run does what the rehearsal said
    lab.run(&["renew"]).assert_success();
    assert!(bundle.exists());
}

#[test]
fn concurrent_renews_wait_for_each_other_and_a_held_lock_names_its_holder() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &["a.mon-app.test"]).assert_success();
    request(&lab, &["b.mon-app.test"]).assert_success();

    // two runs at once: both succeed, one after the other, every bundle whole
    let spawn = || {
        let mut cmd = lab.certctl();
        cmd.args(["renew", "--force"]);
        std::thread::spawn(move || common::run_command(cmd))
    };
    let (first, second) = (spawn(), spawn());
    first.join().unwrap().assert_success();
    second.join().unwrap().assert_success();
    for name in ["a.mon-app.test", "b.mon-app.test"] {
        let text = fs::read_to_string(lab.ssl_dir().join(format!("{name}.pem"))).unwrap();
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{text}");
        assert_eq!(text.matches("PRIVATE KEY-----").count(), 2);
    }

    // a lock held by another process: bounded wait, then a message naming file and pid.
    // The holder keeps the lock until its stdin closes (killed below, or this test ends),
    // not for a fixed time that a slow run could outlast.
    let lock = lab.state_dir().join("lock");
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg("import fcntl,sys\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\nsys.stdin.read()")
        .arg(&lock)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let mut cmd = lab.certctl();
    cmd.args(["renew", "--force"])
        .env("CERTCTL_LOCK_TIMEOUT", "1");
    let out = common::run_command(cmd);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&lock.display().to_string()),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("pid {}", holder.id())),
        "{}",
        out.stderr
    );
}

/// ACME requests Pebble logged after byte `offset` of its log, "METHOD /path" each.
fn pebble_requests_since(lab: &Lab, offset: usize) -> Vec<String> {
    let log = fs::read(lab.pebble_log()).unwrap();
    String::from_utf8_lossy(&log[offset..])
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Pebble ")?;
            let call = rest.split(" -> calling handler").next()?;
            let mut words = call.split_whitespace().skip(2);
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect()
}

#[test]
fn orders_side_by_side_fetch_the_directory_once_and_share_their_nonces() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let names: Vec<String> = (1..=8).map(|i| format!("n{i}.mon-app.test")).collect();
    for name in &names {
        request(&lab, &[name]).assert_success();
    }
    const JOBS: usize = 4;
    let offset = fs::metadata(lab.pebble_log()).unwrap().len() as usize;
    lab.run(&["renew", "--force", "--jobs", &JOBS.to_string(), "--json"])
        .assert_success();
    let sent = pebble_requests_since(&lab, offset);
    let count = |what: &str| sent.iter().filter(|s| s.as_str() == what).count();
    // eight orders, four at a time (more finalize requests when Pebble rejects a nonce)
    assert!(count("POST /finalize-order/") >= 8, "{sent:#?}");
    // the account is opened once, before the orders start
    assert_eq!(count("GET /dir"), 1, "{sent:#?}");
    // How many newNonce, by construction rather than by timing. Every answer to a POST
    // brings back exactly one nonce (a badNonce error too), which certctl keeps for the
    // next request, before it stops counting the spent one as on its way: so a POST
    // leaves the number of nonces in circulation (kept, or on their way back with a POST
    // in flight) unchanged, and only newNonce adds one. An order holds at most one nonce
    // at a time and at most JOBS orders run at once, so an order that finds no nonce kept
    // sees at most JOBS - 1 on their way (the other orders'): it asks newNonce only while
    // fewer than JOBS circulate. Hence at most JOBS newNonce in the whole run, however the
    // orders interleave, and fewer than the orders. (Only a request that gets no answer at
    // all loses a nonce; none does here.) Exactly one, as on an idle machine, is not
    // guaranteed: it needs each answer on its way to come within certctl's 50 ms wait,
    // which a loaded machine misses. The run starts with no nonce kept, and Pebble sends
    // none with GET /dir: at least one.
    let new_nonce = count("HEAD /nonce-plz");
    eprintln!(
        "{new_nonce} newNonce for {} orders, {JOBS} at a time",
        names.len()
    );
    assert!(
        (1..=JOBS).contains(&new_nonce),
        "{new_nonce} newNonce for {} orders, {JOBS} at a time: {sent:#?}",
        names.len()
    );
    assert!(
        new_nonce < names.len(),
        "the orders share their nonces: {new_nonce} newNonce for {} orders",
        names.len()
    );
}
