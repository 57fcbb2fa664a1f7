//! A hostile or broken host, through the binary, with the local CA (no network): what others
//! can write (StrictModes-like refusals, config-file hooks read at each run), pipes and
//! devices where files belong, certificates half made by a stopped request, settings written
//! by a newer certctl, inputs that used to panic, a closed stdout or stderr, key material in
//! hook output, a damaged stored generation on the repair path, and signals while a hook
//! runs. Each test is a table of cases; each prints how many it ran and how many failed.
//! CA-side faults are in hostile_ca.rs, proxy-side ones in hostile_proxy.rs.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bounded::{Cases, Run, expect, run, run_as_set};
use common::hermetic;
use tempfile::TempDir;

/// Bound on a run that should end at once (a hang guard, not an expectation of speed).
const BOUND: Duration = Duration::from_secs(60);
const NOBODY: u32 = 65534;

/// A host of its own: a temp dir with the state and ssl directories certctl creates.
struct Host {
    dir: TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("certctl-hostile-")
            .tempdir()
            .unwrap();
        Host { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self) -> PathBuf {
        self.root().join("state")
    }

    fn ssl(&self) -> PathBuf {
        self.root().join("ssl")
    }

    fn live(&self, name: &str) -> PathBuf {
        self.state().join("certs").join(name).join("live")
    }

    /// `certctl --state-dir .. --ssl-dir .. --server local <args>`.
    fn certctl(&self, args: &[&str]) -> Command {
        let mut cmd = hermetic::certctl_in(self.root());
        cmd.arg("--state-dir")
            .arg(self.state())
            .arg("--ssl-dir")
            .arg(self.ssl())
            .arg("--server")
            .arg("local")
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<Run, String> {
        run(self.certctl(args), BOUND)
    }

    fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.root().join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn fifo(&self, path: &Path) {
        let _ = fs::remove_file(path);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

fn ok(run: &Result<Run, String>) -> Result<&Run, String> {
    let run = run.as_ref().map_err(Clone::clone)?;
    if !run.output.success() {
        return Err(format!(
            "exit {}: {}",
            run.output.status,
            run.output.stderr.trim()
        ));
    }
    Ok(run)
}

fn check(condition: bool, what: impl Into<String>) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what.into()) }
}

