//! `certctl delete NAME`: stop managing a certificate without contacting its CA; its state
//! directory and bundle move to <state-dir>/archive/, nothing is destroyed. Also holds the
//! confirmation shared with `revoke`: ask on a terminal, `--yes` skips, and with no terminal
//! and no `--yes` refuse (exit 2) before anything is changed.

use anyhow::{Context, bail};

use crate::cli::DeleteArgs;
use crate::error::BadInput;
use crate::issue::now;
use crate::settings::Global;
use crate::types::CertName;

pub async fn run(global: &Global, args: DeleteArgs) -> anyhow::Result<()> {
    // 1. a certificate by that name (a damaged one too: delete is how it gets cleared away)
    let name = CertName::parse(&args.name).map_err(BadInput::new)?;
    let (store, bundles) = super::open(global)?;
    if !store.manages(&name) {
        return Err(super::not_managed(global, &name));
    }

    // 2. whether HAProxy needs the bundle where it is, then confirmation; answering no
    //    changes nothing
    let inspection = store.inspect(&name);
    let settings = inspection.settings.as_ref();
    let sockets = settings.map_or(&[][..], |s| &s.host.haproxy_sockets[..]);
    let keep = super::bundle_stays(
        global,
        &bundles,
        &name,
        args.haproxy_config.as_deref(),
        sockets,
        args.yes,
    )?;
    let intro = format!(
        "certctl will stop managing this certificate (without revoking it) and move its files{} \
         to {}:",
        if keep { "" } else { " and bundle" },
        global.state_dir.join("archive").display()
    );
    let summary = super::describe(&inspection, &bundles, now());
    if !super::confirm(args.yes, "delete", &name, &format!("{intro}\n{summary}"))? {
        crate::log::info(format_args!("delete cancelled; nothing changed"));
        return Ok(());
    }

    // 3. under the lock, archive it
    let _lock = store.lock(global.lock_wait)?;
    let _cert_lock = super::lock_cert(global, &store, &name)?;
    if !store.manages(&name) {
        bail!("{name} was removed by another certctl while this one waited; nothing done");
    }
    let folder = super::archive(&store, &bundles, &name, !keep)?;
    crate::log::info(format_args!(
        "{name}: no longer managed; its files{} are in {folder}",
        if keep { "" } else { " and bundle" }
    ));

    // 4. the running proxies stop serving it; then the post-hook, as revoke does
    let unloaded = if keep {
        Vec::new()
    } else {
        crate::deploy::remove_from_haproxy(
            &name,
            &bundles.path(&name),
            sockets,
            global.haproxy_timeout,
        )
    };
    if let Some(command) = &args.post_hook {
        let domains = settings.map(|s| crate::issue::join(&s.cert.domains));
        let hook = crate::hooks::Hook {
            kind: "post",
            command,
            env: vec![
                ("CERTCTL_NAME", name.to_string()),
                ("CERTCTL_DOMAINS", domains.unwrap_or_default()),
                (
                    "CERTCTL_SERIAL",
                    inspection
                        .info
                        .as_ref()
                        .map(|i| i.serial.clone())
                        .unwrap_or_default(),
                ),
                ("CERTCTL_BUNDLE", bundles.path(&name).display().to_string()),
                ("CERTCTL_ARCHIVE", folder.clone()),
            ],
        };
        hook.run(crate::settings::DEFAULT_HOOK_TIMEOUT)
            .await
            .with_context(|| format!("{name} is archived"))?;
    }
    super::first_of(unloaded, &format!("{name} is archived"))
}
