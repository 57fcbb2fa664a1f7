//! `certctl revoke NAME`: revoke the certificate at the CA that issued it (RFC 8555 §7.6),
//! then stop managing it (state directory and bundle move to <state-dir>/archive/), then run
//! `--post-hook` so the proxy drops it. Same confirmation rules as `delete`; nothing is
//! changed before the CA has revoked it, and "already revoked" lets an interrupted run finish.

use anyhow::{Context, anyhow, bail};
use clap::ValueEnum;

use crate::acme::{self, AcmeHttp};
use crate::cli::RevokeArgs;
use crate::error::BadInput;
use crate::hooks::Hook;
use crate::issue::{join, now};
use crate::settings::{self, Global};
use crate::store::Key;
use crate::types::CertName;

pub async fn run(global: &Global, args: RevokeArgs) -> anyhow::Result<()> {
    // 1. the certificate, and what revoking it needs: its settings (the CA) and its leaf
    let name = CertName::parse(&args.name).map_err(BadInput::new)?;
    if let Some(command) = &args.post_hook {
        crate::trust::check_hook("post", command)
            .map_err(|e| BadInput::new(format!("--post-hook: {e}")))?;
    }
    let (store, bundles) = super::open(global)?;
    let lineage = store
        .lineage(&name)
        .with_context(|| {
            format!(
                "{name} cannot be revoked: its stored files are damaged; \
                 `certctl delete {name}` archives it without revoking"
            )
        })?
        .ok_or_else(|| super::not_managed(global, &name))?;
    let leaf = store.live_leaf(&name).with_context(|| {
        format!("{name} cannot be revoked; `certctl delete {name}` archives it without revoking")
    })?;
    let reason = args
        .reason
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned());

    // 2. whether HAProxy needs the bundle where it is, then confirmation; answering no
    //    changes nothing
    let keep_bundle = args.keep_bundle
        || super::bundle_stays(
            global,
            &bundles,
            &name,
            args.haproxy_config.as_deref(),
            &lineage.settings.host.haproxy_sockets,
            args.yes,
        )?;
    let bundle_fate = if args.keep_bundle {
        "leave its bundle in place (--keep-bundle)"
    } else if keep_bundle {
        "leave its bundle in place (HAProxy names it)"
    } else {
        "move its bundle there too"
    };
    let intro = format!(
        "certctl will revoke this certificate at its CA (reason: {reason}), stop managing it, \
         move its files to {} and {bundle_fate}:",
        global.state_dir.join("archive").display()
    );
    let summary = super::describe(&store.inspect(&name), &bundles, now());
    if !super::confirm(args.yes, "revoke", &name, &format!("{intro}\n{summary}"))? {
        crate::log::info(format_args!("revoke cancelled; nothing changed"));
        return Ok(());
    }

    // 3. under the lock, and still the same certificate (not renewed or deleted meanwhile)
    let _lock = store.lock(global.lock_wait)?;
    let _cert_lock = super::lock_cert(global, &store, &name)?;
    match store.live_leaf(&name) {
        Ok(current) if current == leaf => {}
        _ => bail!(
            "{name} was renewed or removed by another certctl while this one waited; \
             nothing was revoked; run `certctl revoke {name}` again"
        ),
    }

    // 4. revoke at the CA that issued it: the local CA adds the serial to its CRL; an ACME
    //    CA is asked with the account that ordered it
    let server = &lineage.settings.cert.server;
    if server.is_local() {
        let ca = crate::local_ca::LocalCa::open(&store)?.ok_or_else(|| {
            anyhow!(
                "the local CA of {} is missing; nothing was changed",
                global.state_dir.display()
            )
        })?;
        ca.revoke(&store, &lineage.info.serial, args.reason as u8)
            .with_context(|| format!("{name}: not revoked; nothing was changed"))?;
        crate::log::info(format_args!(
            "{name}: revoked by the local CA (serial {}); the CRL {} lists it",
            lineage.info.serial,
            store.label(&Key::Crl)
        ));
    } else {
        let credentials = store.account(server)?.ok_or_else(|| {
            anyhow!(
                "no ACME account for {server} is stored in {}, and only the account that ordered \
                 {name} can revoke it here; nothing was changed (`certctl delete {name}` stops \
                 managing it without revoking)",
                global.state_dir.display()
            )
        })?;
        let ca_bundle = lineage
            .settings
            .host
            .ca_bundle
            .as_deref()
            .or(global.ca_bundle.as_deref());
        let http = AcmeHttp::new(ca_bundle, global.http_timeout)?;
        let revoked_now = async {
            let account = acme::restore_account(&http, server, credentials).await?;
            acme::revoke(&account, server, &leaf, args.reason).await
        }
        .await
        .with_context(|| format!("{name}: not revoked; nothing was changed"))?;
        crate::log::info(format_args!(
            "{name}: {} at {server} (serial {})",
            if revoked_now {
                "revoked"
            } else {
                "already revoked"
            },
            lineage.info.serial
        ));
    }

    // 5. stop managing it; the files go to the archive, and the bundle too unless HAProxy
    //    names it
    let folder = super::archive(&store, &bundles, &name, !keep_bundle).with_context(|| {
        format!(
            "{name} is revoked at the CA, but its files could not be archived; \
                 run `certctl revoke {name} --yes` again to finish"
        )
    })?;
    crate::log::info(format_args!(
        "{name}: no longer managed; its files{} are in {}",
        if keep_bundle { "" } else { " and bundle" },
        folder
    ));

    // 6. the running proxies stop serving it (unless its bundle stays for them)
    let unloaded = if keep_bundle {
        Vec::new()
    } else {
        crate::deploy::remove_from_haproxy(
            &name,
            &bundles.path(&name),
            &lineage.settings.host.haproxy_sockets,
            global.haproxy_timeout,
        )
    };

    // 7. the post-hook, so the proxy drops it
    if let Some(command) = &args.post_hook {
        let hook = Hook {
            kind: "post",
            command,
            env: vec![
                ("CERTCTL_NAME", name.to_string()),
                ("CERTCTL_DOMAINS", join(&lineage.settings.cert.domains)),
                ("CERTCTL_SERIAL", lineage.info.serial.clone()),
                ("CERTCTL_BUNDLE", bundles.path(&name).display().to_string()),
                ("CERTCTL_ARCHIVE", folder.clone()),
            ],
        };
        hook.run(settings::DEFAULT_HOOK_TIMEOUT)
            .await
            .with_context(|| format!("{name} is revoked and archived"))?;
    }
    super::first_of(unloaded, &format!("{name} is revoked and archived"))
}
