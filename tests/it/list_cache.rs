//! `list`'s cache (issue 19) never shows anything a full read would not: after writes by
//! certctl, manual edits (settings.json edited in place, a bundle removed, a record replaced,
//! a certificate removed) and a damaged cache, `list --json` is what a run without the cache
//! prints. Local CA only: no network.

use std::fs;
use std::path::Path;

use crate::renew_index::{add_name_in_place, run, setup};

fn cache(root: &Path) -> String {
    fs::read_to_string(root.join("state/list-cache")).unwrap_or_default()
}

/// `list --json` as the cache gives it (and its exit code: 1 when an entry is damaged),
/// without `days_left` (worked out from the clock at
/// each run: it changes a second after a certificate valid a whole number of days is issued).
fn listed(root: &Path) -> String {
    let out = run(root, &["list", "--json"]);
    let shown: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.contains("\"days_left\""))
        .collect();
    format!("{}\nexit {:?}", shown.join("\n"), out.code())
}

/// `list --json` read from the state alone (the cache removed first; it is written again).
fn read_in_full(root: &Path) -> String {
    let _ = fs::remove_file(root.join("state/list-cache"));
    listed(root)
}

/// Runs `list` until the cache holds every certificate (a version younger than a clock tick
/// is not cached). Bounded by a number of runs, not time.
fn settle(root: &Path, count: usize) {
    for _ in 0..2000 {
        listed(root);
        if cache(root).lines().filter(|l| l.starts_with('{')).count() == count {
            return;
        }
    }
    panic!("the cache never settled:\n{}", cache(root));
}

/// Waits until every change to the certificates is older than the clock tick within which
/// the cache trusts no version (100 ms): from then on a cached entry whose versions still
/// match would be shown as it is, so a version check that misses a change fails below. A
/// condition on the files' own times, not a guess at how long something takes.
fn changes_settled(root: &Path) {
    use std::os::unix::fs::MetadataExt;
    let mut newest = 0i64;
    let mut note = |path: &Path| {
        if let Ok(m) = fs::symlink_metadata(path) {
            newest = newest.max(m.ctime() * 1_000_000_000 + m.ctime_nsec());
        }
    };
    for dir in fs::read_dir(root.join("state/certs")).unwrap().flatten() {
        note(&dir.path());
        note(&dir.path().join("settings.json"));
    }
    for bundle in fs::read_dir(root.join("ssl")).unwrap().flatten() {
        note(&bundle.path());
    }
    note(&root.join("ssl"));
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        if now > newest + 200_000_000 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_nanos(
            (newest + 200_000_000 - now) as u64,
        ));
    }
}

/// The cached listing after `what` is the full read's.
fn agrees(root: &Path, what: &str) -> String {
    changes_settled(root);
    let cached = listed(root);
    let full = read_in_full(root);
    assert_eq!(
        cached, full,
        "after {what}, the cache showed something else"
    );
    full
}

/// Replaces `path` as certctl does (a new file renamed over it).
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-test");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

#[test]
fn the_list_cache_shows_what_a_full_read_shows() {
    let root = setup(&["a.test", "b.test", "c.test"]);
    let root = root.path();
    settle(root, 3);
    let before = agrees(root, "nothing");
    settle(root, 3);

    // the cache answers: a generation's meta.json edited in place (not a change certctl
    // makes or watches) shows only once the cache is gone
    let meta = root.join("state/certs/a.test/live/meta.json");
    let original = fs::read_to_string(&meta).unwrap();
    let info: serde_json::Value = serde_json::from_str(&original).unwrap();
    let not_after = info["not_after"].as_i64().unwrap();
    let edited = original.replace(&not_after.to_string(), &(not_after - 86_400).to_string());
    fs::write(&meta, &edited).unwrap();
    assert_eq!(listed(root), before, "the cache was not used");
    assert_ne!(read_in_full(root), before);
    fs::write(&meta, &original).unwrap();
    let _ = fs::remove_file(root.join("state/list-cache"));
    settle(root, 3);

    // certctl's own writes: reconfigure and a renewal
    run(root, &["reconfigure", "b.test", "--key-type", "ec384"]).assert_success();
    let full = agrees(root, "reconfigure");
    assert!(full.contains("\"ec384\""), "{full}");
    run(root, &["renew"]).assert_success();
    let full = agrees(root, "a renewal");
    assert_ne!(full, before);
    settle(root, 3);

    // settings.json edited in place (the directory does not change): a name added
    add_name_in_place(root, "c.test", "www.c.test");
    let full = agrees(root, "an edit in place");
    assert!(full.contains("www.c.test"), "{full}");
    // the certificate now lacks a name: damaged, never cached, until renew issues it
    assert!(full.ends_with("exit Some(1)"), "{full}");
    run(root, &["renew"]).assert_success();
    agrees(root, "a damaged entry mended");
    settle(root, 3);

    // a bundle removed by hand
    fs::remove_file(root.join("ssl/a.test.pem")).unwrap();
    let full = agrees(root, "a removed bundle");
    assert!(full.contains("\"bundle_exists\": false"), "{full}");
    run(root, &["renew"]).assert_success();
    settle(root, 3);

    // a record replaced: the CA asked to wait (status.json's retry_after)
    let later = 4_000_000_000i64;
    replace(
        &root.join("state/certs/b.test/status.json"),
        &format!("{{\"retry_after\": {later}}}"),
    );
    let full = agrees(root, "a record replaced");
    assert!(full.contains("\"next_attempt\": \"2096-"), "{full}");
    settle(root, 3);

    // another default ssl directory on the command line: the same listing (each
    // certificate's stored directory applies), cached or not
    let other = root.join("ssl2");
    fs::create_dir(&other).unwrap();
    let list_in_other = || {
        let mut cmd = crate::common::hermetic::certctl_in(root);
        cmd.arg("--state-dir")
            .arg(root.join("state"))
            .arg("--ssl-dir")
            .arg(&other)
            .args(["--server", "local", "list", "--json"]);
        let out = crate::common::run_command(cmd);
        out.assert_success();
        out.stdout
    };
    let cached = list_in_other();
    let _ = fs::remove_file(root.join("state/list-cache"));
    assert_eq!(cached, list_in_other());
    settle(root, 3);

    // a certificate removed by hand
    fs::remove_dir_all(root.join("state/certs/a.test")).unwrap();
    let full = agrees(root, "a removed certificate");
    assert!(!full.contains("a.test"), "{full}");
    settle(root, 2);

    // the cache damaged: cut, garbage, edited to claim something else
    let whole = cache(root);
    let cut = whole[..whole.len() / 2].to_owned();
    let lying = whole.replace("www.c.test", "www.x.test");
    let expected = listed(root);
    for (what, damage) in [
        ("cut", cut.as_str()),
        ("garbage", "\u{0}\u{1}garbage\nend 0\n"),
        ("edited", lying.as_str()),
    ] {
        fs::write(root.join("state/list-cache"), damage).unwrap();
        assert_eq!(listed(root), expected, "a cache {what}");
    }
}
