//! `certctl reconfigure NAME [options]`: change a certificate's stored settings without a
//! new order. Options not given keep their stored values; the change is shown before it is
//! saved; `--dry-run` saves nothing. A new key type, CA, profile or preferred chain makes the
//! certificate due at the next renew; a new ssl dir gets the bundle written there at once.

use crate::cli::{ReconfigureArgs, RequestArgs};
use crate::error::BadInput;
use crate::pem;
use crate::settings::{ConfigFile, Global, RequestSettings, changes, keep_stored};
use crate::types::CertName;

pub async fn run(
    global: &Global,
    config: &ConfigFile,
    args: ReconfigureArgs,
) -> anyhow::Result<()> {
    // 1. the certificate and its stored settings
    let name = CertName::parse(&args.name).map_err(BadInput::new)?;
    let (store, mut bundles) = super::open(global)?;
    if !store.manages(&name) {
        return Err(super::not_managed(global, &name));
    }
    let Some(stored) = store.settings(&name)? else {
        return Err(super::not_managed(global, &name));
    };

    // 2. the new settings: what request would resolve for the same names, with every
    //    option not given now kept as stored
    let as_request = RequestArgs {
        domains: stored.cert.domains.iter().map(|d| d.to_string()).collect(),
        name: Some(name.to_string()),
        email: None,
        agree_tos: false,
        key_type: args.key_type,
        challenge: args.challenge,
        http_addr: args.http_addr,
        webroot: args.webroot,
        dns: args.dns,
        tls_alpn: args.tls_alpn,
        ca: args.ca,
        eab: Default::default(),
        hooks: args.hooks,
        haproxy_sockets: args.haproxy_sockets,
        days: None,
        client_auth: false,
        force: false,
        yes: false,
        json: false,
        outputs: args.outputs,
    };
    let global_for_names = Global {
        server: if global.given.server {
            global.server.clone()
        } else {
            stored.cert.server.clone()
        },
        ..global.clone()
    };
    let mut wanted = RequestSettings::resolve(&global_for_names, config, &as_request)?.wanted;
    keep_stored(&mut wanted, Some(&stored), global, &as_request)?;
    if let Some(owner) = &wanted.host.outputs.owner {
        crate::deploy::outputs::resolve_owner(owner)
            .map_err(|e| BadInput::new(format!("{e:#}")))?;
    }

    // 3. what changes
    let changed = changes(&stored, &wanted);
    if changed.is_empty() {
        crate::log::info(format_args!("{name}: nothing to change"));
        return Ok(());
    }
    // a new profile must be one the CA offers (its directory says), before it is saved
    if let (Some(profile), true) = (
        &wanted.cert.profile,
        changed.iter().any(|c| c.what == "profile"),
    ) {
        let server = &wanted.cert.server;
        let http =
            crate::acme::AcmeHttp::new(wanted.host.ca_bundle.as_deref(), global.http_timeout)?;
        let meta = crate::acme::directory_meta(&http, server).await?;
        crate::acme::check_profile(server, profile, &meta.profiles, false)?;
    }
    for c in &changed {
        crate::log::info(format_args!("{name}: {}: {} -> {}", c.what, c.old, c.new));
    }
    let reissue: Vec<&str> = changed
        .iter()
        .filter(|c| {
            matches!(
                c.what,
                "key type" | "CA" | "days" | "profile" | "preferred chain"
            )
        })
        .map(|c| c.what)
        .collect();
    if args.dry_run {
        crate::log::info(format_args!("{name}: dry run; nothing saved"));
        return Ok(());
    }

    // 4. saved under the lock; the bundle follows a new ssl dir now, a new key or CA
    //    waits for the next renew
    if let Some(dir) = &wanted.host.ssl_dir {
        bundles.set_dir(&name, dir);
    }
    let _lock = super::lock_for_writing(global, &store, &bundles)?;
    let _cert_lock = super::lock_cert(global, &store, &name)?;
    store.save_settings(&name, &wanted)?;
    if stored.host.ssl_dir != wanted.host.ssl_dir {
        let files = store.live_files(&name)?;
        let info = pem::cert_info(&files.chain.leaf)?;
        bundles.write(
            &store,
            &name,
            &info.serial,
            &pem::bundle(&files.chain, &files.key_pem),
        )?;
        crate::log::info(format_args!(
            "{name}: bundle written to {} (the old one stays until you remove it)",
            bundles.path(&name).display()
        ));
    }
    if stored.host.outputs != wanted.host.outputs && !wanted.host.outputs.is_empty() {
        let files = store.live_files(&name)?;
        let issued = crate::issue::Issued {
            info: pem::cert_info(&files.chain.leaf)?,
            key_pem: files.key_pem,
            chain: files.chain,
        };
        crate::issue::write_outputs(&wanted.host.outputs, &issued)?;
        crate::log::info(format_args!("{name}: output files written"));
    }
    if !reissue.is_empty() {
        let why = format!("reconfigured: {}", reissue.join(", "));
        store.save_reissue(&name, Some(&why))?;
        crate::log::info(format_args!(
            "{name}: a new certificate is needed ({}); the next `certctl renew` issues it",
            reissue.join(", ")
        ));
    }
    crate::log::info(format_args!("{name}: settings saved"));
    Ok(())
}
