//! Secrets: private keys, bundles and account credentials are 0600 and their directories
//! 0700 whatever the umask; no key material ever reaches a log line or an error message;
//! hooks get values through the environment only, so no path or name can inject shell.
//! (tests/it/common's `run_command` also checks every run of the suite for key material.)

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixtures::request;
use common::hermetic;
use common::{Lab, LabOptions, Output, run_command};

fn lab() -> Lab {
    Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    })
}

/// `certctl ARGS` run by `sh -c 'umask 000; exec certctl ...'`, with the lab's CA and the
/// given directories (which may not exist yet); hermetic, as `hermetic::certctl_in`.
fn certctl_umask_000(lab: &Lab, state: &Path, ssl: &Path, server: &str, args: &[&str]) -> Output {
    let mut certctl = hermetic::certctl_in(lab.root());
    certctl
        .arg("--state-dir")
        .arg(state)
        .arg("--ssl-dir")
        .arg(ssl)
        .arg("--server")
        .arg(server)
        .arg("--ca-bundle")
        .arg(lab.ca_bundle())
        .args(args);
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .stdin(std::process::Stdio::null());
    run_command(hermetic::through(shell, &certctl))
}

/// Every path under `dir` (the directory itself included) with its mode bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        out.push((
            path.clone(),
            meta.permissions().mode() & 0o7777,
            meta.is_dir(),
        ));
        if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap().flatten() {
                stack.push(entry.path());
            }
        }
    }
    out
}

#[test]
fn keys_bundles_and_accounts_are_private_whatever_the_umask() {
    let lab = lab();
    // directories that do not exist yet, parents included
    let state = lab.root().join("new/var/lib/certctl");
    let ssl = lab.root().join("new/etc/haproxy/ssl");
    let http_addr = lab.http_addr();
    let url = lab.directory_url();
    let request = [
        "request",
        "mon-app.test",
        "--agree-tos",
        "--http-addr",
        http_addr.as_str(),
    ];
    certctl_umask_000(&lab, &state, &ssl, &url, &request).assert_success();
    certctl_umask_000(&lab, &state, &ssl, &url, &["renew", "--force"]).assert_success();
    fs::remove_file(ssl.join("mon-app.test.pem")).unwrap();
    certctl_umask_000(&lab, &state, &ssl, &url, &["concat"]).assert_success();
    // the local CA's key and certificates, under the same state directory
    certctl_umask_000(
        &lab,
        &state,
        &ssl,
        "local",
        &["request", "backend.lan", "--name", "backend"],
    )
    .assert_success();
    certctl_umask_000(&lab, &state, &ssl, &url, &["delete", "backend", "--yes"]).assert_success();

    let mut checked = 0;
    let mut problems = Vec::new();
    let created = lab.root().join("new");
    for (path, mode, is_dir) in modes(&created) {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let secret = file.ends_with(".key")
            || file == "key.pem"
            || file == "settings.json"
            || path.parent().is_some_and(|p| p.ends_with("accounts"))
            || path.parent() == Some(ssl.as_path())
            || file.ends_with(".pem")
                && path
                    .parent()
                    .and_then(Path::parent)
                    .is_some_and(|p| p.ends_with("archive"))
            || file == "lock";
        let want = if is_dir {
            Some(0o700)
        } else if secret {
            Some(0o600)
        } else {
            None
        };
        match want {
            Some(want) if mode != want => {
                problems.push(format!("{}: {mode:o}, want {want:o}", path.display()))
            }
            None if mode & 0o022 != 0 => problems.push(format!(
                "{}: {mode:o} is writable by others",
                path.display()
            )),
            _ => {}
        }
        checked += 1;
    }
    eprintln!("{checked} paths checked under umask 000");
    assert!(checked > 20, "{checked}");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    assert!(
        modes(&state.join("accounts")).len() >= 2,
        "an account was stored"
    );
}

