//! Faults, with the real components: a CA that rejects half of all nonces or dies in the
//! middle of an order, certctl killed at random moments of a renewal or stopped by SIGTERM
//! or Ctrl-C, an ssl directory that turns read-only or fills up, a HAProxy admin socket that
//! hangs, hooks that hang or flood.
//! Each must end in a clear error (or success) with no working certificate lost and no
//! half-written file, and the next run must finish the work.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fixtures::{both_snapshots, on_terminal, request, serial_hex};
use common::process::free_port;
use common::{Lab, LabOptions, run_command};
use x509_parser::prelude::{FromDer, X509Certificate};

const TMP_MARK: &str = ".certctl-tmp";

fn lab_without_haproxy() -> Lab {
    Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    })
}

/// Leaf serial, and whether the key of a bundle (or of a generation) matches its leaf.
fn parse_bundle(text: &[u8]) -> Result<(String, Vec<u8>), String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("not PEM: {e}"))?;
    let certs: Vec<&pem::Pem> = blocks.iter().filter(|b| b.tag() == "CERTIFICATE").collect();
    let keys: Vec<&pem::Pem> = blocks
        .iter()
        .filter(|b| b.tag().ends_with("PRIVATE KEY"))
        .collect();
    if certs.len() < 2 || keys.len() != 1 {
        return Err(format!(
            "{} certificates and {} keys; want leaf + chain + one key",
            certs.len(),
            keys.len()
        ));
    }
    check_key(certs[0].contents(), &pem::encode(keys[0]))?;
    Ok((
        serial_hex(certs[0].contents()),
        certs[0].contents().to_vec(),
    ))
}

fn check_key(leaf_der: &[u8], key_pem: &str) -> Result<(), String> {
    use rcgen::PublicKeyData;
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("key unusable: {e}"))?;
    let (_, cert) = X509Certificate::from_der(leaf_der).map_err(|e| format!("leaf: {e}"))?;
    if key.subject_public_key_info() != cert.public_key().raw {
        return Err("the key does not match the leaf".into());
    }
    Ok(())
}

/// The bundle certctl builds from `name`'s live generation (leaf, chain, key with no blank
/// line), after checking that generation is complete and consistent.
fn live_bundle(lab: &Lab, name: &str) -> Result<Vec<u8>, String> {
    let dir = lab.state_dir().join("certs").join(name);
    let target = fs::read_link(dir.join("live")).map_err(|e| format!("live: {e}"))?;
    let generation = dir.join(&target);
    let read = |file: &str| {
        fs::read(generation.join(file)).map_err(|e| format!("{}/{file}: {e}", target.display()))
    };
    let (cert, chain, fullchain, key, meta) = (
        read("cert.pem")?,
        read("chain.pem")?,
        read("fullchain.pem")?,
        read("key.pem")?,
        read("meta.json")?,
    );
    let leaf = pem::parse(&cert).map_err(|e| format!("cert.pem: {e}"))?;
    let key_text = String::from_utf8(key).map_err(|_| "key.pem is not text")?;
    check_key(leaf.contents(), &key_text)?;
    let meta: serde_json::Value =
        serde_json::from_slice(&meta).map_err(|e| format!("meta.json: {e}"))?;
    if meta["serial"] != serial_hex(leaf.contents()).as_str() {
        return Err(format!(
            "meta.json names {} for another leaf",
            meta["serial"]
        ));
    }
    if [cert.clone(), chain.clone()].concat() != fullchain {
        return Err("fullchain.pem is not cert.pem + chain.pem".into());
    }
    let mut bundle = fullchain;
    for line in key_text.lines().filter(|l| !l.trim().is_empty()) {
        bundle.extend_from_slice(line.trim_end().as_bytes());
        bundle.push(b'\n');
    }
    Ok(bundle)
}

/// Files in `dir` whose name holds certctl's temp mark.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().contains(TMP_MARK) {
                found.push(path.clone());
            }
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    found
}

/// A small deterministic generator (xorshift), seeded from the clock unless
/// CERTCTL_FAULT_SEED is set; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("CERTCTL_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("fault seed: CERTCTL_FAULT_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Kills (SIGKILL) the processes whose pids a hook listed in a file, when dropped, if they
/// still run what the hook started (their command line holds `mark`; a pid can be reused):
/// what a test's hook left behind never outlives the test.
struct KillListed {
    pids: PathBuf,
    mark: &'static str,
}

