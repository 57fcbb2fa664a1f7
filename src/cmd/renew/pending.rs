//! What `renew` owes the proxies besides new certificates: pushes that failed in an earlier
//! run (retried, or said by a dry run with what else a real run would repair first).

use crate::deploy::Bundles;
use crate::issue;
use crate::settings::Global;
use crate::store::{Lineage, Store};
use crate::types::{CertName, Socket};

use super::{PENDING, Selection};

/// What a real run would repair before renewing, said by a dry run (which writes nothing):
/// bundles to write again, first requests stopped half-way, pushes still pending.
pub(super) fn rehearse_repairs(
    store: &Store,
    first: &Selection,
    names: &[CertName],
    given: &[Socket],
) {
    for lineage in &first.repair {
        crate::log::info(format_args!(
            "dry run: {}: its bundle is not the stored certificate's (an earlier run was \
             interrupted); a real run writes it again",
            lineage.name
        ));
    }
    for (name, settings) in &first.half_made {
        crate::log::info(format_args!(
            "dry run: {name}: its first request was stopped before its certificate was stored; \
             a real run {}",
            if settings.is_some() {
                "orders it again"
            } else {
                "moves what it left to the archive"
            }
        ));
    }
    for name in names {
        let pending = pending_pushes(store, name, given);
        if !pending.is_empty() {
            crate::log::info(format_args!(
                "dry run: {name}: a real run pushes it to {} (pending from an earlier run)",
                listed(&pending)
            ));
        }
    }
}

/// The HAProxy sockets (stored, or `given` now) that missed `name`'s serial.
fn pending_pushes(store: &Store, name: &CertName, given: &[Socket]) -> Vec<Socket> {
    store
        .lineage(name)
        .ok()
        .flatten()
        .map_or_else(Vec::new, |l| {
            issue::pending(store, name, &l.info.serial, &sockets_of(&l, given))
        })
}

fn listed(sockets: &[Socket]) -> String {
    let list: Vec<String> = sockets.iter().map(ToString::to_string).collect();
    list.join(", ")
}

/// Whether any of `names` has an HAProxy (stored, or `given` now) that missed its serial.
pub(super) fn has_pending(store: &Store, names: &[CertName], given: &[Socket]) -> bool {
    names.iter().any(|name| {
        store.lineage(name).ok().flatten().is_some_and(|l| {
            let sockets = sockets_of(&l, given);
            !sockets.is_empty() && !issue::pending(store, name, &l.info.serial, &sockets).is_empty()
        })
    })
}

fn sockets_of(lineage: &Lineage, given: &[Socket]) -> Vec<Socket> {
    let mut sockets = lineage.settings.host.haproxy_sockets.clone();
    sockets.extend(
        given
            .iter()
            .filter(|s| !sockets.contains(s))
            .cloned()
            .collect::<Vec<_>>(),
    );
    sockets
}

/// Pushes again what earlier runs failed to push (not to the certificates in `done`, just
/// pushed); each failure is reported, the deploy staying pending.
pub(super) fn retry_pushes(
    global: &Global,
    store: &Store,
    bundles: &Bundles,
    names: &[CertName],
    given: &[Socket],
    done: &[String],
) -> Vec<(String, anyhow::Error)> {
    let mut to_push = Vec::new();
    for name in names
        .iter()
        .filter(|n| !done.iter().any(|d| d == n.as_str()))
    {
        let pending = pending_pushes(store, name, given);
        if pending.is_empty() {
            continue;
        }
        crate::log::info(format_args!(
            "{name}: pushing the certificate to {} (pending from an earlier run)",
            listed(&pending)
        ));
        to_push.push((name.clone(), pending));
    }
    issue::push(store, bundles, &to_push, global.haproxy_timeout)
        .into_iter()
        .map(|(name, e)| (format!("{PENDING}{name}"), e))
        .collect()
}
