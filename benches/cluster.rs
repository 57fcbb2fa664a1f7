//! The cluster benchmark (issue 17), on the integration tests' lab: a real three-member etcd,
//! three nodes each with its own HAProxy (stateless HTTP-01), Pebble. Measures the time from
//! `request` on one node to the new serial served by all three proxies (the others running
//! `sync --watch`), then `renew` over many due certificates with the three nodes racing:
//! orders placed, total time, etcd round trips per renewal. `scripts/bench-cluster` runs it
//! with `--bench` (100 certificates); without it (cargo test) it is a quick smoke run.

#[path = "../tests/it/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cluster_lab::{self, new_orders_since, served_serial};
use common::etcd::{EtcdCluster, Node, store_key};
use common::process::ProcessGuard;
use common::{Lab, LabOptions};

fn bundle_serial(node: &Node, name: &str) -> String {
    cluster_lab::bundle_serial(node, name).expect("a bundle")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (requests, certs) = if full { (5, 100) } else { (1, 3) };
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        nonce_reject_percent: Some(0),
        ..Default::default()
    });
    let etcd = EtcdCluster::start(lab.root());
    let store = etcd.store_url("bench");
    let key = lab.root().join("store.key");
    store_key(&key, 3);
    let boot = Node::start(&lab, "boot", &store, &key, "none", None, "");
    let out = boot.run(&lab, &["account", "thumbprint", "--agree-tos", "-q"]);
    out.assert_success();
    let thumbprint = out.stdout.trim().to_owned();
    drop(boot);
    let http = lab.http_addr();
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let on = (*n == "a").then_some(http.as_str());
            Node::start(&lab, n, &store, &key, &thumbprint, on, "")
        })
        .collect();
    let watchers: Vec<ProcessGuard> = nodes[1..]
        .iter()
        .map(|n| {
            let mut cmd = n.certctl(&lab);
            cmd.args(["sync", "--watch"]);
            ProcessGuard::spawn("sync", cmd, n.dir.join("sync.log"))
        })
        .collect();
    let request = |name: &str| cluster_lab::request_stateless(&lab, &nodes[0], name);

    // 1. request on a -> the new serial served by a, b and c
    let mut spread = Vec::new();
    for i in 0..requests {
        let name = format!("r{i}.mon-app.test");
        let started = Instant::now();
        request(&name);
        let serial = bundle_serial(&nodes[0], &name);
        while !nodes
            .iter()
            .all(|n| served_serial(n, &name).as_deref() == Some(&serial))
        {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "never served by all"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        spread.push(started.elapsed());
    }

    // 2. many certificates, all made due (new key type), renewed by three nodes at once
    let names: Vec<String> = (0..certs).map(|i| format!("m{i}.mon-app.test")).collect();
    for name in &names {
        request(name);
    }
    drop(watchers);
    for name in &names {
        nodes[0]
            .run(&lab, &["reconfigure", name, "--key-type", "ec384"])
            .assert_success();
    }
    let offset = cluster_lab::log_len(&lab);
    let started = Instant::now();
    let children: Vec<_> = nodes
        .iter()
        .map(|n| {
            let mut cmd = n.certctl(&lab);
            cmd.args(["renew", "-v", "--jobs", "4"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let mut round_trips = 0u64;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        round_trips += text
            .lines()
            .filter_map(|l| l.strip_suffix(" round trips"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    let race = started.elapsed();
    let orders = new_orders_since(&lab, offset);
    for name in &names {
        let serial = bundle_serial(&nodes[0], name);
        assert!(nodes.iter().all(|n| bundle_serial(n, name) == serial));
    }
    assert_eq!(orders, certs, "one order per certificate");

    println!("| measure | value |");
    println!("| --- | --- |");
    println!(
        "| request on one node -> new serial served by all three HAProxy (median of {requests}) | {:.2} s |",
        median(spread).as_secs_f64()
    );
    println!(
        "| renew, {certs} due certificates, three nodes racing: total time | {:.1} s |",
        race.as_secs_f64()
    );
    println!("| orders placed for {certs} due certificates | {orders} |");
    println!(
        "| etcd round trips, all three nodes, per renewed certificate | {:.1} |",
        round_trips as f64 / certs as f64
    );
    drop((nodes, etcd, lab));
}
