//! Short-lived certificates end to end (issue 16): a 160-hour certificate from Pebble
//! (`certificateValidityPeriod` in seconds) is renewed at half its lifetime, never in a
//! loop, and a CA offering ARI is asked at least twice a day. The clock is moved for
//! certctl alone with Debian's `faketime`; Pebble keeps the real one.

use crate::common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::ari_shim::AriShim;
use common::fixtures::serial_hex as serial;
use common::{Lab, LabOptions, Output, run_command};
use serde_json::Value;

const NAME: &str = "short.mon-app.test";
const HOURS_160: u64 = 160 * 3600;

fn lab() -> Lab {
    Lab::start_with(LabOptions {
        haproxy: false,
        validity_secs: Some(HOURS_160),
        ..Default::default()
    })
}

/// `faketime -f +<hours>h certctl --server <server> <args>`: certctl alone moved in time.
fn at(lab: &Lab, server: &str, hours: u64, args: &[&str]) -> Output {
    let mut inner = lab.certctl_with_server(server);
    inner.args(args);
    let mut launcher = std::process::Command::new("faketime");
    launcher.args(["-f", &format!("+{hours}h")]);
    run_command(common::hermetic::through(launcher, &inner))
}

/// The first request, at the real time, at the CA `server`.
fn request(lab: &Lab, server: &str) {
    let http_addr = lab.http_addr();
    let args = ["request", "--http-addr", &http_addr, "--agree-tos", NAME];
    at(lab, server, 0, &args).assert_success();
}

fn leaf_serial(lab: &Lab) -> String {
    let bundle = fs::read(lab.ssl_dir().join(format!("{NAME}.pem"))).unwrap();
    serial(&pem::parse_many(bundle).unwrap().remove(0).into_contents())
}

#[test]
fn a_160_hour_certificate_is_renewed_at_half_its_life_and_never_in_a_loop() {
    let lab = lab();
    let ca = lab.directory_url();
    request(&lab, &ca);
    let first = leaf_serial(&lab);
    let rows: Value = serde_json::from_str(&lab.run(&["list", "--json"]).stdout).unwrap();
    let row = &rows[0];
    let lifetime = |r: &Value| {
        let t = |k: &str| {
            time::OffsetDateTime::parse(
                r[k].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
            .unix_timestamp()
        };
        (t("not_before"), t("renew_after"), t("not_after"))
    };
    let (nb, renew_after, na) = lifetime(row);
    assert_eq!(na - nb + 1, HOURS_160 as i64, "{row}");
    assert_eq!(
        renew_after,
        na - (na - nb) / 2,
        "due at half its lifetime: {row}"
    );

    // 1. not due for 79 hours: no renewal, no request, nothing said
    for hours in [0, 24, 79] {
        let out = at(&lab, &ca, hours, &["renew"]);
        out.assert_success();
        assert_eq!(out.stderr, "", "+{hours}h: nothing to say");
        assert_eq!(leaf_serial(&lab), first, "+{hours}h: not renewed");
    }

    // 2. past half its lifetime (a fixed "30 days before expiry" rule would renew at once
    //    and at every run): renewed once
    at(&lab, &ca, 81, &["renew"]).assert_success();
    let second = leaf_serial(&lab);
    assert_ne!(second, first, "renewed at +81h");

    // 3. the new certificate is not due again right after (no loop)
    for hours in [0, 1, 12] {
        at(&lab, &ca, hours, &["renew"]).assert_success();
        assert_eq!(leaf_serial(&lab), second, "+{hours}h: renewed once only");
    }
}

#[test]
fn an_ari_ca_is_asked_at_least_twice_a_day() {
    let lab = lab();
    let shim = AriShim::start(&lab);
    let ca = shim.directory_url();
    // a window far away, and a Retry-After of two days: certctl asks again sooner anyway
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    shim.set_window(now + 5 * day, now + 6 * day, 2 * 86_400);
    request(&lab, &ca);
    assert_eq!(shim.renewal_info_requests(), 1);
    let ari: Value = serde_json::from_slice(
        &fs::read(lab.state_dir().join("certs").join(NAME).join("ari.json")).unwrap(),
    )
    .unwrap();
    let asked = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let next = ari["next_check"].as_i64().unwrap();
    assert!(
        next - asked <= 12 * 3600 + 60,
        "asked again within 12 hours: {ari}"
    );

    // two runs a day (a twice-daily timer) ask the CA at each run, and never order
    let first = leaf_serial(&lab);
    for (run, hours) in [12, 24].into_iter().enumerate() {
        at(&lab, &ca, hours, &["renew"]).assert_success();
        assert_eq!(shim.renewal_info_requests(), run + 2, "+{hours}h");
    }
    assert_eq!(leaf_serial(&lab), first, "the window has not come");
}
