//! Where settings come from: flags over environment over the config file over built-in
//! defaults; config file errors that name the file, the line and the key (exit 2); and the
//! log level from CERTCTL_LOG. No CA is needed: the effective server shows in the error of
//! `account thumbprint` with no account, the effective ssl dir in `list --json`.

use crate::common;

use std::fs;
use std::path::Path;

use common::certbot::FakeLineage;
use common::hermetic;
use common::{Output, run_command};

const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `certctl ARGS` with exactly the CERTCTL_* variables given, and without CERTCTL_CONFIG
/// among them an empty config file in `dir` (never the host's /etc/certctl/config.toml).
fn certctl(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut command = hermetic::certctl_in(dir);
    for (key, value) in env {
        command.env(key, value);
    }
    command.args(args);
    run_command(command)
}

/// The server certctl would use, from the error of `account thumbprint` with no account.
fn effective_server(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["account", "thumbprint"]);
    let out = certctl(dir, env, &all);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    let rest = out
        .stderr
        .split_once("no account yet for ")
        .unwrap_or_else(|| panic!("unexpected error: {}", out.stderr))
        .1;
    rest.split_once(": creating")
        .unwrap_or_else(|| panic!("unexpected error: {}", out.stderr))
        .0
        .to_owned()
}

/// The ssl dir certctl would use, from the bundle path `list --json` shows.
fn effective_ssl_dir(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["list", "--json"]);
    let out = certctl(dir, env, &all);
    out.assert_success();
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let bundle = rows[0]["bundle"].as_str().unwrap().to_owned();
    bundle.strip_suffix("/a.test.pem").unwrap().to_owned()
}

#[test]
fn flags_win_over_environment_over_the_file_over_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name);
    let state = dir("state");
    let config = dir("config.toml");
    fs::write(
        &config,
        format!(
            "# certctl defaults\nssl_dir = \"{}\"\nserver = \"https://file.test/dir\"\n",
            dir("file-ssl").display()
        ),
    )
    .unwrap();
    // one managed certificate, so that `list` shows where its bundle would be
    let certbot = dir("letsencrypt");
    FakeLineage {
        name: "a.test",
        names: &["a.test"],
        params: &[("server", "https://127.0.0.1:9/dir")],
        extra: "",
        wrong_key: false,
    }
    .write(&certbot);
    let state_arg = state.to_str().unwrap();
    certctl(
        tmp.path(),
        &[],
        &[
            "--state-dir",
            state_arg,
            "--ssl-dir",
            dir("ssl").to_str().unwrap(),
            "import",
            "certbot",
            certbot.to_str().unwrap(),
        ],
    )
    .assert_success();

    let env_ssl = dir("env-ssl");
    let flag_ssl = dir("flag-ssl");
    let file = ("CERTCTL_CONFIG", config.as_path());
    let env_all = [
        file,
        ("CERTCTL_SSL_DIR", env_ssl.as_path()),
        ("CERTCTL_SERVER", Path::new("https://env.test/dir")),
    ];
    let flags = [
        "--state-dir",
        state_arg,
        "--ssl-dir",
        flag_ssl.to_str().unwrap(),
        "--server",
        "https://flag.test/dir",
    ];
    let state_only = ["--state-dir", state_arg];

    // flag > environment
    assert_eq!(
        effective_ssl_dir(tmp.path(), &env_all, &flags),
        flag_ssl.display().to_string()
    );
    assert_eq!(
        effective_server(tmp.path(), &env_all, &flags),
        "https://flag.test/dir"
    );
    // environment > file
    assert_eq!(
        effective_ssl_dir(tmp.path(), &env_all, &state_only),
        env_ssl.display().to_string()
    );
    assert_eq!(
        effective_server(tmp.path(), &env_all, &state_only),
        "https://env.test/dir"
    );
    // file > default
    assert_eq!(
        effective_ssl_dir(tmp.path(), &[file], &state_only),
        dir("file-ssl").display().to_string()
    );
    assert_eq!(
        effective_server(tmp.path(), &[file], &state_only),
        "https://file.test/dir"
    );
    // --config as a flag works like CERTCTL_CONFIG
    let mut with_flag = state_only.to_vec();
    with_flag.extend(["--config", config.to_str().unwrap()]);
    assert_eq!(
        effective_ssl_dir(tmp.path(), &[], &with_flag),
        dir("file-ssl").display().to_string()
    );
    // built-in defaults: with an empty config file, whatever this machine's
    // /etc/certctl/config.toml holds
    assert_eq!(
        effective_ssl_dir(tmp.path(), &[], &state_only),
        "/etc/haproxy/ssl"
    );
    assert_eq!(effective_server(tmp.path(), &[], &state_only), LETSENCRYPT);
}

