//! Progress lines (issue 9): on a terminal each order shows one line with its state and
//! ends on its outcome; without a terminal (cron) nothing but results and errors.

use crate::common;

use common::fixtures::{on_terminal, request};
use common::{Lab, LabOptions};

/// The terminal transcript without ANSI escape sequences (bold, erase line).
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_terminal_shows_one_line_per_certificate_and_cron_sees_none() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let http_addr = lab.http_addr();
    let out = on_terminal(
        &lab,
        "",
        &[
            "request",
            "p.mon-app.test",
            "--agree-tos",
            "--http-addr",
            &http_addr,
        ],
    );
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let shown = plain(&out.stdout);
    assert!(
        shown.contains("p.mon-app.test waiting for validation"),
        "{shown}"
    );
    assert!(
        shown.contains("p.mon-app.test issued"),
        "the line ends on the outcome: {shown}"
    );

    request(&lab, &["q.mon-app.test"]).assert_success();
    let out = on_terminal(&lab, "", &["renew", "--force"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let shown = plain(&out.stdout);
    for name in ["p.mon-app.test", "q.mon-app.test"] {
        assert!(shown.contains(&format!("{name} issued")), "{name}: {shown}");
    }

    // no terminal: no progress at all, the same run stays silent but for its results
    let out = lab.run(&["renew", "--force", "-q"]);
    out.assert_success();
    assert_eq!(out.stderr, "", "cron sees nothing");
    let out = lab.run(&["renew", "--force"]);
    out.assert_success();
    assert!(
        !out.stderr.contains("waiting for validation") && !out.stderr.contains("issued ("),
        "{}",
        out.stderr
    );
}
