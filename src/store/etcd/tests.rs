//! The etcd backend against a real etcd member started here: the storage suite every
//! backend passes.

use std::os::unix::fs::PermissionsExt;

/// One etcd member on free loopback ports, killed on drop.
struct Member {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    client: String,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn member() -> Member {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let child = std::process::Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args([
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args([
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{peer}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcd (apt-get install etcd-server)");
    Member {
        child,
        _dir: dir,
        client: format!("127.0.0.1:{client}"),
    }
}

/// Opens the store `prefix` of `member` as node `node` (answering once etcd has elected
/// itself: polled, bounded).
fn opener(
    member: &Member,
    dir: &std::path::Path,
) -> impl Fn(&str, &str) -> anyhow::Result<super::Etcd> + Send + Sync + 'static {
    let key = dir.join("store.key");
    if !key.exists() {
        std::fs::write(&key, super::seal::new_key().unwrap()).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let endpoint = member.client.clone();
    let open = move |prefix: &str, node: &str| {
        let mut config = crate::settings::ConfigFile::default();
        config.node_name = Some(node.to_owned());
        let spec =
            crate::settings::StoreSpec::parse(&format!("etcd://{endpoint}/{prefix}"), &config)
                .unwrap();
        let mut spec = spec.etcd().unwrap().clone();
        spec.store_key_file = Some(key.clone());
        super::Etcd::open(&spec)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Err(e) = open("ready", "n") {
        assert!(
            std::time::Instant::now() < deadline,
            "etcd never answered: {e:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    open
}

/// Nodes a and b on the store `prefix` of a new member.
fn two_nodes(prefix: &str) -> (Member, tempfile::TempDir, super::Etcd, super::Etcd) {
    let member = member();
    let dir = tempfile::tempdir().unwrap();
    let open = opener(&member, dir.path());
    let (a, b) = (open(prefix, "a").unwrap(), open(prefix, "b").unwrap());
    (member, dir, a, b)
}

/// A generation whose certificate is `cert` (the backend stores it as given).
fn generation(cert: &str) -> crate::store::Generation {
    crate::store::Generation {
        key_pem: "k".into(),
        cert_pem: cert.into(),
        chain_pem: String::new(),
        fullchain_pem: cert.into(),
        meta: b"{}".to_vec(),
    }
}

#[test]
fn certificate_locks_are_one_node_s_each_and_fence_its_commits() {
    use crate::store::{Backend, Key, Taken};
    use std::time::Duration;
    let (member, dir, a, b) = two_nodes("locks");
    let x = crate::types::CertName::parse("x.test").unwrap();
    let y = crate::types::CertName::parse("y.test").unwrap();
    let Taken::Held(ax) = a.lock_cert(&x, None).unwrap() else {
        panic!("a free lock is taken at once")
    };
    // b is told who holds x, at once; y is b's meanwhile
    assert!(matches!(b.lock_cert(&x, None).unwrap(), Taken::Busy(node) if node == "a"));
    let Taken::Held(by) = b.lock_cert(&y, None).unwrap() else {
        panic!("another certificate's lock is free")
    };
    // waiting for a held lock is bounded, and names the holder
    let err = match b.lock_cert(&x, Some(Duration::from_secs(1))) {
        Err(e) => format!("{e:#}"),
        Ok(_) => panic!("x is a's"),
    };
    assert!(err.contains("node a"), "{err}");
    // a's key gone (its lease expired): a stores nothing more for x
    let fence = a.held_key(&a.cert_lock(&x)).unwrap();
    let fence = String::from_utf8(fence).unwrap();
    a.conn
        .call("deleting", move |mut c| {
            let k = fence.clone();
            Box::pin(async move { c.delete(k, None).await.map(|_| ()) })
        })
        .unwrap();
    let err = a.save_generation(&x, &generation("c")).unwrap_err();
    assert!(format!("{err:#}").contains("lock expired"), "{err:#}");
    assert!(a.read(&Key::Status(x.clone())).unwrap().is_none());
    assert!(!a.manages(&x).unwrap(), "nothing of x was stored");
    // released locks are free again
    drop((ax, by));
    assert!(matches!(b.lock_cert(&x, None).unwrap(), Taken::Held(_)));
    // the account's lock: one at a time
    let server = crate::types::Server::parse("https://ca.test/dir").unwrap();
    let held = a.lock_account(&server, Duration::from_secs(5)).unwrap();
    assert!(held.is_some());
    assert!(b.lock_account(&server, Duration::from_secs(1)).is_err());
    drop(held);
    assert!(
        b.lock_account(&server, Duration::from_secs(5))
            .unwrap()
            .is_some()
    );
    drop((a, b, member, dir));
}

#[test]
fn the_etcd_backend_passes_the_storage_suite() {
    let member = member();
    let dir = tempfile::tempdir().unwrap();
    let opened = opener(&member, dir.path());
    let open = move |prefix: &str| opened(prefix, "n");
    let counter = std::sync::atomic::AtomicU32::new(0);
    crate::store::suite::run_all(Box::new(move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let store = crate::store::Store::new(Box::new(open(&format!("suite{n}")).unwrap()));
        (store, Box::new(()))
    }));
    drop(member);
    drop(dir);
}

#[test]
fn a_certificate_is_read_once_and_afresh_under_its_lock() {
    use crate::store::{Backend, Key, Taken};
    let (member, dir, a, b) = two_nodes("cache");
    let x = crate::types::CertName::parse("x.test").unwrap();
    b.save_generation(&x, &generation("one")).unwrap();
    b.write(&Key::Status(x.clone()), b"s1").unwrap();
    // every key of x with one read; a value written is not read back
    let before = a.conn.round_trips();
    assert!(a.manages(&x).unwrap());
    assert_eq!(a.read(&Key::Status(x.clone())).unwrap().unwrap(), b"s1");
    assert!(a.read(&Key::Ari(x.clone())).unwrap().is_none());
    assert_eq!(a.live(&x).cert_pem.unwrap(), b"one");
    assert_eq!(a.conn.round_trips() - before, 1, "one read for x's keys");
    a.write(&Key::Status(x.clone()), b"s2").unwrap();
    assert_eq!(a.read(&Key::Status(x.clone())).unwrap().unwrap(), b"s2");
    assert_eq!(a.conn.round_trips() - before, 2, "the write alone");
    // b stores another generation; under x's lock, a reads it afresh
    b.save_generation(&x, &generation("two")).unwrap();
    assert_eq!(a.live(&x).cert_pem.unwrap(), b"one", "read once");
    let Taken::Held(lock) = a.lock_cert(&x, None).unwrap() else {
        panic!("x is free")
    };
    assert_eq!(a.live(&x).cert_pem.unwrap(), b"two");
    a.save_generation(&x, &generation("three")).unwrap();
    drop(lock);
    assert_eq!(b.live(&x).cert_pem.unwrap(), b"two", "b read it once too");
    drop((a, b, member, dir));
}
