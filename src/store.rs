//! The only writer of state: the layout of the state and ssl directories, file modes,
//! atomic writes (temp file, fsync, rename, fsync the directory) and the lock.
//! Layout: accounts/<server>.json, certs/<name>/settings.json, certs/<name>/live -> gN/
//! holding key.pem, cert.pem, chain.pem, fullchain.pem and meta.json; bundles <ssl>/<name>.pem.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::pem::{CertInfo, Chain};
use crate::settings::{CertName, CertSettings, Server};

const TMP_MARK: &str = ".certctl-tmp";
const DIR_MODE: u32 = 0o700;
const SECRET_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;

pub struct Store {
    state_dir: PathBuf,
    ssl_dir: PathBuf,
}

/// Paths of a certificate's current files, as hooks see them.
#[derive(Debug, Clone)]
pub struct LivePaths {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub chain: PathBuf,
    pub fullchain: PathBuf,
    pub bundle: PathBuf,
}

/// A managed certificate as stored: its settings and the facts of its current leaf.
#[derive(Debug, Clone)]
pub struct Lineage {
    pub name: CertName,
    pub settings: CertSettings,
    pub info: CertInfo,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    server: Server,
    credentials: instant_acme::AccountCredentials,
}

impl Store {
    pub fn new(state_dir: &Path, ssl_dir: &Path) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            ssl_dir: ssl_dir.to_path_buf(),
        }
    }

    /// Creates both directories when missing and proves they can be written, so that no
    /// order is placed for a certificate that could not be saved.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        for (dir, what, flag) in [
            (&self.state_dir, "state directory", "--state-dir"),
            (&self.ssl_dir, "ssl directory", "--ssl-dir"),
        ] {
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
                anyhow!("the {what} {} cannot be written: {e}; fix its permissions or choose another with {flag}", dir.display())
            })?;
        }
        Ok(())
    }

    /// Takes the state lock, waiting at most `wait`. It is a POSIX record lock: the kernel
    /// drops it when the process dies, so a killed run never leaves a stale lock, and it
    /// names its holder's pid without certctl writing anything into the file.
    pub fn lock(&self, wait: Duration) -> anyhow::Result<LockGuard> {
        create_dir(&self.state_dir).with_context(|| {
            format!("creating the state directory {}", self.state_dir.display())
        })?;
        let path = self.state_dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(SECRET_MODE)
            .open(&path)
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
        self.remove_stale_temp_files();
        Ok(LockGuard { _file: file })
    }

    /// Temp files left by a killed run; only the lock holder writes, so all are stale.
    fn remove_stale_temp_files(&self) {
        let mut dirs = vec![self.ssl_dir.clone(), self.state_dir.join("accounts")];
        if let Ok(entries) = fs::read_dir(self.state_dir.join("certs")) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
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
    }

    fn account_path(&self, server: &Server) -> PathBuf {
        let slug: String = server
            .url()
            .trim_start_matches("https://")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.state_dir.join("accounts").join(format!("{slug}.json"))
    }

    pub fn account(
        &self,
        server: &Server,
    ) -> anyhow::Result<Option<instant_acme::AccountCredentials>> {
        let path = self.account_path(server);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading the account {}", path.display()));
            }
        };
        let stored: StoredAccount = serde_json::from_slice(&text).with_context(|| {
            format!(
                "the account file {} is damaged; move it away to create a new account",
                path.display()
            )
        })?;
        Ok(Some(stored.credentials))
    }

    pub fn save_account(
        &self,
        server: &Server,
        credentials: instant_acme::AccountCredentials,
    ) -> anyhow::Result<()> {
        let path = self.account_path(server);
        let dir = self.state_dir.join("accounts");
        create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_vec_pretty(&StoredAccount {
            server: server.clone(),
            credentials,
        })?;
        write_atomic(&path, &json, SECRET_MODE)
            .with_context(|| format!("writing the account {}", path.display()))
    }

    fn cert_dir(&self, name: &CertName) -> PathBuf {
        self.state_dir.join("certs").join(name.as_str())
    }

    pub fn live_paths(&self, name: &CertName) -> LivePaths {
        let live = self.cert_dir(name).join("live");
        LivePaths {
            key: live.join("key.pem"),
            cert: live.join("cert.pem"),
            chain: live.join("chain.pem"),
            fullchain: live.join("fullchain.pem"),
            bundle: self.bundle_path(name),
        }
    }

    pub fn bundle_path(&self, name: &CertName) -> PathBuf {
        self.ssl_dir.join(format!("{name}.pem"))
    }

    /// The stored certificate `name`, or None when certctl does not manage it.
    pub fn lineage(&self, name: &CertName) -> anyhow::Result<Option<Lineage>> {
        let dir = self.cert_dir(name);
        if !dir.exists() {
            return Ok(None);
        }
        let settings_path = dir.join("settings.json");
        let settings: CertSettings = read_json(&settings_path)?;
        let meta_path = dir.join("live").join("meta.json");
        let info: CertInfo = read_json(&meta_path)?;
        Ok(Some(Lineage {
            name: name.clone(),
            settings,
            info,
        }))
    }

    pub fn save_settings(&self, name: &CertName, settings: &CertSettings) -> anyhow::Result<()> {
        let dir = self.cert_dir(name);
        create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("settings.json");
        write_atomic(&path, &serde_json::to_vec_pretty(settings)?, SECRET_MODE)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Stores a new generation of key, certificate and chain, then switches `live` to it in
    /// one rename: readers see either the old files or the new ones, never a mix.
    pub fn save_generation(
        &self,
        name: &CertName,
        key_pem: &str,
        chain: &Chain,
        info: &CertInfo,
    ) -> anyhow::Result<()> {
        let dir = self.cert_dir(name);
        create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let live = dir.join("live");
        let current = fs::read_link(&live)
            .ok()
            .and_then(|t| generation_number(&t));
        let next = current.map_or(1, |n| n + 1);
        let gen_name = format!("g{next}");
        let gen_dir = dir.join(&gen_name);
        if gen_dir.exists() {
            fs::remove_dir_all(&gen_dir)
                .with_context(|| format!("removing the unfinished {}", gen_dir.display()))?;
        }
        let result = (|| -> io::Result<()> {
            fs::create_dir(&gen_dir)?;
            fs::set_permissions(&gen_dir, fs::Permissions::from_mode(DIR_MODE))?;
            write_new(&gen_dir.join("key.pem"), key_pem.as_bytes(), SECRET_MODE)?;
            write_new(
                &gen_dir.join("cert.pem"),
                chain.leaf_pem().as_bytes(),
                PUBLIC_MODE,
            )?;
            write_new(
                &gen_dir.join("chain.pem"),
                chain.chain_pem().as_bytes(),
                PUBLIC_MODE,
            )?;
            write_new(
                &gen_dir.join("fullchain.pem"),
                chain.fullchain_pem().as_bytes(),
                PUBLIC_MODE,
            )?;
            write_new(
                &gen_dir.join("meta.json"),
                &serde_json::to_vec_pretty(info)?,
                PUBLIC_MODE,
            )?;
            sync_dir(&gen_dir)?;
            let tmp_link = dir.join(format!("live{TMP_MARK}"));
            let _ = fs::remove_file(&tmp_link);
            std::os::unix::fs::symlink(&gen_name, &tmp_link)?;
            fs::rename(&tmp_link, &live)?;
            sync_dir(&dir)
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&gen_dir);
            return Err(e)
                .with_context(|| format!("storing the new certificate under {}", dir.display()));
        }
        // keep the previous generation for a manual rollback, drop older ones
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if let Some(n) = generation_number(&entry.path()) {
                    if n + 1 < next {
                        let _ = fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes `<ssl-dir>/<name>.pem` atomically (0600) unless it already holds `content`;
    /// returns whether the file changed.
    pub fn write_bundle(&self, name: &CertName, content: &str) -> anyhow::Result<bool> {
        let path = self.bundle_path(name);
        if fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
            return Ok(false);
        }
        write_atomic(&path, content.as_bytes(), SECRET_MODE)
            .with_context(|| format!("writing the bundle {}", path.display()))?;
        Ok(true)
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

/// Holds the state lock until dropped.
pub struct LockGuard {
    _file: File,
}

fn generation_number(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix('g')?.parse().ok()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))
}

fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

/// Creates `path` (which must not exist), writes and fsyncs it.
fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
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

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
    fn lock_names_the_process_holding_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("state"), &dir.path().join("ssl"));
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
