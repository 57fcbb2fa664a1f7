//! The etcd store's locks (issue 17), against the real three-member cluster: nodes racing
//! over many due certificates place one order each; a certificate held mid-order by one
//! node does not stop another node from renewing the others meanwhile, and that node never
//! orders the held one; two nodes without an account create one.

use crate::common;

use std::process::{Child, Stdio};
use std::time::Instant;

use common::ca_front::Fault;
use common::cluster_lab::{
    Cluster, bundle_serial, cluster, log_len, new_orders_since, pebble_requests_since,
    request_stateless, wait_finalize_seen,
};
use common::etcd::{EtcdCluster, Node, store_key};
use common::{Lab, LabOptions, STARTUP_TIMEOUT};

const NAMES: [&str; 3] = ["x.mon-app.test", "y.mon-app.test", "z.mon-app.test"];

/// `certctl renew ARGS` on `node`, running (it waits for a lock as long as it needs).
fn spawn(lab: &Lab, node: &Node, args: &[&str]) -> Child {
    let mut cmd = node.certctl(lab);
    cmd.arg("renew")
        .args(args)
        .env("CERTCTL_LOCK_TIMEOUT", "600")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

fn finish(child: Child, who: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{who}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_due(lab: &Lab, node: &Node, names: &[&str], key_type: &str) {
    for name in names {
        node.run(lab, &["reconfigure", name, "--key-type", key_type])
            .assert_success();
    }
}

#[test]
fn a_certificate_held_by_one_node_does_not_stop_another_from_renewing_the_others() {
    let Cluster {
        nodes,
        front,
        etcd,
        lab,
    } = cluster("", true);
    let front = front.expect("the CA front");
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    for name in NAMES {
        request_stateless(&lab, a, name);
    }

    // 1. b and c renew three due certificates at once: three orders, one per certificate,
    //    and both end with the same certificates
    make_due(&lab, a, &NAMES, "ec384");
    let offset = log_len(&lab);
    let (rb, rc) = (spawn(&lab, b, &[]), spawn(&lab, c, &[]));
    finish(rb, "b");
    finish(rc, "c");
    assert_eq!(
        new_orders_since(&lab, offset),
        NAMES.len(),
        "one order each"
    );
    for name in NAMES {
        let serial = bundle_serial(b, name).expect("b's bundle");
        assert_eq!(bundle_serial(c, name), Some(serial), "{name}");
    }

    // 2. a renews x alone, held mid-order at the CA front (its finalize), holding x's lock
    let [x, y, _] = NAMES;
    make_due(&lab, a, &[x, y], "ec256");
    let before_x = bundle_serial(b, x).unwrap();
    let before_y = bundle_serial(b, y).unwrap();
    front.set_fault("/finalize-order/", Fault::Hold);
    let offset = log_len(&lab);
    let since = front.requests().len();
    let ra = spawn(&lab, a, &[x]);
    wait_finalize_seen(&front, since, "a");
    front.clear_faults();

    // 3. meanwhile b renews: y (free) is renewed and installed while a still holds x
    let rb = spawn(&lab, b, &[]);
    let started = Instant::now();
    while bundle_serial(b, y).as_deref() == Some(before_y.as_str()) {
        assert!(
            started.elapsed() < STARTUP_TIMEOUT,
            "b did not renew y while a held x"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        bundle_serial(b, x).as_deref(),
        Some(before_x.as_str()),
        "x is a's: b has not touched it"
    );
    assert_eq!(
        new_orders_since(&lab, offset),
        2,
        "a's order for x and b's for y; none by b for x"
    );
    assert_eq!(
        pebble_requests_since(&lab, offset, "POST /finalize-order/"),
        1,
        "only y was issued: a's finalize is still held"
    );

    // 4. a goes on: x is a's; b, which waited for x, installs a's certificate, orders nothing
    front.release();
    finish(ra, "a");
    finish(rb, "b");
    assert_eq!(new_orders_since(&lab, offset), 2, "still one order each");
    let renewed_x = bundle_serial(a, x).unwrap();
    assert_ne!(renewed_x, before_x);
    assert_eq!(bundle_serial(b, x), Some(renewed_x));
    drop((nodes, front, etcd, lab));
}

#[test]
fn two_nodes_without_an_account_create_one() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        nonce_reject_percent: Some(0),
        ..Default::default()
    });
    let etcd = EtcdCluster::start(lab.root());
    let store = etcd.store_url("accounts");
    let key = lab.root().join("store.key");
    store_key(&key, 4);
    let nodes: Vec<Node> = ["a", "b"]
        .iter()
        .map(|n| Node::start(&lab, n, &store, &key, "none", None, ""))
        .collect();
    let offset = log_len(&lab);
    let children: Vec<Child> = nodes
        .iter()
        .map(|n| {
            let mut cmd = n.certctl(&lab);
            cmd.args(["account", "thumbprint", "--agree-tos", "-q"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let thumbprints: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .collect();
    assert_eq!(
        pebble_requests_since(&lab, offset, "POST /sign-me-up"),
        1,
        "one account created"
    );
    assert_eq!(thumbprints[0], thumbprints[1], "both use the one account");
    let accounts = etcd.dump("accounts/accounts/");
    assert_eq!(
        accounts
            .lines()
            .filter(|l| l.starts_with("accounts/"))
            .count(),
        1,
        "the store holds one account: {accounts}"
    );
    drop((nodes, etcd, lab));
}
