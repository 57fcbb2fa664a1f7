//! What the state tells cheaply, for caches kept beside it (renew's index, list's cache):
//! the versions of certificates and of their set, and where those caches are stored.
//! A backend without cheap versions keeps no cache (every default is None).

use super::Store;
use crate::types::CertName;

/// `Backend::version` of many certificates through one handle (`Backend::versions`).
pub trait Versions: Sync {
    /// The version of the certificate named `name` (a name the caller checked is one:
    /// `CertName::is_valid`); None when it cannot be told.
    fn of(&self, name: &str) -> Option<Version>;
}

/// A backend's cheap account of a stored value (`Backend::version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Equal values: nothing written in between.
    pub value: u64,
    /// When it last changed (ns since the epoch): a version taken in the same clock tick as
    /// a write may not show that write, so a recent one is not trusted.
    pub changed_ns: i64,
}

impl Store {
    pub fn version(&self, name: &CertName) -> Option<Version> {
        self.backend.version(name)
    }

    pub fn versions(&self) -> Option<Box<dyn Versions + '_>> {
        self.backend.versions()
    }
    pub fn names_version(&self) -> Option<Version> {
        self.backend.names_version()
    }

    pub fn index(&self) -> Option<Vec<u8>> {
        self.backend.index()
    }

    pub fn save_index(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.backend.save_index(bytes)
    }

    pub fn list_cache(&self) -> Option<Vec<u8>> {
        self.backend.list_cache()
    }

    pub fn save_list_cache(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.backend.save_list_cache(bytes)
    }
}
