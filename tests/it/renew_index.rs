//! `renew`'s index of next-attention times (issue 19) always agrees with the store: after
//! writes by certctl (reconfigure), manual edits (settings.json edited in place, a bundle or
//! a certificate removed, the index itself damaged) and SIGKILLs at random moments, a plain
//! `renew` (which reads the index) does what a full read of every certificate would, and a
//! full read afterwards (`renew -v`, which bypasses the index) finds nothing left to do.
//! Local CA only: no network.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Output, run_command};

fn certctl(root: &Path) -> std::process::Command {
    let mut cmd = common::hermetic::certctl_in(root);
    cmd.arg("--state-dir")
        .arg(root.join("state"))
        .arg("--ssl-dir")
        .arg(root.join("ssl"))
        .args(["--server", "local"]);
    cmd
}

pub(crate) fn run(root: &Path, args: &[&str]) -> Output {
    let mut cmd = certctl(root);
    cmd.args(args);
    run_command(cmd)
}

fn index(root: &Path) -> String {
    fs::read_to_string(root.join("state/renew-index")).unwrap_or_default()
}

/// Runs `renew` until the index holds a trusted version for every certificate (versions
/// younger than a clock tick are recorded as unknown): then the index alone decides, and
/// each check below proves it notices what changed. Bounded by a number of runs, not time.
fn settle(root: &Path, count: usize) {
    for _ in 0..2000 {
        run(root, &["renew"]).assert_success();
        let text = index(root);
        let entries: Vec<&str> = text.lines().filter(|l| l.ends_with(".test")).collect();
        if entries.len() == count
            && entries.iter().all(|l| !l.contains(" - "))
            && !text.contains("names -")
        {
            return;
        }
    }
    panic!("the index never settled:\n{}", index(root));
}

/// A full read (no index) finds nothing to do.
fn full_read_agrees(root: &Path, after: &str) {
    let out = run(root, &["renew", "-v"]);
    out.assert_success();
    assert!(
        !out.stderr.contains("renewed") && !out.stderr.contains("reinstalled"),
        "after {after}, a full read still found work the index missed:\n{}",
        out.stderr
    );
}

/// Adds `extra` to the names of `name` in its settings.json, edited in place (the file is
/// rewritten, not replaced: its directory does not change).
pub(crate) fn add_name_in_place(root: &Path, name: &str, extra: &str) {
    let settings = root.join(format!("state/certs/{name}/settings.json"));
    let edited = fs::read_to_string(&settings)
        .unwrap()
        .replace(&format!("\"{name}\""), &format!("\"{name}\", \"{extra}\""));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&settings)
        .unwrap();
    std::io::Write::write_all(&mut file, edited.as_bytes()).unwrap();
}

pub(crate) fn setup(names: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("ssl")).unwrap();
    for name in names {
        run(root.path(), &["request", name, "--days", "700"]).assert_success();
    }
    root
}

#[test]
fn the_index_notices_writes_and_manual_edits() {
    let names = ["a.test", "b.test", "c.test"];
    let root = setup(&names);
    let root = root.path();
    settle(root, 3);

    // certctl's own write: reconfigure makes b due
    run(root, &["reconfigure", "b.test", "--key-type", "ec384"]).assert_success();
    let out = run(root, &["renew"]);
    out.assert_success();
    assert!(out.stderr.contains("b.test: renewed"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("a.test") && !out.stderr.contains("c.test"),
        "{}",
        out.stderr
    );
    full_read_agrees(root, "reconfigure");
    settle(root, 3);

    // settings.json edited in place (the directory does not change): a name added
    add_name_in_place(root, "c.test", "www.c.test");
    let out = run(root, &["renew"]);
    out.assert_success();
    assert!(out.stderr.contains("c.test: renewed"), "{}", out.stderr);
    full_read_agrees(root, "an edit in place");
    settle(root, 3);

    // a bundle removed by hand: written again
    fs::remove_file(root.join("ssl/a.test.pem")).unwrap();
    let out = run(root, &["renew"]);
    out.assert_success();
    assert!(out.stderr.contains("a.test: reinstalled"), "{}", out.stderr);
    assert!(root.join("ssl/a.test.pem").exists());
    full_read_agrees(root, "a removed bundle");
    settle(root, 3);

    // a certificate directory removed by hand: no longer in the index
    fs::remove_dir_all(root.join("state/certs/b.test")).unwrap();
    run(root, &["renew"]).assert_success();
    assert!(!index(root).contains("b.test"), "{}", index(root));
    settle(root, 2);

    // the index damaged: missing, cut, garbage, or edited to claim something else; each
    // time a certificate is made due behind its back (its reissue marker), so an index
    // taken at its word would say nothing is due
    let whole = index(root);
    let cut = whole[..whole.len() / 2].to_owned();
    let lying = whole.replace("c.test", "x.test");
    for (what, damage) in [
        ("missing", None),
        ("cut", Some(cut.as_str())),
        ("garbage", Some("\u{0}\u{1}garbage\nend 0\n")),
        ("edited", Some(lying.as_str())),
    ] {
        settle(root, 2);
        let path = root.join("state/renew-index");
        match damage {
            None => fs::remove_file(&path).unwrap(),
            Some(bytes) => fs::write(&path, bytes).unwrap(),
        }
        run(root, &["reconfigure", "c.test", "--key-type", "ec256"]).assert_success();
        run(root, &["reconfigure", "c.test", "--key-type", "ec384"]).assert_success();
        let out = run(root, &["renew"]);
        out.assert_success();
        assert!(
            out.stderr.contains("c.test: renewed"),
            "index {what}:\n{}",
            out.stderr
        );
        full_read_agrees(root, &format!("an index {what}"));
        assert!(
            index(root).starts_with("certctl renew index 1\n"),
            "rebuilt"
        );
    }
}

#[test]
fn sigkill_at_random_moments_leaves_an_index_that_agrees_with_the_store() {
    const TRIALS: u64 = 12;
    let names = ["a.test", "b.test", "c.test"];
    let root = setup(&names);
    let root = root.path();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    for trial in 0..TRIALS {
        settle(root, 3);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % 60);
        // a run that writes certificates and bundles, or one that rebuilds the index
        let args: &[&str] = if trial % 3 == 2 {
            fs::remove_file(root.join("state/renew-index")).unwrap();
            &["renew"]
        } else {
            &["renew", "--force"]
        };
        let mut child = certctl(root)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        // what the index-reading run leaves must be what a full read finds complete
        run(root, &["renew"]).assert_success();
        full_read_agrees(
            root,
            &format!("trial {trial}: {args:?} killed after {delay:?}"),
        );
    }
}
