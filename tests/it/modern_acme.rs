//! What an ACME client must do now (issue 16): CA profiles, External Account Binding.
//! Profiles go through `AriShim`, which adds them to Pebble 2.4.0's directory and records
//! the `profile` of each new order; EAB runs against Pebble with
//! `externalAccountBindingRequired` and its MAC keys.

use crate::common;

use std::fs;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::ari_shim::AriShim;
use common::ca_front::{CaFront, Fault};
use common::certbot::{FAKE_CRL, FakeLineage};
use common::fixtures::{Snapshot, both_snapshots, serial_hex as serial};
use common::{Lab, LabOptions, Output, run_command};
use serde_json::Value;
use x509_parser::prelude::{FromDer, X509Certificate};

const NAME: &str = "a.mon-app.test";
const DAY: Duration = Duration::from_secs(86_400);
const PROFILES: &[(&str, &str)] = &[
    ("classic", "The same profile you're accustomed to"),
    ("shortlived", "A short-lived certificate of 160 hours"),
];

/// Pebble validating HTTP-01 at certctl's responder directly (no HAProxy).
fn plain_lab() -> Lab {
    Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    })
}

fn lab_and_shim() -> (Lab, AriShim) {
    let lab = plain_lab();
    let shim = AriShim::start(&lab);
    let now = SystemTime::now();
    shim.set_window(now + 300 * DAY, now + 301 * DAY, 3600);
    shim.set_profiles(PROFILES);
    (lab, shim)
}

fn run(lab: &Lab, shim: &AriShim, args: &[&str]) -> Output {
    let mut command: Command = lab.certctl_with_server(&shim.directory_url());
    command.args(args);
    run_command(command)
}

fn request(lab: &Lab, shim: &AriShim, more: &[&str]) -> Output {
    request_at(lab, &shim.directory_url(), more)
}

/// `certctl request NAME` at the CA `server` (a directory URL) with `more` flags.
fn request_at(lab: &Lab, server: &str, more: &[&str]) -> Output {
    let http_addr = lab.http_addr();
    let mut command: Command = lab.certctl_with_server(server);
    command.args(["request", "--http-addr", &http_addr, "--agree-tos", NAME]);
    command.args(more);
    run_command(command)
}

fn settings(lab: &Lab) -> Value {
    let path = lab
        .state_dir()
        .join("certs")
        .join(NAME)
        .join("settings.json");
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

fn leaf_serial(lab: &Lab) -> String {
    let bundle = fs::read(lab.ssl_dir().join(format!("{NAME}.pem"))).unwrap();
    serial(&pem::parse_many(bundle).unwrap().remove(0).into_contents())
}

/// Bad input: exit 2, `says` on stderr, the state and ssl directories as `before`.
#[track_caller]
fn refused(lab: &Lab, out: &Output, before: &(Snapshot, Snapshot), says: &str) {
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains(says), "{}", out.stderr);
    assert!(both_snapshots(lab) == *before, "nothing changed: {out:?}");
}

