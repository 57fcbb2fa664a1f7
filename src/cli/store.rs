//! The shared store's commands: `store init-key`, `store copy`, and `sync [--watch]`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Make a store key: the file that seals private keys and account keys before they
    /// leave a node for the shared store (`store_key_file` in the config file).
    ///
    /// The file is created 0600 and never overwritten; copy it to every node (scp), as is.
    ///
    /// Example: certctl store init-key --out /etc/certctl/store.key
    InitKey(InitKeyArgs),

    /// Copy every certificate, its settings and records, the accounts and the local CA
    /// from one store to another, without issuing anything again.
    ///
    /// FROM and TO are a state directory or `etcd://HOST:PORT,.../PREFIX` (the etcd_* and
    /// store_key_file keys of the config file apply). Nothing is written when TO already
    /// manages one of the names.
    ///
    /// Example: certctl store copy --from /var/lib/certctl --to etcd://10.0.0.1:2379/certctl --dry-run
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct InitKeyArgs {
    /// Where to write the key (refused when the file exists)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to read: a state directory or etcd://HOST:PORT,.../PREFIX
    #[arg(long, value_name = "STORE")]
    pub from: String,
    /// The store to write: a state directory or etcd://HOST:PORT,.../PREFIX
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// Say what would be copied; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Keep watching the store and install each change within a second (for a service)
    #[arg(long)]
    pub watch: bool,
}
