//! The state's lock for the file backend: a POSIX record lock on `<state>/lock`, which the
//! kernel drops when its holder dies (no stale lock after a kill), waited for at most a
//! given time, and naming its holder's pid when it is not released in time.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::durable::SECRET_MODE;
use crate::store::Lock;

/// Held while the file is open; the kernel releases it with the descriptor.
pub(super) struct FileLock {
    _file: File,
}

impl Lock for FileLock {}

impl FileLock {
    /// Opens (creating) the lock file, never through a symlink, and takes the lock, waiting
    /// at most `wait`.
    pub(super) fn acquire(path: &Path, wait: Duration) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(SECRET_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        let deadline = Instant::now() + wait;
        while !try_lock(&file).with_context(|| format!("locking {}", path.display()))? {
            if Instant::now() >= deadline {
                let holder =
                    lock_holder(&file).map_or_else(|| "unknown".to_owned(), |pid| pid.to_string());
                bail!(
                    "another certctl holds the lock {} (pid {holder}) and did not finish within {}s; \
                     wait for it, or stop it if it hangs",
                    path.display(),
                    wait.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { _file: file })
    }
}

fn lock_request(kind: libc::c_int) -> libc::flock {
    // SAFETY: flock is a plain C struct; all-zero is a valid value for every field.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// Tries to take a write lock on the whole file; false when another process holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    let fl = lock_request(libc::F_WRLCK);
    // SAFETY: fcntl(F_SETLK) with a valid descriptor and a pointer to a live struct.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EAGAIN) => Ok(false),
        _ => Err(err),
    }
}

/// The pid of the process holding the lock, if any.
fn lock_holder(file: &File) -> Option<i32> {
    let mut fl = lock_request(libc::F_WRLCK);
    // SAFETY: fcntl(F_GETLK) with a valid descriptor and a pointer to a live struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    (rc == 0 && fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use crate::store::Store;

    #[test]
    fn lock_names_the_process_holding_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::files(&dir.path().join("state"));
        let _guard = store.lock(Duration::from_millis(10)).unwrap();
        // POSIX locks belong to the process: another process sees this one as the holder
        let lock = dir.path().join("state/lock");
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg("import fcntl,struct,sys\nf=open(sys.argv[1],'r+')\nr=fcntl.fcntl(f,fcntl.F_GETLK,struct.pack('hhqqi',fcntl.F_WRLCK,0,0,0,0))\nprint(struct.unpack('hhqqi',r)[4])")
            .arg(&lock)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            std::process::id().to_string()
        );
        assert_eq!(
            fs::read(&lock).unwrap(),
            b"",
            "nothing is written into the lock file"
        );
    }
}
