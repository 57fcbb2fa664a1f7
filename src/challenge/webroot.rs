//! HTTP-01 answered by the site's own web server: a token file under
//! `<webroot>/.well-known/acme-challenge/`, readable by the server, removed afterwards.
//! The webroot is writable by others (the site's deployers), so nothing below it is trusted:
//! each directory is opened without following a symlink (a symlinked `.well-known` or
//! `acme-challenge` is refused), only directories certctl creates get their mode set, and a
//! token file is created exclusively. Only checked tokens are written (no path can escape).

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use super::{ChallengeType, Pending, Solver, Task};

/// Where the token files go, below the webroot.
const CHALLENGE_DIR: &str = ".well-known/acme-challenge";
/// Mode of the directories certctl creates and of the token files: the web server reads them.
const READABLE_DIR: libc::mode_t = 0o755;
const READABLE_FILE: libc::mode_t = 0o644;

/// The solver that writes token files for a web server that serves `dir`.
pub struct Webroot {
    dir: PathBuf,
}

impl Webroot {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl Solver for Webroot {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    fn present<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(async move {
            let dir = challenge_dir(&self.dir, true)?;
            for task in tasks {
                write_token(
                    &dir,
                    &self.dir,
                    task.token.as_str(),
                    task.key_authorization.as_str(),
                )?;
            }
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(async move {
            let shown = self.dir.join(CHALLENGE_DIR);
            let dir = match challenge_dir(&self.dir, false) {
                Ok(dir) => dir,
                // nothing was ever placed there
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => {
                    return Err(e.context("the challenge files are left in place"));
                }
            };
            let mut failures = Vec::new();
            for task in tasks {
                match unlink_at(&dir, task.token.as_str()) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => failures.push(format!(
                        "{}: {e}",
                        shown.join(task.token.as_str()).display()
                    )),
                    _ => {}
                }
            }
            match failures.is_empty() {
                true => Ok(()),
                false => Err(anyhow!(
                    "the challenge files are left in place: {}",
                    failures.join("; ")
                )),
            }
        })
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

fn c_name(name: &str) -> std::io::Result<CString> {
    CString::new(name).map_err(|_| std::io::ErrorKind::InvalidInput.into())
}

/// Opens the directory `name` inside `parent` without following a symlink, creating it
/// (mode 0755, set on the new directory itself) when `create` and it is missing.
fn open_dir_at(parent: &File, name: &str, create: bool) -> std::io::Result<File> {
    let c = c_name(name)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat with a live directory descriptor and a NUL-terminated name.
    let mut fd = unsafe { libc::openat(parent.as_raw_fd(), c.as_ptr(), flags) };
    if fd < 0 && create && std::io::Error::last_os_error().kind() == std::io::ErrorKind::NotFound {
        // SAFETY: mkdirat with a live directory descriptor and a NUL-terminated name.
        let made = unsafe { libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), READABLE_DIR) };
        if made < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::AlreadyExists {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        fd = unsafe { libc::openat(parent.as_raw_fd(), c.as_ptr(), flags) };
        if fd >= 0 && made == 0 {
            // the mode given to mkdir is filtered by the umask; set it on the directory
            // just made, through its descriptor (never through a path)
            // SAFETY: fchmod on the descriptor just opened.
            unsafe { libc::fchmod(fd, READABLE_DIR) };
        }
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a descriptor this function opened and nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `<webroot>/.well-known/acme-challenge`, opened; refused when either part is a symlink.
fn challenge_dir(webroot: &Path, create: bool) -> anyhow::Result<File> {
    let root = File::open(webroot).with_context(|| format!("opening {}", webroot.display()))?;
    let mut dir = root;
    let mut shown = webroot.to_path_buf();
    for part in CHALLENGE_DIR.split('/') {
        shown.push(part);
        dir = open_dir_at(&dir, part, create).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) {
                anyhow!(
                    "{} is a symlink or not a directory; certctl writes challenge files only into a \
                     real directory below the webroot (remove it, or make it a directory)",
                    shown.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("opening {}", shown.display()))
            }
        })?;
    }
    Ok(dir)
}

fn unlink_at(dir: &File, name: &str) -> std::io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: unlinkat with a live directory descriptor and a NUL-terminated name; it
    // removes a symlink itself, never its target.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Writes the token file in `dir` (opened by `challenge_dir`): whatever stands at its name
/// (a leftover, a planted symlink) is removed first, then the file is created exclusively.
fn write_token(
    dir: &File,
    webroot: &Path,
    token: &str,
    key_authorization: &str,
) -> anyhow::Result<()> {
    let shown = webroot.join(CHALLENGE_DIR).join(token);
    let context = || format!("writing the challenge file {}", shown.display());
    match unlink_at(dir, token) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(context);
        }
        _ => {}
    }
    let c = c_name(token).with_context(context)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat with a live directory descriptor, a NUL-terminated name and a mode.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags,
            libc::c_uint::from(READABLE_FILE),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).with_context(context);
    }
    // SAFETY: fd is a descriptor opened above and owned by nothing else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    // the mode above is filtered by the umask; the web server must read the file
    // SAFETY: fchmod on the descriptor just opened.
    unsafe { libc::fchmod(file.as_raw_fd(), READABLE_FILE) };
    file.write_all(key_authorization.as_bytes())
        .with_context(context)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::{Identifier, KeyAuthorization, Token};
    use super::*;

    fn task(token: &str) -> Task {
        Task {
            identifier: Identifier::Dns(crate::types::DomainName::parse("a.test").unwrap()),
            challenge: ChallengeType::Http01,
            token: Token::parse(token).unwrap(),
            key_authorization: KeyAuthorization::new(format!("{token}.thumb")),
        }
    }

    #[tokio::test]
    async fn token_files_are_written_readable_and_removed() {
        let webroot = tempfile::tempdir().unwrap();
        let solver = Webroot::new(webroot.path().to_owned());
        let tasks = [task("tok-1"), task("tok_2")];
        solver.present(&tasks).await.unwrap();
        let dir = webroot.path().join(CHALLENGE_DIR);
        let path = dir.join("tok-1");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "tok-1.thumb");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        solver.cleanup(&tasks).await.unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        // cleaning up what is gone already is fine
        solver.cleanup(&tasks).await.unwrap();
    }

    #[tokio::test]
    async fn a_symlink_in_place_of_a_token_file_is_not_followed() {
        let webroot = tempfile::tempdir().unwrap();
        let dir = webroot.path().join(CHALLENGE_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        let target = webroot.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("tok")).unwrap();
        let solver = Webroot::new(webroot.path().to_owned());
        solver.present(&[task("tok")]).await.unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(!dir.join("tok").is_symlink());
        assert_eq!(
            std::fs::read_to_string(dir.join("tok")).unwrap(),
            "tok.thumb"
        );
    }

    #[tokio::test]
    async fn a_symlinked_challenge_directory_is_refused_and_left_alone() {
        let webroot = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(webroot.path().join(".well-known")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), webroot.path().join(CHALLENGE_DIR)).unwrap();
        let solver = Webroot::new(webroot.path().to_owned());
        let err = format!("{:#}", solver.present(&[task("tok")]).await.unwrap_err());
        assert!(err.contains("is a symlink"), "{err}");
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
        let mode = std::fs::metadata(elsewhere.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "its mode is untouched");
    }

    #[tokio::test]
    async fn an_existing_challenge_directory_keeps_its_mode() {
        let webroot = tempfile::tempdir().unwrap();
        let dir = webroot.path().join(CHALLENGE_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        let solver = Webroot::new(webroot.path().to_owned());
        solver.present(&[task("tok")]).await.unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o711);
    }
}
