//! ACME Renewal Information (RFC 9773) end to end: certctl talks to real Pebble through
//! `AriShim`, which adds only the `renewalInfo` endpoint (Pebble 2.4.0 has none) and the
//! echo of `replaces`. The CA's window decides renewal, Retry-After keeps cron runs off the
//! network, and every renewal names the certificate it replaces.

use crate::common;

use std::fs;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::ari_shim::AriShim;
use common::fixtures::{both_snapshots, serial_hex as serial};
use common::{Lab, LabOptions, Output, run_command};
use serde_json::Value;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

const NAME: &str = "a.mon-app.test";
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn lab_and_shim() -> (Lab, AriShim) {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let shim = AriShim::start(&lab);
    (lab, shim)
}

/// `certctl <lab flags> --server <the shim> <args>`.
fn run(lab: &Lab, shim: &AriShim, args: &[&str]) -> Output {
    let mut command: Command = lab.certctl_with_server(&shim.directory_url());
    command.args(args);
    run_command(command)
}

fn request(lab: &Lab, shim: &AriShim) -> Output {
    let http_addr = lab.http_addr();
    run(
        lab,
        shim,
        &["request", "--http-addr", &http_addr, "--agree-tos", NAME],
    )
}

/// The leaf of the installed bundle.
fn leaf(lab: &Lab) -> Vec<u8> {
    let bundle = fs::read(lab.ssl_dir().join(format!("{NAME}.pem"))).unwrap();
    pem::parse_many(bundle).unwrap().remove(0).into_contents()
}

fn ari_path(lab: &Lab) -> std::path::PathBuf {
    lab.state_dir().join("certs").join(NAME).join("ari.json")
}

/// Writes `ari` as certctl does (a new file renamed over the old one), so that renew's
/// index sees the certificate's directory change; an edit in place is not one of certctl's
/// writes, and the index only notices it while its version is younger than a clock tick.
fn replace_ari(lab: &Lab, ari: &Value) {
    let tmp = ari_path(lab).with_extension("json.test-tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(ari).unwrap()).unwrap();
    fs::rename(&tmp, ari_path(lab)).unwrap();
}

fn ari_state(lab: &Lab) -> Value {
    let path = ari_path(lab);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// RFC 9773 §4.1, computed here independently of certctl and instant-acme: base64url of
/// the authority key identifier's keyIdentifier, ".", base64url of the serial's DER
/// content octets (with any leading zero), no padding.
fn ari_id(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .expect("Pebble's leaf has an authority key identifier");
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki.0),
        URL_SAFE_NO_PAD.encode(cert.tbs_certificate.raw_serial())
    )
}

