//! The file backend's cheap versions (one stat of a certificate's directory and one of its
//! settings.json, relative to `certs/` opened once: every atomic write renames inside the
//! directory, an edit in place changes the file) and where this host's index of
//! next-attention times is kept. Reads no content.

use std::hash::{Hash, Hasher};

use super::Files;
use crate::durable::{Links, SECRET_MODE, read_regular, write_atomic, write_atomic_unsynced};
use crate::stat::{Dir, Ident};
use crate::store::Version;

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
    /// The certificates' versions, each from two `stat`s relative to `certs/` opened once.
    pub(super) fn cert_versions(&self) -> Option<CertVersions> {
        Some(CertVersions {
            certs: Dir::open(&self.state_dir.join("certs")).ok()?,
        })
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

/// `certs/` opened once: a certificate's version is the identity of its directory (every
/// atomic write renames inside it) and of its settings.json (an edit in place).
pub(super) struct CertVersions {
    certs: Dir,
}

impl crate::store::Versions for CertVersions {
    fn of(&self, name: &str) -> Option<Version> {
        let mut relative = [0u8; crate::types::MAX_CERT_NAME + 16];
        let path = relative.get_mut(..name.len() + 14)?;
        path[..name.len()].copy_from_slice(name.as_bytes());
        path[name.len()..].copy_from_slice(b"/settings.json");
        let mut hasher = std::hash::DefaultHasher::new();
        let dir = ident_into(self.certs.ident(&path[..name.len()]), &mut hasher);
        let settings = ident_into(self.certs.ident(path), &mut hasher);
        Some(Version {
            value: hasher.finish(),
            changed_ns: dir.max(settings),
        })
    }
}
