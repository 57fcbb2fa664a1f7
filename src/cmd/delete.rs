//! `certctl delete NAME`: stop managing a certificate without contacting its CA; its state
//! directory and bundle move to <state-dir>/archive/, nothing is destroyed. Also holds the
//! confirmation shared with `revoke`: ask on a terminal, `--yes` skips, and with no terminal
//! and no `--yes` refuse (exit 2) before anything is changed.

use anyhow::bail;

use crate::cli::DeleteArgs;
use crate::error::BadInput;
use crate::issue::now;
use crate::settings::Global;
use crate::types::CertName;

pub fn run(global: &Global, args: DeleteArgs) -> anyhow::Result<()> {
    // 1. a certificate by that name (a damaged one too: delete is how it gets cleared away)
    let name = CertName::parse(&args.name).map_err(BadInput::new)?;
    let (store, bundles) = super::open(global)?;
    if !store.manages(&name) {
        return Err(super::not_managed(global, &name));
    }

    // 2. confirmation; answering no changes nothing
    let intro = format!(
        "certctl will stop managing this certificate (without revoking it) and move its files \
         and bundle to {}:",
        global.state_dir.join("archive").display()
    );
    let summary = super::describe(&store.inspect(&name), &bundles, now());
    if !super::confirm(args.yes, "delete", &name, &format!("{intro}\n{summary}"))? {
        crate::log::info(format_args!("delete cancelled; nothing changed"));
        return Ok(());
    }

    // 3. under the lock, archive it
    let _lock = store.lock(global.lock_wait)?;
    if !store.manages(&name) {
        bail!("{name} was removed by another certctl while this one waited; nothing done");
    }
    let folder = super::archive(&store, &bundles, &name, true)?;
    crate::log::info(format_args!(
        "{name}: no longer managed; its files and bundle are in {folder}"
    ));
    Ok(())
}
