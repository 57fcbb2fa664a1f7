//! Output files for services that terminate TLS themselves (Unbound, Redis, Apache, a
//! backend): certificate, key, chain, full chain, each at the path given, written
//! atomically with the owner and mode asked for. Knows nothing of settings or ACME.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};

use crate::durable::{PUBLIC_MODE, SECRET_MODE, TMP_MARK, sync_dir, write_new};

/// One file to write: where, what, and whether it is the private key.
pub struct Output<'a> {
    pub path: &'a Path,
    pub content: &'a [u8],
    pub secret: bool,
}

/// `USER:GROUP`, `USER` or `:GROUP` as uid and gid (None: left as is).
pub fn resolve_owner(owner: &str) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let (user, group) = owner.split_once(':').unwrap_or((owner, ""));
    let uid = match user {
        "" => None,
        u => Some(user_id(u).ok_or_else(|| anyhow!("--owner {owner}: no user {u} here"))?),
    };
    let gid = match group {
        "" => None,
        g => Some(group_id(g).ok_or_else(|| anyhow!("--owner {owner}: no group {g} here"))?),
    };
    Ok((uid, gid))
}

fn user_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let name = CString::new(name).ok()?;
    // SAFETY: getpwnam takes a NUL-terminated string; the entry is read at once, before
    // any other call could reuse its static buffer (certctl asks from one thread here)
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    (!entry.is_null()).then(|| unsafe { (*entry).pw_uid })
}

fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let name = CString::new(name).ok()?;
    // SAFETY: as in user_id
    let entry = unsafe { libc::getgrnam(name.as_ptr()) };
    (!entry.is_null()).then(|| unsafe { (*entry).gr_gid })
}

/// Writes each output: temp file beside it with the mode (`mode`, else 0600 for the key and
/// 0644 for the others) and owner, fsync, rename, fsync the directory. A reader sees the
/// old file or the new one, never a part, never with the wrong owner.
pub fn write(outputs: &[Output<'_>], owner: Option<&str>, mode: Option<u32>) -> anyhow::Result<()> {
    let (uid, gid) = match owner {
        Some(o) => resolve_owner(o)?,
        None => (None, None),
    };
    for out in outputs {
        let mode = mode.unwrap_or(if out.secret { SECRET_MODE } else { PUBLIC_MODE });
        write_one(out.path, out.content, mode, uid, gid)
            .with_context(|| format!("writing the output file {}", out.path.display()))?;
    }
    Ok(())
}

fn write_one(
    path: &Path,
    data: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        bail!("its directory {} does not exist", dir.display());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}{TMP_MARK}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = write_new(&tmp, data, mode)
        .and_then(|()| {
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&tmp, uid, gid)?;
            }
            std::fs::rename(&tmp, path)
        })
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn files_get_their_content_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let outputs = [
            Output {
                path: &cert,
                content: b"cert",
                secret: false,
            },
            Output {
                path: &key,
                content: b"key",
                secret: true,
            },
        ];
        write(&outputs, Some("0:0"), None).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&cert), mode(&key)), (0o644, 0o600));
        assert_eq!(std::fs::read(&key).unwrap(), b"key");
        write(&outputs, None, Some(0o640)).unwrap();
        assert_eq!((mode(&cert), mode(&key)), (0o640, 0o640));
        assert!(resolve_owner("no-such-user-here:root").is_err());
        assert_eq!(resolve_owner(":0").unwrap(), (None, Some(0)));
        let missing = dir.path().join("nope/c.pem");
        let err = write(
            &[Output {
                path: &missing,
                content: b"",
                secret: false,
            }],
            None,
            None,
        );
        assert!(format!("{:#}", err.unwrap_err()).contains("does not exist"));
    }
}