/// The serial part of an ARI id, as lowercase hex without leading zeros.
fn id_serial_hex(id: &str) -> String {
    let (_, serial) = id.split_once('.').expect("an ARI id has a '.'");
    URL_SAFE_NO_PAD
        .decode(serial)
        .unwrap()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_cas_window_decides_renewal_and_the_new_order_replaces_the_old_certificate() {
    let (lab, shim) = lab_and_shim();
    let now = SystemTime::now();
    let (start, end) = (now + 30 * DAY, now + 31 * DAY);
    shim.set_window(start, end, 1);

    // 1. issuance asks the CA for the new certificate's window once, and records it
    let asked_at = unix(SystemTime::now());
    request(&lab, &shim).assert_success();
    let old = leaf(&lab);
    assert_eq!(shim.renewal_info_ids(), vec![ari_id(&old)]);
    assert!(
        shim.replaces_seen().is_empty(),
        "a first certificate replaces nothing"
    );
    let ari = ari_state(&lab);
    assert_eq!(ari["window_start"], unix(start), "{ari}");
    assert_eq!(ari["window_end"], unix(end), "{ari}");
    let renew_at = ari["renew_at"].as_i64().unwrap();
    assert!((unix(start)..=unix(end)).contains(&renew_at), "{ari}");
    assert!(
        ari["next_check"].as_i64().unwrap() >= asked_at + 60,
        "Retry-After 1 is raised to a minute: {ari}"
    );

    // 2. right away: not in the window, and the CA's Retry-After (at least 60 s) has not
    //    passed, so no request at all, no output, nothing written (the only wait between
    //    the two runs is a snapshot of two small directories: a minute is no bet on speed)
    let before = both_snapshots(&lab);
    let out = run(&lab, &shim, &["renew"]);
    out.assert_success();
    assert_eq!(out.stdout, "", "cron mails nothing");
    assert_eq!(out.stderr, "", "cron mails nothing");
    assert_eq!(shim.renewal_info_requests(), 1, "not asked again");
    assert_eq!(both_snapshots(&lab), before);

    // 3. the CA moves the window into the past. certctl asks again only once the recorded
    //    Retry-After has elapsed; rather than sleep a minute, move next_check into the
    //    past, as if it had
    let now = SystemTime::now();
    shim.set_window(now - 2 * HOUR, now - HOUR, 1);
    let mut ari = ari_state(&lab);
    ari["next_check"] = (unix(now) - 1).into();
    replace_ari(&lab, &ari);
    run(&lab, &shim, &["renew"]).assert_success();
    let new = leaf(&lab);
    assert_ne!(serial(&new), serial(&old), "renewed");
    let old_id = ari_id(&old);
    assert_eq!(
        shim.replaces_seen(),
        vec![old_id.clone()],
        "the order names what it replaces"
    );
    assert_eq!(id_serial_hex(&old_id), serial(&old));
    // asked for the old certificate's window (due now), then for the new one's
    assert_eq!(
        shim.renewal_info_ids(),
        vec![old_id.clone(), old_id, ari_id(&new)]
    );
    let ari = ari_state(&lab);
    assert_eq!(ari["window_end"], unix(now - HOUR), "{ari}");
}

#[test]
fn force_renewal_of_an_ari_certificate_names_what_it_replaces() {
    let (lab, shim) = lab_and_shim();
    let now = SystemTime::now();
    shim.set_window(now + 30 * DAY, now + 31 * DAY, 3600);
    request(&lab, &shim).assert_success();
    let old = leaf(&lab);

    run(&lab, &shim, &["renew", "--force"]).assert_success();
    let new = leaf(&lab);
    assert_ne!(serial(&new), serial(&old), "renewed");
    assert_eq!(shim.replaces_seen(), vec![ari_id(&old)]);
    assert_eq!(
        shim.renewal_info_ids(),
        vec![ari_id(&old), ari_id(&new)],
        "--force does not ask for the old window; the new certificate gets its own"
    );
    assert_eq!(ari_state(&lab)["window_start"], unix(now + 30 * DAY));
}

#[test]
fn a_dry_run_asks_the_ca_for_its_window_as_a_real_run_does_and_records_nothing() {
    let (lab, shim) = lab_and_shim();
    let now = SystemTime::now();
    shim.set_window(now + 30 * DAY, now + 31 * DAY, 1);
    request(&lab, &shim).assert_success();
    let old = leaf(&lab);
    // the recorded Retry-After has passed (moved rather than waited for)
    let mut ari = ari_state(&lab);
    ari["next_check"] = (unix(now) - 1).into();
    replace_ari(&lab, &ari);
    let before = both_snapshots(&lab);

    // the CA's window is still ahead: the dry run asks, says so, and writes nothing
    let out = run(&lab, &shim, &["renew", "--dry-run"]);
    out.assert_success();
    assert_eq!(
        shim.renewal_info_requests(),
        2,
        "asked, as a real run would"
    );
    assert!(
        out.stderr
            .contains("not due; the CA's renewal window starts"),
        "{}",
        out.stderr
    );
    assert_eq!(both_snapshots(&lab), before, "the answer is not recorded");

    // the CA moves its window into the past: the dry run rehearses the renewal
    shim.set_window(now - 2 * HOUR, now - HOUR, 1);
    let out = run(&lab, &shim, &["renew", "--dry-run"]);
    out.assert_success();
    assert_eq!(shim.renewal_info_requests(), 3);
    assert!(
        out.stderr.contains("dry run: the CA would issue"),
        "{}",
        out.stderr
    );
    assert_eq!(both_snapshots(&lab), before);
    assert_eq!(leaf(&lab), old);
    assert!(
        shim.replaces_seen().is_empty(),
        "a rehearsal replaces nothing"
    );
}

#[test]
fn a_dry_run_never_tells_the_ca_that_the_certificate_is_replaced() {
    let (lab, shim) = lab_and_shim();
    let now = SystemTime::now();
    shim.set_window(now + 30 * DAY, now + 31 * DAY, 3600);
    request(&lab, &shim).assert_success();
    let before = both_snapshots(&lab);

    run(&lab, &shim, &["renew", "--force", "--dry-run"]).assert_success();
    // a CA accepts one replacement per certificate (RFC 9773 alreadyReplaced): a rehearsal
    // that named the live certificate would make the real renewal fail
    assert_eq!(shim.replaces_seen(), Vec::<String>::new());
    assert_eq!(both_snapshots(&lab), before);
}

#[test]
fn a_ca_that_refuses_replaces_or_stops_offering_ari_still_gets_the_renewal() {
    let (lab, shim) = lab_and_shim();
    let now = SystemTime::now();
    shim.set_window(now + 30 * DAY, now + 31 * DAY, 3600);
    request(&lab, &shim).assert_success();
    let first = leaf(&lab);

    // the CA answers alreadyReplaced (say an earlier order's certificate never got
    // installed): the order goes again without `replaces` instead of failing every run
    shim.set_refuses_replaces(true);
    let out = run(&lab, &shim, &["renew", "--force", "-v"]);
    out.assert_success();
    let second = leaf(&lab);
    assert_ne!(serial(&second), serial(&first), "renewed");
    assert_eq!(shim.replaces_seen(), vec![ari_id(&first)], "refused once");
    assert!(out.stderr.contains("without `replaces`"), "{}", out.stderr);

    // the CA's directory no longer offers renewalInfo, but ari.json is still there:
    // instant-acme refuses `replaces` without renewalInfo, so the order goes without it,
    // and the new certificate's window is forgotten (the lifetime rule decides again)
    shim.set_offers_ari(false);
    run(&lab, &shim, &["renew", "--force"]).assert_success();
    let third = leaf(&lab);
    assert_ne!(serial(&third), serial(&second), "renewed");
    assert_eq!(
        shim.replaces_seen(),
        vec![ari_id(&first)],
        "no new replaces"
    );
    assert!(!ari_path(&lab).exists());
}

#[test]
fn a_ca_that_takes_replaces_without_echoing_it_gets_orders_without_it_from_then_on() {
    let (lab, shim) = lab_and_shim();
    let now = SystemTime::now();
    shim.set_window(now + 30 * DAY, now + 31 * DAY, 3600);
    request(&lab, &shim).assert_success();
    let first = leaf(&lab);

    // the CA creates the order but leaves `replaces` out of it: instant-acme calls that a
    // mismatch; the order goes again without it, and the renewal succeeds
    shim.set_echoes_replaces(false);
    let out = run(&lab, &shim, &["renew", "--force"]);
    out.assert_success();
    let second = leaf(&lab);
    assert_ne!(serial(&second), serial(&first), "renewed");
    assert!(
        out.stderr.contains("mishandles `replaces`"),
        "{}",
        out.stderr
    );
    assert_eq!(shim.replaces_seen(), vec![ari_id(&first)]);

    // remembered for this CA: the next order does not carry it at all
    run(&lab, &shim, &["renew", "--force"]).assert_success();
    assert_ne!(serial(&leaf(&lab)), serial(&second), "renewed");
    assert_eq!(shim.replaces_seen(), vec![ari_id(&first)], "not sent again");
}
