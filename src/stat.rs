//! Cheap identities of files for caches that must notice any change (the renew index): one
//! `fstatat` relative to a directory opened once, so that ten thousand checks walk one path
//! component each instead of the whole absolute path. Reads no content, writes nothing.

use std::ffi::CString;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What `stat` says of a file that changes whenever it is written, renamed over or
/// replaced: inode, size, modification and change times (ns), mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub mode: u32,
}

impl Ident {
    /// The identity of `path` (a symlink itself, never its target).
    pub fn of(path: &Path) -> io::Result<Ident> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Ident {
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            mode: meta.mode(),
        })
    }

    /// The newer of its two times (ns since the epoch).
    pub fn changed_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }

    /// Adds it to `hasher` as `std::fs::Metadata` would have given it (ino, len, mtime,
    /// ctime, mode), so versions taken either way agree.
    pub fn hash_into(&self, hasher: &mut impl Hasher) {
        (self.ino, self.size, self.mtime_ns, self.ctime_ns, self.mode).hash(hasher);
    }
}

/// A directory opened for `stat`s relative to it (O_PATH: no read permission needed, no
/// content read).
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated string; the flags open no content.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The identity of `relative` (a symlink itself, never its target). `relative` is
    /// bytes without NUL; a NUL inside is refused as InvalidInput.
    pub fn ident(&self, relative: &[u8]) -> io::Result<Ident> {
        let mut buf = [0u8; 512];
        let owned;
        let c: &[u8] = if relative.len() < buf.len() {
            buf[..relative.len()].copy_from_slice(relative);
            &buf[..=relative.len()]
        } else {
            owned = [relative, b"\0"].concat();
            &owned
        };
        let c = std::ffi::CStr::from_bytes_with_nul(c)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: the descriptor is open as long as `self`, `c` is NUL-terminated and `st`
        // is a buffer of the right type that fstatat fills on success.
        let rc = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstatat returned 0, so it filled `st`.
        let st = unsafe { st.assume_init() };
        Ok(Ident {
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
            mode: st.st_mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn an_ident_is_what_metadata_says_and_changes_with_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.pem");
        std::fs::write(&file, b"one").unwrap();
        let opened = Dir::open(dir.path()).unwrap();
        let ident = opened.ident(b"a.pem").unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        assert_eq!(ident.ino, meta.ino());
        assert_eq!(ident.size, meta.len());
        assert_eq!(
            ident.mtime_ns,
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
        );
        assert_eq!(
            ident.ctime_ns,
            meta.ctime() * 1_000_000_000 + meta.ctime_nsec()
        );
        assert_eq!(ident.mode, meta.mode());
        std::fs::write(&file, b"three").unwrap();
        assert_ne!(opened.ident(b"a.pem").unwrap(), ident);
        let missing = opened.ident(b"b.pem").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            opened.ident(b"a\0b").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        std::os::unix::fs::symlink("a.pem", dir.path().join("l.pem")).unwrap();
        assert_ne!(opened.ident(b"l.pem").unwrap().ino, ident.ino);
    }
}
