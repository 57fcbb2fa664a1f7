//! `certctl store copy`: every managed certificate (settings, live generation, renewal
//! records), the accounts of the CAs they use, and the local CA, from one store to another
//! through the `Backend` interface alone, so a host moves to a shared store (and back)
//! without issuing anything again. Nothing is written when the destination already manages
//! one of the names.

use anyhow::Context;

use super::{Generation, Key, Store};
use crate::types::{CertName, Server};

/// What a copy holds (or, with `dry_run`, would hold).
pub struct Copied {
    pub names: Vec<CertName>,
    pub accounts: usize,
    pub local_ca: bool,
}

/// Copies `from` into `to`; `servers` are CAs whose accounts go along besides those the
/// certificates name.
pub fn copy(from: &Store, to: &Store, servers: &[Server], dry_run: bool) -> anyhow::Result<Copied> {
    let names = from.names()?;
    let clashes: Vec<String> = names
        .iter()
        .filter(|n| to.manages(n))
        .map(|n| n.to_string())
        .collect();
    if !clashes.is_empty() {
        return Err(crate::error::BadInput::new(format!(
            "{} already manages {}; nothing was copied (delete them there first, or copy \
             into an empty store)",
            to.describe(),
            clashes.join(", ")
        ))
        .into());
    }
    let mut all_servers: Vec<Server> = servers.to_vec();
    for name in &names {
        let settings = from
            .settings(name)?
            .with_context(|| format!("{name}: its settings are missing; nothing was copied"))?;
        all_servers.push(settings.cert.server.clone());
        // every certificate is read whole before anything is written
        from.live_files(name).with_context(|| {
            format!("{name}: its live certificate cannot be read; nothing was copied")
        })?;
    }
    all_servers.sort_by(|a, b| a.url().cmp(b.url()));
    all_servers.dedup_by(|a, b| a.url() == b.url());
    let mut accounts = 0;
    for server in &all_servers {
        if from.read(&Key::Account(server.clone()))?.is_some() {
            accounts += 1;
        }
    }
    let local_ca = from.read(&Key::CaCert)?.is_some();
    let copied = Copied {
        names: names.clone(),
        accounts,
        local_ca,
    };
    if dry_run {
        return Ok(copied);
    }
    to.check_writable()?;
    for server in &all_servers {
        for key in [
            Key::Account(server.clone()),
            Key::NoReplaces(server.clone()),
            Key::RateLimit(server.clone()),
        ] {
            copy_value(from, to, &key)?;
        }
    }
    for key in [Key::CaCert, Key::CaKey, Key::CaRevoked, Key::Crl] {
        copy_value(from, to, &key)?;
    }
    for name in &names {
        let live = from.backend.live(name);
        let generation = Generation {
            key_pem: live.key_pem?,
            cert_pem: String::from_utf8_lossy(&live.cert_pem?).into_owned(),
            chain_pem: String::from_utf8_lossy(&live.chain_pem?).into_owned(),
            fullchain_pem: String::new(),
            meta: live.meta?,
        };
        let generation = Generation {
            fullchain_pem: format!("{}{}", generation.cert_pem, generation.chain_pem),
            ..generation
        };
        copy_value(from, to, &Key::Settings(name.clone()))?;
        to.backend
            .save_generation(name, &generation)
            .with_context(|| format!("{name}: copying its certificate"))?;
        for key in [
            Key::Ari(name.clone()),
            Key::Status(name.clone()),
            Key::Reissue(name.clone()),
            Key::Deployed(name.clone()),
            Key::Pushed(name.clone()),
            Key::DnsPending(name.clone()),
        ] {
            copy_value(from, to, &key)?;
        }
    }
    Ok(copied)
}

fn copy_value(from: &Store, to: &Store, key: &Key) -> anyhow::Result<()> {
    if let Some(value) = from.read(key)? {
        to.write(key, &value)
            .with_context(|| format!("copying {} to {}", from.label(key), to.label(key)))?;
    }
    Ok(())
}
