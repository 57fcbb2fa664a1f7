//! Proves the integration-test lab itself works: Pebble answers, HAProxy forwards HTTP-01
//! and serves (and reloads) certificates, labs are independent and leave no process behind.
//! Depends on nothing certctl does; `certctl()` is only inspected, never run.

use crate::common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::{Lab, LabOptions, pki, process_alive};
use x509_parser::prelude::{FromDer, X509Certificate};

fn common_name(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).expect("parsing certificate");
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A tiny HTTP server on `addr` answering every request with "hello"; counts requests.
fn hello_responder(addr: &str) -> Arc<AtomicUsize> {
    let listener = TcpListener::bind(addr).expect("binding the responder address");
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            answer_hello(stream);
        }
    });
    served
}

fn answer_hello(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().expect("cloning stream"));
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
}

#[test]
fn pebble_serves_directory_and_roots() {
    let lab = Lab::start();
    let reply = lab.acme_get("/dir");
    assert_eq!(reply.status, 200);
    let directory: serde_json::Value = serde_json::from_str(&reply.body).expect("json /dir");
    assert!(directory["newOrder"].as_str().is_some(), "{directory}");
    assert!(lab.directory_url().starts_with("https://127.0.0.1:"));
    assert!(lab.directory_url().ends_with("/dir"));

    let roots = lab.pebble_roots();
    assert!(!roots.is_empty());
    for der in &roots {
        let (_, root) = X509Certificate::from_der(der).expect("parsing Pebble root");
        assert!(root.is_ca(), "Pebble root is not a CA");
        assert!(common_name(der).starts_with("Pebble Root CA"));
    }

    let ca = fs::read_to_string(lab.ca_bundle()).expect("reading ca bundle");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        lab.management_get("/cert-status-by-serial/abcdef").status,
        404
    );
    assert!(lab.state_dir().is_dir());
    assert_eq!(fs::read_dir(lab.ssl_dir()).expect("ssl dir").count(), 0);
}

#[test]
fn haproxy_serves_placeholder_and_forwards_challenges() {
    let lab = Lab::start();
    let chain = lab.served_chain("anything.test");
    assert_eq!(chain.len(), 1);
    assert_eq!(common_name(&chain[0]), "placeholder.invalid");
    let err = lab
        .verify_served("anything.test")
        .expect_err("placeholder must not verify against Pebble's root");
    assert!(err.contains("certificate"), "{err}");

    let served = hello_responder(&lab.http_addr());
    let reply = lab.http_get("example.test", "/.well-known/acme-challenge/x");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "hello");
    assert_eq!(served.load(Ordering::SeqCst), 1);

    let redirect = lab.http_get("example.test", "/elsewhere");
    assert_eq!(redirect.status, 302, "{redirect:?}");
    assert_eq!(
        redirect.header("location"),
        Some("https://example.test/elsewhere")
    );
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[test]
fn reload_loads_new_bundles_from_ssl_dir() {
    let lab = Lab::start();
    let first_worker = lab.haproxy_worker_pid();
    lab.reload_haproxy();
    assert_ne!(lab.haproxy_worker_pid(), first_worker);
    assert_eq!(
        common_name(&lab.served_chain("x.test")[0]),
        "placeholder.invalid"
    );

    let bundle = pki::self_signed(&["reload.test"]);
    fs::write(lab.ssl_dir().join("reload.test.pem"), bundle.haproxy_pem()).expect("writing");
    lab.reload_haproxy();
    assert_eq!(
        lab.served_chain("reload.test"),
        vec![bundle.cert_der.clone()]
    );
    assert_eq!(
        common_name(&lab.served_chain("other.test")[0]),
        "placeholder.invalid"
    );

    // The reload command alone (as certctl's post-hook runs it) is in effect when it
    // returns, even back to back (a bare SIGUSR2 during the previous reload would be lost).
    let mut replacement = bundle;
    for _ in 0..3 {
        replacement = pki::self_signed(&["reload.test"]);
        fs::write(
            lab.ssl_dir().join("reload.test.pem"),
            replacement.haproxy_pem(),
        )
        .expect("writing");
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(lab.reload_command())
            .status()
            .expect("running reload command");
        assert!(status.success());
        assert_eq!(
            lab.served_chain("reload.test"),
            vec![replacement.cert_der.clone()]
        );
    }

    // A bad bundle is refused at reload and the old worker keeps serving.
    fs::write(lab.ssl_dir().join("broken.pem"), "not a certificate\n").expect("writing");
    let err = lab
        .try_reload_haproxy()
        .expect_err("HAProxy must refuse a broken bundle");
    assert!(err.contains("broken.pem"), "{err}");
    assert_eq!(
        lab.served_chain("reload.test"),
        vec![replacement.cert_der.clone()]
    );
    fs::remove_file(lab.ssl_dir().join("broken.pem")).expect("removing");
    lab.reload_haproxy();
    assert_eq!(lab.served_chain("reload.test"), vec![replacement.cert_der]);
}

