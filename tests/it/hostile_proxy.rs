//! A hostile or broken proxy side, through the binary: an ssl directory whose path holds
//! HAProxy's command separators (the lab's real HAProxy must not run a command of the
//! path's), and `FakeAdmin` sockets in place of HAProxy's that echo what they are sent (the
//! key included), answer garbage, answer without end, or never answer; and a damaged account
//! file. No message may show key material; every wait is bounded by CERTCTL_HAPROXY_TIMEOUT.

use crate::common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::bounded::{Cases, Run, expect, run};
use common::fake_admin::{Behaviour, FakeAdmin};
use common::{Lab, haproxy};

const BOUND: Duration = Duration::from_secs(150);

fn check(condition: bool, what: impl Into<String>) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what.into()) }
}

/// `certctl request NAME` with the lab's responder, `ssl_dir` and `socket`, and `env`.
fn request(
    lab: &Lab,
    name: &str,
    ssl_dir: &Path,
    socket: &Path,
    env: &[(&str, &str)],
) -> Result<Run, String> {
    let mut cmd = common::fixtures::certctl_with(lab, &[("--ssl-dir", ssl_dir.as_os_str())]);
    cmd.args([
        "request",
        "--http-addr",
        &lab.http_addr(),
        "--agree-tos",
        name,
    ])
    .arg("--haproxy-socket")
    .arg(socket);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, BOUND)
}

/// No control character but line ends and tabs: a message a terminal shows as it is.
fn printable(run: &Result<Run, String>) -> Result<(), String> {
    let stderr = &run.as_ref().map_err(Clone::clone)?.output.stderr;
    check(
        !stderr
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        format!("raw control characters on stderr: {stderr:?}"),
    )
}

#[test]
fn a_hostile_proxy_side_injects_nothing_and_learns_no_key() {
    let mut cases = Cases::new("hostile proxy");
    let lab = Lab::start();

    // 3. an ssl directory named with HAProxy's separators, pushed to the real HAProxy: it
    //    gets the whole path as one name (and refuses it for its `crt <dir>`, which holds
    //    another directory: a plain error, exit 1), never a command of the path's
    let tricky = lab.root().join("x;show info;").join("ssl");
    let out = request(&lab, "a.test", &tricky, &lab.admin_socket(), &[]);
    let listed = haproxy::admin_command(&lab.admin_socket(), "show ssl cert").unwrap_or_default();
    let bundle = tricky.join("a.test.pem").display().to_string();
    cases.check(
        "an ssl directory holding ';' and ' '",
        expect(&out, 1, &[&format!("certificate path '{bundle}'")])
            .and_then(|()| {
                check(
                    !listed.lines().any(|l| {
                        l.trim() == "/x"
                            || l.trim().ends_with(&format!("{}/x", lab.root().display()))
                    }),
                    format!("HAProxy split the path into commands:\n{listed}"),
                )
            })
            .and_then(|()| {
                let out = &out.as_ref().unwrap().output.stderr;
                check(!out.contains("Uptime"), "show info ran")
            }),
    );
    let newline = lab.root().join("y\nshow info");
    let out = request(&lab, "b.test", &newline, &lab.admin_socket(), &[]);
    cases.check(
        "an ssl directory holding a line break",
        expect(&out, 2, &["control character"])
            .and_then(|()| check(!newline.exists(), "it was created")),
    );

    // 3 and 4. a socket that answers like HAProxy, then echoes `set ssl cert` and its key
    let ssl = lab.root().join("y;z w");
    let mimic = FakeAdmin::start(
        &lab.root().join("mimic.sock"),
        Behaviour::Mimic {
            path: ssl.join("c.test.pem"),
        },
    );
    let out = request(&lab, "c.test", &ssl, mimic.path(), &[]);
    let sent = mimic.received();
    let set = sent
        .iter()
        .find(|c| c.starts_with("set ssl cert"))
        .cloned()
        .unwrap_or_default();
    let key =
        fs::read_to_string(lab.state_dir().join("certs/c.test/live/key.pem")).unwrap_or_default();
    cases.check(
        "a socket that echoes the key back",
        expect(&out, 1, &["HAProxy refused"]).and_then(|()| {
            let stderr = &out.as_ref().unwrap().output.stderr;
            let leaked = key
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 8)
                .any(|l| stderr.contains(l));
            check(!leaked, "a line of the key is on stderr")
        }),
    );
    let escaped = format!(
        "set ssl cert {}/y\\;z\\ w/c.test.pem <<",
        lab.root().display()
    );
    cases.check(
        "names are sent escaped",
        check(
            set.lines().next() == Some(escaped.as_str()),
            format!("sent {:?}, want {escaped:?}", set.lines().next()),
        ),
    );
    drop(mimic);

    // 14 and 10. sockets that are not HAProxy, or never stop, or never answer
    let ssl = lab.ssl_dir();
    let quick = [("CERTCTL_HAPROXY_TIMEOUT", "2")];
    for (behaviour, needles, env) in [
        (
            Behaviour::Echo,
            &["does not answer as HAProxy's admin socket"][..],
            &[][..],
        ),
        (
            Behaviour::Garbage,
            &["does not answer as HAProxy's admin socket", "\\x"],
            &[],
        ),
        (
            Behaviour::Endless,
            &["more than 4 MiB"],
            &[("CERTCTL_HAPROXY_TIMEOUT", "60")],
        ),
        (Behaviour::Silent, &["did not answer"], &quick),
    ] {
        let what = format!("{behaviour:?}");
        let fake = FakeAdmin::start(
            &lab.root().join(format!("{}.sock", what.to_lowercase())),
            behaviour,
        );
        let out = request(
            &lab,
            &format!("{}.test", what.to_lowercase()),
            &ssl,
            fake.path(),
            env,
        );
        cases.check(
            &format!("a socket that is {what}"),
            expect(&out, 1, needles)
                .and_then(|()| printable(&out))
                .and_then(|()| {
                    let stderr = &out.as_ref().unwrap().output.stderr;
                    check(
                        !stderr.contains("does not load"),
                        "taken for an HAProxy without the crt-list",
                    )
                }),
        );
    }

    // 4. a damaged account file holding a key is never quoted
    let key = rcgen::KeyPair::generate().unwrap();
    let pkcs8 = pem::parse(key.serialize_pem()).unwrap().into_contents();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&pkcs8);
    for entry in fs::read_dir(lab.state_dir().join("accounts"))
        .unwrap()
        .flatten()
    {
        let damaged = format!(
            "{{\"server\": {{\"key\": \"{b64}\"}}, \"credentials\": \"{}\"}}",
            key.serialize_pem().replace('\n', "\\n")
        );
        fs::write(entry.path(), damaged).unwrap();
    }
    let mut cmd = common::fixtures::certctl_with(&lab, &[]);
    cmd.args([
        "request",
        "--force",
        "--http-addr",
        &lab.http_addr(),
        "a.test",
    ]);
    let forced = run(cmd, BOUND);
    cases.check(
        "a damaged account file is not quoted",
        expect(&forced, 1, &["damaged"]).and_then(|()| {
            let stderr = &forced.as_ref().unwrap().output.stderr;
            check(!stderr.contains(&b64[..24]), "the key is on stderr")
        }),
    );
    cases.finish();
}
