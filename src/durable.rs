//! Careful file I/O shared by the state's file backend, deployment and settings: durable
//! writes (temp file in the same directory, fsync, rename, fsync the directory), files
//! created exclusively with their mode set before any byte is written, leftovers of killed
//! runs marked for cleanup, and bounded reads of regular files. Knows nothing of contents.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, anyhow};

/// Marks certctl's temporary files; the lock holder removes any it finds (a killed run's).
pub const TMP_MARK: &str = ".certctl-tmp";
pub const DIR_MODE: u32 = 0o700;
pub const SECRET_MODE: u32 = 0o600;
pub const PUBLIC_MODE: u32 = 0o644;

/// Removes every entry of `dir` whose name carries certctl's temp mark.
pub fn remove_temp_files_in(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().contains(TMP_MARK) {
            let path = entry.path();
            let _ = if path.is_dir() && !path.is_symlink() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// Proves `dir` can be written (creating it 0700 when missing) with a probe file.
pub fn check_dir_writable(dir: &Path, what: &str, flag: &str) -> anyhow::Result<()> {
    create_dir(dir)
        .with_context(|| format!("creating the {what} {} (set {flag})", dir.display()))?;
    let probe = dir.join(format!(".probe{TMP_MARK}-{}", std::process::id()));
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(SECRET_MODE)
        .open(&probe);
    let _ = fs::remove_file(&probe);
    result.map_err(|e| {
        anyhow!(
            "the {what} {} cannot be written: {e}; fix its permissions or choose another with {flag}",
            dir.display()
        )
    })?;
    Ok(())
}

/// Creates `dir` 0700, and any missing parent 0700 too (whatever the umask: a parent made
/// 0777 under `umask 000` would let anyone swap the directories beneath it).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

/// Creates `path` (which must not exist), writes and fsyncs it.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(data)?;
    file.sync_all()
}

/// Replaces `path` with `data` atomically: temp file in the same directory, fsync, rename,
/// fsync the directory. On any error the old file stays and the temp file is removed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}{TMP_MARK}-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = write_new(&tmp, data, mode)
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Largest config file or `--ca-bundle` read: both are a few kilobytes; this keeps a
/// mistaken path (`/dev/zero`, a disk image) from eating the memory.
pub const MAX_INPUT_FILE: u64 = 1 << 20;

/// Reads a regular file of at most `MAX_INPUT_FILE` bytes; anything else is an error that
/// says what the path is instead.
pub fn read_small_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(Error::new(ErrorKind::InvalidInput, "it is a directory"));
    }
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "it is not a regular file (a device, pipe or socket)",
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_FILE {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("it is larger than {} KiB", MAX_INPUT_FILE / 1024),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pem");
        write_atomic(&path, b"one", SECRET_MODE).unwrap();
        write_atomic(&path, b"two", SECRET_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn failed_atomic_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pem");
        write_atomic(&path, b"old", SECRET_MODE).unwrap();
        // a directory in the way of the rename makes it fail
        let blocked = dir.path().join("b.pem");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new", SECRET_MODE).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
