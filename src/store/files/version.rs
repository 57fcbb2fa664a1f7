//! The file backend's cheap versions (one stat of a certificate's directory and one of its
//! settings.json: every atomic write renames inside the directory, an edit in place changes
//! the file) and where this host's index of next-attention times is kept. Reads no content.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Files;
use crate::durable::{Links, SECRET_MODE, read_regular, write_atomic};
use crate::store::Version;
use crate::types::CertName;

/// The index file: one line per certificate, a few hundred thousand at most.
const INDEX_FILE: &str = "renew-index";
const MAX_INDEX: u64 = 64 << 20;

/// Adds `path`'s identity (inode, size, times) to `hasher`; returns its newest time (ns).
/// A missing file counts as such, so that creating it changes the version.
fn stat_into(path: &Path, hasher: &mut impl Hasher) -> i64 {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let (mtime, ctime) = (
                meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            );
            (meta.ino(), meta.len(), mtime, ctime, meta.mode()).hash(hasher);
            mtime.max(ctime)
        }
        Err(e) => {
            e.kind().hash(hasher);
            0
        }
    }
}

impl Files {
    pub(super) fn cert_version(&self, name: &CertName) -> Option<Version> {
        let dir = self.cert_dir(name);
        let mut hasher = std::hash::DefaultHasher::new();
        let changed =
            stat_into(&dir, &mut hasher).max(stat_into(&dir.join("settings.json"), &mut hasher));
        Some(Version {
            value: hasher.finish(),
            changed_ns: changed,
        })
    }

    pub(super) fn certs_version(&self) -> Option<Version> {
        let mut hasher = std::hash::DefaultHasher::new();
        let changed = stat_into(&self.state_dir.join("certs"), &mut hasher);
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
}
