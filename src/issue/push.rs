//! This host's deploy record: which serial each HAProxy socket was last given for a
//! certificate. A push that failed stays pending until one succeeds: `renew` retries it
//! even when nothing is due, `certctl deploy` pushes now, `list` shows it.

use std::collections::BTreeMap;

use crate::deploy::{self, Bundles};
use crate::pem;
use crate::store::Store;
use crate::types::{CertName, Socket};

/// Pushes `name`'s live certificate to each of `sockets` (all of them with `all`, else
/// those whose record is not its serial); records each success. One error per socket that
/// failed, the others done.
pub fn push(
    store: &Store,
    bundles: &Bundles,
    name: &CertName,
    sockets: &[Socket],
    all: bool,
    timeout: std::time::Duration,
) -> Vec<anyhow::Error> {
    let files = match store.live_files(name) {
        Ok(files) => files,
        Err(e) => return vec![e.context(format!("{name}: reading the stored certificate"))],
    };
    let info = match pem::cert_info(&files.chain.leaf) {
        Ok(info) => info,
        Err(e) => return vec![e.context(format!("{name}: reading the stored certificate"))],
    };
    let to_push: Vec<Socket> = if all {
        sockets.to_vec()
    } else {
        pending(store, name, &info.serial, sockets)
    };
    push_issued(
        store,
        bundles,
        name,
        &to_push,
        &files.chain,
        &files.key_pem,
        &info,
        timeout,
    )
}

/// Pushes a certificate just issued (or read back) to `sockets`, recording each success.
#[allow(clippy::too_many_arguments)]
pub fn push_issued(
    store: &Store,
    bundles: &Bundles,
    name: &CertName,
    sockets: &[Socket],
    chain: &pem::Chain,
    key_pem: &str,
    info: &pem::CertInfo,
    timeout: std::time::Duration,
) -> Vec<anyhow::Error> {
    let mut failures = Vec::new();
    let mut record = store.pushed(name);
    for socket in sockets {
        let failed = deploy::push_to_haproxy(
            bundles,
            name,
            std::slice::from_ref(socket),
            chain,
            key_pem,
            info,
            timeout,
        );
        if failed.is_empty() {
            record.insert(socket.to_string(), info.serial.clone());
        } else {
            failures.extend(failed.into_iter().map(|e| {
                e.context("the deploy stays pending: the next `certctl renew` (or `certctl deploy`) tries again")
            }));
        }
    }
    if !sockets.is_empty() {
        if let Err(e) = store.save_pushed(name, &record) {
            crate::log::warn(format_args!("{name}: {e:#}"));
        }
    }
    failures
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