#[test]
fn config_file_errors_name_the_file_the_line_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "unknown.toml",
            "ssl_dir = \"/tmp/x\"\nbogus = 1\n",
            &["line 2", "`bogus`", "unknown field"],
        ),
        (
            "key-type.toml",
            "# comment\n\nkey_type = \"ec999\"\n",
            &["line 3", "`key_type`", "ec256"],
        ),
        (
            "server.toml",
            "email = \"ops@mon-app.fr\"\nserver = \"http://plain.test/dir\"\n",
            &["line 2", "`server`", "https"],
        ),
        (
            "timeout.toml",
            "hook_timeout = \"soon\"\n",
            &["line 1", "`hook_timeout`", "invalid type"],
        ),
        (
            "syntax.toml",
            "post_hook = \"unterminated\n",
            &["line 1", "`post_hook`"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = tmp.path().join(name);
        fs::write(&path, text).unwrap();
        let out = certctl(
            tmp.path(),
            &[],
            &[
                "--state-dir",
                state.to_str().unwrap(),
                "--config",
                path.to_str().unwrap(),
                "list",
            ],
        );
        assert_eq!(out.code(), Some(2), "{name}: {}", out.stderr);
        assert!(out.stdout.is_empty());
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("certctl: config file {}", path.display())),
            "{name}: {}",
            out.stderr
        );
        for needle in needles {
            assert!(
                out.stderr.contains(needle),
                "{name}: no {needle:?} in {}",
                out.stderr
            );
        }
    }

    // a config file that is named but missing, by flag or environment
    let missing = tmp.path().join("missing.toml");
    for out in [
        certctl(
            tmp.path(),
            &[],
            &["--config", missing.to_str().unwrap(), "list"],
        ),
        certctl(
            tmp.path(),
            &[("CERTCTL_CONFIG", missing.as_path())],
            &["list"],
        ),
    ] {
        assert_eq!(out.code(), Some(2), "{}", out.stderr);
        assert!(
            out.stderr.contains(&missing.display().to_string()),
            "{}",
            out.stderr
        );
    }
    assert!(!state.exists(), "nothing written");
}

#[test]
fn certctl_log_sets_the_level_unless_a_flag_does() {
    let tmp = tempfile::tempdir().unwrap();
    let certbot = tmp.path().join("letsencrypt");
    FakeLineage {
        name: "a.test",
        names: &["a.test"],
        params: &[("server", "https://127.0.0.1:9/dir")],
        extra: "",
        wrong_key: false,
    }
    .write(&certbot);
    let (state, ssl) = (tmp.path().join("state"), tmp.path().join("ssl"));
    let import = |env: &[(&str, &Path)], extra: &[&str]| {
        let mut args = vec![
            "--state-dir",
            state.to_str().unwrap(),
            "--ssl-dir",
            ssl.to_str().unwrap(),
            "import",
            "certbot",
            certbot.to_str().unwrap(),
            "--dry-run",
        ];
        args.extend(extra);
        certctl(tmp.path(), env, &args)
    };
    let said = |out: &Output| out.stderr.contains("a.test: would be taken over");

    let out = import(&[], &[]);
    out.assert_success();
    assert!(said(&out), "info by default");
    for quiet in ["quiet", "error", "certctl=error"] {
        let out = import(&[("CERTCTL_LOG", Path::new(quiet))], &[]);
        out.assert_success();
        assert_eq!(out.stderr, "", "CERTCTL_LOG={quiet}");
    }
    let out = import(&[("CERTCTL_LOG", Path::new("quiet"))], &["-v"]);
    assert!(said(&out), "-v wins over CERTCTL_LOG");
    let out = import(&[("CERTCTL_LOG", Path::new("debug"))], &["-q"]);
    assert_eq!(out.stderr, "", "-q wins over CERTCTL_LOG");
    let out = import(&[("CERTCTL_LOG", Path::new("loud"))], &[]);
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("CERTCTL_LOG"), "{}", out.stderr);
}