#[test]
fn admin_socket_answers() {
    let lab = Lab::start();
    let reply =
        common::haproxy::admin_command(&lab.admin_socket(), "show ssl cert").expect("admin");
    assert!(reply.contains("placeholder.pem"), "{reply}");
}

#[test]
fn two_labs_run_side_by_side() {
    let (a, b) = thread::scope(|scope| {
        let a = scope.spawn(Lab::start);
        let b = scope.spawn(Lab::start);
        (a.join().expect("lab a"), b.join().expect("lab b"))
    });
    assert_ne!(a.root(), b.root());
    assert_ne!(a.directory_url(), b.directory_url());
    assert_ne!(a.http_addr(), b.http_addr());
    assert_ne!(a.https_addr(), b.https_addr());
    assert_ne!(a.pebble_roots(), b.pebble_roots());
    let bundle = pki::self_signed(&["only-a.test"]);
    fs::write(a.ssl_dir().join("only-a.test.pem"), bundle.haproxy_pem()).expect("writing");
    a.reload_haproxy();
    assert_eq!(a.served_chain("only-a.test")[0], bundle.cert_der);
    assert_eq!(
        common_name(&b.served_chain("only-a.test")[0]),
        "placeholder.invalid"
    );
}

#[test]
fn dropping_a_lab_stops_every_process() {
    let lab = Lab::start();
    lab.reload_haproxy();
    let pids = lab.process_ids();
    // challtestsrv, pebble, haproxy master and at least one worker
    assert!(pids.len() >= 4, "{pids:?}");
    assert!(pids.iter().all(|&pid| process_alive(pid)));
    let root = lab.root().to_path_buf();
    drop(lab);
    let alive: Vec<u32> = pids.into_iter().filter(|&pid| process_alive(pid)).collect();
    assert!(alive.is_empty(), "still running: {alive:?}");
    assert!(!root.exists());
}

#[test]
fn stop_pebble_closes_the_acme_port() {
    let lab = Lab::start();
    let url = lab.directory_url();
    let port: u16 = url
        .trim_start_matches("https://127.0.0.1:")
        .trim_end_matches("/dir")
        .parse()
        .expect("port in directory url");
    lab.stop_pebble();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert_eq!(
        common_name(&lab.served_chain("x.test")[0]),
        "placeholder.invalid"
    );
}

#[test]
fn options_reach_pebble_and_lab_runs_without_haproxy() {
    let lab = Lab::start_with(LabOptions {
        validity_secs: Some(90),
        nonce_reject_percent: Some(0),
        authz_reuse_percent: Some(25),
        haproxy: false,
        ..LabOptions::default()
    });
    let log = fs::read_to_string(lab.pebble_log()).expect("pebble log");
    assert!(log.contains("validity period of 90 seconds"), "{log}");
    assert!(log.contains("reject 0% of good nonces"), "{log}");
    assert!(log.contains("authz reuse for each identifier 25%"), "{log}");
    assert!(log.contains("Disabling random VA sleeps"), "{log}");
    // Without HAProxy, Pebble validates HTTP-01 directly on the responder's address.
    assert_eq!(lab.http_validation_addr().to_string(), lab.http_addr());
    assert_eq!(lab.process_ids().len(), 2);

    let defaults = Lab::start();
    let log = fs::read_to_string(defaults.pebble_log()).expect("pebble log");
    assert!(log.contains("reject 5% of good nonces"), "{log}");
    assert!(log.contains("authz reuse for each identifier 0%"), "{log}");
}

