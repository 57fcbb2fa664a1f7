//! This host's deploy record: which serial each HAProxy socket was last given for a
//! certificate. A push that failed stays pending until one succeeds: `renew` retries it
//! even when nothing is due, `certctl deploy` pushes now, `list` shows it.

use std::collections::BTreeMap;

use crate::deploy::{self, Bundles};
use crate::pem;
use crate::store::Store;
use crate::types::{CertName, Socket};

/// How many certificates are read, pushed and recorded together (bounds the memory of a run
/// over many thousands; the pipeline to each socket drains once per batch).
const BATCH: usize = 128;

/// Pushes each certificate's live version to its sockets (`certs`: name, sockets), each
/// socket independently, one after the other, the commands to one socket pipelined
/// across certificates; while a batch is pushed, the one before is recorded (each success in
/// the certificate's deploy record) and the next one read from the store. Returns the failures, by certificate; each deploy that failed
/// stays pending.
pub fn push(
    store: &Store,
    bundles: &Bundles,
    certs: &[(CertName, Vec<Socket>)],
    timeout: std::time::Duration,
) -> Vec<(CertName, anyhow::Error)> {
    let mut failures = Vec::new();
    let mut unrecorded: Vec<Pushed> = Vec::new();
    let mut batches = certs.chunks(BATCH);
    let mut next = batches
        .next()
        .map(|b| read_batch(store, bundles, b, &mut failures));
    while let Some(swaps) = next.take() {
        let mut by_socket: Vec<&Socket> = Vec::new();
        for socket in swaps.iter().flat_map(|(_, sockets)| sockets.iter()) {
            if !by_socket.contains(&socket) {
                by_socket.push(socket);
            }
        }
        // the sockets one after the other (two of them may lead to the same HAProxy, whose
        // one transaction at a time two connections would share), on a thread of their own;
        // meanwhile the last batch recorded, the next one read
        let pushed = std::thread::scope(|scope| {
            let swaps = &swaps;
            let by_socket = &by_socket;
            let pushing = scope.spawn(move || {
                let mut pushed = Vec::new();
                for &socket in by_socket {
                    let wanted: Vec<usize> = (0..swaps.len())
                        .filter(|&i| swaps[i].1.contains(socket))
                        .collect();
                    let subset: Vec<&deploy::Swap> = wanted.iter().map(|&i| &swaps[i].0).collect();
                    let results = deploy::push_many_to_haproxy(socket, &subset, timeout);
                    pushed.push((socket, wanted, results));
                }
                pushed
            });
            record(store, std::mem::take(&mut unrecorded), &mut failures);
            next = batches
                .next()
                .map(|b| read_batch(store, bundles, b, &mut failures));
            pushing
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        });
        // what each certificate got, to record
        let mut outcomes: Vec<Pushed> = swaps
            .iter()
            .map(|(swap, _)| Pushed {
                name: swap.name.clone(),
                serial: swap.serial.clone(),
                done: Vec::new(),
                failed: Vec::new(),
            })
            .collect();
        for (socket, wanted, results) in pushed {
            for (i, result) in wanted.into_iter().zip(results) {
                match result {
                    Ok(()) => outcomes[i].done.push(socket.to_string()),
                    Err(e) => outcomes[i].failed.push(e),
                }
            }
        }
        unrecorded = outcomes;
    }
    record(store, unrecorded, &mut failures);
    failures
}

/// What one certificate's pushes gave: the sockets that took its serial, the failures.
struct Pushed {
    name: CertName,
    serial: String,
    done: Vec<String>,
    failed: Vec<anyhow::Error>,
}

/// The stored certificates of `batch` that have sockets to go to; a failure to read one is
/// its failure.
fn read_batch<'a>(
    store: &Store,
    bundles: &Bundles,
    batch: &'a [(CertName, Vec<Socket>)],
    failures: &mut Vec<(CertName, anyhow::Error)>,
) -> Vec<(deploy::Swap, &'a Vec<Socket>)> {
    let mut swaps = Vec::new();
    for (name, sockets) in batch.iter().filter(|(_, s)| !s.is_empty()) {
        match read_swap(store, bundles, name) {
            Ok(swap) => swaps.push((swap, sockets)),
            Err(e) => failures.push((name.clone(), e)),
        }
    }
    swaps
}

fn read_swap(store: &Store, bundles: &Bundles, name: &CertName) -> anyhow::Result<deploy::Swap> {
    let read = || -> anyhow::Result<deploy::Swap> {
        let files = store.live_files(name)?;
        let info = pem::cert_info(&files.chain.leaf)?;
        Ok(deploy::Swap {
            name: name.clone(),
            path: bundles.path(name),
            bundle: pem::bundle(&files.chain, &files.key_pem),
            serial: info.serial,
        })
    };
    read().map_err(|e| e.context(format!("{name}: reading the stored certificate")))
}

/// Records each success in its certificate's deploy record; failures are kept, saying the
/// deploy stays pending.
fn record(store: &Store, pushed: Vec<Pushed>, failures: &mut Vec<(CertName, anyhow::Error)>) {
    for p in pushed {
        if !p.done.is_empty() {
            let mut record = store.pushed(&p.name);
            for socket in p.done {
                record.insert(socket, p.serial.clone());
            }
            if let Err(e) = store.save_pushed(&p.name, &record) {
                crate::log::warn(format_args!("{}: {e:#}", p.name));
            }
        }
        failures.extend(
            p.failed
                .into_iter()
                .map(|e| (p.name.clone(), still_pending(e))),
        );
    }
}

fn still_pending(e: anyhow::Error) -> anyhow::Error {
    e.context(
        "the deploy stays pending: the next `certctl renew` (or `certctl deploy`) tries again",
    )
}

/// The sockets among `sockets` that have not been given `serial`.
pub fn pending(store: &Store, name: &CertName, serial: &str, sockets: &[Socket]) -> Vec<Socket> {
    let record: BTreeMap<String, String> = store.pushed(name);
    sockets
        .iter()
        .filter(|s| record.get(&s.to_string()).map(String::as_str) != Some(serial))
        .cloned()
        .collect()
}
