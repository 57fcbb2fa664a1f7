//! `certctl revoke`, `delete`, `concat` and `list` against real Pebble: revocation seen by
//! Pebble's management API, the confirmation prompt on a real pseudo-terminal, the archive,
//! bundles rebuilt only where they differ, listings of whole, damaged and empty stores, and
//! bad input (exit 2) leaving the state and ssl directories exactly as they were.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::fixtures::{both_snapshots, certctl_with, on_terminal, request, snapshot};
use common::hermetic;
use common::{Lab, LabOptions, Output, run_command};

/// A lab without HAProxy (Pebble validates against certctl's responder directly), holding
/// one certificate per name.
fn lab_with(names: &[&str]) -> Lab {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    for name in names {
        request(&lab, &[name]).assert_success();
    }
    lab
}

fn bundle(lab: &Lab, name: &str) -> PathBuf {
    lab.ssl_dir().join(format!("{name}.pem"))
}

fn cert_dir(lab: &Lab, name: &str) -> PathBuf {
    lab.state_dir().join("certs").join(name)
}

/// The serial of `name`'s live certificate, from its meta.json.
fn serial(lab: &Lab, name: &str) -> String {
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(cert_dir(lab, name).join("live/meta.json")).unwrap())
            .unwrap();
    meta["serial"].as_str().unwrap().to_owned()
}

