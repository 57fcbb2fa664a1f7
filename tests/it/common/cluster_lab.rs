//! A cluster lab for issue 17's tests: Pebble (nonce rejection off, so that a retried
//! newOrder never counts twice), a three-member etcd, and nodes a, b, c with their own
//! HAProxy; the account made first, for the thumbprint the proxies answer HTTP-01 with.
//! Optionally everything goes to the CA through a `CaFront`, where a test holds a request.
//! Plus what the tests read: serials on disk and served, orders in Pebble's log.

use std::fs;
use std::time::{Duration, Instant};

use super::ca_front::CaFront;
use super::etcd::{EtcdCluster, Node, store_key};
use super::fixtures::serial_hex;
use super::{Lab, LabOptions, STARTUP_TIMEOUT, tls};

/// Fields drop in this order: the nodes' proxies, the front, etcd, then Pebble.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub front: Option<CaFront>,
    pub etcd: EtcdCluster,
    pub lab: Lab,
}

/// Pebble, etcd, and nodes a, b, c (`extra_a` appended to a's config); a's HAProxy is where
/// Pebble validates HTTP-01. With `front`, every node reaches the CA through it.
pub fn cluster(extra_a: &str, front: bool) -> Cluster {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        nonce_reject_percent: Some(0),
        ..Default::default()
    });
    let front = front.then(|| CaFront::start(&lab));
    let server = front.as_ref().map(CaFront::directory_url);
    let etcd = EtcdCluster::start(lab.root());
    let store = etcd.store_url("certctl");
    let key = lab.root().join("store.key");
    store_key(&key, 7);
    // the account first (on a bare node without proxy), for the thumbprint the proxies use
    let mut bootstrap = Node::start(&lab, "boot", &store, &key, "none", None, "");
    bootstrap.server = server.clone();
    let out = bootstrap.run(&lab, &["account", "thumbprint", "--agree-tos", "-q"]);
    out.assert_success();
    let thumbprint = out.stdout.trim().to_owned();
    drop(bootstrap);
    let http = lab.http_addr();
    let nodes = [
        ("a", Some(http.as_str()), extra_a),
        ("b", None, ""),
        ("c", None, ""),
    ]
    .into_iter()
    .map(|(name, on, extra)| {
        let mut node = Node::start(&lab, name, &store, &key, &thumbprint, on, extra);
        node.server = server.clone();
        node
    })
    .collect();
    Cluster {
        nodes,
        front,
        etcd,
        lab,
    }
}

/// The serial a node's HAProxy serves for `sni`.
pub fn served_serial(node: &Node, sni: &str) -> Option<String> {
    let stream = tls::handshake(node.proxy.https, sni, tls::config_accepting_anything()).ok()?;
    tls::peer_chain(&stream).first().map(|der| serial_hex(der))
}

/// The serial of the bundle `name` in a node's ssl dir.
pub fn bundle_serial(node: &Node, name: &str) -> Option<String> {
    let bytes = fs::read(node.ssl_dir().join(format!("{name}.pem"))).ok()?;
    let blocks = pem::parse_many(bytes).ok()?;
    blocks.first().map(|b| serial_hex(b.contents()))
}

/// A point in Pebble's log (`log_len`): its length, and how many new orders the lab's
/// `FreshAuthz` front had refused because Pebble reused an authorization.
#[derive(Debug, Clone, Copy)]
pub struct LogMark {
    offset: usize,
    rejected: usize,
}

/// Requests whose line holds `what` (`POST /order-plz`...) in Pebble's log after `mark`.
pub fn pebble_requests_since(lab: &Lab, mark: LogMark, what: &str) -> usize {
    let log = fs::read(lab.pebble_log()).unwrap();
    String::from_utf8_lossy(&log[mark.offset.min(log.len())..])
        .lines()
        .filter(|l| l.contains(what))
        .count()
}

/// Newly placed orders in Pebble's log after `mark`, less those the front refused (the
/// client sent each again).
pub fn new_orders_since(lab: &Lab, mark: LogMark) -> usize {
    pebble_requests_since(lab, mark, "POST /order-plz")
        - (lab.fresh_authz_rejections() - mark.rejected)
}

pub fn log_len(lab: &Lab) -> LogMark {
    LogMark {
        offset: fs::metadata(lab.pebble_log()).unwrap().len() as usize,
        rejected: lab.fresh_authz_rejections(),
    }
}

/// Polls until every node's HAProxy serves `serial` for `name` (bounded); returns the time.
pub fn wait_served(nodes: &[&Node], name: &str, serial: &str) -> Duration {
    let started = Instant::now();
    loop {
        if nodes
            .iter()
            .all(|n| served_serial(n, name).as_deref() == Some(serial))
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < STARTUP_TIMEOUT,
            "not every proxy serves {serial}: {:?}",
            nodes
                .iter()
                .map(|n| served_serial(n, name))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `request NAME --challenge stateless` on `node` (Pebble validates on the lab's HTTP address).
pub fn request_stateless(lab: &Lab, node: &Node, name: &str) {
    let http = lab.http_addr();
    let args = [
        "request",
        name,
        "--challenge",
        "stateless",
        "--http-addr",
        &http,
    ];
    node.run(lab, &args).assert_success();
}

/// Polls (bounded) until the front has seen a `POST /finalize-order/` among the requests
/// after the first `since`: an order held there once the front holds finalizations.
pub fn wait_finalize_seen(front: &CaFront, since: usize, who: &str) {
    let started = Instant::now();
    while !front.requests()[since.min(front.requests().len())..]
        .iter()
        .any(|r| r.starts_with("POST /finalize-order/"))
    {
        assert!(
            started.elapsed() < STARTUP_TIMEOUT,
            "{who} never finalized: {:?}",
            front.requests()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
