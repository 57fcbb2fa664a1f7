//! `certctl import certbot`: a real certbot (Debian's package) issues from the lab's Pebble,
//! certctl takes its lineages over, serves and renews them; hand-made lineages cover what
//! certbot cannot produce here (P-256 account keys, wildcards, DNS plugins, damaged files).
//! certbot's directory must be byte for byte the same afterwards.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::certbot::{CertbotDirs, FakeLineage, certonly};
use common::fixtures::{serial_hex, snapshot};
use common::hermetic;
use common::{Lab, Output, run_command};
use serde_json::Value;

fn pem_blocks(path: &Path) -> Vec<(String, Vec<u8>)> {
    let text = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    pem::parse_many(text)
        .unwrap()
        .into_iter()
        .map(|b| (b.tag().to_owned(), b.into_contents()))
        .collect()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.stdout))
}

fn by_name<'a>(reports: &'a Value, name: &str) -> &'a Value {
    reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no report for {name}: {reports:#}"))
}

fn settings(state_dir: &Path, name: &str) -> Value {
    let path = state_dir.join("certs").join(name).join("settings.json");
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

fn mentions(list: &Value, needle: &str) -> bool {
    list.as_array()
        .unwrap()
        .iter()
        .any(|item| item.as_str().unwrap().contains(needle))
}

#[test]
fn certbot_lineages_are_taken_over_served_and_renewed() {
    let lab = Lab::start();
    let dirs = CertbotDirs::new(lab.root());
    let config = dirs.config.display().to_string();

    // seed 000: certbot standalone behind HAProxy, a post-hook that concatenates certbot's
    // files into the ssl directory and reloads HAProxy
    let concat = lab.root().join("concatenates.sh");
    fs::write(
        &concat,
        format!(
            "#!/bin/sh\ncat {config}/live/name.test/fullchain.pem {config}/live/name.test/privkey.pem > {}/name.test.pem\n",
            lab.ssl_dir().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&concat, fs::Permissions::from_mode(0o755)).unwrap();
    let reload = lab.reload_command();
    let post_hook = format!("{} && {reload}", concat.display());
    certonly(
        &lab,
        &dirs,
        &[
            "-d",
            "name.test",
            "-d",
            "www.name.test",
            "--post-hook",
            &post_hook,
            "--deploy-hook",
            "echo deployed >&2",
        ],
    )
    .assert_success();
    certonly(
        &lab,
        &dirs,
        &[
            "-d",
            "rsa.test",
            "--key-type",
            "rsa",
            "--rsa-key-size",
            "3072",
        ],
    )
    .assert_success();
    let certbot_leaf = |name: &str| {
        pem_blocks(&dirs.config.join(format!("live/{name}/cert.pem")))[0]
            .1
            .clone()
    };
    assert_eq!(
        lab.served_chain("name.test")[0],
        certbot_leaf("name.test"),
        "certbot's post-hook installed its certificate"
    );
    let before = snapshot(&dirs.config);

    // 1. the import: every lineage, what was and was not taken over, on stdout as JSON
    let out = lab.run(&["import", "certbot", &config, "--json"]);
    out.assert_success();
    let reports = json(&out);
    assert_eq!(reports.as_array().unwrap().len(), 2, "{reports:#}");
    let main = by_name(&reports, "name.test");
    assert_eq!(main["status"], "imported");
    assert_eq!(
        main["domains"],
        serde_json::json!(["name.test", "www.name.test"])
    );
    assert_eq!(main["serial"], serial_hex(&certbot_leaf("name.test")));
    assert!(
        mentions(&main["not_taken_over"], "concatenates.sh"),
        "{main:#}"
    );
    assert!(mentions(&main["not_taken_over"], "the account"), "{main:#}");
    assert!(mentions(&main["not_taken_over"], "RSA"), "{main:#}");
    assert_eq!(by_name(&reports, "rsa.test")["key_type"], "rsa3072");
    assert!(
        out.stderr.contains("name.test: taken over from certbot"),
        "{}",
        out.stderr
    );

    // 2. stored as `request` stores: settings for renew, the bundle = certbot's files
    let stored = settings(&lab.state_dir(), "name.test");
    assert_eq!(stored["server"], lab.directory_url());
    assert_eq!(stored["ca_bundle"], lab.ca_bundle().display().to_string());
    assert_eq!(stored["key_type"], "ec256");
    assert_eq!(stored["challenge"]["kind"], "standalone");
    assert_eq!(stored["challenge"]["http_addr"], lab.http_addr());
    assert_eq!(
        stored["hooks"]["post"],
        reload.as_str(),
        "the concatenation is dropped"
    );
    assert_eq!(stored["hooks"]["deploy"], "echo deployed >&2");
    assert_eq!(
        settings(&lab.state_dir(), "rsa.test")["key_type"],
        "rsa3072"
    );
    let bundle = pem_blocks(&lab.ssl_dir().join("name.test.pem"));
    let fullchain = pem_blocks(&dirs.config.join("live/name.test/fullchain.pem"));
    let key = pem_blocks(&dirs.config.join("live/name.test/privkey.pem"));
    assert_eq!(bundle.len(), fullchain.len() + 1);
    assert_eq!(&bundle[..fullchain.len()], &fullchain[..]);
    assert_eq!(bundle.last().unwrap().1, key[0].1, "the same private key");
    assert!(
        !lab.state_dir().join("accounts").exists()
            || fs::read_dir(lab.state_dir().join("accounts"))
                .unwrap()
                .count()
                == 0,
        "certbot's RSA account key is not taken over"
    );

    // 3. list shows them; a second import skips them
    let list = lab.run(&["list", "--json"]);
    list.assert_success();
    let rows = json(&list);
    assert_eq!(
        by_name(&rows, "name.test")["serial"],
        serial_hex(&certbot_leaf("name.test"))
    );
    assert_eq!(by_name(&rows, "rsa.test")["key_type"], "rsa3072");
    let again = lab.run(&["import", "certbot", &config, "--json"]);
    again.assert_success();
    assert_eq!(by_name(&json(&again), "name.test")["status"], "skipped");
    assert!(again.stderr.contains("--force"), "{}", again.stderr);

    // 4. renew takes them over for good: a new account, new certificates, HAProxy reloaded
    let renewed = lab.run(&["renew", "--force", "--json"]);
    renewed.assert_success();
    let results = json(&renewed);
    for name in ["name.test", "rsa.test"] {
        let result = by_name(&results, name);
        assert_eq!(result["status"], "renewed", "{results:#}");
        assert_ne!(result["serial"], serial_hex(&certbot_leaf(name)));
    }
    assert_eq!(
        fs::read_dir(lab.state_dir().join("accounts"))
            .unwrap()
            .count(),
        1,
        "one new account"
    );
    assert!(renewed.stderr.contains("deployed"), "{}", renewed.stderr);
    let served = lab
        .verify_served("name.test")
        .expect("HAProxy serves a valid chain");
    assert_eq!(
        serial_hex(&served[0]),
        by_name(&results, "name.test")["serial"].as_str().unwrap(),
        "the post-hook reloaded HAProxy onto the renewed certificate"
    );

    // 5. certbot's directory is exactly as it was
    assert!(before == snapshot(&dirs.config), "certbot's files changed");
}

/// `certctl` with its own state and ssl directories, hermetic (`hermetic::certctl_in`), its
/// empty config file beside the state directory.
fn certctl(state: &Path, ssl: &Path, args: &[&str]) -> Output {
    let dir = state.parent().expect("the state directory has a parent");
    let mut command = hermetic::certctl_in(dir);
    command
        .arg("--state-dir")
        .arg(state)
        .arg("--ssl-dir")
        .arg(ssl)
        .args(args);
    run_command(command)
}

/// certbot's account with a P-256 key (certbot itself makes RSA ones): JWK and regr.json.
fn p256_account(config: &Path, server_path: &str, id: &str, contact: &str) {
    use aws_lc_rs::encoding::AsBigEndian;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let public = pair.public_key().as_ref();
    let d = pair.private_key().as_be_bytes().unwrap();
    let dir = config.join("accounts").join(server_path).join(id);
    fs::create_dir_all(&dir).unwrap();
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&public[33..]),
        "d": URL_SAFE_NO_PAD.encode(d.as_ref()),
    });
    fs::write(dir.join("private_key.json"), jwk.to_string()).unwrap();
    let regr = serde_json::json!({
        "body": {"contact": [format!("mailto:{contact}")]},
        "uri": "https://127.0.0.1:9/my-account/1",
    });
    fs::write(dir.join("regr.json"), regr.to_string()).unwrap();
}

