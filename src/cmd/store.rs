//! `certctl store init-key` and `certctl store copy`: the shared store's key, and moving
//! state between a state directory and an etcd store (either way).

use std::path::Path;

use anyhow::Context;

use crate::cli::store::{CopyArgs, StoreCommand};
use crate::error::BadInput;
use crate::settings::{ConfigFile, Global, StoreSpec};
use crate::store::Store;

pub fn run(global: &Global, config: &ConfigFile, command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::InitKey(args) => init_key(&args.out),
        StoreCommand::Copy(args) => copy(global, config, args),
    }
}

/// Writes a new store key into `out`, 0600, never over an existing file.
fn init_key(out: &Path) -> anyhow::Result<()> {
    #[cfg(feature = "etcd")]
    {
        let key = crate::store::etcd::seal::new_key()?;
        crate::durable::write_new(out, key.as_bytes(), crate::durable::SECRET_MODE).map_err(
            |e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::Error::from(BadInput::new(format!(
                        "{} exists; a store key is never overwritten (the store's secrets would \
                         be lost): move it away first, or give another --out",
                        out.display()
                    )))
                } else {
                    anyhow::anyhow!("writing the store key {}: {e}", out.display())
                }
            },
        )?;
        crate::log::info(format_args!(
            "store key written to {} (0600); copy this same file to every node and name it \
             in store_key_file",
            out.display()
        ));
        Ok(())
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = out;
        Err(BadInput::new("this certctl was built without the etcd feature").into())
    }
}

/// A side of a copy: `etcd://...` (with the config file's etcd keys) or a state directory.
fn side(raw: &str, flag: &str, config: &ConfigFile) -> anyhow::Result<Store> {
    if raw.starts_with("etcd://") {
        let spec =
            StoreSpec::parse(raw, config).map_err(|e| BadInput::new(format!("{flag} {e}")))?;
        return crate::store::open(&spec, Path::new("."));
    }
    if raw.is_empty() || raw.contains("://") {
        return Err(BadInput::new(format!(
            "{flag} {raw:?} is neither a state directory nor etcd://HOST:PORT,.../PREFIX"
        ))
        .into());
    }
    let dir = Path::new(raw);
    let store = Store::files(dir);
    store.check_trusted().map_err(BadInput::new)?;
    Ok(store)
}

fn copy(global: &Global, config: &ConfigFile, args: CopyArgs) -> anyhow::Result<()> {
    let from = side(&args.from, "--from", config)?;
    let to = side(&args.to, "--to", config)?;
    if !Path::new(&args.from).is_dir() && !args.from.starts_with("etcd://") {
        return Err(BadInput::new(format!("--from {}: no such state directory", args.from)).into());
    }
    // both sides locked: nothing changes under the copy
    let _from_lock = from.lock(global.lock_wait)?;
    let _to_lock = if args.dry_run {
        None
    } else {
        to.check_writable()?;
        Some(to.lock(global.lock_wait)?)
    };
    let copied = crate::store::copy(
        &from,
        &to,
        std::slice::from_ref(&global.server),
        args.dry_run,
    )
    .with_context(|| format!("copying {} to {}", from.describe(), to.describe()))?;
    let names: Vec<String> = copied.names.iter().map(|n| n.to_string()).collect();
    let verb = if args.dry_run { "would copy" } else { "copied" };
    crate::log::info(format_args!(
        "{}{verb} {} certificate(s) ({}), {} account(s){} from {} to {}",
        if args.dry_run { "dry run: " } else { "" },
        names.len(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        },
        copied.accounts,
        if copied.local_ca {
            " and the local CA"
        } else {
            ""
        },
        from.describe(),
        to.describe()
    ));
    Ok(())
}