#[test]
fn certctl_command_carries_lab_flags() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..LabOptions::default()
    });
    let command = lab.certctl();
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let expected = [
        "--state-dir".to_owned(),
        lab.state_dir().display().to_string(),
        "--ssl-dir".to_owned(),
        lab.ssl_dir().display().to_string(),
        "--server".to_owned(),
        lab.directory_url(),
        "--ca-bundle".to_owned(),
        lab.ca_bundle().display().to_string(),
    ];
    assert_eq!(args, expected);
    assert!(command.get_program().to_string_lossy().ends_with("certctl"));
}

#[test]
fn certctl_commands_inherit_nothing_of_the_hosts_configuration() {
    use std::ffi::OsStr;

    use common::hermetic::{certctl_in, inherited_from_host};

    for name in [
        "CERTCTL_SERVER",
        "CERTCTL_CONFIG",
        "CERTCTL_STATE_DIR",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "AWS_CA_BUNDLE",
        "https_proxy",
        "HTTP_PROXY",
        "no_proxy",
        "ALL_PROXY",
    ] {
        assert!(inherited_from_host(OsStr::new(name)), "{name} is kept");
    }
    for name in [
        "PATH",
        "HOME",
        "TMPDIR",
        "PEBBLE_VA_NOSLEEP",
        "RUST_BACKTRACE",
    ] {
        assert!(!inherited_from_host(OsStr::new(name)), "{name} is dropped");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let command = certctl_in(dir.path());
    let envs: Vec<(&OsStr, Option<&OsStr>)> = command.get_envs().collect();
    // whatever this run of the suite was given (the README says how to give it a hostile one)
    for (key, _) in std::env::vars_os() {
        if inherited_from_host(&key) {
            assert!(
                envs.contains(&(key.as_os_str(), None)) || key == "CERTCTL_CONFIG",
                "{key:?} reaches certctl"
            );
        }
    }
    let config = envs
        .iter()
        .find(|(key, _)| *key == "CERTCTL_CONFIG")
        .and_then(|(_, value)| *value)
        .expect("CERTCTL_CONFIG is set");
    assert!(
        Path::new(config).starts_with(dir.path()),
        "{config:?} is not the test's own"
    );
    let text = fs::read_to_string(config).expect("reading the empty config file");
    assert!(
        text.lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "{text}"
    );
}

#[test]
fn startup_failure_shows_log_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = std::process::Command::new("/bin/sh");
    command.args(["-c", "echo 'listen failed: boom' >&2; exit 3"]);
    let log = dir.path().join("failing.log");
    let mut guard = common::process::ProcessGuard::spawn("failing", command, log);
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        guard.wait_until("never", Duration::from_secs(5), || false);
    }))
    .expect_err("an exited process must fail the wait");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("exited early"), "{message}");
    assert!(message.contains("listen failed: boom"), "{message}");
}

/// Pebble 2.4 reuses an account's valid authorization once in a hundred identifiers even
/// at PEBBLE_AUTHZREUSE=0; the lab's `FreshAuthz` front refuses such an order with badNonce.
/// With reuse at 100 % every order after the first reuses: through the front none gets
/// through (certctl gives up after its badNonce retries); without it the order is valid at
/// once, with no challenge answered.
#[test]
fn the_fresh_authz_front_refuses_orders_that_reuse_an_authorization() {
    for fresh_validation in [true, false] {
        let lab = Lab::start_with(LabOptions {
            authz_reuse_percent: Some(100),
            nonce_reject_percent: Some(0),
            fresh_validation,
            haproxy: false,
            ..LabOptions::default()
        });
        common::fixtures::request(&lab, &["reuse.test"]).assert_success();
        assert_eq!(lab.fresh_authz_rejections(), 0, "the first order is new");
        let again = common::fixtures::request(&lab, &["--force", "reuse.test"]);
        if fresh_validation {
            assert_eq!(again.code(), Some(1), "{}", again.stderr);
            assert!(again.stderr.contains("badNonce"), "{}", again.stderr);
            assert!(lab.fresh_authz_rejections() > 1, "each try was refused");
        } else {
            again.assert_success();
            assert_eq!(lab.fresh_authz_rejections(), 0);
        }
    }
}
