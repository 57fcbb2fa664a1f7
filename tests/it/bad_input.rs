//! Bad input, as a table: command lines, names, `--server`, key types, `--ca-bundle` and
//! config files, and a damaged store for every subcommand that reads one. Each case must
//! exit 2 (bad input) or 1 (a damaged store), say what is wrong, and leave the state and
//! ssl directories byte for byte as they were. The cases in tests/it/request.rs (bad input of
//! `request`) are not repeated here.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixtures::{Snapshot, request, snapshot};
use common::hermetic;
use common::{Lab, LabOptions, run_command};

/// What a case does to a copy of the store before running.
type Damage = fn(&Path);

struct Case {
    /// The arguments after the global flags.
    args: Vec<String>,
    /// Replaces the lab's global flags when set (for cases about those flags).
    globals: Option<Vec<String>>,
    env: Vec<(&'static str, String)>,
    code: i32,
    needle: String,
    /// Damage done to a copy of the store, which the case then runs against.
    damage: Option<Damage>,
}

fn case(args: &[&str], code: i32, needle: &str) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        globals: None,
        env: Vec::new(),
        code,
        needle: needle.to_owned(),
        damage: None,
    }
}

/// A `request` for `names` with the lab's responder, so that only the input is wrong.
fn request_case(names: &[&str], needle: &str) -> Case {
    let mut args = vec!["request", "--agree-tos", "--force"];
    args.extend_from_slice(names);
    case(&args, 2, needle)
}

fn with_globals(mut c: Case, globals: Vec<String>) -> Case {
    c.globals = Some(globals);
    c
}

fn damaged(args: &[&str], code: i32, needle: &str, damage: Damage) -> Case {
    Case {
        damage: Some(damage),
        ..case(args, code, needle)
    }
}

const NAME: &str = "mon-app.test";

fn live(state: &Path) -> PathBuf {
    state.join("certs").join(NAME).join("live")
}

fn truncate_cert(state: &Path) {
    let path = live(state).join("cert.pem");
    let text = fs::read(&path).unwrap();
    fs::write(&path, &text[..text.len() / 2]).unwrap();
}

fn garbage_settings(state: &Path) {
    fs::write(
        state.join("certs").join(NAME).join("settings.json"),
        b"{\"domains\": [\"mon-app.test\"], \x00\xff garbage",
    )
    .unwrap();
}

fn garbage_meta(state: &Path) {
    fs::write(live(state).join("meta.json"), b"not json").unwrap();
}

fn foreign_key(state: &Path) {
    let key = rcgen::KeyPair::generate().unwrap();
    fs::write(live(state).join("key.pem"), key.serialize_pem()).unwrap();
}

fn missing_key(state: &Path) {
    fs::remove_file(live(state).join("key.pem")).unwrap();
}

