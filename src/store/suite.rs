//! The storage contract as tests that use the interface only (`Store` over a `Backend`), so
//! that every backend runs the same suite: the file backend here, the next one beside it.

use std::time::Duration;

use super::{Key, Store};
use crate::pem::{AriState, Chain};
use crate::settings::{CertConfig, CertSettings, Challenge, HostConfig};
use crate::types::{CertName, DomainName, KeyType, Server};

/// A fresh, empty store and whatever keeps it alive (a temp dir, a server).
pub type Fresh = Box<dyn Fn() -> (Store, Box<dyn std::any::Any>)>;

/// One case of the suite: its name and its body.
type Case = (&'static str, fn(&Store));

pub fn run_all(fresh: Fresh) {
    let cases: [Case; 9] = [
        ("values_round_trip", values_round_trip),
        ("accounts_round_trip", accounts_round_trip),
        (
            "a_generation_is_live_once_saved",
            a_generation_is_live_once_saved,
        ),
        (
            "a_new_generation_replaces_the_live_one",
            a_new_generation_replaces_the_live_one,
        ),
        ("names_are_sorted_and_managed", names_are_sorted_and_managed),
        (
            "ari_windows_are_saved_and_removed",
            ari_windows_are_saved_and_removed,
        ),
        ("archive_stops_managing", archive_stops_managing),
        ("lock_is_granted_and_released", lock_is_granted_and_released),
        (
            "inspection_reports_what_is_missing",
            inspection_reports_what_is_missing,
        ),
    ];
    for (name, case) in cases {
        let (store, _keep) = fresh();
        eprintln!("storage suite: {name} on {}", store.describe());
        case(&store);
    }
}

fn name(n: &str) -> CertName {
    CertName::parse(n).unwrap()
}

fn settings(domain: &str) -> CertSettings {
    CertSettings {
        cert: CertConfig {
            domains: vec![DomainName::parse(domain).unwrap()],
            key_type: KeyType::Ec256,
            server: Server::parse("letsencrypt").unwrap(),
            challenge: Challenge::Stateless,
            email: None,
            days: None,
            client_auth: false,
            challenges: Default::default(),
            profile: None,
            preferred_chain: None,
        },
        host: HostConfig::default(),
        unknown: Default::default(),
    }
}

/// A self-signed leaf for `domain` and its key.
fn leaf(domain: &str) -> (String, Chain) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![domain.to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (key.serialize_pem(), Chain::parse(&cert.pem()).unwrap())
}

/// A managed certificate: settings and one generation.
fn managed(store: &Store, domain: &str) -> (CertName, String, Chain) {
    let n = name(domain);
    let (key_pem, chain) = leaf(domain);
    let info = crate::pem::cert_info(&chain.leaf).unwrap();
    store.save_generation(&n, &key_pem, &chain, &info).unwrap();
    store.save_settings(&n, &settings(domain)).unwrap();
    (n, key_pem, chain)
}

fn values_round_trip(store: &Store) {
    store.check_writable().unwrap();
    for key in [Key::CaCert, Key::CaKey, Key::CaRevoked, Key::Crl] {
        assert_eq!(store.read(&key).unwrap(), None, "{key:?} starts empty");
        store.write(&key, b"one").unwrap();
        store.write(&key, b"two").unwrap();
        assert_eq!(store.read(&key).unwrap().as_deref(), Some(&b"two"[..]));
    }
}

fn accounts_round_trip(store: &Store) {
    let a = Server::parse("https://127.0.0.1:14000/dir").unwrap();
    let b = Server::parse("letsencrypt").unwrap();
    assert!(store.account(&a).unwrap().is_none());
    let credentials: instant_acme::AccountCredentials = serde_json::from_value(serde_json::json!({
        "id": "https://127.0.0.1:14000/my-account/1",
        "key_pkcs8": "AAAA",
        "directory": "https://127.0.0.1:14000/dir",
    }))
    .unwrap();
    store.save_account(&a, credentials).unwrap();
    assert!(store.account(&a).unwrap().is_some());
    assert!(store.account(&b).unwrap().is_none(), "accounts are per CA");
}

fn a_generation_is_live_once_saved(store: &Store) {
    let (n, key_pem, chain) = managed(store, "a.test");
    let files = store.live_files(&n).unwrap();
    assert_eq!(files.key_pem, key_pem);
    assert_eq!(files.chain, chain);
    assert_eq!(store.live_leaf(&n).unwrap(), chain.leaf);
    let lineage = store.lineage(&n).unwrap().unwrap();
    assert_eq!(lineage.settings, settings("a.test"));
    assert_eq!(
        lineage.info,
        crate::pem::cert_info(&chain.leaf).unwrap(),
        "the meta describes the leaf"
    );
}

fn a_new_generation_replaces_the_live_one(store: &Store) {
    let (n, _, first) = managed(store, "a.test");
    let (key_pem, second) = leaf("a.test");
    let info = crate::pem::cert_info(&second.leaf).unwrap();
    store.save_generation(&n, &key_pem, &second, &info).unwrap();
    assert_eq!(store.live_leaf(&n).unwrap(), second.leaf);
    assert_ne!(first.leaf, second.leaf);
    assert_eq!(store.lineage(&n).unwrap().unwrap().info.serial, info.serial);
    assert_eq!(store.live_files(&n).unwrap().key_pem, key_pem);
}

fn names_are_sorted_and_managed(store: &Store) {
    assert!(store.names().unwrap().is_empty());
    managed(store, "b.test");
    managed(store, "a.test");
    assert_eq!(store.names().unwrap(), vec![name("a.test"), name("b.test")]);
    assert!(store.manages(&name("a.test")));
    assert!(!store.manages(&name("c.test")));
    assert!(store.lineage(&name("c.test")).unwrap().is_none());
}

fn ari_windows_are_saved_and_removed(store: &Store) {
    let (n, _, _) = managed(store, "a.test");
    assert_eq!(store.ari(&n), None);
    let ari = AriState::new(1_000, 2_000, 0.5, 500, 3600);
    store.save_ari(&n, Some(&ari)).unwrap();
    assert_eq!(store.ari(&n), Some(ari));
    store.save_ari(&n, None).unwrap();
    assert_eq!(store.ari(&n), None);
    store.save_ari(&n, None).unwrap();
}

fn archive_stops_managing(store: &Store) {
    let (n, _, _) = managed(store, "a.test");
    let first = store
        .archive(
            &n,
            1_767_225_600,
            &[("a.test.pem".into(), b"bundle".to_vec())],
        )
        .unwrap();
    assert!(!store.manages(&n));
    assert!(store.names().unwrap().is_empty());
    assert!(
        store.save_ari(&n, None).is_ok() && store.deployed(&n).is_none(),
        "nothing left of it"
    );
    // the same name again, archived within the same second, gets its own place
    managed(store, "a.test");
    let second = store.archive(&n, 1_767_225_600, &[]).unwrap();
    assert_ne!(first, second);
    assert!(
        store.save_deployed(&n, b"x").is_err(),
        "an archived certificate's record is not written back"
    );
}

fn lock_is_granted_and_released(store: &Store) {
    let lock = store.lock(Duration::from_secs(5)).unwrap();
    lock.check().unwrap();
    drop(lock);
    let again = store.lock(Duration::from_secs(5)).unwrap();
    again.check().unwrap();
}

fn inspection_reports_what_is_missing(store: &Store) {
    let (n, _, _) = managed(store, "a.test");
    let whole = store.inspect(&n);
    assert!(whole.problems.is_empty(), "{:?}", whole.problems);
    assert!(whole.settings.is_some() && whole.info.is_some());
    let unknown = store.inspect(&name("c.test"));
    assert!(!unknown.problems.is_empty());
}

#[test]
fn the_file_backend_passes_the_storage_suite() {
    run_all(Box::new(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::files(&dir.path().join("state"));
        (store, Box::new(dir))
    }));
}
