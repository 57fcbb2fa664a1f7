//! A host of a test's own for certctl with the local CA (no network): a temp dir with the
//! state and ssl directories certctl creates, bounded runs, files with a given mode, FIFOs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::bounded::{Run, run};
use super::hermetic;

/// Bound on a run that should end at once (a hang guard, not an expectation of speed).
pub const BOUND: Duration = Duration::from_secs(60);
/// A user that owns nothing of certctl's.
pub const NOBODY: u32 = 65534;

/// A host of its own: a temp dir with the state and ssl directories certctl creates.
pub struct Host {
    dir: TempDir,
}

impl Host {
    pub fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("certctl-hostile-")
            .tempdir()
            .unwrap();
        Host { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.root().join("state")
    }

    pub fn ssl(&self) -> PathBuf {
        self.root().join("ssl")
    }

    pub fn live(&self, name: &str) -> PathBuf {
        self.state().join("certs").join(name).join("live")
    }

    /// `certctl --state-dir .. --ssl-dir .. --server local <args>`.
    pub fn certctl(&self, args: &[&str]) -> Command {
        let mut cmd = hermetic::certctl_in(self.root());
        cmd.arg("--state-dir")
            .arg(self.state())
            .arg("--ssl-dir")
            .arg(self.ssl())
            .arg("--server")
            .arg("local")
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Result<Run, String> {
        run(self.certctl(args), BOUND)
    }

    pub fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.root().join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    pub fn fifo(&self, path: &Path) {
        let _ = fs::remove_file(path);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
}

pub fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

pub fn ok(run: &Result<Run, String>) -> Result<&Run, String> {
    let run = run.as_ref().map_err(Clone::clone)?;
    if !run.output.success() {
        return Err(format!(
            "exit {}: {}",
            run.output.status,
            run.output.stderr.trim()
        ));
    }
    Ok(run)
}

pub fn check(condition: bool, what: impl Into<String>) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what.into()) }
}
