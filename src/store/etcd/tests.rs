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

#[test]
fn the_etcd_backend_passes_the_storage_suite() {
    let member = member();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("store.key");
    std::fs::write(&key, super::seal::new_key().unwrap()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let endpoint = member.client.clone();
    let open = move |prefix: &str| {
        let config = crate::settings::ConfigFile::default();
        let spec =
            crate::settings::StoreSpec::parse(&format!("etcd://{endpoint}/{prefix}"), &config)
                .unwrap();
        let mut spec = spec.etcd().unwrap().clone();
        spec.store_key_file = Some(key.clone());
        super::Etcd::open(&spec)
    };
    // etcd takes a moment to elect itself: poll, bounded
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Err(e) = open("ready") {
        assert!(
            std::time::Instant::now() < deadline,
            "etcd never answered: {e:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let counter = std::sync::atomic::AtomicU32::new(0);
    crate::store::suite::run_all(Box::new(move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let store = crate::store::Store::new(Box::new(open(&format!("suite{n}")).unwrap()));
        (store, Box::new(()))
    }));
    drop(member);
    drop(dir);
}
