//! One HAProxy admin connection for a whole run (issue 19): kept open in prompt mode, each
//! command's own answer read and reported, commands refused while certificates are locked
//! sent again; against a socket that lies on purpose (`FakeAdmin`) and real HAProxy 2.6.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

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
    let local = |args: &[&str]| {
        let mut cmd = certctl_with(
            &lab,
            &[
                ("--server", OsStr::new("local")),
                ("--ca-bundle", OsStr::new("")),
            ],
        );
        cmd.args(args);
        run_command(cmd)
    };
    let names = ["s1.test", "s2.test", "s3.test", "s4.test"];
    for name in names {
        local(&["request", name]).assert_success();
    }
    // added (none loaded yet), then replaced, each in one run
    for round in ["added", "replaced"] {
        let out = local(&["renew", "--force", "-v", "--haproxy-socket", &socket]);
        out.assert_success();
        for name in names {
            assert!(
                out.stderr.contains(&format!(".pem {round}, no reload")),
                "{name} not {round}:\n{}",
                out.stderr
            );
            let bundle = std::fs::read(lab.ssl_dir().join(format!("{name}.pem"))).unwrap();
            let stored = serial_hex(pem::parse_many(bundle).unwrap()[0].contents());
            let stream =
                tls::handshake(lab.https_addr(), name, tls::config_accepting_anything()).unwrap();
            assert_eq!(
                serial_hex(&tls::peer_chain(&stream)[0]),
                stored,
                "{name} after {round}"
            );
        }
    }
}
