//! Opening the state the settings name: the state directory, or the shared etcd store
//! (when built with the `etcd` feature); and what a shared store tells of its nodes.

use std::path::Path;

use super::Store;
use crate::settings::StoreSpec;

/// Which generation of a certificate is live in a shared store, which node stored it, and
/// the serial each node installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClusterView {
    pub generation: u64,
    pub renewed_by: String,
    /// Node name -> serial of the bundle it installed (lowercase hex).
    pub installed: std::collections::BTreeMap<String, String>,
}

/// The store `spec` names; `state_dir` for the file backend.
pub fn open(spec: &StoreSpec, state_dir: &Path) -> anyhow::Result<Store> {
    match spec {
        StoreSpec::Files => Ok(Store::files(state_dir)),
        #[cfg(feature = "etcd")]
        StoreSpec::Etcd(etcd) => Ok(Store::new(Box::new(super::etcd::Etcd::open(etcd)?))),
        #[cfg(not(feature = "etcd"))]
        StoreSpec::Etcd(etcd) => Err(crate::error::BadInput::new(format!(
            "{}: this certctl was built without the etcd feature; build it with \
             `--features etcd` (needs protoc)",
            etcd.describe()
        ))
        .into()),
    }
}

/// Changes of a shared store's certificates, as they happen (`certctl sync --watch`).
pub trait Watch: Send {
    /// Waits at most `limit` for a certificate to change: true when one did (every change
    /// pending is taken at once), false when the time ran out.
    fn next(&mut self, limit: std::time::Duration) -> anyhow::Result<bool>;
}