impl Drop for KillListed {
    fn drop(&mut self) {
        let text = fs::read_to_string(&self.pids).unwrap_or_default();
        for pid in text
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(self.mark) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// A tmpfs mounted over a directory for the life of the guard (root only).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mount tmpfs on {}: {status}",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "remount {options} {}: {status}",
            self.0.display()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn twenty_issuances_in_a_row_survive_half_of_all_nonces_rejected() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        nonce_reject_percent: Some(50),
        ..Default::default()
    });
    let started = Instant::now();
    let mut retried = 0;
    for i in 0..20 {
        let name = format!("n{i}.mon-app.test");
        let out = request(&lab, &[name.as_str(), "-vv"]);
        out.assert_success();
        retried += out.stderr.matches("bad nonce, trying again").count();
        let bundle = fs::read(lab.ssl_dir().join(format!("{name}.pem"))).unwrap();
        parse_bundle(&bundle).unwrap();
    }
    // the renewal path too: one account, several orders at once
    let out = lab.run(&["renew", "--force", "--jobs", "4", "-vv"]);
    out.assert_success();
    retried += out.stderr.matches("bad nonce, trying again").count();
    assert_eq!(out.stderr.matches(": renewed, valid until").count(), 20);
    eprintln!(
        "20 issuances and 20 renewals with 50 % of nonces rejected in {:?}; certctl retried a step {retried} times",
        started.elapsed()
    );
    assert!(
        retried > 0,
        "with half of all nonces rejected, some step must have been retried"
    );
}

#[test]
fn pebble_killed_during_validation_fails_cleanly_and_the_next_run_succeeds() {
    let lab = lab_without_haproxy();
    // certctl's responder on a port of its own; Pebble validates on the lab's port, where
    // this test listens: the first validation request kills Pebble, mid-order
    let responder = format!("127.0.0.1:{}", free_port());
    request(&lab, &["mon-app.test"]).assert_success();
    // later runs use the stored settings: point them at the responder port
    let settings = lab.state_dir().join("certs/mon-app.test/settings.json");
    let text = fs::read_to_string(&settings)
        .unwrap()
        .replace(&lab.http_addr(), &responder);
    fs::write(&settings, text).unwrap();

    let validation = TcpListener::bind(lab.http_addr()).unwrap();
    validation.set_nonblocking(true).unwrap();
    // Pebble may reuse a valid authorization now and then, and then validates nothing: such
    // a run renews (that is fine) and the next one tries again
    let mut attempts = 0;
    let out = loop {
        attempts += 1;
        assert!(attempts <= 5, "Pebble never validated");
        let before = both_snapshots(&lab);
        let killed = AtomicBool::new(false);
        let done = AtomicBool::new(false);
        let out = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    if let Ok((stream, _)) = validation.accept() {
                        lab.kill_pebble();
                        killed.store(true, Ordering::SeqCst);
                        drop(stream);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            let out = lab.run(&["renew", "--force"]);
            done.store(true, Ordering::SeqCst);
            out
        });
        if killed.load(Ordering::SeqCst) {
            assert_eq!(both_snapshots(&lab), before, "no partial file anywhere");
            break out;
        }
        out.assert_success();
    };
    let before = both_snapshots(&lab);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    // the kill lands between two requests (the next one is refused: "cannot reach") or,
    // now and then, while Pebble answers one (that exchange "failed" with no answer)
    let said = |what: &str| out.stderr.contains(what);
    assert!(
        (said("cannot reach the ACME server")
            || (said("the ACME server https://") && said(" failed")))
            && out.stderr.contains("mon-app.test")
            && out.stderr.contains("unchanged"),
        "a clear error naming the certificate: {}",
        out.stderr
    );
    assert!(temp_files(lab.root()).is_empty());
    drop(validation);

    // Pebble comes back; it keeps accounts in memory, so it no longer knows certctl's (a
    // real CA would): renew registers a new account (the terms were agreed to at request
    // time), says so, and renews
    lab.restart_pebble();
    let settings_text = fs::read_to_string(&settings)
        .unwrap()
        .replace(&responder, &lab.http_addr());
    fs::write(&settings, settings_text).unwrap();
    let out = lab.run(&["renew", "--force"]);
    out.assert_success();
    assert!(
        out.stderr.contains("registered a new one"),
        "{}",
        out.stderr
    );
    let bundle = fs::read(lab.ssl_dir().join("mon-app.test.pem")).unwrap();
    assert_eq!(bundle, live_bundle(&lab, "mon-app.test").unwrap());
    assert_ne!(bundle, before.1.values().next().unwrap().0, "a new bundle");
    assert!(temp_files(lab.root()).is_empty());
}

