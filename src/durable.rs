//! Careful file I/O shared by the state's file backend, deployment and settings: durable
//! writes (temp file under a random name in the same directory, fsync, rename, fsync the
//! directory), files created exclusively and never through a symlink, with their mode set
//! before any byte is written, leftovers of killed runs marked for cleanup, and bounded
//! reads that refuse anything but a regular file without blocking. Knows nothing of contents.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// A name nobody can guess: 16 hex digits from the system's random generator.
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // no system randomness: the clock and the pid still differ between runs, and every
        // file made with the suffix is created exclusively anyway
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes = (nanos ^ u64::from(std::process::id()).rotate_left(40)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Proves `dir` can be written (creating it 0700 when missing) with a probe file made
/// exclusively under a random name: a symlink planted in the directory is never followed,
/// and nothing that exists is opened.
pub fn check_dir_writable(dir: &Path, what: &str, flag: &str) -> anyhow::Result<()> {
    create_dir(dir)
        .with_context(|| format!("creating the {what} {} (set {flag})", dir.display()))?;
    let probe = dir.join(format!(".probe{TMP_MARK}-{}", random_suffix()));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&probe);
    if result.is_ok() {
        let _ = fs::remove_file(&probe);
    }
    result.map_err(|e| {
        anyhow!(
            "the {what} {} cannot be written: {e}; fix its permissions or choose another with {flag}",
            dir.display()
        )
    })?;
    Ok(())
}

/// Creates `dir` 0700, and any missing parent 0700 too (whatever the umask: a parent made
/// 0777 under `umask 000` would let anyone swap the directories beneath it). The mode is
/// set through the new directory's own descriptor, never through a symlink in its place;
/// an existing directory is left as it is.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let made = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)?;
    made.set_permissions(fs::Permissions::from_mode(DIR_MODE))
}

/// Creates `path` (which must not exist, not even as a symlink), writes and fsyncs it.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    create_and_write(path, data, mode)?.sync_all()
}

/// `write_new` without the fsync: for a batch made durable by one `sync_fs` before anything
/// points to the file.
pub fn write_new_unsynced(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    create_and_write(path, data, mode)?;
    trace::event(trace::Event::Written(path.to_path_buf()));
    Ok(())
}

fn create_and_write(path: &Path, data: &[u8], mode: u32) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(data)?;
    Ok(file)
}

/// Replaces `path` with `data` atomically: a temp file created exclusively under a random
/// name in the same directory (so another user who can write there can neither predict it
/// nor make certctl write through a link), fsync, rename (which replaces a symlink at
/// `path`, never its target), fsync the directory. On any error the old file stays and the
/// temp file is removed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, true)
}

/// `write_atomic` without its two fsyncs: readers see the old file or the new one, never a
/// mix, but after a crash the file may be the old one or empty. Only for records whose loss
/// costs nothing but work done again; `sync_fs` makes a batch of them durable at once.
pub fn write_atomic_unsynced(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, false)
}

/// Everything written to the file system holding `dir` made durable (syncfs(2)): one
/// call after many `write_atomic_unsynced`.
pub fn sync_fs(dir: &Path) -> io::Result<()> {
    let file = File::open(dir)?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&file)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    trace::event(trace::Event::Synced(dir.to_path_buf()));
    Ok(())
}

/// The first half of `write_atomic` for a batch: `data` in a new temp file beside `path`
/// (created exclusively under a random name, not synced); returns the temp file's path for
/// `rename_staged`, after a `sync_fs` has made its content durable.
pub fn stage_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<PathBuf> {
    let tmp = temp_path(path);
    if let Err(e) = create_and_write(&tmp, data, mode) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            let _ = fs::remove_file(&tmp);
        }
        return Err(e);
    }
    trace::event(trace::Event::Written(tmp.clone()));
    Ok(tmp)
}

/// Moves a staged file (or a symlink) over `path` in one rename, not synced: readers see
/// the old file or the new one; a `sync_fs` afterwards makes the switch durable. On error
/// the staged file is removed and `path` is unchanged.
pub fn rename_staged(tmp: &Path, path: &Path) -> io::Result<()> {
    let renamed = fs::rename(tmp, path);
    match &renamed {
        Ok(()) => trace::event(trace::Event::Renamed(path.to_path_buf())),
        Err(_) => {
            let _ = fs::remove_file(tmp);
        }
    }
    renamed
}

/// A temp file's name beside `path`: certctl's mark and a random suffix.
fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{file_name}{TMP_MARK}-{}", random_suffix()))
}

