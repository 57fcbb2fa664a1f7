//! The file backend of the state: today's directory layout, unchanged, so existing state
//! directories keep working. Layout: accounts/<server>.json, certs/<name>/settings.json,
//! ari.json, deployed.json, live -> gN/ (key.pem, cert.pem, chain.pem, fullchain.pem,
//! meta.json), ca/ (ca.pem, ca.key, revoked.json, crl.pem), archive/, lock. Writes are
//! atomic (temp file, fsync, rename, fsync the directory); the lock is a POSIX record lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use super::{Backend, Generation, Key, LivePaths, LiveRead, Lock};
use crate::types::{CertName, Server};

use crate::durable::{
    DIR_MODE, PUBLIC_MODE, SECRET_MODE, TMP_MARK, create_dir, remove_temp_files_in, sync_dir,
    write_atomic, write_new,
};

pub struct Files {
    state_dir: PathBuf,
}

impl Files {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
        }
    }

    fn cert_dir(&self, name: &CertName) -> PathBuf {
        self.state_dir.join("certs").join(name.as_str())
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

    fn path(&self, key: &Key) -> PathBuf {
        let ca = self.state_dir.join("ca");
        match key {
            Key::Account(server) => self.account_path(server),
            Key::NoReplaces(server) => self.account_path(server).with_extension("no-replaces"),
            Key::Settings(name) => self.cert_dir(name).join("settings.json"),
            Key::Ari(name) => self.cert_dir(name).join("ari.json"),
            Key::Deployed(name) => self.cert_dir(name).join("deployed.json"),
            Key::Status(name) => self.cert_dir(name).join("status.json"),
            Key::Reissue(name) => self.cert_dir(name).join("reissue"),
            Key::Pushed(name) => self.cert_dir(name).join("pushed.json"),
            Key::CaCert => ca.join("ca.pem"),
            Key::CaKey => ca.join("ca.key"),
            Key::CaRevoked => ca.join("revoked.json"),
            Key::Crl => ca.join("crl.pem"),
        }
    }

    /// The directory `live` points to, resolved once, so that every file read from it comes
    /// from the same generation even when a renewal switches `live` meanwhile.
    fn generation_dir(&self, name: &CertName) -> PathBuf {
        let dir = self.cert_dir(name);
        let live = dir.join("live");
        match fs::read_link(&live) {
            Ok(target) => dir.join(target),
            Err(_) => live,
        }
    }

    /// Temp files left by a killed run (the write probes of `check_writable` included);
    /// only the lock holder writes, so all are stale.
    fn remove_stale_temp_files(&self) {
        let mut dirs = vec![
            self.state_dir.clone(),
            self.state_dir.join("accounts"),
            self.state_dir.join("ca"),
        ];
        if let Ok(entries) = fs::read_dir(self.state_dir.join("certs")) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
        for dir in dirs {
            remove_temp_files_in(&dir);
        }
    }
}

struct FileLock {
    _file: File,
}

impl Lock for FileLock {}

impl Backend for Files {
    fn describe(&self) -> String {
        format!("state directory {}", self.state_dir.display())
    }

    fn check_writable(&self) -> anyhow::Result<()> {
        crate::durable::check_dir_writable(&self.state_dir, "state directory", "--state-dir")
    }

    /// A POSIX record lock: the kernel drops it when the process dies, so a killed run
    /// never leaves a stale lock, and it names its holder's pid without certctl writing
    /// anything into the file.
    fn lock(&self, wait: Duration) -> anyhow::Result<Box<dyn Lock>> {
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
        Ok(Box::new(FileLock { _file: file }))
    }

    fn label(&self, key: &Key) -> String {
        self.path(key).display().to_string()
    }

    fn read(&self, key: &Key) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn write(&self, key: &Key, value: &[u8]) -> anyhow::Result<()> {
        let path = self.path(key);
        if let Some(dir) = path.parent() {
            // a certificate's directory exists once it is managed; the others on first use
            let per_cert = matches!(
                key,
                Key::Ari(_) | Key::Deployed(_) | Key::Status(_) | Key::Reissue(_) | Key::Pushed(_)
            );
            if per_cert && !dir.is_dir() {
                bail!("{} is not managed any more", dir.display());
            }
            create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mode = if key.is_secret() {
            SECRET_MODE
        } else {
            PUBLIC_MODE
        };
        write_atomic(&path, value, mode).with_context(|| format!("writing {}", path.display()))
    }

    fn remove(&self, key: &Key) -> anyhow::Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    fn names(&self) -> anyhow::Result<Vec<CertName>> {
        let dir = self.state_dir.join("certs");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut names: Vec<CertName> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| CertName::parse(&e.file_name().to_string_lossy()).ok())
            .collect();
        names.sort();
        Ok(names)
    }