fn garbage_account(state: &Path) {
    for entry in fs::read_dir(state.join("accounts")).unwrap().flatten() {
        fs::write(entry.path(), b"{\"server\": 42}").unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn bad_input_and_damaged_stores_exit_with_a_reason_and_change_nothing() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    request(&lab, &[NAME]).assert_success();
    let root = lab.root();
    let http_addr = lab.http_addr();
    let url = lab.directory_url();
    let ca = lab.ca_bundle().display().to_string();
    let state = lab.state_dir().display().to_string();
    let ssl = lab.ssl_dir().display().to_string();
    let globals = |server: &str, ca_bundle: Option<&str>| {
        let mut g = vec![
            "--state-dir".to_owned(),
            state.clone(),
            "--ssl-dir".to_owned(),
            ssl.clone(),
            "--server".to_owned(),
            server.to_owned(),
        ];
        if let Some(ca) = ca_bundle {
            g.extend(["--ca-bundle".to_owned(), ca.to_owned()]);
        }
        g
    };

    // files the cases point at
    let file = |name: &str, contents: &[u8]| {
        let path = root.join(name);
        fs::write(&path, contents).unwrap();
        path.display().to_string()
    };
    let truncated_pem = file(
        "truncated.pem",
        b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZ\n",
    );
    let key_only = file(
        "key-only.pem",
        rcgen::KeyPair::generate()
            .unwrap()
            .serialize_pem()
            .as_bytes(),
    );
    let config = |name: &str, text: &str| file(name, text.as_bytes());
    let unknown_key = config(
        "unknown.toml",
        "email = \"ops@mon-app.test\"\nkeytype = \"ec256\"\n",
    );
    let bad_key_type = config("key-type.toml", "key_type = \"ec999\"\n");
    let broken = config("broken.toml", "server = \"letsencrypt\n");
    let http_server = config("http.toml", "server = \"http://ca.test/dir\"\n");
    let bad_socket = config("socket.toml", "haproxy_sockets = [\"nowhere\"]\n");
    let missing_ca = config("ca.toml", "ca_bundle = \"/nonexistent/ca.pem\"\n");
    let bad_hook_timeout = config("timeout.toml", "hook_timeout = \"soon\"\n");
    let binary = file("binary.toml", b"\xff\xfe\x00email");
    let dir = root.display().to_string();

    let long_name = format!("{}.test", vec!["a".repeat(63); 4].join("."));
    let long_cert_name = "a".repeat(201);
    let long_first = format!("{}.example.test", vec!["a".repeat(63); 3].join("."));
    let mut cases: Vec<Case> = vec![
        // the command line
        case(&[], 2, "Usage"),
        case(&["frobnicate"], 2, "unrecognized subcommand"),
        case(&["request"], 2, "required"),
        case(&["request", NAME, "--bogus"], 2, "--bogus"),
        case(&["renew", "--jobs", "0"], 2, "--jobs 0"),
        case(&["renew", "--jobs", "many"], 2, "invalid value 'many'"),
        case(&["revoke"], 2, "required"),
        case(&["revoke", NAME, "--reason", "bored"], 2, "bored"),
        case(&["request", NAME, "--hook-timeout", "soon"], 2, "soon"),
        case(&["-q", "-v", "list"], 2, "cannot be used with"),
        case(&["request", NAME, "--challenge", "dns01"], 2, "dns01"),
        case(
            &["request", NAME, "--challenge", "webroot"],
            2,
            "--webroot DIR",
        ),
        case(
            &[
                "request",
                NAME,
                "--challenge",
                "webroot",
                "--webroot",
                "/nonexistent/www",
            ],
            2,
            "not a directory",
        ),
        case(
            &["request", NAME, "--http-addr", "127.0.0.1"],
            2,
            "--http-addr",
        ),
        case(
            &["request", NAME, "--haproxy-socket", "nowhere"],
            2,
            "neither a socket path",
        ),
        case(
            &["request", NAME, "--haproxy-socket", ""],
            2,
            "--haproxy-socket is empty",
        ),
        case(&["request", NAME, "--days", "30"], 2, "local CA only"),
        case(
            &["request", NAME, "--name", ""],
            2,
            "not a usable certificate name",
        ),
        case(
            &["request", NAME, "--name", "Mon-App"],
            2,
            "not a usable certificate name",
        ),
        case(
            &["request", NAME, "--name", ".hidden"],
            2,
            "not a usable certificate name",
        ),
        case(
            &["request", NAME, "--name", "a/b"],
            2,
            "not a usable certificate name",
        ),
        case(
            &["request", NAME, "--name", &long_cert_name],
            2,
            "not a usable certificate name",
        ),
        case(&["request", NAME, "--key-type", "EC256"], 2, "EC256"),
        case(&["request", NAME, "--key-type", "ed25519"], 2, "ed25519"),
        case(&["request", NAME, "--key-type", ""], 2, "--key-type"),
        case(
            &["renew", "nobody.test"],
            2,
            "no certificate named nobody.test",
        ),
        case(
            &["revoke", "nobody.test", "--yes"],
            2,
            "no certificate named nobody.test",
        ),
        case(
            &["delete", "nobody.test", "--yes"],
            2,
            "no certificate named nobody.test",
        ),
        case(&["concat", "../etc"], 2, "not a usable certificate name"),
        case(
            &["revoke", "../x", "--yes"],
            2,
            "not a usable certificate name",
        ),
        case(
            &["concat", "--stdout", "nobody.test"],
            2,
            "no certificate named",
        ),
        case(&["delete", NAME], 2, "pass --yes"),
        case(&["revoke", NAME], 2, "pass --yes"),
        Case {
            env: vec![("CERTCTL_LOG", "loud".into())],
            ..case(&["list"], 2, "CERTCTL_LOG")
        },
        // names
        request_case(&["a\tb.test"], "contains a space"),
        request_case(&["a\u{1b}[31m.test"], "control character"),
        request_case(&["a\u{7f}.test"], "control character"),
        request_case(&["\u{202e}tset.a"], "not a valid domain name"),
        request_case(&["--", "-a.test"], "starts or ends with '-'"),
        request_case(&["a-.test"], "starts or ends with '-'"),
        request_case(&["a_b.test"], "characters other than"),
        request_case(&["/"], "path separator"),
        request_case(&["a.test/../../etc"], "path separator"),
        request_case(&["a\\b.test"], "path separator"),
        request_case(&[".."], "ends with a dot"),
        request_case(&["."], "ends with a dot"),
        request_case(&[".mon-app.test"], "empty label"),
        request_case(&[&long_name], "longer than 253"),
        // a valid domain too long to name a certificate (found by tests/it/properties.rs: it
        // was issued, then never listed nor renewed)
        request_case(&[&long_first], "choose a shorter name with --name"),
        request_case(&["xn--a.test"], "punycode"),
        request_case(&["xn--a-ecp.test"], "punycode"),
        request_case(&["*"], "single label"),
        request_case(&["a.*.test"], "characters other than"),
        request_case(&["*.*.mon-app.test"], "characters other than"),
        request_case(&["*.1.2.3.4"], "wildcard on an IP address"),
        request_case(&["1.2.3"], "neither a domain name nor an IP address"),
        request_case(&["[::1]"], "without brackets"),
        request_case(&["https://mon-app.test"], "without scheme or path"),
        request_case(&["mon-app.test:443"], "':'"),
        request_case(&["mon-app.test,www.mon-app.test"], "characters other than"),
        request_case(&[NAME, "*.www.mon-app.test"], "wildcards need the DNS-01"),
        request_case(&[NAME, "ok.mon-app.test", "bad_name.test"], "bad_name.test"),
        // --server
        with_globals(
            request_case(&[NAME], "ACME directories are served over https"),
            globals("http://127.0.0.1:14000/dir", Some(&ca)),
        ),
        with_globals(
            request_case(&[NAME], "letsencrypt-staging"),
            globals("letsencrypt-prod", Some(&ca)),
        ),
        with_globals(
            request_case(&[NAME], "--server \"\""),
            globals("", Some(&ca)),
        ),
        with_globals(
            request_case(&[NAME], "https://"),
            globals("https://", Some(&ca)),
        ),
        // --ca-bundle
        with_globals(
            request_case(&[NAME], "holds no certificate"),
            globals(&url, Some(&truncated_pem)),
        ),
        with_globals(
            request_case(&[NAME], "holds no certificate"),
            globals(&url, Some(&key_only)),
        ),
        with_globals(
            request_case(&[NAME], "is a directory"),
            globals(&url, Some(&dir)),
        ),
        with_globals(
            request_case(&[NAME], "not a regular file"),
            globals(&url, Some("/dev/zero")),
        ),
        // config files
        case(
            &["--config", "/nonexistent/certctl.toml", "list"],
            2,
            "reading config file",
        ),
        case(
            &["--config", &unknown_key, "list"],
            2,
            "line 2, key `keytype`",
        ),
        case(&["--config", &bad_key_type, "list"], 2, "key `key_type`"),
        case(&["--config", &broken, "list"], 2, "broken.toml, line 1"),
        case(&["--config", &http_server, "list"], 2, "key `server`"),
        case(
            &["--config", &bad_socket, "list"],
            2,
            "key `haproxy_sockets`",
        ),
        case(&["--config", &missing_ca, "list"], 2, "key `ca_bundle`"),
        case(
            &["--config", &bad_hook_timeout, "list"],
            2,
            "key `hook_timeout`",
        ),
        case(&["--config", &binary, "list"], 2, "not UTF-8"),
        case(&["--config", "/dev/zero", "list"], 2, "not a regular file"),
        case(&["--config", &dir, "list"], 2, "is a directory"),
        // a damaged store, for each subcommand that reads it
        damaged(
            &["renew", "--force"],
            1,
            "settings.json is damaged",
            garbage_settings,
        ),
        damaged(&["renew"], 1, "settings.json is damaged", garbage_settings),
        damaged(
            &["renew", "--force"],
            1,
            "meta.json is damaged",
            garbage_meta,
        ),
        damaged(&["renew", "--force"], 1, "move it away", garbage_account),
        damaged(
            &["concat"],
            1,
            "cert.pem holds no certificate",
            truncate_cert,
        ),
        damaged(
            &["concat"],
            1,
            "does not match the certificate",
            foreign_key,
        ),
        damaged(&["concat", NAME], 1, "key.pem", missing_key),
        damaged(
            &["concat", "--stdout", NAME],
            1,
            "does not match",
            foreign_key,
        ),
        damaged(&["list"], 1, "settings.json is damaged", garbage_settings),
        damaged(&["list"], 1, "cert.pem holds no certificate", truncate_cert),
        damaged(&["list", "--json"], 1, "key.pem is missing", missing_key),
        damaged(&["list"], 1, "meta.json is damaged", garbage_meta),
        damaged(
            &["revoke", NAME, "--yes"],
            1,
            "cannot be revoked",
            garbage_settings,
        ),
        damaged(
            &["revoke", NAME, "--yes"],
            1,
            "cannot be revoked",
            truncate_cert,
        ),
        damaged(
            &["revoke", NAME, "--yes"],
            1,
            "account file",
            garbage_account,
        ),
        damaged(&["delete", NAME], 2, "pass --yes", garbage_settings),
    ];
    // `request` needs the responder's address to get as far as its input checks (given
    // first: a case may end with `--` and a name that starts with '-')
    for c in &mut cases {
        if c.args.first().is_some_and(|a| a == "request") && c.code == 2 {
            c.args
                .splice(1..1, ["--http-addr".to_owned(), http_addr.clone()]);
        }
    }
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let pristine = lab.root().join("pristine");
    fs::create_dir(&pristine).unwrap();
    copy_dir(&lab.state_dir(), &pristine.join("state"));
    copy_dir(&lab.ssl_dir(), &pristine.join("ssl"));

    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        // where it runs: the lab's own directories, or a damaged copy
        let (state_dir, ssl_dir) = match c.damage {
            None => (lab.state_dir(), lab.ssl_dir()),
            Some(damage) => {
                let copy = lab.root().join(format!("case-{i}"));
                fs::create_dir(&copy).unwrap();
                copy_dir(&pristine.join("state"), &copy.join("state"));
                copy_dir(&pristine.join("ssl"), &copy.join("ssl"));
                damage(&copy.join("state"));
                (copy.join("state"), copy.join("ssl"))
            }
        };
        let before: (Snapshot, Snapshot) = (snapshot(&state_dir), snapshot(&ssl_dir));
        let mut cmd = hermetic::certctl_in(lab.root());
        match &c.globals {
            Some(g) => {
                cmd.args(g);
            }
            None if c.args.is_empty() || c.args[0] == "frobnicate" => {}
            None => {
                cmd.arg("--state-dir")
                    .arg(&state_dir)
                    .arg("--ssl-dir")
                    .arg(&ssl_dir)
                    .arg("--server")
                    .arg(&url)
                    .arg("--ca-bundle")
                    .arg(&ca);
            }
        }
        cmd.args(&c.args);
        cmd.envs(c.env.iter().map(|(k, v)| (*k, v)));
        let out = run_command(cmd);
        let after = (snapshot(&state_dir), snapshot(&ssl_dir));
        let mut problems = Vec::new();
        if out.code() != Some(c.code) {
            problems.push(format!("exit {:?}, want {}", out.code(), c.code));
        }
        // `list` prints the reason in its table (or JSON) and names the entry on stderr
        let said = if c.args.first().is_some_and(|a| a == "list") {
            format!("{}{}", out.stdout, out.stderr)
        } else {
            out.stderr.clone()
        };
        if !said.contains(&c.needle) {
            problems.push(format!("the output does not mention {:?}", c.needle));
        }
        if after != before {
            problems.push("the directories changed".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "case {i} {:?}: {}\n  stderr: {}",
                c.args,
                problems.join("; "),
                out.stderr.trim()
            ));
        }
    }
    eprintln!(
        "{} bad inputs tried, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