/// What a batch did to the disk, in order, for tests that check the ordering (content
/// durable before anything points to it); nothing outside tests.
pub mod trace {
    use std::path::PathBuf;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Event {
        /// A file written without fsync.
        Written(PathBuf),
        /// A syncfs of the file system holding this directory.
        Synced(PathBuf),
        /// A rename (unsynced) that put something in place at this path.
        Renamed(PathBuf),
    }

    #[cfg(test)]
    static EVENTS: std::sync::Mutex<Option<Vec<Event>>> = std::sync::Mutex::new(None);

    #[cfg(test)]
    pub fn event(event: Event) {
        if let Some(events) = EVENTS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            events.push(event);
        }
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub fn event(_: Event) {}

    /// Runs `f` and returns what was done meanwhile under `root` (by any thread: tests
    /// running beside it write elsewhere).
    #[cfg(test)]
    pub fn record(root: &std::path::Path, f: impl FnOnce()) -> Vec<Event> {
        let events = || EVENTS.lock().unwrap_or_else(|e| e.into_inner());
        *events() = Some(Vec::new());
        f();
        let all = events().take().unwrap_or_default();
        all.into_iter()
            .filter(|e| match e {
                Event::Written(p) | Event::Synced(p) | Event::Renamed(p) => p.starts_with(root),
            })
            .collect()
    }
}

fn replace(path: &Path, data: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(path);
    let written = create_and_write(&tmp, data, mode).and_then(|f| match sync {
        true => f.sync_all(),
        false => Ok(()),
    });
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::AlreadyExists {
            let _ = fs::remove_file(&tmp);
        }
        return Err(e);
    }
    let result = fs::rename(&tmp, path).and_then(|()| match sync {
        true => sync_dir(dir),
        false => Ok(()),
    });
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

/// Reads a regular file of at most `MAX_INPUT_FILE` bytes (a symlink to one is fine);
/// anything else is an error that says what the path is instead.
pub fn read_small_file(path: &Path) -> io::Result<Vec<u8>> {
    read_regular(path, MAX_INPUT_FILE, Links::Follow)
}

/// Whether `read_regular` follows a symlink at the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Follow,
    /// A symlink is an error (ELOOP): for files in directories others may write.
    Refuse,
}

/// Reads a regular file of at most `limit` bytes. A directory, FIFO, socket or device is
/// refused at once (InvalidInput, saying what it is) and never opened in a way that blocks:
/// its type is checked before the open, and again on the open descriptor.
pub fn read_regular(path: &Path, limit: u64, links: Links) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = match links {
        Links::Follow => fs::metadata(path)?,
        Links::Refuse => fs::symlink_metadata(path)?,
    };
    if meta.file_type().is_symlink() {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    not_regular(&meta).map_or(Ok(()), Err)?;
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    not_regular(&file.metadata()?).map_or(Ok(()), Err)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is larger than {} KiB", limit / 1024),
        ));
    }
    Ok(bytes)
}

/// Why `meta` is not a regular file, as an error; None when it is one.
pub fn not_regular(meta: &fs::Metadata) -> Option<io::Error> {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return None;
    } else if kind.is_dir() {
        "it is a directory"
    } else if kind.is_fifo() {
        "it is not a regular file (a named pipe)"
    } else if kind.is_socket() {
        "it is not a regular file (a socket)"
    } else if kind.is_block_device() || kind.is_char_device() {
        "it is not a regular file (a device)"
    } else {
        "it is not a regular file"
    };
    Some(io::Error::new(io::ErrorKind::InvalidInput, what))
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

    #[test]
    fn a_pipe_or_a_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_small_file(&fifo).unwrap_err();
        assert!(err.to_string().contains("named pipe"), "{err}");
        let err = read_regular(dir.path(), 10, Links::Refuse).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
        let err = read_small_file(Path::new("/dev/null")).unwrap_err();
        assert!(err.to_string().contains("device"), "{err}");
    }

    #[test]
    fn a_symlink_is_refused_when_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_regular(&link, 100, Links::Follow).unwrap(), b"secret");
        let err = read_regular(&link, 100, Links::Refuse).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        let err = read_regular(&target, 3, Links::Refuse).unwrap_err();
        assert!(err.to_string().contains("larger"), "{err}");
    }

    #[test]
    fn the_write_probe_never_follows_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        // every name the old, predictable probe could have used
        for pid in [std::process::id(), 1, 4242] {
            let planted = dir.path().join(format!(".probe{TMP_MARK}-{pid}"));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        check_dir_writable(dir.path(), "ssl directory", "--ssl-dir").unwrap();
        write_atomic(&dir.path().join("a.pem"), b"bundle", SECRET_MODE).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }
}