fn list_json(lab: &Lab, shim: &AriShim) -> Value {
    let out = run(lab, shim, &["list", "--json"]);
    out.assert_success();
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn a_profile_is_checked_sent_stored_and_sent_again_at_every_renewal() {
    let (lab, shim) = lab_and_shim();

    // 1. a profile the CA does not offer: exit 2 listing the CA's, nothing written or sent
    let before = both_snapshots(&lab);
    let out = request(&lab, &shim, &["--profile", "tlsserver"]);
    refused(&lab, &out, &before, "--profile tlsserver");
    for (name, description) in PROFILES {
        let listed = format!("{name}: {description}");
        assert!(out.stderr.contains(&listed), "{}", out.stderr);
    }
    assert!(shim.profiles_seen().is_empty(), "no order placed");

    // 2. an offered one is sent with the order, stored and listed
    request(&lab, &shim, &["--profile", "shortlived"]).assert_success();
    assert_eq!(shim.profiles_seen(), vec![Some("shortlived".to_owned())]);
    assert_eq!(settings(&lab)["profile"], "shortlived");
    let rows = list_json(&lab, &shim);
    assert_eq!(rows[0]["profile"], "shortlived", "{rows}");
    let table = run(&lab, &shim, &["list"]);
    assert!(table.stdout.contains("(shortlived)"), "{}", table.stdout);

    // 3. a renewal sends the stored profile again, with no flag
    let first = leaf_serial(&lab);
    run(&lab, &shim, &["renew", "--force"]).assert_success();
    assert_ne!(leaf_serial(&lab), first, "renewed");
    assert_eq!(
        shim.profiles_seen().last().unwrap().as_deref(),
        Some("shortlived")
    );

    // 4. reconfigure: an unknown profile is refused with nothing changed; a new one makes
    //    the certificate due, and the next plain `renew` orders with it
    let before = both_snapshots(&lab);
    let out = run(&lab, &shim, &["reconfigure", NAME, "--profile", "nosuch"]);
    refused(&lab, &out, &before, "classic: The same profile");
    let out = run(&lab, &shim, &["reconfigure", NAME, "--profile", "classic"]);
    out.assert_success();
    assert!(
        out.stderr.contains("profile: shortlived -> classic"),
        "{}",
        out.stderr
    );
    let second = leaf_serial(&lab);
    let orders = shim.profiles_seen().len();
    run(&lab, &shim, &["renew"]).assert_success();
    assert_ne!(leaf_serial(&lab), second, "the profile change made it due");
    assert_eq!(shim.profiles_seen().len(), orders + 1);
    assert_eq!(
        shim.profiles_seen().last().unwrap().as_deref(),
        Some("classic")
    );
    // due no more: the next renew orders nothing
    run(&lab, &shim, &["renew"]).assert_success();
    assert_eq!(shim.profiles_seen().len(), orders + 1, "not due again");

    // 5. requesting again with another profile orders at once, under it
    request(&lab, &shim, &["--profile", "shortlived"]).assert_success();
    assert_eq!(shim.profiles_seen().len(), orders + 2);
    assert_eq!(
        shim.profiles_seen().last().unwrap().as_deref(),
        Some("shortlived")
    );

    // 6. the CA stops offering the stored profile: an error that says so, no order
    //    without it (no silent fallback to the CA's default)
    shim.set_profiles(&[("tlsserver", "45 days")]);
    let third = leaf_serial(&lab);
    let out = run(&lab, &shim, &["renew", "--force"]);
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr
            .contains("no longer offers the certificate's stored profile \"shortlived\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("tlsserver: 45 days"), "{}", out.stderr);
    assert_eq!(leaf_serial(&lab), third, "unchanged");
    assert_eq!(shim.profiles_seen().len(), orders + 2, "no order placed");
}

#[test]
fn a_profile_for_a_ca_without_profiles_is_bad_input() {
    let lab = plain_lab();
    let before = both_snapshots(&lab);
    let out = request_at(&lab, &lab.directory_url(), &["--profile", "shortlived"]);
    refused(&lab, &out, &before, "offers no profiles");
    for (bad, says) in [
        (&["--profile", "two words"][..], "is not a profile name"),
        (&["--preferred-chain", ""][..], "names no certificate"),
        (
            &["--eab-kid", "kid-1"][..],
            "--eab-kid needs --eab-hmac-key",
        ),
        (
            &["--eab-kid", "kid-1", "--eab-hmac-key", "not base64!"][..],
            "is not base64url",
        ),
    ] {
        let out = request_at(&lab, &lab.directory_url(), bad);
        refused(&lab, &out, &before, says);
    }
}

/// A base64url HMAC key, as a CA's dashboard shows one.
const EAB_KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

#[test]
fn external_account_binding_is_required_used_once_and_never_stored() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        eab_keys: vec![("kid-1".into(), EAB_KEY.into())],
        ..Default::default()
    });
    let pebble = lab.directory_url();

    // 1. the CA requires EAB and none is given: exit 2 naming the flags, nothing written
    let before = both_snapshots(&lab);
    let out = request_at(&lab, &pebble, &[]);
    refused(&lab, &out, &before, "--eab-kid ID --eab-hmac-key KEY");
    let out = lab.run(&["account", "thumbprint", "--agree-tos"]);
    refused(&lab, &out, &before, "--eab-kid ID --eab-hmac-key KEY");

    // 2. a key that is not the CA's: the CA refuses the account (a failure, exit 1)
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let out = request_at(
        &lab,
        &pebble,
        &["--eab-kid", "kid-1", "--eab-hmac-key", wrong],
    );
    assert_eq!(out.code(), Some(1), "{out:?}");

    // 3. the right binding creates the account and the certificate
    let eab = ["--eab-kid", "kid-1", "--eab-hmac-key", EAB_KEY];
    request_at(&lab, &pebble, &eab).assert_success();
    assert!(lab.ssl_dir().join(format!("{NAME}.pem")).exists());

    // 4. the HMAC key (and its bytes) are stored nowhere
    let key_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, EAB_KEY).unwrap();
    for entry in walk(&lab.state_dir()) {
        let content = fs::read(&entry).unwrap();
        assert!(
            !content
                .windows(EAB_KEY.len())
                .any(|w| w == EAB_KEY.as_bytes())
                && !content.windows(key_bytes.len()).any(|w| w == key_bytes),
            "{} holds the HMAC key",
            entry.display()
        );
    }

    // 5. the account exists: a renewal needs no EAB, and EAB given again is noted, unused
    lab.run(&["renew", "--force"]).assert_success();
    let out = request_at(&lab, &pebble, &eab);
    out.assert_success();
    assert!(out.stderr.contains("exists already"), "{}", out.stderr);
}

