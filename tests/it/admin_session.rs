//! One HAProxy admin connection for a whole run (issue 19): kept open in prompt mode, each
//! command's own answer read and reported, commands refused while certificates are locked
//! sent again; against a socket that lies on purpose (`FakeAdmin`) and real HAProxy 2.6.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::fake_admin::{Behaviour, FakeAdmin, Lie};
use common::fixtures::{certctl_with, serial_hex};
use common::{Lab, Output, run_command, tls};

/// `certctl --state-dir ROOT/state --ssl-dir ROOT/ssl --server local ARGS`.
fn local(root: &Path, args: &[&str]) -> Output {
    let mut cmd = common::hermetic::certctl_in(root);
    cmd.arg("--state-dir")
        .arg(root.join("state"))
        .arg("--ssl-dir")
        .arg(root.join("ssl"))
        .args(["--server", "local"])
        .args(args);
    run_command(cmd)
}

/// A state with local-CA certificates for `names`, and a fake admin socket over its ssl dir.
fn setup(names: &[&str], lie: Lie) -> (tempfile::TempDir, FakeAdmin) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("ssl")).unwrap();
    for name in names {
        local(root.path(), &["request", name]).assert_success();
    }
    let fake = FakeAdmin::start(
        &root.path().join("admin.sock"),
        Behaviour::Prompt {
            dir: root.path().join("ssl"),
            lie,
        },
    );
    (root, fake)
}

fn renew_pushing(root: &Path, fake: &FakeAdmin) -> Output {
    let socket = fake.path().display().to_string();
    local(
        root,
        &["renew", "--force", "-v", "--haproxy-socket", &socket],
    )
}

/// `certctl --server local` (no CA bundle) in `lab`, with `args`.
fn local_in(lab: &Lab, args: &[&str]) -> Output {
    let mut cmd = certctl_with(
        lab,
        &[
            ("--server", OsStr::new("local")),
            ("--ca-bundle", OsStr::new("")),
        ],
    );
    cmd.args(args);
    run_command(cmd)
}

/// Checks that `out` reports `name` `done` ("added", "replaced") and that the lab's HAProxy
/// serves the serial of its bundle (TLS handshake with its name).
fn assert_served(lab: &Lab, out: &Output, name: &str, done: &str) {
    assert!(
        out.stderr
            .contains(&format!("{name}.pem {done}, no reload")),
        "{name} not {done}:\n{}",
        out.stderr
    );
    let bundle = std::fs::read(lab.ssl_dir().join(format!("{name}.pem"))).unwrap();
    let stored = serial_hex(pem::parse_many(bundle).unwrap()[0].contents());
    let stream = tls::handshake(lab.https_addr(), name, tls::config_accepting_anything()).unwrap();
    assert_eq!(
        serial_hex(&tls::peer_chain(&stream)[0]),
        stored,
        "{name} after {done}"
    );
}

fn count(received: &[String], prefix: &str) -> usize {
    received.iter().filter(|c| c.starts_with(prefix)).count()
}

#[test]
fn one_connection_carries_the_whole_run_and_the_list_is_asked_once() {
    let names = ["a.test", "b.test", "c.test"];
    let (root, fake) = setup(&names, Lie::Honest);
    let out = renew_pushing(root.path(), &fake);
    out.assert_success();
    let received = fake.received();
    assert_eq!(fake.connections(), 1, "one connection: {received:#?}");
    assert_eq!(received.first().map(|c| c.trim()), Some("prompt"));
    assert_eq!(
        received
            .iter()
            .filter(|c| c.trim() == "show ssl cert")
            .count(),
        1,
        "the list asked once: {received:#?}"
    );
    assert_eq!(count(&received, "set ssl cert "), 3, "{received:#?}");
    assert_eq!(count(&received, "commit ssl cert "), 3, "{received:#?}");
    for name in names {
        assert!(
            out.stderr.contains(&format!("{name}: HAProxy at")) && out.stderr.contains("replaced"),
            "{name} not reported as replaced:\n{}",
            out.stderr
        );
    }
}

#[test]
fn an_answer_that_comes_ahead_of_its_command_is_reported_not_taken() {
    let (root, fake) = setup(&["a.test"], Lie::AnswersAhead);
    let out = renew_pushing(root.path(), &fake);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    // a certificate's commands go together (set, commit, show); the extra answer shifts
    // the replies by one, so the `show` is answered by the commit's "Success!": no serial,
    // reported with that answer, never taken for a served serial
    assert!(
        out.stderr.contains("refused \"show ssl cert") && out.stderr.contains("Success!"),
        "the shifted answer not reported:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("deploy stays pending"),
        "{}",
        out.stderr
    );
    let received = fake.received();
    assert_eq!(count(&received, "commit ssl cert "), 1, "{received:#?}");
}

#[test]
fn a_commit_refused_while_certificates_are_locked_is_sent_again() {
    let left = Arc::new(AtomicUsize::new(2));
    let (root, fake) = setup(&["a.test", "b.test"], Lie::Locked(left.clone()));
    let out = renew_pushing(root.path(), &fake);
    out.assert_success();
    let received = fake.received();
    assert_eq!(count(&received, "commit ssl cert "), 4, "{received:#?}");
    assert_eq!(fake.connections(), 1, "{received:#?}");
    assert!(out.stderr.contains("locked"), "{}", out.stderr);
}

