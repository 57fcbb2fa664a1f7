//! `certctl ca show | crl | install`: the local CA's certificate, its CRL, and adding it
//! to the system's trust store (Debian's ca-certificates) after a confirmation.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, anyhow, bail};

use crate::cli::CaCommand;
use crate::durable::write_atomic;
use crate::local_ca::LocalCa;
use crate::settings::Global;
use crate::store::{Key, Store};

/// Where the CA goes in the trust store, relative to the trust root.
const TRUST_FILE: &str = "usr/local/share/ca-certificates/certctl-local-ca.crt";

pub fn run(global: &Global, command: CaCommand) -> anyhow::Result<()> {
    let (store, _) = super::open(global)?;
    match command {
        CaCommand::Show => {
            let ca = open_or_create(global, &store)?;
            if let Some((_, next)) = crate::local_ca::crl_validity(&store) {
                crate::log::info(format_args!(
                    "its CRL ({}) is valid until {}; `certctl renew` signs it again after half of that",
                    store.label(&Key::Crl),
                    crate::issue::date(next)
                ));
            }
            super::print_stdout(ca.cert_pem())
        }
        CaCommand::Crl => {
            let ca = open(global, &store)?;
            let _lock = store.lock(global.lock_wait)?;
            ca.write_crl(&store)?;
            let crl = store
                .read(&Key::Crl)?
                .with_context(|| format!("{} is missing", store.label(&Key::Crl)))?;
            super::print_stdout(&String::from_utf8_lossy(&crl))
        }
        CaCommand::Install { yes } => install(global, &store, yes),
    }
}

fn open(global: &Global, store: &Store) -> anyhow::Result<LocalCa> {
    LocalCa::open(store)?.ok_or_else(|| {
        anyhow!(
            "there is no local CA in {} yet; `certctl ca show` or `certctl request --server local NAME` creates it",
            global.state_dir.display()
        )
    })
}

fn open_or_create(global: &Global, store: &Store) -> anyhow::Result<LocalCa> {
    if let Some(ca) = LocalCa::open(store)? {
        return Ok(ca);
    }
    store.check_writable()?;
    let _lock = store.lock(global.lock_wait)?;
    LocalCa::open_or_create(store)
}

fn install(global: &Global, store: &Store, yes: bool) -> anyhow::Result<()> {
    let ca = open_or_create(global, store)?;
    // `/`, or CERTCTL_TRUST_ROOT: a prefix for tests and for images being built, where
    // update-ca-certificates is pointed at the same prefix
    let root = global.trust_root.clone();
    let target = root.join(TRUST_FILE);
    let summary = format!(
        "The local CA {} will be trusted by every program of this machine that uses the system's\n\
         trust store (curl, openssl, HAProxy's `ca-file @system-ca`...): {}",
        store.label(&Key::CaCert),
        target.display()
    );
    if !super::confirm_action(
        yes,
        "certctl ca install",
        "install it",
        "Trust the local CA on this machine?",
        &summary,
    )? {
        crate::log::info(format_args!("ca install cancelled; nothing changed"));
        return Ok(());
    }
    let dir = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&target, ca.cert_pem().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", target.display()))?;
    let mut update = Command::new("update-ca-certificates");
    if root != Path::new("/") {
        update
            .arg("--localcertsdir")
            .arg(root.join("usr/local/share/ca-certificates"))
            .arg("--etccertsdir")
            .arg(root.join("etc/ssl/certs"))
            .arg("--certsconf")
            .arg(root.join("etc/ca-certificates.conf"))
            .arg("--hooksdir")
            .arg(root.join("etc/ca-certificates/update.d"));
        for d in ["etc/ssl/certs", "etc/ca-certificates/update.d"] {
            std::fs::create_dir_all(root.join(d))
                .with_context(|| format!("creating {}", root.join(d).display()))?;
        }
        let conf = root.join("etc/ca-certificates.conf");
        if !conf.exists() {
            std::fs::write(&conf, "").with_context(|| format!("writing {}", conf.display()))?;
        }
    }
    let output = update.output().map_err(|e| {
        anyhow!(
            "running update-ca-certificates: {e}; install it with `apt-get install ca-certificates`"
        )
    })?;
    if !output.status.success() {
        bail!(
            "update-ca-certificates failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    crate::log::info(format_args!(
        "the local CA is now trusted by this machine ({})",
        target.display()
    ));
    Ok(())
}