#[test]
fn what_others_can_write_is_refused_and_config_hooks_stay_configuration() {
    let mut cases = Cases::new("strict modes");
    let host = Host::new();
    let config = host.file("config.toml", "email = \"ops@a.test\"\n", 0o666);
    let config_arg = config.display().to_string();

    // the config file, writable by others, then another user's
    let out = host.run(&["--config", &config_arg, "list"]);
    cases.check(
        "config file 0666",
        expect(&out, 2, &[&config_arg, "mode 0666", "chmod go-w"]),
    );
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    chown(&config, NOBODY);
    let out = host.run(&["--config", &config_arg, "list"]);
    cases.check(
        "config file of another user",
        expect(&out, 2, &[&config_arg, "uid 65534", "chown root"]),
    );
    chown(&config, 0);

    // the state directory
    let _ = fs::create_dir(host.state());
    fs::set_permissions(host.state(), fs::Permissions::from_mode(0o777)).unwrap();
    let state = host.state().display().to_string();
    let out = host.run(&["list"]);
    cases.check(
        "state directory 0777",
        expect(&out, 2, &[&state, "mode 0777", "chmod go-w"]),
    );
    fs::set_permissions(host.state(), fs::Permissions::from_mode(0o700)).unwrap();
    chown(&host.state(), NOBODY);
    let out = host.run(&["request", "a.test"]);
    cases.check(
        "state directory of another user",
        expect(&out, 2, &[&state, "uid 65534", "chown root"]).and_then(|()| {
            check(
                !host.state().join("certs").exists(),
                "something was written",
            )
        }),
    );
    chown(&host.state(), 0);

    // the ssl directory: another user's, or everyone's, is refused before any issuance
    let _ = fs::create_dir(host.ssl());
    fs::set_permissions(host.ssl(), fs::Permissions::from_mode(0o777)).unwrap();
    let ssl = host.ssl().display().to_string();
    let out = host.run(&["request", "a.test"]);
    cases.check(
        "ssl directory 0777",
        expect(&out, 2, &[&ssl, "mode 0777", "chmod o-w"])
            .and_then(|()| check(!host.state().join("certs").exists(), "issued anyway")),
    );
    fs::set_permissions(host.ssl(), fs::Permissions::from_mode(0o755)).unwrap();
    chown(&host.ssl(), NOBODY);
    let out = host.run(&["request", "a.test"]);
    cases.check(
        "ssl directory of another user",
        expect(&out, 2, &[&ssl, "uid 65534", "chown root"]),
    );
    chown(&host.ssl(), 0);

    // hook scripts
    let script = host.file("hook.sh", "#!/bin/sh\necho ran >> hook.log\n", 0o777);
    let script_arg = script.display().to_string();
    let out = host.run(&["request", "a.test", "--deploy-hook", &script_arg]);
    cases.check(
        "world-writable hook script",
        expect(&out, 2, &[&script_arg, "mode 0777", "chmod o-w"])
            .and_then(|()| check(!host.state().join("certs").exists(), "issued anyway")),
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    chown(&script, NOBODY);
    let out = host.run(&[
        "request",
        "a.test",
        "--post-hook",
        &format!("{script_arg} --now"),
    ]);
    cases.check(
        "hook script of another user",
        expect(&out, 2, &[&script_arg, "uid 65534"]),
    );
    chown(&script, 0);
    fs::set_permissions(&script, fs::Permissions::from_mode(0o777)).unwrap();
    let hooked = host.file(
        "hooked.toml",
        &format!("deploy_hook = \"{script_arg}\"\n"),
        0o644,
    );
    let out = host.run(&["--config", &hooked.display().to_string(), "list"]);
    cases.check(
        "config file naming a world-writable hook script",
        expect(&out, 2, &["key `deploy_hook`", &script_arg]),
    );

    // hooks of the config file are configuration: read at each run, never stored
    let log = host.root().join("config-hooks.log");
    let with_hook = |word: &str| {
        host.file(
            "hooks.toml",
            &format!("deploy_hook = \"echo {word} >> {}\"\n", log.display()),
            0o644,
        )
        .display()
        .to_string()
    };
    let first = host.run(&["--config", &with_hook("one"), "request", "b.test"]);
    let second = host.run(&["--config", &with_hook("two"), "renew", "--force", "b.test"]);
    let settings =
        fs::read_to_string(host.state().join("certs/b.test/settings.json")).unwrap_or_default();
    cases.check(
        "config-file hooks apply at each run and are not stored",
        ok(&first)
            .and(ok(&second))
            .map(|_| ())
            .and_then(|()| {
                check(
                    !settings.contains("echo one"),
                    format!("stored: {settings}"),
                )
            })
            .and_then(|()| {
                let ran = fs::read_to_string(&log).unwrap_or_default();
                check(ran == "one\ntwo\n", format!("hooks ran: {ran:?}"))
            }),
    );
    cases.finish();
}

#[test]
fn files_in_directories_others_can_write_never_follow_a_planted_link() {
    let mut cases = Cases::new("planted links");
    let host = Host::new();
    fs::create_dir(host.ssl()).unwrap();
    let victim = host.file("victim", "precious\n", 0o644);
    let victim_bundle = host.file("victim-bundle", "precious too\n", 0o644);
    // the write probe's name was `.probe.certctl-tmp-<pid>`: plant a link for each pid the
    // next processes are likely to get
    let next: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1);
    for pid in next..next + 400 {
        let _ = std::os::unix::fs::symlink(
            &victim,
            host.ssl().join(format!(".probe.certctl-tmp-{pid}")),
        );
        let _ = std::os::unix::fs::symlink(
            &victim,
            host.ssl().join(format!(".a.test.pem.certctl-tmp-{pid}")),
        );
    }
    std::os::unix::fs::symlink(&victim_bundle, host.ssl().join("a.test.pem")).unwrap();
    let out = host.run(&["request", "a.test"]);
    let bundle = host.ssl().join("a.test.pem");
    cases.check(
        "links planted at the probe's and the temp file's names",
        ok(&out).map(|_| ()).and_then(|()| {
            let left = fs::read_to_string(&victim).unwrap_or_default();
            check(
                left == "precious\n",
                format!("the victim now holds {left:?}"),
            )
        }),
    );
    cases.check(
        "a link planted at the bundle's name",
        ok(&out).map(|_| ()).and_then(|()| {
            let left = fs::read_to_string(&victim_bundle).unwrap_or_default();
            check(
                left == "precious too\n",
                format!("written through: {left:?}"),
            )?;
            let meta = fs::symlink_metadata(&bundle).map_err(|e| e.to_string())?;
            check(
                meta.is_file() && meta.permissions().mode() & 0o777 == 0o600,
                "the bundle is not a regular 0600 file",
            )
        }),
    );
    cases.finish();
}

