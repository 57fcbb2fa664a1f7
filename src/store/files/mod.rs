//! The file backend of the state: today's directory layout, so existing state directories
//! keep working. Layout: accounts/<server slug>-<hash of the exact URL>.json (the slug
//! alone, as before, is still read when the file names that very URL), certs/<name>/settings.json,
//! ari.json, deployed.json, live -> gN/ (key.pem, cert.pem, chain.pem, fullchain.pem,
//! meta.json), ca/ (ca.pem, ca.key, revoked.json, crl.pem), dns-pending/<name>.json,
//! archive/, lock. Writes are atomic (temp file, fsync, rename, fsync the directory); the
//! lock is a POSIX record lock.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

mod generations;
mod lock;
mod relaxed;
mod version;

use super::{Backend, Generation, Key, LivePaths, LiveRead, Lock, Staged};
use crate::types::{CertName, Server};

use crate::durable::{
    DIR_MODE, Links, MAX_INPUT_FILE, PUBLIC_MODE, SECRET_MODE, create_dir, read_regular,
    remove_temp_files_in, sync_dir, sync_fs, write_atomic, write_new,
};

/// Reads one file of the state: a regular file of at most `MAX_INPUT_FILE` bytes, never
/// through a symlink and never blocking on a pipe; None when it does not exist.
fn read_state_file(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match read_regular(path, MAX_INPUT_FILE, Links::Refuse) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub struct Files {
    state_dir: PathBuf,
    /// Records written without fsync, made durable at drop (relaxed.rs).
    unsynced: std::sync::atomic::AtomicBool,
}

impl Files {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            unsynced: Default::default(),
        }
    }

    fn cert_dir(&self, name: &CertName) -> PathBuf {
        self.state_dir.join("certs").join(name.as_str())
    }

    /// The account file of `server`: a readable slug of its URL (lossy: `dir?a/b` and
    /// `dir?a_b` share it) and a hash of the exact URL, so that no two CAs share a file.
    fn account_path(&self, server: &Server) -> PathBuf {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, server.url().as_bytes());
        let hash: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.state_dir
            .join("accounts")
            .join(format!("{}-{hash}.json", account_slug(server)))
    }

    /// Where an account was kept before the exact URL was part of the name.
    fn legacy_account_path(&self, server: &Server) -> PathBuf {
        self.state_dir
            .join("accounts")
            .join(format!("{}.json", account_slug(server)))
    }

    /// The account of `server`; a file of the old naming counts only when the URL it
    /// records is exactly `server`'s.
    fn read_account(&self, server: &Server) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(bytes) = read_state_file(&self.account_path(server))? {
            return Ok(Some(bytes));
        }
        let Some(bytes) = read_state_file(&self.legacy_account_path(server))? else {
            return Ok(None);
        };
        let recorded = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["server"].as_str().map(str::to_owned));
        Ok((recorded.as_deref() == Some(server.url())).then_some(bytes))
    }

    fn path(&self, key: &Key) -> PathBuf {
        let ca = self.state_dir.join("ca");
        match key {
            Key::Account(server) => self.account_path(server),
            Key::NoReplaces(server) => self.account_path(server).with_extension("no-replaces"),
            Key::RateLimit(server) => self.account_path(server).with_extension("rate-limit"),
            Key::Settings(name) => self.cert_dir(name).join("settings.json"),
            Key::Ari(name) => self.cert_dir(name).join("ari.json"),
            Key::Deployed(name) => self.cert_dir(name).join("deployed.json"),
            Key::Status(name) => self.cert_dir(name).join("status.json"),
            // beside certs/, not in it: a first request killed while its records were out
            // must not leave a half-made certificate directory
            Key::DnsPending(name) => self
                .state_dir
                .join("dns-pending")
                .join(format!("{name}.json")),
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
            self.state_dir.join("dns-pending"),
        ];
        if let Ok(entries) = fs::read_dir(self.state_dir.join("certs")) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
        for dir in dirs {
            remove_temp_files_in(&dir);
        }
    }
}

impl Backend for Files {
    fn describe(&self) -> String {
        format!("state directory {}", self.state_dir.display())
    }

    fn check_writable(&self) -> anyhow::Result<()> {
        crate::durable::check_dir_writable(&self.state_dir, "state directory", "--state-dir")
    }

    fn check_trusted(&self) -> Result<(), String> {
        use crate::trust::{Rule, check};
        check(&self.state_dir, "state directory", Rule::Private)?;
        // an accounts or certs directory made by someone else would let them swap files
        for sub in ["accounts", "certs", "ca"] {
            check(&self.state_dir.join(sub), "state directory", Rule::Private)?;
        }
        Ok(())
    }

    /// A POSIX record lock: the kernel drops it when the process dies, so a killed run
    /// never leaves a stale lock, and it names its holder's pid without certctl writing
    /// anything into the file.
    fn lock(&self, wait: Duration) -> anyhow::Result<Box<dyn Lock>> {
        create_dir(&self.state_dir).with_context(|| {
            format!("creating the state directory {}", self.state_dir.display())
        })?;
        let lock = lock::FileLock::acquire(&self.state_dir.join("lock"), wait)?;
        self.remove_stale_temp_files();
        Ok(Box::new(lock))
    }