#[test]
fn no_command_shows_key_material() {
    let lab = lab();
    let mut runs: Vec<(String, Output)> = Vec::new();
    let mut run = |args: &[&str]| {
        let out = lab.run(args);
        runs.push((args.join(" "), out.clone()));
        out
    };
    let http_addr = lab.http_addr();
    let req = |name: &'static str| {
        vec![
            "request",
            name,
            "--agree-tos",
            "--http-addr",
            http_addr.as_str(),
            "-vv",
            "--json",
            "--key-type",
            if name.starts_with('r') {
                "rsa2048"
            } else {
                "ec256"
            },
        ]
    };
    run(&req("mon-app.test")).assert_success();
    run(&req("rsa.mon-app.test")).assert_success();
    run(&["renew", "--force", "-vv", "--json"]).assert_success();
    run(&["renew", "-vv"]).assert_success();
    run(&["list", "-vv"]).assert_success();
    run(&["list", "--json"]).assert_success();
    run(&["concat", "-vv"]).assert_success();
    run(&["account", "thumbprint", "-vv"]).assert_success();
    let stdout = run(&["concat", "--stdout", "mon-app.test", "-vv"]);
    stdout.assert_success();
    assert!(
        stdout.stdout.contains("PRIVATE KEY"),
        "concat --stdout prints the bundle, key included"
    );
    // errors: a key that does not match, a damaged key, bad input, a failing hook
    let live = lab.state_dir().join("certs/mon-app.test/live");
    let key = fs::read(live.join("key.pem")).unwrap();
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    fs::write(live.join("key.pem"), &other).unwrap();
    assert_eq!(run(&["concat", "-vv"]).code(), Some(1));
    assert_eq!(run(&["concat", "--stdout", "mon-app.test"]).code(), Some(1));
    fs::write(live.join("key.pem"), &key[..key.len() / 2]).unwrap();
    assert_eq!(run(&["concat", "-vv"]).code(), Some(1));
    // list flags the damaged key (without showing it)
    assert_eq!(run(&["list", "-vv"]).code(), Some(1));
    fs::write(live.join("key.pem"), &key).unwrap();
    let deploy = format!("cat {} >/dev/null; exit 3", live.join("key.pem").display());
    let out = run(&[
        "renew",
        "--force",
        "mon-app.test",
        "--deploy-hook",
        &deploy,
        "-vv",
    ]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        run(&["request", "bad_name.test", "--agree-tos"]).code(),
        Some(2)
    );
    assert_eq!(
        run(&["revoke", "rsa.mon-app.test", "--yes", "-vv"]).code(),
        Some(0)
    );
    assert_eq!(
        run(&["delete", "mon-app.test", "--yes", "-vv"]).code(),
        Some(0)
    );

    let mut scanned = 0;
    for (line, out) in &runs {
        scanned += out.stdout.len() + out.stderr.len();
        assert!(
            !out.stderr.contains("PRIVATE KEY"),
            "{line}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("BEGIN") && !out.stderr.contains("-----END"),
            "{line}: no PEM at all in logs: {}",
            out.stderr
        );
        if !line.starts_with("concat --stdout") {
            assert!(
                !out.stdout.contains("PRIVATE KEY"),
                "{line}: {}",
                out.stdout
            );
        }
    }
    eprintln!("{} runs, {scanned} bytes of output scanned", runs.len());
}

#[test]
fn hooks_get_values_through_the_environment_so_nothing_can_inject_shell() {
    let lab = lab();
    // an ssl directory whose path is full of shell syntax; the hooks print the values
    let hostile = lab
        .root()
        .join("ssl $(touch PWNED1) `touch PWNED2` ; touch PWNED3 && 'q' \"d\" \\ *");
    fs::create_dir(&hostile).unwrap();
    let out_file = lab.root().join("hook.out");
    let deploy = format!(
        "printf '%s\\n' \"$CERTCTL_BUNDLE\" \"$CERTCTL_NAME\" \"$CERTCTL_DOMAINS\" \"$RENEWED_DOMAINS\" > '{}'",
        out_file.display()
    );
    let post_file = lab.root().join("post.out");
    let post = format!(
        "printf '%s\\n' \"$CERTCTL_RENEWED_BUNDLES\" > '{}'",
        post_file.display()
    );
    let mut cmd = common::fixtures::certctl_with(&lab, &[("--ssl-dir", hostile.as_os_str())]);
    cmd.current_dir(lab.root()).args([
        "request",
        "mon-app.test",
        "www.mon-app.test",
        "--agree-tos",
        "--http-addr",
        &lab.http_addr(),
        "--deploy-hook",
        &deploy,
        "--post-hook",
        &post,
    ]);
    run_command(cmd).assert_success();
    let bundle = hostile.join("mon-app.test.pem");
    assert_eq!(
        fs::read_to_string(&out_file).unwrap(),
        format!(
            "{}\nmon-app.test\nmon-app.test www.mon-app.test\nmon-app.test www.mon-app.test\n",
            bundle.display()
        )
    );
    assert_eq!(
        fs::read_to_string(&post_file).unwrap(),
        format!("{}\n", bundle.display())
    );
    for pwned in ["PWNED1", "PWNED2", "PWNED3"] {
        assert!(
            !lab.root().join(pwned).exists(),
            "{pwned}: shell was injected"
        );
        assert!(!hostile.join(pwned).exists(), "{pwned}: shell was injected");
    }
    // names cannot carry shell at all: refused before any hook could see them
    let out = request(&lab, &["$(touch PWNED4).test", "--deploy-hook", "true"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(!lab.root().join("PWNED4").exists());
}
