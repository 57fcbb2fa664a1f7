//! Several proxies, one store on etcd (issue 17): a real three-member etcd cluster, three
//! nodes each with its own state dir, ssl dir and HAProxy (stateless HTTP-01), and Pebble.
//! A request on one node is served by all three; nodes renewing at once place one order;
//! a node killed while holding the lock loses it when its lease expires; one member down
//! changes nothing, two down fail cleanly; secrets never reach etcd's data unsealed.

use crate::common;

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::ca_front::Fault;
use common::cluster_lab::{self, Cluster, cluster, log_len, new_orders_since};
use common::etcd::{EtcdCluster, Node, store_key};
use common::fixtures::snapshot;
use common::process::ProcessGuard;
use common::{Lab, LabOptions, STARTUP_TIMEOUT};

const NAME: &str = "c.mon-app.test";

fn bundle_serial(node: &Node, name: &str) -> Option<String> {
    cluster_lab::bundle_serial(node, name)
}

fn wait_served(nodes: &[&Node], serial: &str) -> Duration {
    cluster_lab::wait_served(nodes, NAME, serial)
}

fn request_stateless(lab: &Lab, node: &Node) {
    cluster_lab::request_stateless(lab, node, NAME)
}

#[test]
fn a_request_on_one_node_is_served_by_every_node_and_races_place_one_order() {
    let Cluster {
        lab, etcd, nodes, ..
    } = cluster("", false);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // the standalone responder is refused with a shared store, saying what to use
    let out = a.run(
        &lab,
        &["request", "x.mon-app.test", "--challenge", "standalone"],
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--challenge stateless"),
        "{}",
        out.stderr
    );

    // c watches the store; a requests; b syncs once
    let mut watch = c.certctl(&lab);
    watch.args(["sync", "--watch"]).stdout(Stdio::null());
    let watcher = ProcessGuard::spawn("sync-watch", watch, c.dir.join("sync.log"));
    let started = Instant::now();
    request_stateless(&lab, a);
    let serial = bundle_serial(a, NAME).expect("a's bundle");
    b.run(&lab, &["sync"]).assert_success();
    let served = wait_served(&[a, b, c], &serial);
    eprintln!(
        "cluster: request on a to the new serial served by all three: {:?} (served {:?} after the request ended)",
        started.elapsed(),
        served
    );
    assert_eq!(bundle_serial(c, NAME).as_deref(), Some(serial.as_str()));

    // list shows who renewed it and what each node installed
    let out = b.run(&lab, &["list", "--json"]);
    out.assert_success();
    assert!(
        out.stdout.contains("\"renewed_by\": \"a\""),
        "{}",
        out.stdout
    );

    // b and c renew at once a certificate that is due (its key type changed): one order
    a.run(&lab, &["reconfigure", NAME, "--key-type", "ec384"])
        .assert_success();
    drop(watcher);
    let offset = log_len(&lab);
    let spawn = |n: &Node| {
        let mut cmd = n.certctl(&lab);
        cmd.args(["renew"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (rb, rc) = (spawn(b), spawn(c));
    let (ob, oc) = (
        rb.wait_with_output().unwrap(),
        rc.wait_with_output().unwrap(),
    );
    for o in [&ob, &oc] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        new_orders_since(&lab, offset),
        1,
        "two nodes renewing at once: one order"
    );
    let renewed = bundle_serial(b, NAME).unwrap();
    assert_ne!(renewed, serial);
    assert_eq!(bundle_serial(c, NAME).as_deref(), Some(renewed.as_str()));

    // a was away during that renewal: its next renew installs the new generation first
    a.run(&lab, &["renew"]).assert_success();
    wait_served(&[a, b, c], &renewed);

    // a node with another store key is refused and changes nothing in the store
    let before = etcd.dump("certctl");
    let wrong = lab.root().join("wrong.key");
    store_key(&wrong, 9);
    let text = fs::read_to_string(&b.config).unwrap().replace(
        &format!("{}", lab.root().join("store.key").display()),
        &format!("{}", wrong.display()),
    );
    let config = b.dir.join("wrong.toml");
    fs::write(&config, text).unwrap();
    let ssl_before = snapshot(&b.ssl_dir());
    let mut cmd = b.certctl_config(&lab, &config);
    cmd.args(["renew", "--force"]);
    let out = common::run_command(cmd);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("does not open with the store key"),
        "{}",
        out.stderr
    );
    assert_eq!(
        etcd.dump("certctl"),
        before,
        "the wrong key changed the store"
    );
    assert_eq!(snapshot(&b.ssl_dir()), ssl_before);

    // etcd's data holds no private key, in PEM or raw
    let bundle = fs::read(a.ssl_dir().join(format!("{NAME}.pem"))).unwrap();
    let key_der = pem::parse_many(&bundle)
        .unwrap()
        .into_iter()
        .find(|p| p.tag().contains("PRIVATE KEY"))
        .unwrap()
        .into_contents();
    for dir in etcd.data_dirs() {
        for (path, (bytes, _)) in snapshot(&dir) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("PRIVATE KEY"),
                "{} holds a PEM key",
                path.display()
            );
            assert!(
                !bytes
                    .windows(key_der.len())
                    .any(|w| w == key_der.as_slice()),
                "{} holds the raw key",
                path.display()
            );
        }
    }
    drop((nodes, etcd, lab));
}