/// certctl killed with SIGKILL at random moments of `renew --force`: after every kill each
/// bundle is whole, its key matches, and it is the old or the new one; the live link points
/// at a complete generation; the next run finishes the work.
#[test]
fn sigkill_at_random_moments_of_renew_never_leaves_a_broken_bundle() {
    const TRIALS: usize = 64;
    let names = ["a.mon-app.test", "b.mon-app.test", "c.mon-app.test"];
    let lab = lab_without_haproxy();
    for name in names {
        request(&lab, &[name]).assert_success();
    }
    // how long a whole run takes, to spread the kills over it
    let t = Instant::now();
    lab.run(&["renew", "--force"]).assert_success();
    let whole = t.elapsed();
    let mut rng = Rng::from_env_or_clock();
    let span_ms = (whole.as_millis() as u64 * 5 / 4).max(50);
    let started = Instant::now();
    let (mut old_kept, mut new_in_place, mut finished) = (0, 0, 0);

    for trial in 0..TRIALS {
        let before: BTreeMap<&str, Vec<u8>> = names
            .iter()
            .map(|n| {
                (
                    *n,
                    fs::read(lab.ssl_dir().join(format!("{n}.pem"))).unwrap(),
                )
            })
            .collect();
        let delay = Duration::from_millis(rng.below(span_ms));
        let mut child = lab
            .certctl()
            .args(["renew", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let exited_first = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        if exited_first {
            finished += 1;
        }

        for name in names {
            let path = lab.ssl_dir().join(format!("{name}.pem"));
            let bundle = fs::read(&path)
                .unwrap_or_else(|e| panic!("trial {trial} ({delay:?}): {}: {e}", path.display()));
            parse_bundle(&bundle)
                .unwrap_or_else(|e| panic!("trial {trial} ({delay:?}): {name}: {e}"));
            let live = live_bundle(&lab, name)
                .unwrap_or_else(|e| panic!("trial {trial} ({delay:?}): {name}: live: {e}"));
            if bundle == before[name] {
                old_kept += 1;
            } else if bundle == live {
                new_in_place += 1;
            } else {
                panic!(
                    "trial {trial} ({delay:?}): {name}: the bundle is neither the old one nor the live one"
                );
            }
        }
        // HAProxy would load every file of the ssl directory that is not a dotfile
        for entry in fs::read_dir(lab.ssl_dir()).unwrap().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            assert!(
                file.starts_with('.') || names.iter().any(|n| file == format!("{n}.pem")),
                "trial {trial}: stray file {file} in the ssl directory"
            );
        }
    }
    eprintln!(
        "{TRIALS} SIGKILLs of `renew --force` over {span_ms} ms in {:?}: bundles kept old {old_kept}, \
         new {new_in_place} ({finished} runs had finished before the kill)",
        started.elapsed()
    );

    // the next run completes the work and cleans up
    lab.run(&["renew", "--force"]).assert_success();
    for name in names {
        let bundle = fs::read(lab.ssl_dir().join(format!("{name}.pem"))).unwrap();
        assert_eq!(bundle, live_bundle(&lab, name).unwrap(), "{name}");
    }
    assert!(
        temp_files(lab.root()).is_empty(),
        "{:?}",
        temp_files(lab.root())
    );

    // a run killed between storing a certificate and writing its bundle leaves the bundle
    // behind the stored certificate: a plain `renew` (nothing due) installs it, hooks too
    let stale_path = lab.ssl_dir().join("b.mon-app.test.pem");
    let stale = fs::read(&stale_path).unwrap();
    lab.run(&["renew", "--force", "b.mon-app.test"])
        .assert_success();
    fs::write(&stale_path, &stale).unwrap();
    let log = lab.root().join("post.log");
    let post = format!("echo \"$CERTCTL_RENEWED_NAMES\" >> {}", log.display());
    let out = lab.run(&["renew", "--post-hook", &post]);
    out.assert_success();
    assert!(
        out.stderr.contains("reinstalled from the stored files"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fs::read(&stale_path).unwrap(),
        live_bundle(&lab, "b.mon-app.test").unwrap()
    );
    assert_eq!(fs::read_to_string(&log).unwrap(), "b.mon-app.test\n");
    // and then there is nothing left to do
    let out = lab.run(&["renew"]);
    out.assert_success();
    assert_eq!(out.stderr, "");
}

#[test]
fn a_full_ssl_directory_keeps_the_old_bundle_and_the_next_run_installs_the_new_one() {
    let lab = lab_without_haproxy();
    let _tmpfs = Tmpfs::mount(&lab.ssl_dir(), "64k");
    request(&lab, &["mon-app.test"]).assert_success();
    let bundle_path = lab.ssl_dir().join("mon-app.test.pem");
    let old = fs::read(&bundle_path).unwrap();

    // fill the file system to the last byte
    let filler = lab.ssl_dir().join(".filler");
    {
        let mut file = fs::File::create(&filler).unwrap();
        let chunk = [0u8; 1024];
        while file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_ok()
        {}
        while file.write_all(&[0u8]).is_ok() {}
    }
    let out = lab.run(&["renew", "--force"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device")
            && out.stderr.contains(&bundle_path.display().to_string()),
        "the error names the bundle and the cause: {}",
        out.stderr
    );
    assert!(out.stderr.contains("not installed"), "{}", out.stderr);
    assert_eq!(
        fs::read(&bundle_path).unwrap(),
        old,
        "the old bundle is intact"
    );
    assert!(
        temp_files(lab.root()).is_empty(),
        "{:?}",
        temp_files(lab.root())
    );

    // space again: a plain renew (nothing is due) writes the bundle of the stored certificate
    fs::remove_file(&filler).unwrap();
    let out = lab.run(&["renew"]);
    out.assert_success();
    let new = fs::read(&bundle_path).unwrap();
    assert_ne!(new, old);
    assert_eq!(new, live_bundle(&lab, "mon-app.test").unwrap());
    assert!(temp_files(lab.root()).is_empty());
}

#[test]
fn a_read_only_ssl_directory_is_found_before_any_order() {
    let lab = lab_without_haproxy();
    let tmpfs = Tmpfs::mount(&lab.ssl_dir(), "1m");
    request(&lab, &["mon-app.test"]).assert_success();
    tmpfs.remount("ro");
    let before = both_snapshots(&lab);
    let http_addr = lab.http_addr();
    for args in [
        vec!["renew", "--force", "-vv"],
        vec![
            "request",
            "other.mon-app.test",
            "--agree-tos",
            "--http-addr",
            &http_addr,
            "-vv",
        ],
        vec!["concat", "-vv"],
    ] {
        let out = lab.run(&args);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("ssl directory")
                && out.stderr.contains("cannot be written")
                && out.stderr.contains("Read-only file system"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("acme:"),
            "no order was placed: {}",
            out.stderr
        );
        assert_eq!(both_snapshots(&lab), before, "{args:?}");
    }
    tmpfs.remount("rw");

    // an immutable certificate directory (chattr +i: root ignores permission bits): the
    // order goes through, storing it fails, the old certificate and bundle stay
    let cert_dir = lab.state_dir().join("certs/mon-app.test");
    let chattr = |flag: &str| -> Result<(), String> {
        let out = Command::new("chattr")
            .arg(flag)
            .arg(&cert_dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running chattr: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "chattr {flag} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    };
    match chattr("+i") {
        Ok(()) => {
            let out = lab.run(&["renew", "--force"]);
            chattr("-i").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.code(), Some(1), "{}", out.stderr);
            assert!(
                out.stderr.contains("not installed")
                    && out.stderr.contains("Operation not permitted"),
                "{}",
                out.stderr
            );
            assert_eq!(both_snapshots(&lab), before);
        }
        Err(why) => eprintln!(
            "SKIPPED part of this test: renew into an immutable certificate directory; \
             chattr +i is refused for {} (a file system without the immutable flag, or not \
             root): {why}",
            cert_dir.display()
        ),
    }
}

#[test]
fn a_hanging_haproxy_socket_is_bounded_reported_and_the_others_updated() {
    let lab = Lab::start();
    let hang_path = lab.root().join("hang.sock");
    let hang = UnixListener::bind(&hang_path).unwrap();
    hang.set_nonblocking(true).unwrap();
    let stop = AtomicBool::new(false);
    let real = lab.admin_socket().display().to_string();
    let hanging = hang_path.display().to_string();
    let (out, elapsed, accepted) = std::thread::scope(|scope| {
        let hanging_proxy = scope.spawn(|| {
            // accepts and never answers, holding every connection open until certctl is done
            let mut held = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if let Ok((stream, _)) = hang.accept() {
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            held.len()
        });
        let mut cmd = lab.certctl();
        cmd.env("CERTCTL_HAPROXY_TIMEOUT", "1").args([
            "request",
            "a.mon-app.test",
            "--agree-tos",
            "--http-addr",
            &lab.http_addr(),
            "--haproxy-socket",
            &hanging,
            "--haproxy-socket",
            &real,
        ]);
        let t = Instant::now();
        let out = run_command(cmd);
        let elapsed = t.elapsed();
        stop.store(true, Ordering::SeqCst);
        (out, elapsed, hanging_proxy.join().unwrap())
    });
    eprintln!("certctl gave up on the hanging socket and finished in {elapsed:?}");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&hanging) && out.stderr.contains("did not answer"),
        "the hanging proxy is named: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("HAProxy at {real} now serves it")),
        "the other proxy was still updated: {}",
        out.stderr
    );
    // Bounded, without betting on the machine's speed: the hanging proxy took certctl's
    // connection and neither answered nor closed it while certctl ran, so certctl ending
    // at all (run_command allows minutes) means it gave up on its own, as reported above.
    assert!(
        accepted >= 1,
        "certctl never connected to the hanging socket"
    );
    // the real HAProxy serves the new certificate, the bundle is written
    let bundle = fs::read(lab.ssl_dir().join("a.mon-app.test.pem")).unwrap();
    let (serial, _) = parse_bundle(&bundle).unwrap();
    assert_eq!(serial_hex(&lab.served_chain("a.mon-app.test")[0]), serial);
}

#[test]
fn hooks_that_hang_or_flood_are_killed_and_their_output_bounded() {
    let lab = lab_without_haproxy();
    let pids = lab.root().join("pids");
    let flood = "head -c 3000000 /dev/zero | tr '\\0' x; head -c 500000 /dev/zero | tr '\\0' y >&2; echo done";
    // The hanging hook runs for an hour, far beyond run_command's bound on certctl: a
    // certctl that returns at all has killed it. Whatever it leaves running is killed at
    // the end of the test all the same.
    let hang = format!(
        "echo $$ > {p}; sleep 3600 & echo $! >> {p}; wait",
        p = pids.display()
    );
    let _leftovers = KillListed {
        pids: pids.clone(),
        mark: "3600",
    };
    let t = Instant::now();
    let out = request(
        &lab,
        &[
            "mon-app.test",
            "--deploy-hook",
            flood,
            "--post-hook",
            &hang,
            "--hook-timeout",
            "2",
        ],
    );
    eprintln!(
        "certctl killed the hanging hook and finished in {:?}",
        t.elapsed()
    );
    assert_eq!(
        out.code(),
        Some(1),
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(2000)..]
    );
    assert!(
        out.stderr.len() < 64 * 1024 + 4096,
        "hook output is bounded in the log: {} bytes",
        out.stderr.len()
    );
    let dropped = 3_500_005 - 64 * 1024;
    assert!(
        out.stderr.contains(&format!(
            "the deploy hook wrote {dropped} more bytes of output; not shown"
        )),
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(2000)..]
    );
    assert!(
        out.stderr
            .contains("did not finish within 2s and was killed"),
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(2000)..]
    );
    // the hook's whole process group is gone, its background child too
    let text = fs::read_to_string(&pids).unwrap();
    for pid in text.split_whitespace() {
        let pid: u32 = pid.parse().unwrap();
        assert!(!common::process_alive(pid), "hook process {pid} survived");
    }
    // the certificate is installed all the same
    let bundle = fs::read(lab.ssl_dir().join("mon-app.test.pem")).unwrap();
    assert_eq!(bundle, live_bundle(&lab, "mon-app.test").unwrap());
}