#[test]
fn import_takes_what_certctl_can_renew_and_says_why_not_for_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("letsencrypt");
    let (state, ssl) = (tmp.path().join("state"), tmp.path().join("ssl"));
    let www = tmp.path().join("www");
    fs::create_dir(&www).unwrap();
    let server = ("server", "https://127.0.0.1:9/dir");
    let (good_leaf, _) = FakeLineage {
        name: "good.test",
        names: &["good.test", "www.good.test"],
        params: &[
            ("account", "acc1"),
            ("authenticator", "standalone"),
            server,
            ("key_type", "ecdsa"),
            ("elliptic_curve", "secp384r1"),
        ],
        extra: "",
        wrong_key: false,
    }
    .write(&config);
    let webroot = format!("{},", www.display());
    let webroot_map = format!("[[webroot_map]]\nweb.test = {}\n", www.display());
    FakeLineage {
        name: "web.test",
        names: &["web.test"],
        params: &[
            ("account", "acc1"),
            ("authenticator", "webroot"),
            ("webroot_path", &webroot),
            server,
        ],
        extra: &webroot_map,
        wrong_key: false,
    }
    .write(&config);
    let lineage = |name, names, params, wrong_key| FakeLineage {
        name,
        names,
        params,
        extra: "",
        wrong_key,
    };
    let dns = [("authenticator", "dns-cloudflare"), server];
    let only_server = [server];
    let failing = [
        (
            lineage("wild.test", &["*.wild.test"], &only_server, false),
            "wildcard",
        ),
        (
            lineage("dns.test", &["dns.test"], &dns, false),
            "dns-cloudflare authenticator",
        ),
        (
            lineage("bad-key.test", &["bad-key.test"], &only_server, true),
            "does not match",
        ),
    ];
    for (lineage, _) in &failing {
        lineage.write(&config);
    }
    p256_account(&config, "127.0.0.1:9/dir", "acc1", "ops@good.test");
    let config_arg = config.display().to_string();
    let before = snapshot(&config);

    // bad input: no certbot directory, an unknown lineage (exit 2, nothing written)
    let out = certctl(
        &state,
        &ssl,
        &["import", "certbot", tmp.path().to_str().unwrap()],
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("not a certbot configuration directory"),
        "{}",
        out.stderr
    );
    let out = certctl(
        &state,
        &ssl,
        &["import", "certbot", &config_arg, "--cert-name", "nope.test"],
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(!state.exists() && !ssl.exists());

    // a dry run says everything and writes nothing
    let dry = certctl(
        &state,
        &ssl,
        &["import", "certbot", &config_arg, "--dry-run", "--json"],
    );
    assert_eq!(dry.code(), Some(1), "{}", dry.stderr);
    assert_eq!(by_name(&json(&dry), "good.test")["status"], "importable");
    assert!(!state.exists() && !ssl.exists(), "a dry run writes nothing");

    // the import: two taken over, three refused with their reason, exit 1
    let out = certctl(&state, &ssl, &["import", "certbot", &config_arg, "--json"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let reports = json(&out);
    for (FakeLineage { name, .. }, reason) in failing {
        let report = by_name(&reports, name);
        assert_eq!(report["status"], "failed", "{report:#}");
        assert!(
            report["error"].as_str().unwrap().contains(reason),
            "{report:#}"
        );
        assert!(
            out.stderr.contains(&format!("{name}: not taken over")),
            "{}",
            out.stderr
        );
        assert!(!state.join("certs").join(name).exists());
    }
    assert!(
        out.stderr
            .contains("3 of 5 certbot certificates could not be taken over")
    );

    let good = by_name(&reports, "good.test");
    assert_eq!(good["status"], "imported");
    assert_eq!(
        good["key_type"], "ec384",
        "the renewal file's key type wins"
    );
    assert!(
        mentions(&good["taken_over"], "certbot's account acc1"),
        "{good:#}"
    );
    assert!(mentions(&good["not_taken_over"], "port 80"), "{good:#}");
    let stored = settings(&state, "good.test");
    assert_eq!(stored["challenge"]["http_addr"], "127.0.0.1:2031");
    assert_eq!(stored["email"], "ops@good.test");
    assert!(stored.get("ca_bundle").is_none());
    let accounts: Vec<_> = fs::read_dir(state.join("accounts"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(accounts.len(), 1, "the P-256 account is taken over once");
    let account: Value = serde_json::from_slice(&fs::read(accounts[0].path()).unwrap()).unwrap();
    assert_eq!(
        account["credentials"]["id"],
        "https://127.0.0.1:9/my-account/1"
    );
    assert!(mentions(
        &by_name(&reports, "web.test")["taken_over"],
        "shared with good.test"
    ));
    let web = settings(&state, "web.test");
    assert_eq!(web["challenge"]["kind"], "webroot");
    assert_eq!(web["challenge"]["webroot"], www.display().to_string());
    let bundle = pem_blocks(&ssl.join("good.test.pem"));
    assert_eq!(bundle[0].1, pem::parse(&good_leaf).unwrap().into_contents());
    assert_eq!(
        fs::metadata(ssl.join("good.test.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // one lineage at a time; --force replaces what certctl manages
    let out = certctl(
        &state,
        &ssl,
        &[
            "import",
            "certbot",
            &config_arg,
            "--cert-name",
            "good.test",
            "--force",
            "--json",
        ],
    );
    out.assert_success();
    let reports = json(&out);
    assert_eq!(reports.as_array().unwrap().len(), 1);
    assert_eq!(reports[0]["status"], "imported");
    assert!(
        fs::read_link(state.join("certs/good.test/live")).unwrap() == Path::new("g2"),
        "a new generation"
    );

    assert!(before == snapshot(&config), "certbot's files changed");
}
