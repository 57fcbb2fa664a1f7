//! `certctl deploy [NAME...]`: push the stored certificates to their stored HAProxy sockets
//! now, each socket independently, and record what each one got. No order, no hook.

use anyhow::anyhow;

use crate::issue;
use crate::settings::Global;

pub fn run(global: &Global, raw: &[String]) -> anyhow::Result<()> {
    // 1. which certificates; every named one must exist
    let (store, bundles) = super::open(global)?;
    let names = super::selected_names(global, &store, raw)?;
    let _lock = super::lock_for_writing(global, &store, &bundles)?;

    // 2. each to its sockets, all in one pipelined pass; one failure does not stop the others
    let mut failed = Vec::new();
    let mut to_push = Vec::new();
    for name in &names {
        let lineage = match store.lineage(name) {
            Ok(Some(lineage)) => lineage,
            Ok(None) => continue,
            Err(e) => {
                crate::log::error(format_args!("{name}: {e:#}"));
                failed.push(name.to_string());
                continue;
            }
        };
        let sockets = lineage.settings.host.haproxy_sockets;
        if sockets.is_empty() {
            crate::log::verbose(format_args!(
                "{name}: no HAProxy socket stored; nothing to push"
            ));
            continue;
        }
        to_push.push((name.clone(), sockets));
    }
    for (name, e) in issue::push(&store, &bundles, &to_push, global.haproxy_timeout) {
        crate::log::error(format_args!("{e:#}"));
        if !failed.contains(&name.to_string()) {
            failed.push(name.to_string());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "deploy failed for: {}; it stays pending",
            failed.join(", ")
        ))
    }
}
