//! A hostile or broken host, through the binary, with the local CA (no network): what others
//! can write (StrictModes-like refusals, config-file hooks read at each run, links planted
//! in the ssl directory), pipes and devices where files belong, certificates half made by a
//! stopped request, and settings written by a newer certctl. Each test is a table of cases
//! and prints how many it ran and how many failed. hostile_runs.rs has the runs that used to
//! panic, leak or outlive certctl; hostile_ca.rs and hostile_proxy.rs the network's faults.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::bounded::{Cases, expect, run};
use common::host::{BOUND, Host, NOBODY, check, chown, ok};

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
