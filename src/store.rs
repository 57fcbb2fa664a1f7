//! The only writer of state: the layout of the state and ssl directories, file modes,
//! atomic writes (temp file, fsync, rename, fsync the directory) and the lock.
//! Layout: accounts/<server>.json, certs/<name>/settings.json, certs/<name>/live -> gN/
//! holding key.pem, cert.pem, chain.pem, fullchain.pem and meta.json; bundles <ssl>/<name>.pem.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::pem::{AriState, CertInfo, Chain};
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

    /// Temp files left by a killed run (the write probes of `check_writable` included);
    /// only the lock holder writes, so all are stale.
    fn remove_stale_temp_files(&self) {
        let mut dirs = vec![
            self.ssl_dir.clone(),
            self.state_dir.clone(),
            self.state_dir.join("accounts"),
        ];
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

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
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

    /// The names of every managed certificate, sorted (empty when the state dir is new).
    pub fn names(&self) -> anyhow::Result<Vec<CertName>> {
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

    /// The CA's last ARI answer for `name`, if the CA offers ARI (a damaged file counts as
    /// none: the lifetime rule then decides, which is always safe).
    pub fn ari(&self, name: &CertName) -> Option<AriState> {
        let bytes = fs::read(self.cert_dir(name).join("ari.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records the CA's ARI answer, or removes it when the CA offers none.
    pub fn save_ari(&self, name: &CertName, ari: Option<&AriState>) -> anyhow::Result<()> {
        let path = self.cert_dir(name).join("ari.json");
        match ari {
            Some(ari) => write_atomic(&path, &serde_json::to_vec_pretty(ari)?, PUBLIC_MODE)
                .with_context(|| format!("writing {}", path.display())),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", path.display()))
                }
                _ => Ok(()),
            },
        }
    }

    /// The DER of the current leaf certificate of `name`.
    pub fn leaf_der(&self, name: &CertName) -> anyhow::Result<Vec<u8>> {
        let path = self.live_paths(name).cert;
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        crate::pem::certificates(&bytes)?
            .into_iter()
            .next()
            .with_context(|| format!("{} holds no certificate", path.display()))
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
            self.stamp_bundle(name);
            return Ok(false);
        }
        write_atomic(&path, content.as_bytes(), SECRET_MODE)
            .with_context(|| format!("writing the bundle {}", path.display()))?;
        self.stamp_bundle(name);
        Ok(true)
    }

    /// Records which bundle file (inode, size, mtime) was written for the live generation,
    /// so that `bundle_is_current` can tell with one stat. Best effort: without a stamp the
    /// full comparison decides.
    fn stamp_bundle(&self, name: &CertName) {
        if let Some(stamp) = bundle_stamp(&self.bundle_path(name)) {
            let _ = write_atomic(
                &self.generation_dir(name).join("bundle.stamp"),
                stamp.as_bytes(),
                PUBLIC_MODE,
            );
        }
    }
}

/// Identity of a bundle file as written: inode, size and modification time (ns).
fn bundle_stamp(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    Some(format!(
        "{} {} {}.{:09}\n",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
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

/// Creates `dir` 0700, and any missing parent 0700 too (whatever the umask: a parent made
/// 0777 under `umask 000` would let anyone swap the directories beneath it).
fn create_dir(dir: &Path) -> io::Result<()> {
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

// --- lifecycle: list, concat, archive ---

/// What `list` and the confirmation prompts know of one stored certificate: whatever could
/// be read, and every problem found on the way (a damaged entry is reported, never fatal).
#[derive(Debug, Clone)]
pub struct Inspection {
    pub name: CertName,
    pub settings: Option<CertSettings>,
    /// The facts of the live leaf (meta.json, checked against cert.pem).
    pub info: Option<CertInfo>,
    /// Why the entry is damaged; empty when it is whole.
    pub problems: Vec<String>,
    pub bundle: PathBuf,
    pub bundle_exists: bool,
}

/// Key and chain of a certificate's live generation, all read from one generation directory.
pub struct LiveFiles {
    pub key_pem: String,
    pub chain: Chain,
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
}

impl Store {
    /// True when certctl manages a certificate called `name` (whole or damaged).
    pub fn manages(&self, name: &CertName) -> bool {
        self.cert_dir(name).is_dir()
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

    /// Reads what `list` shows of `name` and notes every missing or unreadable file, and a
    /// meta.json that does not describe cert.pem.
    pub fn inspect(&self, name: &CertName) -> Inspection {
        let dir = self.cert_dir(name);
        let generation = self.generation_dir(name);
        let mut problems = Vec::new();
        let settings = read_json::<CertSettings>(&dir.join("settings.json"))
            .map_err(|e| problems.push(format!("{e:#}")))
            .ok();
        let info = read_json::<CertInfo>(&generation.join("meta.json"))
            .map_err(|e| problems.push(format!("{e:#}")))
            .ok();
        let cert_path = generation.join("cert.pem");
        match read_leaf(&cert_path).and_then(|leaf| crate::pem::cert_info(&leaf)) {
            Ok(actual) => {
                if let Some(meta) = info.as_ref().filter(|m| m.serial != actual.serial) {
                    problems.push(format!(
                        "{} names serial {} but {} holds serial {}",
                        generation.join("meta.json").display(),
                        meta.serial,
                        cert_path.display(),
                        actual.serial
                    ));
                }
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
        let key_path = generation.join("key.pem");
        if fs::symlink_metadata(&key_path).is_err() {
            problems.push(format!("{} is missing", key_path.display()));
        }
        let bundle = self.bundle_path(name);
        Inspection {
            name: name.clone(),
            settings,
            info,
            problems,
            bundle_exists: bundle.is_file(),
            bundle,
        }
    }

    /// Whether `<ssl-dir>/<name>.pem` holds the bundle of `name`'s live generation. False
    /// when a run was stopped between storing a new certificate and writing its bundle (or
    /// the bundle could not be written); true when the live files cannot be read (a damaged
    /// entry is for `list` to report, not a reason to write).
    pub fn bundle_is_current(&self, name: &CertName) -> bool {
        // fast path: the bundle file is the very one written for this generation
        let recorded = fs::read_to_string(self.generation_dir(name).join("bundle.stamp")).ok();
        if recorded.is_some() && recorded == bundle_stamp(&self.bundle_path(name)) {
            return true;
        }
        let Ok(files) = self.live_files(name) else {
            return true;
        };
        let expected = crate::pem::bundle(&files.chain, &files.key_pem);
        fs::read(self.bundle_path(name)).is_ok_and(|actual| actual == expected.as_bytes())
    }

    /// The DER of `name`'s live leaf (cert.pem).
    pub fn live_leaf(&self, name: &CertName) -> anyhow::Result<Vec<u8>> {
        read_leaf(&self.generation_dir(name).join("cert.pem"))
    }

    /// Key, leaf and intermediates of `name`'s live generation: what a bundle is built from.
    pub fn live_files(&self, name: &CertName) -> anyhow::Result<LiveFiles> {
        let generation = self.generation_dir(name);
        let cert_path = generation.join("cert.pem");
        let leaf = read_leaf(&cert_path)?;
        let chain_path = generation.join("chain.pem");
        let chain_text =
            fs::read(&chain_path).with_context(|| format!("reading {}", chain_path.display()))?;
        let intermediates = crate::pem::certificates(&chain_text)
            .with_context(|| format!("{} is damaged", chain_path.display()))?;
        let key_path = generation.join("key.pem");
        let key_pem = fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        Ok(LiveFiles {
            key_pem,
            chain: Chain {
                leaf,
                intermediates,
            },
            key_path,
            cert_path,
        })
    }

    /// Stops managing `name` without destroying anything: moves its bundle (when
    /// `include_bundle` and it exists) and then its state directory into a new folder
    /// `<state>/archive/<name>-<UTC time>/`, as `<name>.pem` and `<name>/`; returns the folder.
    /// The bundle goes first, so an interruption leaves the certificate managed and
    /// `certctl concat` can rebuild the bundle. Undo by moving both back.
    pub fn archive(
        &self,
        name: &CertName,
        include_bundle: bool,
        now: i64,
    ) -> anyhow::Result<PathBuf> {
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

        let bundle = self.bundle_path(name);
        let archived_bundle = folder.join(format!("{name}.pem"));
        let bundle_moved = include_bundle && fs::symlink_metadata(&bundle).is_ok();
        if bundle_moved {
            move_file(&bundle, &archived_bundle).with_context(|| {
                format!(
                    "moving the bundle {} to {}",
                    bundle.display(),
                    archived_bundle.display()
                )
            })?;
        }

        let cert_dir = self.cert_dir(name);
        let archived_dir = folder.join(name.as_str());
        let moved = fs::rename(&cert_dir, &archived_dir)
            .and_then(|()| sync_dir(&folder))
            .and_then(|()| sync_dir(&self.state_dir.join("certs")));
        if let Err(e) = moved {
            let undone = bundle_moved && move_file(&archived_bundle, &bundle).is_ok();
            let bundle_note = match (bundle_moved, undone) {
                (true, false) => format!(
                    "; its bundle is at {} (`certctl concat {name}` rebuilds it)",
                    archived_bundle.display()
                ),
                _ => String::new(),
            };
            return Err(e).with_context(|| {
                format!(
                    "moving {} to {}{bundle_note}",
                    cert_dir.display(),
                    archived_dir.display()
                )
            });
        }
        Ok(folder)
    }
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

/// Reads a cert.pem that must hold exactly one certificate (the leaf), as DER.
fn read_leaf(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut certs = crate::pem::certificates(&text)
        .with_context(|| format!("{} is damaged", path.display()))?;
    match certs.len() {
        1 => Ok(certs.remove(0)),
        0 => bail!("{} holds no certificate", path.display()),
        n => bail!(
            "{} holds {n} certificates; it should hold the leaf only (intermediates go in chain.pem)",
            path.display()
        ),
    }
}

/// Moves a file by rename, or (across file systems, e.g. /etc and /var) by a synced copy
/// into place then removal of the original; fsyncs both directories.
fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    let from_dir = from.parent().unwrap_or(Path::new("."));
    let to_dir = to.parent().unwrap_or(Path::new("."));
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let data = fs::read(from)?;
            write_new(to, &data, SECRET_MODE)?;
            fs::remove_file(from)?;
        }
        Err(e) => return Err(e),
    }
    sync_dir(to_dir)?;
    sync_dir(from_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_holder_removes_what_a_killed_run_left_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("state"), &dir.path().join("ssl"));
        store.check_writable().unwrap();
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
        for path in &left {
            assert!(!path.exists(), "{} is left", path.display());
        }
        assert!(dir.path().join("ssl/a.test.pem").exists());
    }

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

#[cfg(test)]
mod lifecycle_tests {
    use super::*;

    fn stored(store: &Store, name: &CertName) {
        store.check_writable().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let leaf = params.self_signed(&key).unwrap();
        let chain = Chain::parse(&leaf.pem()).unwrap();
        let info = crate::pem::cert_info(&chain.leaf).unwrap();
        store
            .save_generation(name, &key.serialize_pem(), &chain, &info)
            .unwrap();
        let settings = CertSettings {
            domains: vec![crate::settings::DomainName::parse(name.as_str()).unwrap()],
            key_type: crate::cli::KeyType::Ec256,
            server: Server::parse("letsencrypt").unwrap(),
            ca_bundle: None,
            challenge: crate::settings::Challenge::Stateless,
            hooks: Default::default(),
            email: None,
            haproxy_sockets: Vec::new(),
            days: None,
            client_auth: false,
        };
        store.save_settings(name, &settings).unwrap();
        let files = store.live_files(name).unwrap();
        store
            .write_bundle(name, &crate::pem::bundle(&files.chain, &files.key_pem))
            .unwrap();
    }

    #[test]
    fn archive_moves_state_and_bundle_into_one_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("state"), &dir.path().join("ssl"));
        let name = CertName::parse("a.fr").unwrap();
        stored(&store, &name);
        let bundle = fs::read(store.bundle_path(&name)).unwrap();
        // 2026-01-01T00:00:00Z
        let folder = store.archive(&name, true, 1_767_225_600).unwrap();
        assert_eq!(
            folder,
            dir.path().join("state/archive/a.fr-20260101T000000Z")
        );
        assert!(!store.manages(&name));
        assert!(!store.bundle_path(&name).exists());
        assert_eq!(fs::read(folder.join("a.fr.pem")).unwrap(), bundle);
        assert!(folder.join("a.fr/settings.json").is_file());
        assert!(
            folder.join("a.fr/live/key.pem").is_file(),
            "live link still resolves"
        );
        assert_eq!(
            fs::metadata(&folder).unwrap().permissions().mode() & 0o777,
            0o700
        );

        // the same name archived again within the same second gets its own folder
        stored(&store, &name);
        let again = store.archive(&name, false, 1_767_225_600).unwrap();
        assert_eq!(
            again,
            dir.path().join("state/archive/a.fr-20260101T000000Z-2")
        );
        assert!(store.bundle_path(&name).is_file(), "bundle kept");
        assert!(!again.join("a.fr.pem").exists());
    }

    #[test]
    fn archive_moves_a_bundle_across_file_systems() {
        use std::os::unix::fs::MetadataExt;
        // /etc and /var are often different file systems; /dev/shm (tmpfs) stands in here
        let state = tempfile::tempdir().unwrap();
        let Ok(ssl) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let device = |p: &Path| fs::metadata(p).unwrap().dev();
        if device(state.path()) == device(ssl.path()) {
            return;
        }
        let store = Store::new(state.path(), ssl.path());
        let name = CertName::parse("a.fr").unwrap();
        stored(&store, &name);
        let bundle = fs::read(store.bundle_path(&name)).unwrap();
        let folder = store.archive(&name, true, 0).unwrap();
        assert_eq!(fs::read(folder.join("a.fr.pem")).unwrap(), bundle);
        assert_eq!(
            fs::metadata(folder.join("a.fr.pem"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(!store.bundle_path(&name).exists());
        assert!(!store.manages(&name));
    }

    #[test]
    fn inspection_reports_each_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("state"), &dir.path().join("ssl"));
        let name = CertName::parse("a.fr").unwrap();
        stored(&store, &name);
        let whole = store.inspect(&name);
        assert!(whole.problems.is_empty(), "{:?}", whole.problems);
        assert!(whole.settings.is_some() && whole.info.is_some() && whole.bundle_exists);

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
    fn cert_pem_must_hold_the_leaf_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("state"), &dir.path().join("ssl"));
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
}
