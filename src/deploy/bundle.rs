//! Bundles in the proxy's ssl directory (`<ssl-dir>/<name>.pem`: leaf, intermediates, key;
//! 0600): written atomically, only when their content changes, and stamped in the state so a
//! cron run tells a current bundle with one stat. A bundle is what this host serves, not
//! state: every host writes its own from the stored certificate.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::durable::{
    Links, MAX_INPUT_FILE, SECRET_MODE, read_regular, remove_temp_files_in, write_atomic,
};
use crate::store::Store;
use crate::types::CertName;

/// The ssl directories of this host: the default one, and the one stored with each
/// certificate that was requested with another `--ssl-dir`.
pub struct Bundles {
    ssl_dir: PathBuf,
    dirs: HashMap<CertName, PathBuf>,
}

/// What this host recorded when it wrote a bundle: for which certificate (serial) and which
/// file (inode, size, mtime), so that an unchanged file is recognised with one stat.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Stamp {
    serial: String,
    file: String,
}

impl Bundles {
    pub fn new(ssl_dir: &Path) -> Self {
        Self {
            ssl_dir: ssl_dir.to_path_buf(),
            dirs: HashMap::new(),
        }
    }

    /// The bundle of `name` lives in `dir` (its stored ssl directory) rather than the default.
    pub fn set_dir(&mut self, name: &CertName, dir: &Path) {
        if dir != self.ssl_dir {
            self.dirs.insert(name.clone(), dir.to_path_buf());
        } else {
            self.dirs.remove(name);
        }
    }

    /// The ssl directory of `name`.
    pub fn dir(&self, name: &CertName) -> &Path {
        self.dirs.get(name).unwrap_or(&self.ssl_dir)
    }

    pub fn path(&self, name: &CertName) -> PathBuf {
        self.dir(name).join(format!("{name}.pem"))
    }

    /// Every ssl directory in use: the default first.
    fn all_dirs(&self) -> Vec<&Path> {
        let mut all = vec![self.ssl_dir.as_path()];
        for dir in self.dirs.values() {
            if !all.contains(&dir.as_path()) {
                all.push(dir);
            }
        }
        all
    }

    /// Creates the ssl directories when missing and proves they can be written, so that no
    /// order is placed for a certificate that could not be installed.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        for dir in self.all_dirs() {
            crate::trust::check(dir, "ssl directory", crate::trust::Rule::NotWorldWritable)
                .map_err(crate::error::BadInput::new)?;
            crate::durable::check_dir_writable(dir, "ssl directory", "--ssl-dir")?;
        }
        Ok(())
    }

    /// Temp files a killed run left in the ssl directories (call while holding the lock).
    pub fn remove_stale_temp_files(&self) {
        for dir in self.all_dirs() {
            remove_temp_files_in(dir);
        }
    }

    /// Writes the bundle of `name` (serial `serial`) atomically unless it already holds
    /// `content`; returns whether the file changed.
    pub fn write(
        &self,
        store: &Store,
        name: &CertName,
        serial: &str,
        content: &str,
    ) -> anyhow::Result<bool> {
        let path = self.path(name);
        let changed = match read_bundle(&path)? {
            Some(old) => old != content.as_bytes(),
            None => true,
        };
        if changed {
            write_atomic(&path, content.as_bytes(), SECRET_MODE)
                .with_context(|| format!("writing the bundle {}", path.display()))?;
        }
        // best effort: without a stamp the full comparison decides
        if let Some(file) = file_stamp(&path) {
            let stamp = Stamp {
                serial: serial.to_owned(),
                file,
            };
            if let Ok(json) = serde_json::to_vec(&stamp) {
                let _ = store.save_deployed(name, &json);
            }
        }
        Ok(changed)
    }

    /// Whether the bundle of `name` is the very file written for its live certificate
    /// (`serial`), by its stamp alone: false means "compare the content".
    pub fn stamped(&self, store: &Store, name: &CertName, serial: &str) -> bool {
        let Some(recorded) = store
            .deployed(name)
            .and_then(|b| serde_json::from_slice::<Stamp>(&b).ok())
        else {
            return false;
        };
        recorded.serial == serial && Some(recorded.file) == file_stamp(&self.path(name))
    }

    /// Whether the bundle of `name` holds `expected`.
    pub fn holds(&self, name: &CertName, expected: &str) -> bool {
        read_bundle(&self.path(name))
            .ok()
            .flatten()
            .is_some_and(|actual| actual == expected.as_bytes())
    }

    pub fn exists(&self, name: &CertName) -> bool {
        fs::symlink_metadata(self.path(name)).is_ok_and(|m| m.is_file())
    }

    /// Reads and removes the bundle of `name` (None when there is none): it goes into the
    /// archive with the certificate's state. A symlink in its place is removed, unread.
    pub fn take(&self, name: &CertName) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.path(name);
        let bytes = match read_bundle(&path)? {
            Some(bytes) => Some(bytes),
            None if fs::symlink_metadata(&path).is_ok() => None,
            None => return Ok(None),
        };
        fs::remove_file(&path)
            .and_then(|()| crate::durable::sync_dir(self.dir(name)))
            .with_context(|| format!("removing the bundle {}", path.display()))?;
        Ok(bytes)
    }

    /// Puts back a bundle `take` removed (an archive that failed).
    pub fn put_back(&self, name: &CertName, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(name);
        write_atomic(&path, bytes, SECRET_MODE)
            .with_context(|| format!("writing the bundle {} back", path.display()))
    }
}

/// The bytes of the bundle at `path`: None when there is none, or a symlink stands there
/// (never read through: whoever can write the ssl directory may have planted it; a write
/// replaces it). Anything else that is not a regular file (a directory, a pipe, a device)
/// is an error, found without blocking.
fn read_bundle(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match read_regular(path, MAX_INPUT_FILE, Links::Refuse) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(None),
        Err(e) => Err(e).with_context(|| {
            format!(
                "the bundle {} cannot be replaced; move it away",
                path.display()
            )
        }),
    }
}

/// Identity of a file as written: inode, size and modification time (ns).
fn file_stamp(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).ok()?;
    Some(format!(
        "{} {} {}.{:09}",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}
