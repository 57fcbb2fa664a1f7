//! Micro-benchmarks of what `renew` and `request` do per certificate without the network:
//! the renewal decision, reading one stored certificate's metadata, bundle assembly and
//! name parsing. They show where the per-certificate cost of `renew` with nothing due
//! goes (scripts/bench measures the whole command). Fixtures are made here with rcgen.
//!
//!     cargo bench --bench hot_paths -- --quick        about 20 s
//!     cargo test --benches                            each benchmark once, as a test

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use certctl::deploy::Bundles;
use certctl::issue;
use certctl::pem::{self, AriState, Chain, Decision};
use certctl::settings::CertSettings;
use certctl::store::Store;
use certctl::types::{CertName, DomainName};

const DAY: i64 = 86_400;
// 2026-01-01T00:00:00Z
const NOW: i64 = 1_767_225_600;

/// Stored certificates as `renew` sees them: 90-day ones issued over the last 90 days,
/// every fourth with an ARI window.
fn fleet(n: usize) -> Vec<(i64, i64, Option<AriState>)> {
    (0..n as i64)
        .map(|i| {
            let not_before = NOW - (i * 7919) % (90 * DAY);
            let not_after = not_before + 90 * DAY;
            let ari = (i % 4 == 0).then(|| {
                AriState::new(
                    not_after - 30 * DAY,
                    not_after - 28 * DAY,
                    0.5,
                    NOW,
                    6 * 3600,
                )
            });
            (not_before, not_after, ari)
        })
        .collect()
}

fn renewal_decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("renewal decision");
    for n in [1_000usize, 10_000] {
        let certs = fleet(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("decide", n), &certs, |b, certs| {
            b.iter(|| {
                certs
                    .iter()
                    .filter(|(nb, na, ari)| {
                        pem::decide(black_box(NOW), *nb, *na, ari.as_ref(), false) == Decision::Due
                    })
                    .count()
            })
        });
        group.bench_with_input(BenchmarkId::new("renewal_due", n), &certs, |b, certs| {
            b.iter(|| {
                certs
                    .iter()
                    .filter(|(nb, na, _)| pem::renewal_due(black_box(NOW), *nb, *na))
                    .count()
            })
        });
    }
    group.finish();
}

/// What `renew` reads from disk per certificate: settings.json, live/meta.json and (absent
/// here) ari.json for the decision, then the live files and the bundle to check that the
/// bundle is current. This, not `decide`, is the per-certificate cost of `renew`.
fn stored_metadata(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::files(&dir.path().join("state"));
    let bundles = Bundles::new(&dir.path().join("ssl"));
    store.check_writable().expect("writable store");
    bundles.check_writable().expect("writable ssl dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let name = CertName::parse("www.mon-app.fr").expect("name");
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("leaf");
    let chain = Chain::parse(&leaf.pem()).expect("chain");
    let info = pem::cert_info(&chain.leaf).expect("info");
    store
        .save_generation(&name, &key.serialize_pem(), &chain, &info)
        .expect("generation");
    // through JSON, as `renew` reads it, so new optional settings need no change here
    let settings: CertSettings = serde_json::from_value(serde_json::json!({
        "domains": [name.as_str(), "mon-app.fr"],
        "key_type": "ec256",
        "server": "https://acme-v02.api.letsencrypt.org/directory",
        "challenge": {"kind": "standalone", "http_addr": "127.0.0.1:2031"},
    }))
    .expect("settings");
    store.save_settings(&name, &settings).expect("settings");

    bundles
        .write(
            &store,
            &name,
            &info.serial,
            &pem::bundle(&chain, &key.serialize_pem()),
        )
        .expect("bundle");

    c.bench_function("stored metadata of one certificate (lineage + ari)", |b| {
        b.iter(|| {
            let lineage = store.lineage(black_box(&name)).expect("readable");
            (lineage, store.ari(&name))
        })
    });
    // what `renew` adds per certificate that is not due: is its bundle the live one?
    c.bench_function("issue::bundle_is_current of one certificate", |b| {
        b.iter(|| {
            assert!(issue::bundle_is_current(
                &store,
                &bundles,
                black_box(&name),
                &info.serial
            ))
        })
    });
}

/// A leaf and an intermediate as a CA sends them, and the leaf's key.
fn issued_chain() -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["mon-app.fr".into(), "www.mon-app.fr".into()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    (format!("{}\n{}", leaf.pem(), ca.pem()), key.serialize_pem())
}

fn bundle_assembly(c: &mut Criterion) {
    let (chain_pem, key_pem) = issued_chain();
    let chain = Chain::parse(&chain_pem).expect("chain");
    let mut group = c.benchmark_group("bundle");
    group.bench_function("pem::bundle (leaf + intermediate + key)", |b| {
        b.iter(|| pem::bundle(black_box(&chain), black_box(&key_pem)))
    });
    group.bench_function("Chain::parse of the CA's answer", |b| {
        b.iter(|| Chain::parse(black_box(&chain_pem)))
    });
    group.finish();
}

fn name_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("DomainName::parse");
    for raw in [
        "mon-app.fr",
        "www.demo.mon-app.test",
        "Mon-App.FR",
        "café.mon-app.fr",
        "*.mon-app.fr",
        "a..b",
    ] {
        group.bench_with_input(BenchmarkId::from_parameter(raw), raw, |b, raw| {
            b.iter(|| DomainName::parse(black_box(raw)))
        });
    }
    group.finish();
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = renewal_decision, stored_metadata, bundle_assembly, name_parsing
}
criterion_main!(hot_paths);
