//! `certctl concat [NAME...]`: rebuild bundles (leaf, intermediates, key) in the ssl
//! directory from the stored files, atomically and only where the content differs, so an
//! unchanged bundle keeps its modification time. A key that does not match its certificate
//! is an error for that name and never a bundle; the others still get theirs (exit 1 at the end).

use anyhow::{Context, anyhow};

use crate::cli::ConcatArgs;
use crate::error::BadInput;
use crate::pem;
use crate::settings::Global;
use crate::store::Store;
use crate::types::CertName;

pub fn run(global: &Global, args: ConcatArgs) -> anyhow::Result<()> {
    let (store, bundles) = super::open(global)?;

    // --stdout NAME: one bundle on stdout, nothing written; no lock needed, since every file
    // is read from one generation directory
    if let Some(raw) = &args.stdout {
        let name = CertName::parse(raw).map_err(BadInput::new)?;
        if !store.manages(&name) {
            return Err(super::not_managed(global, &name));
        }
        let (bundle, _) = build(&store, &name).with_context(|| format!("{name}"))?;
        return crate::output::print_secret(&bundle);
    }

    // 1. the names: those given, each managed (checked before anything is written), or all
    let names = super::selected_names(global, &store, &args.names)?;
    if names.is_empty() {
        return Ok(());
    }

    // 2. nobody else writes meanwhile
    let _lock = super::lock_for_writing(global, &store, &bundles)?;

    // 3. every bundle; one failure does not stop the others
    let mut failed = Vec::new();
    for name in &names {
        let path = bundles.path(name);
        let written = build(&store, name)
            .and_then(|(bundle, serial)| bundles.write(&store, name, &serial, &bundle));
        match written {
            Ok(true) => {
                crate::log::info(format_args!("{name}: bundle written: {}", path.display()))
            }
            Ok(false) => crate::log::verbose(format_args!("{name}: bundle unchanged")),
            Err(e) => {
                crate::log::error(format_args!("{name}: {e:#}"));
                failed.push(name.as_str());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "{} of {} bundles not rebuilt ({}); their bundles, if any, are unchanged",
            failed.len(),
            names.len(),
            failed.join(", ")
        ))
    }
}

/// The bundle of `name` from its stored files, once its key is proven to fit its
/// certificate and its chain to link up, with the certificate's serial.
fn build(store: &Store, name: &CertName) -> anyhow::Result<(String, String)> {
    let files = store.live_files(name)?;
    let local = store
        .settings(name)
        .ok()
        .flatten()
        .is_some_and(|s| s.cert.server.is_local());
    let expected = pem::Expected {
        issuer_in_chain: !local,
        ..Default::default()
    };
    pem::check_chain(&files.chain, &files.key_pem, expected).map_err(|e| {
        anyhow!(
            "{e:#}: {} with {} is not a bundle to serve; no bundle written (put the matching \
             files back, or get a new certificate with `certctl renew --force {name}`)",
            files.cert_label,
            files.key_label
        )
    })?;
    let serial = pem::cert_info(&files.chain.leaf)?.serial;
    Ok((pem::bundle(&files.chain, &files.key_pem), serial))
}
