//! HTTP-01 answered by the site's own web server: a token file under
//! `<webroot>/.well-known/acme-challenge/`, readable by the server, removed afterwards.
//! It writes only checked tokens (no path can escape the directory), never through a
//! symlink, and touches nothing else in the webroot.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{ChallengeType, Pending, Solver, Task};

/// Where the token files go, below the webroot.
const CHALLENGE_DIR: &str = ".well-known/acme-challenge";

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
            for task in tasks {
                write_token(
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
            let dir = self.dir.join(CHALLENGE_DIR);
            let mut failures = Vec::new();
            for task in tasks {
                let path = dir.join(task.token.as_str());
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        failures.push(format!("{}: {e}", path.display()))
                    }
                    _ => {}
                }
            }
            match failures.is_empty() {
                true => Ok(()),
                false => Err(anyhow::anyhow!(
                    "the challenge files are left in place: {}",
                    failures.join("; ")
                )),
            }
        })
    }
}

fn write_token(webroot: &Path, token: &str, key_authorization: &str) -> anyhow::Result<()> {
    let dir = webroot.join(CHALLENGE_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for d in [webroot.join(".well-known"), dir.clone()] {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
    }
    let path = dir.join(token);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("writing the challenge file {}", path.display()))?;
    file.write_all(key_authorization.as_bytes())
        .with_context(|| format!("writing the challenge file {}", path.display()))?;
    // the mode above is filtered by the umask; the web server must read the file
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("making {} readable", path.display()))
}

#[cfg(test)]
mod tests {
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
        assert!(solver.present(&[task("tok")]).await.is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