    fn label(&self, key: &Key) -> String {
        self.path(key).display().to_string()
    }

    fn read(&self, key: &Key) -> anyhow::Result<Option<Vec<u8>>> {
        match key {
            Key::Account(server) => self.read_account(server),
            _ => read_state_file(&self.path(key)),
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
        if let Key::Pushed(_) | Key::Deployed(_) | Key::Status(_) = key {
            return self.write_unsynced(&path, value, mode);
        }
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
            // the entry's type as listed (no stat), a symlink followed as before
            .filter(|e| match e.file_type() {
                Ok(t) if t.is_symlink() => e.path().is_dir(),
                Ok(t) => t.is_dir(),
                Err(_) => false,
            })
            .filter_map(|e| CertName::parse(&e.file_name().to_string_lossy()).ok())
            .collect();
        names.sort();
        Ok(names)
    }

    fn manages(&self, name: &CertName) -> anyhow::Result<bool> {
        Ok(self.cert_dir(name).is_dir())
    }

    fn live_meta(&self, name: &CertName) -> anyhow::Result<Option<Vec<u8>>> {
        read_state_file(&self.cert_dir(name).join("live").join("meta.json"))
    }

    fn live(&self, name: &CertName) -> LiveRead {
        let generation = self.generation_dir(name);
        let path = |file: &str| generation.join(file);
        let read = |file: &str| {
            let p = path(file);
            read_state_file(&p)?.ok_or_else(|| anyhow!("{} is missing", p.display()))
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
        let gen_name = self.write_generation(name, generation, true)?;
        self.switch(name, &gen_name, true)?;
        self.prune(name);
        Ok(())
    }

    fn stages(&self) -> bool {
        true
    }
    fn stage_generation(&self, name: &CertName, generation: &Generation) -> anyhow::Result<Staged> {
        Ok(Staged {
            name: name.clone(),
            generation: Some(self.write_generation(name, generation, false)?),
        })
    }
    fn flush(&self) -> anyhow::Result<()> {
        sync_fs(&self.state_dir)
            .with_context(|| format!("flushing {} to disk", self.state_dir.display()))
    }
    fn switch_live(&self, staged: &Staged) -> anyhow::Result<()> {
        match &staged.generation {
            Some(gen_name) => self.switch(&staged.name, gen_name, false),
            None => Ok(()),
        }
    }
    fn abandon(&self, staged: &Staged) {
        if let Some(gen_name) = &staged.generation {
            self.remove_generation(&staged.name, gen_name);
        }
    }
    fn prune_generations(&self, name: &CertName) {
        self.prune(name)
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

    fn version(&self, name: &CertName) -> Option<super::Version> {
        super::Versions::of(&self.cert_versions()?, name.as_str())
    }
    fn versions(&self) -> Option<Box<dyn super::Versions + '_>> {
        Some(Box::new(self.cert_versions()?))
    }
    fn names_version(&self) -> Option<super::Version> {
        self.certs_version()
    }
    fn index(&self) -> Option<Vec<u8>> {
        self.read_index()
    }
    fn save_index(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.write_index(bytes)
    }
    fn list_cache(&self) -> Option<Vec<u8>> {
        self.read_cache(version::LIST_CACHE_FILE)
    }
    fn save_list_cache(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.write_cache(version::LIST_CACHE_FILE, bytes)
    }
}

/// The readable part of an account file's name: the URL without its scheme, every character
/// but letters, digits, '.' and '-' as '_'.
fn account_slug(server: &Server) -> String {
    server
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
        .collect()
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
    use crate::durable::TMP_MARK;
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
    fn accounts_are_kept_by_the_exact_url_and_old_files_still_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::files(dir.path());
        let credentials = |id: &str| -> instant_acme::AccountCredentials {
            serde_json::from_value(serde_json::json!({
                "id": id,
                "key_pkcs8": "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
                "directory": "https://ca.test/dir",
            }))
            .unwrap()
        };
        let slash = Server::parse("https://ca.test/dir?a/b").unwrap();
        let underscore = Server::parse("https://ca.test/dir?a_b").unwrap();
        store.save_account(&underscore, credentials("u")).unwrap();
        assert!(
            store.account(&slash).unwrap().is_none(),
            "not the other CA's"
        );
        store.save_account(&slash, credentials("s")).unwrap();
        let id = |server| {
            serde_json::to_value(store.account(server).unwrap().unwrap()).unwrap()["id"].clone()
        };
        assert_eq!(id(&slash), "s");
        assert_eq!(id(&underscore), "u");
        // a file of the old naming: read for its own URL only
        let old = Server::parse("https://old.test/dir").unwrap();
        let json = serde_json::json!({"server": old.url(), "credentials": credentials("o")});
        let legacy = dir.path().join("accounts/old.test_dir.json");
        fs::write(&legacy, serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(id(&old), "o");
        let other = Server::parse("https://old.test/dir/").unwrap();
        let json = serde_json::json!({"server": other.url(), "credentials": credentials("x")});
        fs::write(&legacy, serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(store.account(&old).unwrap().is_none());
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