#[test]
fn a_node_killed_mid_order_loses_its_lock_and_quorum_loss_fails_cleanly() {
    let Cluster {
        nodes,
        front,
        mut etcd,
        lab,
    } = cluster("", true);
    let front = front.expect("the CA front");
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    request_stateless(&lab, b);
    let first = bundle_serial(b, NAME).unwrap();
    b.run(&lab, &["reconfigure", NAME, "--key-type", "ec384"])
        .assert_success();

    // a renews it; the CA front holds its finalize: a is mid-order, holding the lock
    front.set_fault("/finalize-order/", Fault::Hold);
    let offset = log_len(&lab);
    let mut cmd = a.certctl(&lab);
    cmd.args(["renew"]);
    let since = front.requests().len();
    let killed = ProcessGuard::spawn("renew-a", cmd, a.dir.join("renew.log"));
    cluster_lab::wait_finalize_seen(&front, since, "a");
    unsafe { libc::kill(killed.pid() as i32, libc::SIGKILL) };
    drop(killed);
    // what comes now reaches the CA (a's finalize stays held, and never reaches it)
    front.clear_faults();

    // c waits for a's lease to expire (etcd_lease_ttl 3 s), then renews it: one more
    // order, and the only issuance
    let out = c.run(&lab, &["renew"]);
    out.assert_success();
    assert_eq!(new_orders_since(&lab, offset), 2, "a's order, then c's");
    assert_eq!(
        cluster_lab::pebble_requests_since(&lab, offset, "POST /finalize-order/"),
        1,
        "one issuance (c's): a's finalize never reached the CA"
    );
    let second = bundle_serial(c, NAME).unwrap();
    assert_ne!(second, first);
    // every node serves c's certificate once it has run (a's certctl was killed)
    a.run(&lab, &["sync"]).assert_success();
    b.run(&lab, &["sync"]).assert_success();
    wait_served(&[a, b, c], &second);

    // one member stopped: everything still works
    etcd.stop(2);
    b.run(&lab, &["renew"]).assert_success();
    assert_eq!(bundle_serial(b, NAME).as_deref(), Some(second.as_str()));
    b.run(&lab, &["renew", "--force"]).assert_success();
    let third = bundle_serial(b, NAME).unwrap();

    // two stopped: a clean failure naming the cause, nothing written locally
    etcd.stop(1);
    let state = snapshot(&c.state_dir());
    let ssl = snapshot(&c.ssl_dir());
    let out = c.run(&lab, &["renew"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("majority of the etcd members"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(&c.state_dir()), state);
    assert_eq!(snapshot(&c.ssl_dir()), ssl);

    // quorum back: the next run installs what it missed
    etcd.restart(1);
    etcd.restart(2);
    etcd.wait_members(&[0, 1, 2]);
    c.run(&lab, &["renew"]).assert_success();
    assert_eq!(bundle_serial(c, NAME).as_deref(), Some(third.as_str()));
    drop((nodes, etcd, lab));
}

#[test]
fn a_state_directory_moves_to_etcd_and_back_without_a_new_order() {
    // no nonce rejected: a newOrder retried after badNonce would count as two orders
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        nonce_reject_percent: Some(0),
        ..Default::default()
    });
    common::fixtures::request(&lab, &[NAME]).assert_success();
    let etcd = EtcdCluster::start(lab.root());
    let store = etcd.store_url("moved");
    let key = lab.root().join("store.key");
    let node = Node::start(&lab, "n", &store, &key, "none", None, "");
    // init-key makes the key, 0600, and never overwrites it
    node.run(
        &lab,
        &["store", "init-key", "--out", &key.display().to_string()],
    )
    .assert_success();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = node.run(
        &lab,
        &["store", "init-key", "--out", &key.display().to_string()],
    );
    assert_eq!(again.code(), Some(2), "{}", again.stderr);

    let state = lab.state_dir().display().to_string();
    let offset = log_len(&lab);
    let dry = node.run(
        &lab,
        &[
            "store",
            "copy",
            "--from",
            &state,
            "--to",
            &store,
            "--dry-run",
        ],
    );
    dry.assert_success();
    assert!(
        dry.stderr.contains("would copy 1 certificate"),
        "{}",
        dry.stderr
    );
    assert!(etcd.dump("moved/certs").is_empty(), "a dry run wrote");
    node.run(&lab, &["store", "copy", "--from", &state, "--to", &store])
        .assert_success();
    // the copied settings keep this host's part (its ssl dir): the bundle there is current
    let listed = node.run(&lab, &["list", "--json"]);
    listed.assert_success();
    assert!(listed.stdout.contains(NAME), "{}", listed.stdout);
    assert!(
        listed.stdout.contains("\"bundle_exists\": true"),
        "{}",
        listed.stdout
    );
    let before = snapshot(&lab.ssl_dir());
    node.run(&lab, &["sync"]).assert_success();
    assert_eq!(snapshot(&lab.ssl_dir()), before, "nothing to install");
    // copying again into a store that holds it: refused, nothing written
    let clash = node.run(&lab, &["store", "copy", "--from", &state, "--to", &store]);
    assert_eq!(clash.code(), Some(2), "{}", clash.stderr);
    // and back into an empty state directory
    let back = lab.root().join("back");
    node.run(
        &lab,
        &[
            "store",
            "copy",
            "--from",
            &store,
            "--to",
            &back.display().to_string(),
        ],
    )
    .assert_success();
    let mut list = common::hermetic::certctl_in(lab.root());
    list.arg("--state-dir")
        .arg(&back)
        .arg("--ssl-dir")
        .arg(lab.ssl_dir())
        .args(["list", "--json"]);
    let out = common::run_command(list);
    out.assert_success();
    assert!(out.stdout.contains(NAME), "{}", out.stdout);
    assert_eq!(new_orders_since(&lab, offset), 0, "a copy orders nothing");
    drop((node, etcd, lab));
}

