//! The file backend's cheap versions (one stat of a certificate's directory and one of its
//! settings.json, relative to `certs/` opened once: every atomic write renames inside the
//! directory, an edit in place changes the file) and where this host's index of
//! next-attention times is kept. Reads no content.

use std::hash::{Hash, Hasher};

use super::Files;
use crate::durable::{Links, SECRET_MODE, read_regular, write_atomic, write_atomic_unsynced};
use crate::stat::{Dir, Ident};
use crate::store::Version;
use crate::types::CertName;

/// The index file: one line per certificate, a few hundred thousand at most.
const INDEX_FILE: &str = "renew-index";
const MAX_INDEX: u64 = 64 << 20;
/// `list`'s cache: what it shows of each certificate, a few hundred bytes each.
pub(super) const LIST_CACHE_FILE: &str = "list-cache";
const MAX_CACHE: u64 = 512 << 20;

/// Adds a file's identity (or why there is none: a missing file counts as such, so that
/// creating it changes the version) to `hasher`; returns its newest time (ns).
fn ident_into(ident: std::io::Result<Ident>, hasher: &mut impl Hasher) -> i64 {
    match ident {
        Ok(ident) => {
            ident.hash_into(hasher);
            ident.changed_ns()
        }
        Err(e) => {
            e.kind().hash(hasher);
            0
        }
    }
}

impl Files {
    /// The versions of `names`, each from two `stat`s relative to `certs/` opened once.
    pub(super) fn cert_versions(&self, names: &[CertName]) -> Vec<Option<Version>> {
        let certs = Dir::open(&self.state_dir.join("certs"));
        let mut relative = Vec::with_capacity(256);
        names
            .iter()
            .map(|name| {
                let certs = certs.as_ref().ok()?;
                let mut hasher = std::hash::DefaultHasher::new();
                relative.clear();
                relative.extend_from_slice(name.as_str().as_bytes());
                let dir = ident_into(certs.ident(&relative), &mut hasher);
                relative.extend_from_slice(b"/settings.json");
                let settings = ident_into(certs.ident(&relative), &mut hasher);
                Some(Version {
                    value: hasher.finish(),
                    changed_ns: dir.max(settings),
                })
            })
            .collect()
    }

    pub(super) fn certs_version(&self) -> Option<Version> {
        let mut hasher = std::hash::DefaultHasher::new();
        let changed = ident_into(Ident::of(&self.state_dir.join("certs")), &mut hasher);
        Some(Version {
            value: hasher.finish(),
            changed_ns: changed,
        })
    }

    pub(super) fn read_index(&self) -> Option<Vec<u8>> {
        read_regular(&self.state_dir.join(INDEX_FILE), MAX_INDEX, Links::Refuse).ok()
    }

    pub(super) fn write_index(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.state_dir.join(INDEX_FILE);
        write_atomic(&path, bytes, SECRET_MODE)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    }

    pub(super) fn read_cache(&self, file: &str) -> Option<Vec<u8>> {
        read_regular(&self.state_dir.join(file), MAX_CACHE, Links::Refuse).ok()
    }

    /// A cache is written without fsync: lost or cut in a crash, it is rebuilt (its
    /// reader checks it whole), so it never costs a flush.
    pub(super) fn write_cache(&self, file: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.state_dir.join(file);
        write_atomic_unsynced(&path, bytes, SECRET_MODE)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    }
}
