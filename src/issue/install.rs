//! Installing a certificate on this host: stored as the live generation with its settings,
//! then its bundle written; and telling whether a bundle is the stored certificate's.

use anyhow::Context;

use crate::deploy::Bundles;
use crate::deploy::outputs::Output;
use crate::pem;
use crate::settings::{CertSettings, Outputs};
use crate::store::Store;
use crate::types::CertName;

use super::Issued;

/// Stores the settings, then the new certificate (one atomic switch), then writes its
/// bundle. Settings first: a run stopped in between leaves settings that ask for more than
/// the live certificate holds (or no certificate at all), which the next `renew` completes
/// and `request` redoes; never a certificate whose settings are lost.
pub fn install(
    store: &Store,
    bundles: &Bundles,
    name: &CertName,
    wanted: &CertSettings,
    issued: &Issued,
) -> anyhow::Result<()> {
    // unchanged settings (every plain renewal) are not written again: two fsyncs saved
    if store.settings(name).ok().flatten().as_ref() != Some(wanted) {
        store.save_settings(name, wanted)?;
    }
    store.save_generation(name, &issued.key_pem, &issued.chain, &issued.info)?;
    if store.reissue(name).is_some() {
        store.save_reissue(name, None)?;
    }
    write_bundle(store, bundles, name, issued)?;
    write_outputs(&wanted.host.outputs, issued)
}

/// The output files asked for (`--cert-file` and the others), each written atomically.
pub fn write_outputs(outputs: &Outputs, issued: &Issued) -> anyhow::Result<()> {
    if outputs.is_empty() {
        return Ok(());
    }
    let chain = issued.chain.chain_pem();
    let fullchain = issued.chain.fullchain_pem();
    let leaf = issued.chain.leaf_pem();
    let files: Vec<Output<'_>> = [
        (&outputs.cert_file, leaf.as_bytes(), false),
        (&outputs.key_file, issued.key_pem.as_bytes(), true),
        (&outputs.chain_file, chain.as_bytes(), false),
        (&outputs.fullchain_file, fullchain.as_bytes(), false),
    ]
    .into_iter()
    .filter_map(|(path, content, secret)| {
        path.as_deref().map(|path| Output {
            path,
            content,
            secret,
        })
    })
    .collect();
    crate::deploy::outputs::write(&files, outputs.owner.as_deref(), outputs.mode)
}

/// Writes the bundle of `name` again from its stored files, once they pass every check an
/// issued certificate passes (names, validity, key, chain); otherwise nothing is written.
pub(super) fn reinstall(
    store: &Store,
    bundles: &Bundles,
    name: &CertName,
    settings: &CertSettings,
) -> anyhow::Result<Issued> {
    let files = store.live_files(name)?;
    let names: Vec<String> = settings
        .cert
        .domains
        .iter()
        .map(|d| d.to_string())
        .collect();
    let expected = pem::Expected {
        names: Some(&names),
        now: Some(super::now()),
        issuer_in_chain: !settings.cert.server.is_local(),
    };
    pem::check_chain(&files.chain, &files.key_pem, expected).with_context(|| {
        format!(
            "the stored generation ({} with {}) cannot be installed; `certctl renew --force {name}` \
             gets a new certificate",
            files.cert_label, files.key_label
        )
    })?;
    let issued = Issued {
        info: pem::cert_info(&files.chain.leaf)?,
        key_pem: files.key_pem,
        chain: files.chain,
    };
    write_bundle(store, bundles, name, &issued)?;
    Ok(issued)
}

/// Whether the bundle of `name` holds its live generation. False when a run was stopped
/// between storing a new certificate and writing its bundle; true when the live files
/// cannot be read (a damaged entry is for `list` to report, not a reason to write).
pub fn bundle_is_current(store: &Store, bundles: &Bundles, name: &CertName, serial: &str) -> bool {
    if bundles.stamped(store, name, serial) {
        return true;
    }
    let Ok(files) = store.live_files(name) else {
        return true;
    };
    bundles.holds(name, &pem::bundle(&files.chain, &files.key_pem))
}

/// Writes the bundle of `issued` (leaf, intermediates, key) for `name`, stamped with its
/// serial.
fn write_bundle(
    store: &Store,
    bundles: &Bundles,
    name: &CertName,
    issued: &Issued,
) -> anyhow::Result<bool> {
    let bundle = pem::bundle(&issued.chain, &issued.key_pem);
    bundles.write(store, name, &issued.info.serial, &bundle)
}