#[test]
fn eab_given_to_a_ca_that_does_not_want_it_is_noted_and_ignored() {
    let lab = plain_lab();
    let eab = ["--eab-kid", "kid-1", "--eab-hmac-key", EAB_KEY];
    let out = request_at(&lab, &lab.directory_url(), &eab);
    out.assert_success();
    assert!(
        out.stderr
            .contains("does not ask for External Account Binding"),
        "{}",
        out.stderr
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// The subject common name of the first certificate of `/roots/<i>`.
fn root_cn(lab: &Lab, i: usize) -> String {
    let reply = lab.management_get(&format!("/roots/{i}"));
    assert_eq!(reply.status, 200, "GET /roots/{i}: {reply:?}");
    let der = pem::parse_many(reply.body.as_bytes()).unwrap().remove(0);
    let (_, cert) = X509Certificate::from_der(der.contents()).unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap()
        .to_owned()
}

/// The issuer common name of the top certificate of the installed bundle's chain.
fn top_issuer_cn(lab: &Lab) -> String {
    let bundle = fs::read(lab.ssl_dir().join(format!("{NAME}.pem"))).unwrap();
    let certs: Vec<_> = pem::parse_many(bundle)
        .unwrap()
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .collect();
    let (_, top) = X509Certificate::from_der(certs.last().unwrap().contents()).unwrap();
    top.issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap()
        .to_owned()
}

#[test]
fn the_preferred_chain_is_chosen_among_the_alternates_and_kept() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        pebble_env: vec![("PEBBLE_ALTERNATE_ROOTS".into(), "2".into())],
        ..Default::default()
    });
    let pebble = lab.directory_url();
    let roots: Vec<String> = (0..3).map(|i| root_cn(&lab, i)).collect();
    assert!(roots[0] != roots[2], "{roots:?}");

    // 1. the alternate under the last root, chosen and stored
    request_at(&lab, &pebble, &["--preferred-chain", &roots[2]]).assert_success();
    assert_eq!(top_issuer_cn(&lab), roots[2]);
    let rows: Value = serde_json::from_str(&lab.run(&["list", "--json"]).stdout).unwrap();
    assert_eq!(rows[0]["preferred_chain"], roots[2].as_str(), "{rows}");

    // 2. a renewal asks for it again, with no flag
    lab.run(&["renew", "--force"]).assert_success();
    assert_eq!(top_issuer_cn(&lab), roots[2]);

    // 3. the default chain when it is the preferred one
    let out = lab.run(&["reconfigure", NAME, "--preferred-chain", &roots[0]]);
    out.assert_success();
    lab.run(&["renew"]).assert_success();
    assert_eq!(top_issuer_cn(&lab), roots[0]);

    // 4. no chain matches: the default one, and a note
    let out = lab.run(&["reconfigure", NAME, "--preferred-chain", "No Such Root"]);
    out.assert_success();
    let out = lab.run(&["renew"]);
    out.assert_success();
    assert!(out.stderr.contains("no chain the CA"), "{}", out.stderr);
    assert_eq!(top_issuer_cn(&lab), roots[0]);
}

/// `certctl --server <server> renew <args>`.
fn renew_at(lab: &Lab, server: &str, args: &[&str]) -> Output {
    let mut command: Command = lab.certctl_with_server(server);
    command.arg("renew").args(args);
    run_command(command)
}

fn next_attempt(lab: &Lab, name: &str) -> Value {
    let rows: Value = serde_json::from_str(&lab.run(&["list", "--json"]).stdout).unwrap();
    let row = rows.as_array().unwrap().iter().find(|r| r["name"] == name);
    row.unwrap()["next_attempt"].clone()
}