/// A CA, a server leaf for 127.0.0.1 and a client leaf, PEM (cert, key) each.
fn etcd_pki() -> (String, (String, String), (String, String)) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "etcd test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = vec![SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        ))];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    (
        ca.pem(),
        leaf("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth),
        leaf("certctl", ExtendedKeyUsagePurpose::ClientAuth),
    )
}

#[test]
fn the_store_is_reached_over_tls_with_a_client_certificate_and_an_etcd_user() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let dir = lab.root().join("etcd-tls");
    fs::create_dir_all(&dir).unwrap();
    let (ca, server, client) = etcd_pki();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    };
    let (ca_file, server_cert, server_key) = (
        file("ca.pem", &ca),
        file("server.pem", &server.0),
        file("server.key", &server.1),
    );
    let (client_cert, client_key) = (file("client.pem", &client.0), file("client.key", &client.1));
    let password = file("password", "s3cret\n");
    let (port, peer) = (common::process::free_port(), common::process::free_port());
    let url = format!("https://127.0.0.1:{port}");
    let mut etcd = std::process::Command::new("etcd");
    etcd.arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
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
        .arg("--cert-file")
        .arg(&server_cert)
        .arg("--key-file")
        .arg(&server_key)
        .arg("--trusted-ca-file")
        .arg(&ca_file)
        .arg("--client-cert-auth");
    let mut member = ProcessGuard::spawn("etcd-tls", etcd, dir.join("etcd.log"));
    let etcdctl = |args: &[&str]| {
        std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &url, "--command-timeout=3s"])
            .arg("--cacert")
            .arg(&ca_file)
            .arg("--cert")
            .arg(&client_cert)
            .arg("--key")
            .arg(&client_key)
            .args(args)
            .output()
            .unwrap()
    };
    member.wait_until("etcd over TLS answers", STARTUP_TIMEOUT, || {
        etcdctl(&["endpoint", "health"]).status.success()
    });
    // a user with a role on its prefix alone; then authentication on
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "certctl"],
        &[
            "role",
            "grant-permission",
            "certctl",
            "--prefix=true",
            "readwrite",
            "tls/",
        ],
        &["user", "add", "certctl:s3cret"],
        &["user", "grant-role", "certctl", "certctl"],
        &["auth", "enable"],
    ] {
        let out = etcdctl(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let key = lab.root().join("store.key");
    store_key(&key, 5);
    let tls = format!(
        "etcd_ca_file = \"{}\"\netcd_cert_file = \"{}\"\netcd_key_file = \"{}\"\n\
         etcd_user = \"certctl\"\netcd_password_file = \"{}\"\n",
        ca_file.display(),
        client_cert.display(),
        client_key.display(),
        password.display()
    );
    let store = format!("etcd://127.0.0.1:{port}/tls");
    let node = Node::start(&lab, "t", &store, &key, "none", None, &tls);
    let local = |args: &[&str]| {
        let mut cmd = common::hermetic::certctl_in(&node.dir);
        cmd.arg("--config")
            .arg(&node.config)
            .arg("--state-dir")
            .arg(node.state_dir())
            .arg("--ssl-dir")
            .arg(node.ssl_dir())
            .args(["--server", "local"])
            .args(args);
        common::run_command(cmd)
    };
    local(&["request", "t.mon-app.test"]).assert_success();
    let out = local(&["list", "--json"]);
    out.assert_success();
    assert!(
        out.stdout.contains("\"renewed_by\": \"t\""),
        "{}",
        out.stdout
    );
    // the keys are under the user's prefix, sealed
    let dump = etcdctl(&["--user", "root:rootpw", "get", "--prefix", "tls/"]);
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("tls/certs/t.mon-app.test/live"), "{dump}");
    assert!(!dump.contains("PRIVATE KEY"), "{dump}");
    // a wrong password is a clean failure
    fs::write(&password, "wrong\n").unwrap();
    let out = local(&["list"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("etcd store"), "{}", out.stderr);
    drop((node, member, lab));
}
