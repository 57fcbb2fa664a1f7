//! `--json` on request, renew and list (and import, in tests/it/import.rs): stdout holds the
//! JSON document and nothing else, whatever hooks print, at any verbosity, on success and
//! on failure; bad input prints nothing on stdout. The field names are the README's.

use crate::common;

use common::fixtures::request;
use common::{Lab, Output};
use serde_json::Value;

/// The whole of stdout as one JSON document.
#[track_caller]
fn only_json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        )
    })
}

#[track_caller]
fn has_fields(value: &Value, fields: &[&str]) {
    for field in fields {
        assert!(
            value.get(field).is_some(),
            "no field {field:?} in {value:#}"
        );
    }
}

#[test]
fn json_output_is_alone_on_stdout() {
    let lab = Lab::start();
    // hooks that write to stdout: their output must go to stderr
    let noisy = [
        "--pre-hook",
        "echo pre-hook on stdout",
        "--deploy-hook",
        "echo deploy-hook on stdout",
        "--post-hook",
        "echo post-hook on stdout",
    ];

    // request: one object, issued then unchanged; -vv adds nothing to stdout
    let mut args = vec!["mon-app.test", "--json", "-vv"];
    args.extend(noisy);
    let out = request(&lab, &args);
    out.assert_success();
    let issued = only_json(&out);
    has_fields(
        &issued,
        &["name", "status", "domains", "serial", "not_after", "bundle"],
    );
    assert_eq!(issued["status"], "issued");
    assert!(
        out.stderr.contains("deploy-hook on stdout"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("acme: POST"), "-vv logs on stderr");
    let out = request(&lab, &["mon-app.test", "--json"]);
    out.assert_success();
    assert_eq!(only_json(&out)["status"], "unchanged");

    // list: an array of rows with every documented field
    let out = lab.run(&["list", "--json"]);
    out.assert_success();
    let rows = only_json(&out);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    has_fields(
        &rows[0],
        &[
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
        ],
    );

    // renew: `[]` when nothing is due; the renewed ones otherwise, hooks on stderr
    let out = lab.run(&["renew", "--json"]);
    out.assert_success();
    assert_eq!(only_json(&out), serde_json::json!([]));
    let mut args = vec!["renew", "--force", "--json", "-v"];
    args.extend(noisy);
    let out = lab.run(&args);
    out.assert_success();
    let renewed = only_json(&out);
    assert_eq!(renewed[0]["status"], "renewed");
    has_fields(&renewed[0], &["name", "status", "serial", "not_after"]);
    assert_ne!(renewed[0]["serial"], issued["serial"]);
    assert!(out.stderr.contains("post-hook on stdout"), "{}", out.stderr);

    // a failed renewal is still one JSON document, with the error, and exit 1
    lab.stop_pebble();
    let out = lab.run(&["renew", "--force", "--json"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let failed = only_json(&out);
    assert_eq!(failed[0]["status"], "failed");
    assert!(failed[0]["error"].as_str().is_some_and(|e| !e.is_empty()));

    // bad input: exit 2 and nothing on stdout
    for args in [
        &["request", "bad..name", "--json"][..],
        &["renew", "unknown.test", "--json"][..],
    ] {
        let out = lab.run(args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{args:?}");
    }
}