#[test]
fn a_rate_limit_is_remembered_and_failures_back_off() {
    let lab = plain_lab();
    let limiting = CaFront::start(&lab);
    let failing = CaFront::start(&lab);
    let a = ["--name", "a.test"];
    request_at(&lab, &limiting.directory_url(), &a).assert_success();
    let mut command: Command = lab.certctl_with_server(&failing.directory_url());
    let http_addr = lab.http_addr();
    command.args([
        "request",
        "--http-addr",
        &http_addr,
        "--agree-tos",
        "b.mon-app.test",
    ]);
    run_command(command).assert_success();

    // 1. the CA answers the new order 429 with Retry-After: the run fails and says so
    limiting.set_fault("/order-plz", Fault::RateLimited(3600));
    let out = renew_at(&lab, &limiting.directory_url(), &["--force", "a.test"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("retry after 3600 seconds"),
        "{}",
        out.stderr
    );
    limiting.clear_faults();

    // 2. later runs, --force included, do not contact that CA before then, and say when
    let seen = limiting.requests().len();
    let out = renew_at(&lab, &limiting.directory_url(), &["--force", "a.test"]);
    out.assert_success();
    let says = "not contacting the CA before";
    assert!(out.stderr.contains(says), "{}", out.stderr);
    let out = request_at(
        &lab,
        &limiting.directory_url(),
        &["--name", "c.test", "--force"],
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("asked not to be contacted before"),
        "{}",
        out.stderr
    );
    assert_eq!(limiting.requests().len(), seen, "the CA was not contacted");
    assert!(
        next_attempt(&lab, "a.test").is_string(),
        "list shows the next attempt"
    );

    // 3. a failed renewal (no Retry-After) backs off: the next plain renew waits, says
    //    when, and `list` shows it; --force tries at once, and a success ends the back-off
    let b = "b.mon-app.test";
    failing.set_fault("/order-plz", Fault::Status(400));
    let mut command: Command = lab.certctl_with_server(&failing.directory_url());
    command.args(["reconfigure", b, "--key-type", "rsa2048"]);
    run_command(command).assert_success();
    let out = renew_at(&lab, &failing.directory_url(), &[b]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    failing.clear_faults();
    let seen = failing.requests().len();
    let out = renew_at(&lab, &failing.directory_url(), &[b]);
    out.assert_success();
    assert!(
        out.stderr.contains("backing off after 1 failed attempts"),
        "{}",
        out.stderr
    );
    assert_eq!(failing.requests().len(), seen, "the CA was not contacted");
    assert!(next_attempt(&lab, b).is_string());
    renew_at(&lab, &failing.directory_url(), &["--force", b]).assert_success();
    assert!(failing.requests().len() > seen);
    assert!(
        next_attempt(&lab, b).is_null(),
        "a success ends the back-off"
    );
}

#[test]
fn a_rate_limit_on_names_holds_only_that_certificate() {
    let lab = plain_lab();
    let front = CaFront::start(&lab);
    let ca = front.directory_url();
    for name in ["x.test", "y.test"] {
        request_at(&lab, &ca, &["--name", name]).assert_success();
    }
    let bundle = |name: &str| fs::read(lab.ssl_dir().join(format!("{name}.pem"))).unwrap();
    let (x, y) = (bundle("x.test"), bundle("y.test"));

    // the CA limits x.test's names; y.test, at the same CA, is renewed meanwhile
    front.set_fault("/order-plz", Fault::NamesRateLimited(3600));
    let out = renew_at(&lab, &ca, &["--force", "x.test"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    front.clear_faults();
    let out = renew_at(&lab, &ca, &["--force"]);
    out.assert_success();
    assert!(
        out.stderr.contains("x.test: not contacting the CA before")
            && out.stderr.contains("the CA rate-limited these names"),
        "{}",
        out.stderr
    );
    assert_eq!(bundle("x.test"), x, "held");
    assert_ne!(bundle("y.test"), y, "renewed");
    assert!(next_attempt(&lab, "x.test").is_string());
    assert!(next_attempt(&lab, "y.test").is_null());
}

#[test]
fn list_json_shows_each_certificates_crl_distribution_points() {
    let lab = plain_lab();
    // Pebble 2.4's certificates name no CRL; a certbot lineage's leaf names one
    request_at(&lab, &lab.directory_url(), &[]).assert_success();
    let config = lab.root().join("letsencrypt");
    FakeLineage {
        name: "crl.test",
        names: &["crl.test"],
        params: &[
            ("authenticator", "standalone"),
            ("server", "https://127.0.0.1:9/dir"),
        ],
        extra: "",
        wrong_key: false,
    }
    .write(&config);
    lab.run(&["import", "certbot", config.to_str().unwrap()])
        .assert_success();
    let rows: Value = serde_json::from_str(&lab.run(&["list", "--json"]).stdout).unwrap();
    let crl = |name: &str| {
        let row = rows.as_array().unwrap().iter().find(|r| r["name"] == name);
        row.unwrap()["crl_distribution_points"].clone()
    };
    assert_eq!(crl("crl.test"), serde_json::json!([FAKE_CRL]), "{rows}");
    assert_eq!(crl(NAME), serde_json::json!([]), "{rows}");
}
