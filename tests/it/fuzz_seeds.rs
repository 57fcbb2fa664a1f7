//! The fuzz targets' checks (fuzz/checks.rs) as plain tests: over the seed corpus
//! (fuzz/corpus/<target>/), every crash the fuzzers found (fuzz/regressions/<target>/, kept
//! as regression tests), and simple mutations of the seeds (every truncation, flipped and
//! dropped bytes), so the checks run on stable Rust in every `cargo test`.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().is_file() {
                out.push((
                    entry.path().display().to_string(),
                    fs::read(entry.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no seed for {target}");
    out
}

/// Each seed, then its truncations and single-byte mutations (bounded per seed).
fn run(target: &str, check: fn(&[u8])) {
    let mut tried = 0usize;
    for (name, seed) in inputs(target) {
        let result = std::panic::catch_unwind(|| {
            let mut n = 0;
            check(&seed);
            n += 1;
            let step = (seed.len() / 512).max(1);
            for cut in (0..seed.len()).step_by(step) {
                check(&seed[..cut]);
                check(&seed[cut..]);
                let mut flipped = seed.clone();
                flipped[cut] ^= 0x20;
                check(&flipped);
                let mut dropped = seed.clone();
                dropped.remove(cut);
                check(&dropped);
                n += 4;
            }
            n
        });
        match result {
            Ok(n) => tried += n,
            Err(_) => panic!("{target}: {name} (or a mutation of it) failed its check"),
        }
    }
    eprintln!("{target}: {tried} inputs checked");
}

#[test]
fn names_seeds() {
    run("names", checks::names);
}

#[test]
fn pem_seeds() {
    run("pem", checks::pem);
}

#[test]
fn haproxy_seeds() {
    run("haproxy", checks::haproxy);
}

#[test]
fn settings_seeds() {
    run("settings", checks::settings);
}