/// Pebble's status for the serial: "Valid" or "Revoked".
fn ca_status(lab: &Lab, serial: &str) -> String {
    ca_record(lab, serial)["Status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Pebble's record of the serial: Status, and Reason (the RFC 5280 code) once revoked.
fn ca_record(lab: &Lab, serial: &str) -> serde_json::Value {
    let body = lab.cert_status(serial);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The folders under <state>/archive/, sorted.
fn archive_folders(lab: &Lab) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = fs::read_dir(lab.state_dir().join("archive"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    folders.sort();
    folders
}

fn list_json(lab: &Lab) -> (Output, Vec<serde_json::Value>) {
    let out = lab.run(&["list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("list --json is not a JSON array ({e}): {}", out.stdout));
    (out, rows)
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

/// certctl on a state and ssl directory of one's choosing, no lab needed; hermetic, its
/// empty config file beside the state directory.
fn certctl_in(state: &Path, ssl: &Path, args: &[&str]) -> Output {
    let dir = state.parent().expect("the state directory has a parent");
    let mut cmd = hermetic::certctl_in(dir);
    cmd.arg("--state-dir")
        .arg(state)
        .arg("--ssl-dir")
        .arg(ssl)
        .args(args);
    run_command(cmd)
}

#[test]
fn revoke_with_yes_revokes_at_the_ca_archives_and_runs_the_post_hook() {
    let lab = lab_with(&["other.test"]);
    request(&lab, &["mon-app.test", "www.mon-app.test"]).assert_success();
    let serial = serial(&lab, "mon-app.test");
    assert_eq!(ca_status(&lab, &serial), "Valid");
    let bundle_bytes = fs::read(bundle(&lab, "mon-app.test")).unwrap();
    let other = (
        snapshot(&cert_dir(&lab, "other.test")),
        fs::read(bundle(&lab, "other.test")).unwrap(),
    );

    let marker = lab.root().join("hook.out");
    let hook = format!(
        "printf '%s|%s|%s|%s' \"$CERTCTL_NAME\" \"$CERTCTL_SERIAL\" \"$CERTCTL_DOMAINS\" \"$CERTCTL_ARCHIVE\" > '{}'",
        marker.display()
    );
    let out = lab.run(&[
        "revoke",
        "mon-app.test",
        "--yes",
        "--reason",
        "keycompromise",
        "--post-hook",
        &hook,
    ]);
    out.assert_success();
    assert!(out.stderr.contains("revoked at"), "{}", out.stderr);

    // the CA says so, with the reason given
    let record = ca_record(&lab, &serial);
    assert_eq!(record["Status"], "Revoked");
    assert_eq!(record["Reason"], 1, "keyCompromise: {record}");

    // no longer managed, bundle gone, everything in one archive folder
    assert!(!cert_dir(&lab, "mon-app.test").exists());
    assert!(!bundle(&lab, "mon-app.test").exists());
    let folders = archive_folders(&lab);
    assert_eq!(folders.len(), 1, "{folders:?}");
    let folder = &folders[0];
    let folder_name = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        folder_name.starts_with("mon-app.test-20") && folder_name.ends_with('Z'),
        "{folder_name}"
    );
    assert_eq!(
        fs::read(folder.join("mon-app.test.pem")).unwrap(),
        bundle_bytes
    );
    for file in [
        "settings.json",
        "live/cert.pem",
        "live/key.pem",
        "live/meta.json",
    ] {
        assert!(folder.join("mon-app.test").join(file).is_file(), "{file}");
    }
    assert_eq!(
        fs::metadata(folder).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // the post-hook ran afterwards, with the certificate's values
    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        format!(
            "mon-app.test|{serial}|mon-app.test www.mon-app.test|{}",
            folder.display()
        )
    );

    // the other certificate is untouched and is all that list shows
    assert_eq!(
        (
            snapshot(&cert_dir(&lab, "other.test")),
            fs::read(bundle(&lab, "other.test")).unwrap()
        ),
        other
    );
    let (out, rows) = list_json(&lab);
    out.assert_success();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["other.test"]);
}

#[test]
fn keep_bundle_and_an_interrupted_revoke_finishes_after_an_undo_by_hand() {
    // 75 % of nonces rejected: beyond instant-acme's own 3 tries, revocation must retry
    // badNonce like every other step
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        nonce_reject_percent: Some(75),
        ..Default::default()
    });
    request(&lab, &["mon-app.test"]).assert_success();
    let serial = serial(&lab, "mon-app.test");
    let bundle_path = bundle(&lab, "mon-app.test");
    let bundle_bytes = fs::read(&bundle_path).unwrap();

    // --keep-bundle: revoked and archived, the bundle stays where the proxy loads it
    let out = lab.run(&[
        "revoke",
        "mon-app.test",
        "-y",
        "--keep-bundle",
        "--reason",
        "superseded",
    ]);
    out.assert_success();
    let record = ca_record(&lab, &serial);
    assert_eq!(record["Status"], "Revoked");
    assert_eq!(record["Reason"], 4, "superseded: {record}");
    assert_eq!(fs::read(&bundle_path).unwrap(), bundle_bytes);
    assert!(!cert_dir(&lab, "mon-app.test").exists());
    let folders = archive_folders(&lab);
    assert_eq!(folders.len(), 1);
    assert!(folders[0].join("mon-app.test/settings.json").is_file());
    assert!(!folders[0].join("mon-app.test.pem").exists());

    // undo by hand (as after a crash between revoking and archiving): revoking again sees
    // "already revoked" at the CA, which finishes the job instead of failing
    fs::rename(
        folders[0].join("mon-app.test"),
        cert_dir(&lab, "mon-app.test"),
    )
    .unwrap();
    let (_, rows) = list_json(&lab);
    assert_eq!(rows.len(), 1, "managed again after the undo");
    // (a failing post-hook makes the exit code 1; the revocation and archive stand)
    let out = lab.run(&["revoke", "mon-app.test", "--yes", "--post-hook", "exit 3"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("already revoked"), "{}", out.stderr);
    assert!(
        out.stderr.contains("is revoked and archived") && out.stderr.contains("post hook"),
        "{}",
        out.stderr
    );
    assert!(!cert_dir(&lab, "mon-app.test").exists());
    assert!(!bundle_path.exists());
    let folders = archive_folders(&lab);
    assert_eq!(folders.len(), 2, "{folders:?}");
    assert_eq!(
        fs::read(folders[1].join("mon-app.test.pem")).unwrap(),
        bundle_bytes
    );
}

#[test]
fn prompt_on_a_terminal_no_changes_nothing_and_yes_revokes() {
    let lab = lab_with(&["mon-app.test"]);
    let serial = serial(&lab, "mon-app.test");
    let before = both_snapshots(&lab);

    // "no" and Enter: nothing changes, exit 0 (the whole line is the answer); the prompt
    // showed what was at stake
    let out = on_terminal(&lab, "no\r", &["revoke", "mon-app.test"]);
    out.assert_success();
    for needle in [
        "mon-app.test",
        serial.as_str(),
        lab.directory_url().as_str(),
        "expires",
        "[y/N]",
        "revoke cancelled; nothing changed",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} in:\n{}",
            out.stdout
        );
    }
    assert_eq!(both_snapshots(&lab), before);
    assert_eq!(ca_status(&lab, &serial), "Valid");

    // Enter takes the default, which is no; delete asks the same way
    let out = on_terminal(&lab, "\r", &["delete", "mon-app.test"]);
    out.assert_success();
    assert!(
        out.stdout.contains("delete cancelled; nothing changed"),
        "{}",
        out.stdout
    );
    assert_eq!(both_snapshots(&lab), before);

    // end of input is no too
    let out = on_terminal(&lab, "\x04", &["revoke", "mon-app.test"]);
    out.assert_success();
    assert!(out.stdout.contains("revoke cancelled"), "{}", out.stdout);
    assert_eq!(both_snapshots(&lab), before);

    // "y" alone is not an answer until Enter: "yes" and Enter revokes and archives
    let out = on_terminal(&lab, "yes\r", &["revoke", "mon-app.test"]);
    out.assert_success();
    assert_eq!(ca_status(&lab, &serial), "Revoked");
    assert!(!cert_dir(&lab, "mon-app.test").exists());
    assert!(!bundle(&lab, "mon-app.test").exists());
    assert_eq!(archive_folders(&lab).len(), 1);
}

/// Bad input: exit 2, a message that says what to do, nothing changed anywhere.
#[test]
fn no_terminal_without_yes_and_unknown_names_exit_2_and_change_nothing() {
    let lab = lab_with(&["mon-app.test"]);
    // no bundle: proves `concat mon-app.test unknown.test` writes nothing for the good name
    fs::remove_file(bundle(&lab, "mon-app.test")).unwrap();
    let before = both_snapshots(&lab);
    let serial = serial(&lab, "mon-app.test");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["revoke", "mon-app.test"], "--yes"),
        (
            vec!["revoke", "mon-app.test", "--reason", "keycompromise"],
            "--yes",
        ),
        (vec!["delete", "mon-app.test"], "--yes"),
        (vec!["revoke", "unknown.test", "--yes"], "`certctl list`"),
        (vec!["delete", "unknown.test", "--yes"], "`certctl list`"),
        (vec!["concat", "unknown.test"], "`certctl list`"),
        (
            vec!["concat", "mon-app.test", "unknown.test"],
            "`certctl list`",
        ),
        (vec!["concat", "--stdout", "unknown.test"], "`certctl list`"),
        (vec!["revoke", "../evil", "--yes"], "certificate name"),
        (vec!["delete", "Mon App", "--yes"], "certificate name"),
        (vec!["concat", "a/b"], "certificate name"),
        (
            vec!["revoke", "mon-app.test", "--reason", "whim"],
            "keycompromise",
        ),
    ];
    for (args, needle) in cases {
        let out = lab.run(&args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "{args:?}: message should mention {needle:?}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert_eq!(both_snapshots(&lab), before, "{args:?} changed something");
    }
    assert!(
        lab.run(&["revoke", "unknown.test", "--yes"])
            .stderr
            .contains("unknown.test")
    );
    assert_eq!(ca_status(&lab, &serial), "Valid");
}

/// /etc/haproxy/ssl and /var/lib/certctl are often on different file systems: the bundle
/// then goes into the archive by a synced copy and a removal (a rename fails with EXDEV).
/// The ssl directory is put on /dev/shm (tmpfs); where that is not another file system
/// than the lab's, the test says on stderr that it checked nothing.
#[test]
fn delete_archives_a_bundle_from_another_file_system() {
    use std::os::unix::fs::MetadataExt;

    let lab = lab_with(&[]);
    let device = |path: &Path| fs::metadata(path).unwrap().dev();
    let ssl = match tempfile::tempdir_in("/dev/shm") {
        Ok(dir) if device(dir.path()) != device(&lab.state_dir()) => dir,
        Ok(_) => {
            eprintln!(
                "SKIPPED: delete across file systems; /dev/shm is on the same file system as {}",
                lab.state_dir().display()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: delete across file systems; no directory in /dev/shm: {e}");
            return;
        }
    };
    let flags = [("--ssl-dir", ssl.path().as_os_str())];
    let http_addr = lab.http_addr();
    let mut cmd = certctl_with(&lab, &flags);
    cmd.args([
        "request",
        "x.test",
        "--agree-tos",
        "--http-addr",
        &http_addr,
    ]);
    run_command(cmd).assert_success();
    let bundle = ssl.path().join("x.test.pem");
    let bytes = fs::read(&bundle).unwrap();

    let mut cmd = certctl_with(&lab, &flags);
    cmd.args(["delete", "x.test", "--yes"]);
    run_command(cmd).assert_success();
    assert!(!bundle.exists(), "the bundle left the ssl directory");
    assert!(!cert_dir(&lab, "x.test").exists());
    let folders = archive_folders(&lab);
    assert_eq!(folders.len(), 1, "{folders:?}");
    let archived = folders[0].join("x.test.pem");
    assert_eq!(fs::read(&archived).unwrap(), bytes, "the same bundle");
    assert_eq!(device(&archived), device(&lab.state_dir()));
    assert_eq!(
        fs::metadata(&archived).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(fs::read_dir(ssl.path()).unwrap().count(), 0, "nothing left");
}

#[test]
fn delete_needs_no_ca_and_clears_a_damaged_entry() {
    let lab = lab_with(&["a.test", "b.test"]);
    let serial = serial(&lab, "a.test");
    fs::write(cert_dir(&lab, "b.test").join("live/meta.json"), b"{\"ser").unwrap();
    lab.stop_pebble();

    // revoke needs the CA: with it down, nothing changes
    let before = both_snapshots(&lab);
    let out = lab.run(&["revoke", "a.test", "--yes"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("not revoked; nothing was changed")
            && out.stderr.contains("cannot reach the ACME server"),
        "{}",
        out.stderr
    );
    assert_eq!(both_snapshots(&lab), before);

    let out = lab.run(&["delete", "a.test", "--yes"]);
    out.assert_success();
    assert!(!cert_dir(&lab, "a.test").exists());
    assert!(!bundle(&lab, "a.test").exists());
    let folders = archive_folders(&lab);
    assert_eq!(folders.len(), 1);
    assert!(folders[0].join("a.test.pem").is_file());
    assert!(
        fs::read_to_string(folders[0].join("a.test/live/meta.json"))
            .unwrap()
            .contains(&serial)
    );

    // a damaged entry cannot be revoked (no usable meta) but can be deleted
    let out = lab.run(&["revoke", "b.test", "--yes"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("certctl delete b.test"),
        "{}",
        out.stderr
    );
    assert!(cert_dir(&lab, "b.test").exists());
    let out = lab.run(&["delete", "b.test", "--yes"]);
    out.assert_success();
    assert!(!cert_dir(&lab, "b.test").exists());
    assert_eq!(archive_folders(&lab).len(), 2);

    // nothing left to list
    let out = lab.run(&["list"]);
    out.assert_success();
    assert_eq!(out.stdout, "");
}

#[test]
fn concat_rebuilds_what_differs_and_never_bundles_a_mismatched_key() {
    let lab = lab_with(&["a.test", "b.test", "c.test"]);
    let original: BTreeMap<&str, Vec<u8>> = ["a.test", "b.test", "c.test"]
        .into_iter()
        .map(|n| (n, fs::read(bundle(&lab, n)).unwrap()))
        .collect();
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800); // 2020
    let age = |name: &str| {
        fs::File::options()
            .write(true)
            .open(bundle(&lab, name))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    };

    // a removed bundle comes back byte for byte, 0600; an intact one is not touched;
    // a changed one is rewritten
    fs::remove_file(bundle(&lab, "a.test")).unwrap();
    age("b.test");
    fs::write(bundle(&lab, "c.test"), b"stale\n").unwrap();
    let out = lab.run(&["concat"]);
    out.assert_success();
    assert_eq!(
        fs::read(bundle(&lab, "a.test")).unwrap(),
        original["a.test"]
    );
    assert_eq!(
        fs::metadata(bundle(&lab, "a.test"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        mtime(&bundle(&lab, "b.test")),
        long_ago,
        "unchanged keeps mtime"
    );
    assert_eq!(
        fs::read(bundle(&lab, "b.test")).unwrap(),
        original["b.test"]
    );
    assert_eq!(
        fs::read(bundle(&lab, "c.test")).unwrap(),
        original["c.test"]
    );
    assert!(
        out.stderr.contains("a.test: bundle written"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("b.test"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    // nothing differs: no write at all
    for name in ["a.test", "b.test", "c.test"] {
        age(name);
    }
    lab.run(&["concat", "-q"]).assert_success();
    for name in ["a.test", "b.test", "c.test"] {
        assert_eq!(mtime(&bundle(&lab, name)), long_ago, "{name}");
    }

    // --stdout prints exactly the bundle and writes nothing
    let out = lab.run(&["concat", "--stdout", "b.test"]);
    out.assert_success();
    assert_eq!(out.stdout.as_bytes(), original["b.test"].as_slice());

    // a key that does not fit its certificate: an error for that name, no bundle for it,
    // the others rebuilt anyway, exit 1
    let stranger = rcgen::KeyPair::generate().unwrap().serialize_pem();
    fs::write(cert_dir(&lab, "b.test").join("live/key.pem"), stranger).unwrap();
    fs::remove_file(bundle(&lab, "b.test")).unwrap();
    fs::remove_file(bundle(&lab, "c.test")).unwrap();
    let out = lab.run(&["concat"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("b.test") && out.stderr.contains("does not match"),
        "{}",
        out.stderr
    );
    assert!(
        !bundle(&lab, "b.test").exists(),
        "no bundle from a mismatched key"
    );
    assert_eq!(
        fs::read(bundle(&lab, "c.test")).unwrap(),
        original["c.test"]
    );
    let out = lab.run(&["concat", "--stdout", "b.test"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "no bundle on stdout either");

    // named certificates only
    fs::remove_file(bundle(&lab, "a.test")).unwrap();
    fs::remove_file(bundle(&lab, "c.test")).unwrap();
    lab.run(&["concat", "c.test"]).assert_success();
    assert!(bundle(&lab, "c.test").is_file());
    assert!(!bundle(&lab, "a.test").exists());
}

#[test]
fn list_shows_every_certificate_as_a_table_and_as_json() {
    let lab = lab_with(&[]);
    request(&lab, &["b.test", "www.b.test"]).assert_success();
    request(&lab, &["a.test", "--key-type", "rsa2048"]).assert_success();

    // the table: a header, one row per certificate, sorted by name
    let out = lab.run(&["list"]);
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    for column in [
        "NAME",
        "DOMAINS",
        "KEY",
        "NOT-AFTER",
        "DAYS",
        "RENEW",
        "CA",
        "BUNDLE",
        "STATUS",
    ] {
        assert!(lines[0].contains(column), "{column}: {}", lines[0]);
    }
    let a: Vec<&str> = lines[1].split_whitespace().collect();
    let b: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(a[0], "a.test");
    assert_eq!(a[2], "rsa2048");
    assert_eq!(b[..3], ["b.test", "b.test,www.b.test", "ec256"]);
    assert_eq!(b[6], lab.directory_url());
    assert_eq!(b[7], bundle(&lab, "b.test").display().to_string());
    assert_eq!(b[8], "ok");

    // JSON: the documented fields, every one of them
    let unix_now = || {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let before_list = unix_now();
    let (out, rows) = list_json(&lab);
    let after_list = unix_now();
    out.assert_success();
    assert_eq!(rows.len(), 2);
    let fields: Vec<&str> = rows[1]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "name",
        "status",
        "error",
        "domains",
        "key_type",
        "serial",
        "not_before",
        "not_after",
        "days_left",
        "renew_after",
        "renewal_due",
        "server",
        "bundle",
        "bundle_exists",
        "pending_deploys",
        "profile",
        "preferred_chain",
        "next_attempt",
        "crl_distribution_points",
    ];
    expected.sort();
    let mut fields_sorted = fields.clone();
    fields_sorted.sort();
    assert_eq!(fields_sorted, expected);

    let b = &rows[1];
    assert_eq!(b["name"], "b.test");
    assert_eq!(b["status"], "ok");
    assert!(b["error"].is_null());
    assert_eq!(b["domains"], serde_json::json!(["b.test", "www.b.test"]));
    assert_eq!(b["key_type"], "ec256");
    assert_eq!(rows[0]["key_type"], "rsa2048");
    assert_eq!(b["serial"], serial(&lab, "b.test").as_str());
    assert_eq!(b["server"], lab.directory_url().as_str());
    assert_eq!(
        b["bundle"],
        bundle(&lab, "b.test").display().to_string().as_str()
    );
    assert_eq!(b["bundle_exists"], true);
    assert_eq!(b["renewal_due"], false);
    let time = |field: &str| {
        time::OffsetDateTime::parse(
            b[field].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or_else(|e| panic!("{field}: {e}"))
        .unix_timestamp()
    };
    let (not_before, not_after) = (time("not_before"), time("not_after"));
    assert_eq!(
        time("renew_after"),
        not_after - (not_after - not_before) / 3
    );
    // list read the clock between these two readings: its day count is one of theirs
    // (they differ only when a day boundary of not_after falls in between)
    let days_left = |now: i64| serde_json::json!((not_after - now).div_euclid(86_400));
    assert!(
        [days_left(before_list), days_left(after_list)].contains(&b["days_left"]),
        "{} days left",
        b["days_left"]
    );

    // a missing bundle shows, and is not damage
    fs::remove_file(bundle(&lab, "a.test")).unwrap();
    let (out, rows) = list_json(&lab);
    out.assert_success();
    assert_eq!(rows[0]["bundle_exists"], false);
    assert_eq!(rows[0]["status"], "ok");
}

#[test]
fn list_of_an_empty_or_missing_store_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let ssl = dir.path().join("ssl");
    let out = certctl_in(&missing, &ssl, &["list"]);
    out.assert_success();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
    let out = certctl_in(&missing, &ssl, &["list", "--json"]);
    out.assert_success();
    assert_eq!(out.stdout, "[]\n");
    assert!(!missing.exists(), "list creates nothing");

    // an empty state directory, and concat on it: nothing to do, nothing written
    let empty = dir.path().join("state");
    fs::create_dir(&empty).unwrap();
    let out = certctl_in(&empty, &ssl, &["list"]);
    out.assert_success();
    assert_eq!(out.stdout, "");
    certctl_in(&empty, &ssl, &["concat"]).assert_success();
    assert!(!ssl.exists());
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn list_shows_damaged_entries_with_their_reason_and_lists_the_rest() {
    let lab = lab_with(&["a.test", "b.test", "c.test", "d.test"]);
    fs::write(
        cert_dir(&lab, "b.test").join("live/meta.json"),
        b"{\"serial\": ",
    )
    .unwrap();
    fs::remove_file(cert_dir(&lab, "c.test").join("live/cert.pem")).unwrap();
    fs::write(cert_dir(&lab, "d.test").join("settings.json"), b"").unwrap();

    let out = lab.run(&["list"]);
    assert_eq!(out.code(), Some(1), "exit 1 when anything is damaged");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert!(
        lines[1].starts_with("a.test") && lines[1].ends_with("  ok"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("b.test")
            && lines[2].contains("damaged: ")
            && lines[2].contains("meta.json"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("damaged: ") && lines[3].contains("cert.pem"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].contains("damaged: ") && lines[4].contains("settings.json"),
        "{}",
        lines[4]
    );
    assert!(
        out.stderr.contains("b.test, c.test, d.test") && out.stderr.contains("certctl delete"),
        "{}",
        out.stderr
    );

    let (out, rows) = list_json(&lab);
    assert_eq!(out.code(), Some(1));
    let by_name: BTreeMap<&str, &serde_json::Value> = rows
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by_name.len(), 4);
    assert_eq!(by_name["a.test"]["status"], "ok");
    let b = by_name["b.test"];
    assert_eq!(b["status"], "damaged");
    assert!(b["error"].as_str().unwrap().contains("meta.json"), "{b}");
    assert!(b["not_after"].is_null() && b["days_left"].is_null());
    assert_eq!(
        b["domains"],
        serde_json::json!(["b.test"]),
        "settings were fine"
    );
    let c = by_name["c.test"];
    assert_eq!(c["status"], "damaged");
    assert!(c["error"].as_str().unwrap().contains("cert.pem"), "{c}");
    let d = by_name["d.test"];
    assert!(
        d["error"].as_str().unwrap().contains("settings.json"),
        "{d}"
    );
    assert!(d["server"].is_null() && d["key_type"].is_null());
    assert_eq!(
        d["domains"],
        serde_json::json!(["d.test"]),
        "from the certificate"
    );
    assert!(d["not_after"].is_string());
}