#[test]
fn pipes_devices_and_directories_where_files_belong_are_refused_at_once() {
    let mut cases = Cases::new("not regular files");
    let host = Host::new();
    let fifo = host.root().join("fifo");
    host.fifo(&fifo);
    let fifo_arg = fifo.display().to_string();
    let out = host.run(&["--config", &fifo_arg, "list"]);
    cases.check("config file is a FIFO", expect(&out, 2, &["named pipe"]));
    let out = run(
        {
            let mut cmd = host.certctl(&["list"]);
            cmd.arg("--ca-bundle").arg(&fifo);
            cmd
        },
        BOUND,
    );
    cases.check("CA bundle is a FIFO", expect(&out, 2, &["named pipe"]));
    let out = host.run(&["--config", "/dev/null", "list"]);
    cases.check("config file is a device", expect(&out, 2, &["device"]));

    for name in ["a.test", "b.test"] {
        ok(&host.run(&["request", name])).unwrap();
    }
    // a FIFO in place of the bundle: renew and concat refuse it, nothing hangs
    let bundle = host.ssl().join("a.test.pem");
    host.fifo(&bundle);
    let out = host.run(&["renew", "--force"]);
    cases.check(
        "bundle is a FIFO (renew)",
        expect(&out, 1, &["a.test.pem", "named pipe"]),
    );
    let out = host.run(&["concat", "a.test"]);
    cases.check(
        "bundle is a FIFO (concat)",
        expect(&out, 1, &["a.test.pem", "named pipe"]),
    );
    fs::remove_file(&bundle).unwrap();
    fs::create_dir(&bundle).unwrap();
    fs::write(bundle.join("x"), "x").unwrap();
    let out = host.run(&["concat", "a.test"]);
    cases.check(
        "bundle is a directory (concat)",
        expect(&out, 1, &["a.test.pem", "directory"]),
    );
    fs::remove_dir_all(&bundle).unwrap();

    // FIFOs in the state
    let cert = host.live("b.test").join("cert.pem");
    host.fifo(&cert);
    let out = host.run(&["list"]);
    cases.check(
        "stored certificate is a FIFO (list)",
        expect(&out, 1, &["b.test"]).and_then(|()| {
            let out = &out.as_ref().unwrap().output;
            check(out.stdout.contains("named pipe"), "list does not say why")
        }),
    );
    // a bundle to repair sends renew to the stored files: it must not hang on the pipe
    fs::write(host.ssl().join("b.test.pem"), "stale\n").unwrap();
    let out = host.run(&["renew", "b.test"]);
    cases.check(
        "stored certificate is a FIFO (renew with a bundle to repair)",
        expect(&out, 0, &[]),
    );
    let meta = host.live("b.test").join("meta.json");
    host.fifo(&meta);
    let out = host.run(&["renew"]);
    cases.check(
        "stored meta is a FIFO (renew)",
        expect(&out, 1, &["named pipe"]),
    );
    cases.finish();
}

#[test]
fn half_made_certificates_are_completed_or_cleared_and_newer_fields_kept() {
    let mut cases = Cases::new("half made, newer fields");
    let host = Host::new();
    for name in ["a.test", "b.test", "c.test", "d.test"] {
        ok(&host.run(&["request", name])).unwrap();
    }
    let cert_dir = |name: &str| host.state().join("certs").join(name);

    // a generation without its settings (the order in which certctl once stored them)
    fs::remove_file(cert_dir("a.test").join("settings.json")).unwrap();
    let out = host.run(&["request", "a.test", "--force"]);
    cases.check(
        "request --force redoes a certificate stored without its settings",
        ok(&out).map(|_| ()).and_then(|()| {
            check(
                cert_dir("a.test").join("settings.json").exists(),
                "settings still missing",
            )
        }),
    );
    fs::remove_file(cert_dir("b.test").join("settings.json")).unwrap();
    let out = host.run(&["renew"]);
    cases.check(
        "renew clears a certificate stored without its settings",
        ok(&out)
            .map(|_| ())
            .and_then(|()| check(!cert_dir("b.test").exists(), "b.test is still managed")),
    );
    let out = host.run(&["request", "b.test"]);
    cases.check("request works again afterwards", ok(&out).map(|_| ()));

    // settings without a generation (what a stop between the two leaves now)
    for entry in fs::read_dir(cert_dir("c.test")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "live" || name.starts_with('g') {
            let path = entry.path();
            if path.is_symlink() || path.is_file() {
                fs::remove_file(&path).unwrap();
            } else {
                fs::remove_dir_all(&path).unwrap();
            }
        }
    }
    let out = host.run(&["renew"]);
    cases.check(
        "renew completes a certificate stored without its generation",
        ok(&out).map(|_| ()).and_then(|()| {
            check(
                host.live("c.test").join("cert.pem").exists(),
                "not completed",
            )
        }),
    );
    let out = host.run(&["list"]);
    cases.check("list says all is whole afterwards", ok(&out).map(|_| ()));

    // a field written by a newer certctl survives renew and request
    let settings = cert_dir("d.test").join("settings.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(&settings).unwrap()).unwrap();
    json["future_field"] = serde_json::json!({"kept": [1, 2]});
    fs::write(&settings, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let kept = || {
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(&settings).unwrap()).unwrap();
        check(
            json["future_field"] == serde_json::json!({"kept": [1, 2]}),
            format!("dropped: {json}"),
        )
    };
    let out = host.run(&["renew", "--force", "d.test"]);
    cases.check(
        "unknown field kept by renew",
        ok(&out).map(|_| ()).and_then(|()| kept()),
    );
    let out = host.run(&["request", "d.test", "--force"]);
    cases.check(
        "unknown field kept by request",
        ok(&out).map(|_| ()).and_then(|()| kept()),
    );
    cases.finish();
}

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