    fn manages(&self, name: &CertName) -> anyhow::Result<bool> {
        Ok(self.cert_dir(name).is_dir())
    }

    fn live_meta(&self, name: &CertName) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.cert_dir(name).join("live").join("meta.json");
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn live(&self, name: &CertName) -> LiveRead {
        let generation = self.generation_dir(name);
        let path = |file: &str| generation.join(file);
        let read = |file: &str| {
            let p = path(file);
            fs::read(&p).with_context(|| format!("reading {}", p.display()))
        };
        let label = |file: &str| path(file).display().to_string();
        LiveRead {
            key_pem: read("key.pem").and_then(|b| {
                String::from_utf8(b).map_err(|_| anyhow!("{} is not text", label("key.pem")))
            }),
            cert_pem: read("cert.pem"),
            chain_pem: read("chain.pem"),
            meta: read("meta.json"),
            cert_label: label("cert.pem"),
            chain_label: label("chain.pem"),
            meta_label: label("meta.json"),
            key_label: label("key.pem"),
        }
    }

    /// Writes the new generation into its own directory, then switches `live` to it in one
    /// rename: readers see either the old files or the new ones, never a mix.
    fn save_generation(&self, name: &CertName, generation: &Generation) -> anyhow::Result<()> {
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
            for (file, data, mode) in [
                ("key.pem", generation.key_pem.as_bytes(), SECRET_MODE),
                ("cert.pem", generation.cert_pem.as_bytes(), PUBLIC_MODE),
                ("chain.pem", generation.chain_pem.as_bytes(), PUBLIC_MODE),
                (
                    "fullchain.pem",
                    generation.fullchain_pem.as_bytes(),
                    PUBLIC_MODE,
                ),
                ("meta.json", &generation.meta, PUBLIC_MODE),
            ] {
                write_new(&gen_dir.join(file), data, mode)?;
            }
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

    /// Moves the certificate's directory into a new folder
    /// `<state>/archive/<name>-<UTC time>/<name>/`, with the attachments beside it.
    fn archive(
        &self,
        name: &CertName,
        now: i64,
        attachments: &[(String, Vec<u8>)],
    ) -> anyhow::Result<String> {
        let root = self.state_dir.join("archive");
        create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
        let base = archive_folder_name(name, now);
        let mut folder = root.join(&base);
        let mut n = 1;
        loop {
            match fs::create_dir(&folder) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => {
                    n += 1;
                    folder = root.join(format!("{base}-{n}"));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", folder.display()));
                }
            }
        }
        fs::set_permissions(&folder, fs::Permissions::from_mode(DIR_MODE))
            .and_then(|()| sync_dir(&root))
            .with_context(|| format!("creating {}", folder.display()))?;
        for (file, data) in attachments {
            let path = folder.join(file);
            write_new(&path, data, SECRET_MODE)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let cert_dir = self.cert_dir(name);
        let archived_dir = folder.join(name.as_str());
        fs::rename(&cert_dir, &archived_dir)
            .and_then(|()| sync_dir(&folder))
            .and_then(|()| sync_dir(&self.state_dir.join("certs")))
            .with_context(|| {
                format!(
                    "moving {} to {}",
                    cert_dir.display(),
                    archived_dir.display()
                )
            })?;
        Ok(folder.display().to_string())
    }

    fn live_paths(&self, name: &CertName) -> Option<LivePaths> {
        let dir = self.cert_dir(name).join("live");
        Some(LivePaths {
            key: dir.join("key.pem"),
            cert: dir.join("cert.pem"),
            chain: dir.join("chain.pem"),
            fullchain: dir.join("fullchain.pem"),
            dir,
        })
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

fn generation_number(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix('g')?.parse().ok()
}

/// The archive folder's name: `<name>-<YYYYMMDD>T<HHMMSS>Z` (UTC).
fn archive_folder_name(name: &CertName, now: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{name}-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::Store;

    fn stored(store: &Store, name: &CertName) {
        store.check_writable().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let leaf = params.self_signed(&key).unwrap();
        let chain = crate::pem::Chain::parse(&leaf.pem()).unwrap();
        let info = crate::pem::cert_info(&chain.leaf).unwrap();
        store
            .save_generation(name, &key.serialize_pem(), &chain, &info)
            .unwrap();
        let settings: crate::settings::CertSettings = serde_json::from_value(serde_json::json!({
            "domains": [name.as_str()],
            "key_type": "ec256",
            "server": "letsencrypt",
            "challenge": {"kind": "stateless"},
        }))
        .unwrap();
        store.save_settings(name, &settings).unwrap();
    }

    #[test]
    fn the_lock_holder_removes_what_a_killed_run_left_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::files(&dir.path().join("state"));
        let bundles = crate::deploy::Bundles::new(&dir.path().join("ssl"));
        store.check_writable().unwrap();
        bundles.check_writable().unwrap();
        let cert_dir = dir.path().join("state/certs/a.test");
        fs::create_dir_all(&cert_dir).unwrap();
        // what a SIGKILL leaves: a write probe in each directory, a half-written file
        let left = [
            dir.path().join(format!("state/.probe{TMP_MARK}-4242")),
            dir.path().join(format!("ssl/.probe{TMP_MARK}-4242")),
            dir.path().join(format!("ssl/.a.test.pem{TMP_MARK}-4242")),
            cert_dir.join(format!(".meta.json{TMP_MARK}-4242")),
        ];
        for path in &left {
            fs::write(path, b"half").unwrap();
        }
        fs::write(dir.path().join("ssl/a.test.pem"), b"kept").unwrap();
        let _lock = store.lock(Duration::from_secs(1)).unwrap();
        bundles.remove_stale_temp_files();
        for path in &left {
            assert!(!path.exists(), "{} is left", path.display());
        }
        assert!(dir.path().join("ssl/a.test.pem").exists());
    }

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
    #[test]
    fn cert_pem_must_hold_the_leaf_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::files(&dir.path().join("state"));
        let name = CertName::parse("a.fr").unwrap();
        stored(&store, &name);
        let cert = dir.path().join("state/certs/a.fr/live/cert.pem");
        let leaf = fs::read_to_string(&cert).unwrap();
        fs::write(&cert, format!("{leaf}{leaf}")).unwrap();
        let err = format!("{:#}", store.live_leaf(&name).unwrap_err());
        assert!(err.contains("holds 2 certificates"), "{err}");
        fs::write(&cert, "").unwrap();
        let err = format!("{:#}", store.live_leaf(&name).unwrap_err());
        assert!(err.contains("holds no certificate"), "{err}");
    }
    #[test]
    fn inspection_reports_each_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::files(&dir.path().join("state"));
        let name = CertName::parse("a.fr").unwrap();
        stored(&store, &name);
        let whole = store.inspect(&name);
        assert!(whole.problems.is_empty(), "{:?}", whole.problems);
        assert!(whole.settings.is_some() && whole.info.is_some());

        let live = dir.path().join("state/certs/a.fr/live");
        fs::write(live.join("meta.json"), b"{").unwrap();
        fs::remove_file(live.join("key.pem")).unwrap();
        let damaged = store.inspect(&name);
        assert!(damaged.info.is_none());
        assert!(damaged.settings.is_some());
        let text = damaged.problems.join("\n");
        assert!(text.contains("meta.json is damaged"), "{text}");
        assert!(text.contains("key.pem is missing"), "{text}");
        assert!(store.live_files(&name).is_err());
    }

    #[test]
    fn a_bad_stored_value_is_reported_as_the_stored_file_not_as_a_flag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::files(&dir.path().join("state"));
        let name = CertName::parse("a.fr").unwrap();
        stored(&store, &name);
        let path = dir.path().join("state/certs/a.fr/settings.json");
        let text = fs::read_to_string(&path).unwrap();
        let bad = text.replace(
            "https://acme-v02.api.letsencrypt.org/directory",
            "http://x/dir",
        );
        assert_ne!(text, bad);
        fs::write(&path, bad).unwrap();
        let err = format!("{:#}", store.lineage(&name).unwrap_err());
        assert!(
            err.contains(&format!("{} is damaged", path.display())),
            "{err}"
        );
        assert!(
            err.contains("\"http://x/dir\" is neither an https URL"),
            "{err}"
        );
        assert!(!err.contains("--server"), "{err}");
    }
}