/// `certctl <args>` running in the background with its output in a file of the lab; killed
/// if still running when dropped.
struct Background {
    child: std::process::Child,
    log: PathBuf,
}

impl Background {
    fn start(lab: &Lab, args: &[&str]) -> Background {
        let log = lab.root().join("background.log");
        let out = fs::File::create(&log).unwrap();
        let mut command = lab.certctl();
        command
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        eprintln!("$ certctl {}", args.join(" "));
        Background {
            child: command.spawn().unwrap(),
            log,
        }
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `ready` until it holds; panics (with certctl's output) when certctl exits
    /// first or a minute passes.
    fn wait_for(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "certctl exited ({status}) before {what}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} after a minute:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits (at most 30 s) for certctl to exit; its exit code and output.
    fn terminate(&mut self) -> (Option<i32>, String) {
        // SAFETY: kill(2) has no memory-safety preconditions; the child is not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let output = self.output();
                eprintln!("{output}--- {status}");
                return (status.code(), output);
            }
            assert!(
                Instant::now() < deadline,
                "certctl still running 30 s after SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A helper process, killed when dropped.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where Pebble validates HTTP-01 in a lab without HAProxy: a listener that accepts and
/// never answers, so validation cannot finish while a test looks at the running order.
fn silent_validation(lab: &Lab) -> TcpListener {
    let listener = TcpListener::bind(lab.http_addr()).unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

#[test]
fn sigterm_during_a_webroot_order_removes_its_token_file_and_exits_143() {
    let lab = lab_without_haproxy();
    let _validation = silent_validation(&lab);
    let webroot = lab.root().join("www");
    fs::create_dir(&webroot).unwrap();
    let tokens = webroot.join(".well-known/acme-challenge");
    let webroot_arg = webroot.display().to_string();
    let mut certctl = Background::start(
        &lab,
        &[
            "request",
            "mon-app.test",
            "--agree-tos",
            "--challenge",
            "webroot",
            "--webroot",
            &webroot_arg,
        ],
    );
    certctl.wait_for("token file in the webroot", || {
        fs::read_dir(&tokens).is_ok_and(|mut d| d.next().is_some())
    });
    let (code, output) = certctl.terminate();
    assert_eq!(code, Some(143), "{output}");
    assert!(
        output.contains("certctl: interrupted (SIGTERM)"),
        "{output}"
    );
    let left: Vec<_> = fs::read_dir(&tokens).unwrap().flatten().collect();
    assert!(left.is_empty(), "token files left behind: {left:?}");
    assert!(!lab.ssl_dir().join("mon-app.test.pem").exists());
}

#[test]
fn sigterm_during_a_standalone_order_frees_the_port_and_exits_143() {
    let lab = lab_without_haproxy();
    let validation = silent_validation(&lab);
    // certctl's responder on a port of its own; Pebble asks the silent listener
    let responder = format!("127.0.0.1:{}", free_port());
    let mut certctl = Background::start(
        &lab,
        &[
            "request",
            "mon-app.test",
            "--agree-tos",
            "--http-addr",
            &responder,
        ],
    );
    // Pebble connects once certctl has presented the token and told it to validate
    let mut held = Vec::new();
    certctl.wait_for("validation request from Pebble", || {
        match validation.accept() {
            Ok((stream, _)) => held.push(stream),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        }
        !held.is_empty()
    });
    assert!(
        std::net::TcpStream::connect(&responder).is_ok(),
        "the responder serves while the order runs"
    );
    let pid = certctl.child.id();
    let (code, output) = certctl.terminate();
    assert_eq!(code, Some(143), "{output}");
    assert!(
        output.contains("certctl: interrupted (SIGTERM)"),
        "{output}"
    );
    assert!(!common::process_alive(pid));
    TcpListener::bind(&responder).expect("the responder's port is free again");
}

#[test]
fn sigterm_while_waiting_for_the_state_lock_ends_at_once() {
    let lab = lab_without_haproxy();
    request(&lab, &["mon-app.test"]).assert_success();
    // another process holds the lock; certctl would wait for it up to two minutes
    let lock = lab.state_dir().join("lock");
    let mut holder = KilledOnDrop(
        Command::new("python3")
        .arg("-c")
        .arg("import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(300)")
        .arg(&lock)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let mut certctl = Background::start(&lab, &["renew", "--force"]);
    // it has opened the lock file: it waits for the lock now
    let fds = format!("/proc/{}/fd", certctl.child.id());
    certctl.wait_for("the lock file opened", || {
        fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == lock))
    });
    let started = Instant::now();
    let (code, output) = certctl.terminate();
    drop(holder);
    assert_eq!(code, Some(143), "{output}");
    assert!(
        output.contains("certctl: interrupted (SIGTERM)"),
        "{output}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "SIGTERM took {:?}, as if the lock wait ran out first",
        started.elapsed()
    );
}

#[test]
fn ctrl_c_at_a_confirmation_prompt_exits_130_and_changes_nothing() {
    let lab = lab_without_haproxy();
    request(&lab, &["mon-app.test"]).assert_success();
    let before = both_snapshots(&lab);
    let out = on_terminal(&lab, "\x03", &["delete", "mon-app.test"]);
    assert_eq!(out.code(), Some(130), "{}", out.stdout);
    assert!(
        out.stdout.contains("certctl: interrupted (SIGINT)"),
        "{}",
        out.stdout
    );
    assert_eq!(both_snapshots(&lab), before);
}
