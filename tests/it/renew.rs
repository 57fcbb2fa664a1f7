//! `certctl renew` against real Pebble (short validity makes renewal due for real) behind
//! real HAProxy: due vs not due, --force, failure isolation, the lock, hooks, --dry-run.

use crate::common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::fixtures::{request, serial_hex as serial, snapshot};
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
    std::thread::sleep(Duration::from_millis(1600)); // past half of a 3 s lifetime

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
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    settings["challenge"]["http_addr"] = free.local_addr().unwrap().to_string().into();
    drop(free);
    fs::write(&settings_path, serde_json::to_vec(&settings).unwrap()).unwrap();
    let broken_state = snapshot(&lab.state_dir().join("certs/broken.mon-app.test"));
    let broken_bundle = fs::read(lab.ssl_dir().join("broken.mon-app.test.pem")).unwrap();
    let old_a = served_serial(&lab.ssl_dir().join("a.mon-app.test.pem"));
    let old_c = served_serial(&lab.ssl_dir().join("c.mon-app.test.pem"));
    std::thread::sleep(Duration::from_millis(1600));

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

    // a lock held by another process: bounded wait, then a message naming file and pid
    let lock = lab.state_dir().join("lock");
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg("import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(30)")
        .arg(&lock)
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
fn orders_side_by_side_fetch_the_directory_and_a_first_nonce_once() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let names: Vec<String> = (1..=8).map(|i| format!("n{i}.mon-app.test")).collect();
    for name in &names {
        request(&lab, &[name]).assert_success();
    }
    let offset = fs::metadata(lab.pebble_log()).unwrap().len() as usize;
    lab.run(&["renew", "--force", "--jobs", "4", "--json"])
        .assert_success();
    let sent = pebble_requests_since(&lab, offset);
    let count = |what: &str| sent.iter().filter(|s| s.as_str() == what).count();
    // eight orders, four at a time (more finalize requests when Pebble rejects a nonce)
    assert!(count("POST /finalize-order/") >= 8, "{sent:#?}");
    assert_eq!(count("GET /dir"), 1, "{sent:#?}");
    assert_eq!(
        count("HEAD /nonce-plz"),
        1,
        "every later nonce comes from an answer, even for the orders that start together: {sent:#?}"
    );
}