#[test]
fn real_haproxy_takes_a_run_of_new_and_replaced_certificates_over_one_connection() {
    let lab = Lab::start();
    let socket = lab.admin_socket().display().to_string();
    let local = |args: &[&str]| local_in(&lab, args);
    let names = ["s1.test", "s2.test", "s3.test", "s4.test"];
    for name in names {
        local(&["request", name]).assert_success();
    }
    // added (none loaded yet), then replaced, each in one run
    for round in ["added", "replaced"] {
        let out = local(&["renew", "--force", "-v", "--haproxy-socket", &socket]);
        out.assert_success();
        for name in names {
            assert_served(&lab, &out, name, round);
        }
    }
}

/// `count` local-CA certificates named `p0.test`...: requested with `socket` stored as their
/// HAProxy while nothing listens there, so each push is pending.
fn pending_pushes(root: &Path, count: usize, socket: &Path) -> Vec<String> {
    std::fs::create_dir(root.join("ssl")).unwrap();
    let socket = socket.display().to_string();
    let names: Vec<String> = (0..count).map(|i| format!("p{i}.test")).collect();
    for name in &names {
        let out = local(root, &["request", name, "--haproxy-socket", &socket]);
        assert!(
            out.stderr.contains("deploy stays pending"),
            "{name}: {}",
            out.stderr
        );
    }
    names
}

#[test]
fn a_deploy_pipelines_many_certificates_and_each_outcome_is_its_own() {
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join("admin.sock");
    // more certificates than the window, so that it is filled again as answers come
    let names = pending_pushes(root.path(), 40, &socket);
    let ahead = Arc::new(AtomicBool::new(false));
    let fake = FakeAdmin::start(
        &socket,
        Behaviour::Prompt {
            dir: root.path().join("ssl"),
            lie: Lie::Pipelined {
                locked: "/p3.test.pem".into(),
                refused: "/p7.test.pem".into(),
                ahead: ahead.clone(),
            },
        },
    );
    let out = local(root.path(), &["deploy", "-v"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let received = fake.received();
    assert!(
        ahead.load(Ordering::SeqCst),
        "the next certificate's commands were not sent before the answer to the first: \
         {received:#?}"
    );
    assert_eq!(fake.connections(), 1, "{received:#?}");
    // the refused one is reported with its own answer, and only it
    let refused = root.path().join("ssl/p7.test.pem").display().to_string();
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("HAProxy refused"))
        .collect();
    assert!(
        errors.len() == 1
            && errors[0].contains("p7.test: HAProxy at")
            && errors[0].contains(&format!(
                "\"commit ssl cert {refused}\": Committing {refused} unable to load the private key of {refused}"
            )),
        "{errors:#?}\n{}",
        out.stderr
    );
    assert!(
        received.contains(&format!("abort ssl cert {refused}\n")),
        "{received:#?}"
    );
    // the locked commit sent again, and every other certificate served
    let locked = root.path().join("ssl/p3.test.pem").display().to_string();
    assert_eq!(
        count(&received, &format!("commit ssl cert {locked}\n")),
        2,
        "{received:#?}"
    );
    assert!(out.stderr.contains("locked"), "{}", out.stderr);
    for name in names.iter().filter(|n| *n != "p7.test") {
        assert!(
            out.stderr.contains(&format!("{name}: HAProxy at"))
                && out
                    .stderr
                    .contains(&format!("{name}.pem replaced, no reload")),
            "{name} not reported as replaced:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("deploy failed for: p7.test;"),
        "{}",
        out.stderr
    );
}

#[test]
fn real_haproxy_takes_a_pipelined_deploy_around_a_certificate_it_refuses() {
    let lab = Lab::start();
    let socket = lab.admin_socket();
    let local = |args: &[&str]| local_in(&lab, args);
    let names: Vec<String> = (0..24).map(|i| format!("q{i}.test")).collect();
    for name in &names {
        local(&["request", name]).assert_success();
    }
    let socket_arg = socket.display().to_string();
    // q13's stored key is another certificate's: HAProxy refuses it at `commit` and keeps
    // its transaction open, under the certificates sent behind it
    let key = |name: &str| lab.state_dir().join(format!("certs/{name}/live/key.pem"));
    let bad = "q13.test";
    std::fs::copy(key("q2.test"), key(bad)).unwrap();
    for round in ["added", "replaced"] {
        if round == "replaced" {
            // every push pending again (the deploy records gone)
            for name in &names {
                let _ =
                    std::fs::remove_file(lab.state_dir().join(format!("certs/{name}/pushed.json")));
            }
        }
        // the pending pushes, all in one pipelined pass
        let out = local(&["renew", "-v", "--haproxy-socket", &socket_arg]);
        assert_eq!(out.code(), Some(1), "{round}: {}", out.stderr);
        let refusals: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("HAProxy refused"))
            .collect();
        assert!(
            !refusals.is_empty()
                && refusals
                    .iter()
                    .all(|l| l.contains(&format!("{bad}: HAProxy at"))
                        && l.contains(&format!(
                            "commit ssl cert {}",
                            lab.ssl_dir().join(format!("{bad}.pem")).display()
                        ))),
            "{round}: {refusals:#?}\n{}",
            out.stderr
        );
        for name in names.iter().filter(|n| *n != bad) {
            assert_served(&lab, &out, name, round);
        }
    }
}
