//! The state interface: accounts, certificates and their generations, ARI windows, what was
//! deployed on this host, the local CA, and the lock. `Backend` is what a storage engine
//! implements (values are bytes and small JSON, named by `Key`; no paths); `Store` is the
//! typed face every other room uses. Bundles for the proxy are not state: see `deploy`.
//! Only the backends touch storage; nothing above them builds a path into the state.

mod copy;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod files;
mod inspect;
mod open;
mod records;
mod staging;
#[cfg(test)]
mod suite;
mod versions;

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::pem::{AriState, CertInfo, Chain};
use crate::settings::CertSettings;
use crate::types::{CertName, Server};

pub use copy::{Copied, copy};
pub use files::Files;
pub use inspect::Inspection;
pub use open::{ClusterView, Watch, open};
pub use records::RenewalStatus;
pub use versions::{Version, Versions};

/// A value in the state, by what it is. Which keys are secret (0600, and encrypted by a
/// networked backend) is decided here, once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// ACME account credentials for one directory URL.
    Account(Server),
    /// What `request` used for a certificate (settings.json).
    Settings(CertName),
    /// The CA's last renewal window (RFC 9773) for a certificate.
    Ari(CertName),
    /// What this host last installed for a certificate (bundle identity).
    Deployed(CertName),
    /// How the certificate's renewals went: last success, last failure, failures.
    Status(CertName),
    /// DNS-01 records placed for a certificate and not yet removed: written before they
    /// are placed, so the next run removes what a killed run left.
    DnsPending(CertName),
    /// Which serial each HAProxy socket of this host was last given for a certificate.
    Pushed(CertName),
    /// A CA that mishandled `replaces` (RFC 9773): orders to it go without.
    NoReplaces(Server),
    /// Until when a CA asked (429/503 with Retry-After) not to be contacted.
    RateLimit(Server),
    /// Why the certificate must be issued again at the next renew (its key type or CA was
    /// reconfigured); removed when a new generation is saved.
    Reissue(CertName),
    /// The local CA's certificate, key, revoked serials and CRL.
    CaCert,
    CaKey,
    CaRevoked,
    Crl,
}

impl Key {
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            Key::Account(_) | Key::Settings(_) | Key::CaKey | Key::DnsPending(_)
        )
    }
}

/// The files of one generation of a certificate, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub key_pem: String,
    pub cert_pem: String,
    pub chain_pem: String,
    pub fullchain_pem: String,
    /// `CertInfo` as JSON.
    pub meta: Vec<u8>,
}

/// A generation written by `Backend::stage_generation`, not live yet.
pub struct Staged {
    pub name: CertName,
    /// The backend's name for it (files: "g7"); None when it is already live.
    generation: Option<String>,
}

impl Generation {
    fn new(key_pem: &str, chain: &Chain, info: &CertInfo) -> anyhow::Result<Self> {
        Ok(Self {
            key_pem: key_pem.to_owned(),
            cert_pem: chain.leaf_pem(),
            chain_pem: chain.chain_pem(),
            fullchain_pem: chain.fullchain_pem(),
            meta: serde_json::to_vec_pretty(info)?,
        })
    }
}

/// Held until dropped. A backend whose locks expire (a lease) keeps it alive in the
/// background and says through `check` when it was lost: a holder checks before it commits.
pub trait Lock: Send + Sync {
    fn check(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A lock with nothing to hold: what a store of one host gives for a certificate's lock
/// (its own `lock` covers every certificate).
pub struct Unlocked;

impl Lock for Unlocked {}

/// What taking a certificate's lock gave.
pub enum Taken {
    Held(Box<dyn Lock>),
    /// Another node holds it (its name), and the caller did not want to wait.
    Busy(String),
}

/// A storage engine for the state. Every method is bounded in time; errors name what failed.
pub trait Backend: Send + Sync {
    /// Where the state is, for messages ("state directory /var/lib/certctl").
    fn describe(&self) -> String;
    /// Creates what is missing and proves it can be written, before any order is placed.
    fn check_writable(&self) -> anyhow::Result<()>;
    /// Refuses a state that someone other than root (or the running user) could have
    /// written: its settings name the hooks root runs. The error says how to fix it.
    fn check_trusted(&self) -> Result<(), String> {
        Ok(())
    }
    /// The lock around everything that writes, waiting at most `wait`.
    fn lock(&self, wait: Duration) -> anyhow::Result<Box<dyn Lock>>;
    /// The lock of one certificate across the nodes of a shared store, so that one node
    /// orders it: `Busy` at once when another node holds it and `wait` is None, else waiting
    /// at most `wait`. A store of one host: nothing to take (`lock` covers it).
    fn lock_cert(&self, _name: &CertName, _wait: Option<Duration>) -> anyhow::Result<Taken> {
        Ok(Taken::Held(Box::new(Unlocked)))
    }
    /// The lock around creating the account at `server` in a shared store, where runs that
    /// renew different certificates meet. None: the store's `lock`, held, covers it.
    fn lock_account(
        &self,
        _server: &Server,
        _wait: Duration,
    ) -> anyhow::Result<Option<Box<dyn Lock>>> {
        Ok(None)
    }

    /// Names a value in messages (a file backend: its path).
    fn label(&self, key: &Key) -> String;
    fn read(&self, key: &Key) -> anyhow::Result<Option<Vec<u8>>>;
    /// Replaces the value atomically: a reader sees the old value or the new one.
    fn write(&self, key: &Key, value: &[u8]) -> anyhow::Result<()>;
    /// Removes the value; a missing value is not an error.
    fn remove(&self, key: &Key) -> anyhow::Result<()>;

    /// Every managed certificate, sorted.
    fn names(&self) -> anyhow::Result<Vec<CertName>>;
    /// Whether a certificate by that name is managed (whole or damaged).
    fn manages(&self, name: &CertName) -> anyhow::Result<bool>;
    /// The live generation's meta (CertInfo JSON) alone: what the renewal decision needs.
    fn live_meta(&self, name: &CertName) -> anyhow::Result<Option<Vec<u8>>>;
    /// Every file of the live generation, read from one generation even while another run
    /// switches it. Each file that cannot be read is an `Err` naming it.
    fn live(&self, name: &CertName) -> LiveRead;
    /// Stores `generation` and makes it the live one in one atomic step; the previous one
    /// is kept for a manual rollback, older ones dropped.
    fn save_generation(&self, name: &CertName, generation: &Generation) -> anyhow::Result<()>;
    /// Whether this backend groups the flushes of many new generations (`stage_generation`,
    /// then one `flush`, then `switch_live` each, then one `flush`); false (the default):
    /// callers store each with `save_generation`.
    fn stages(&self) -> bool {
        false
    }
    /// Writes `generation` beside the live one, neither durable nor live yet. The default
    /// does today's whole `save_generation` (durable and live at once).
    fn stage_generation(&self, name: &CertName, generation: &Generation) -> anyhow::Result<Staged> {
        self.save_generation(name, generation)?;
        Ok(Staged {
            name: name.clone(),
            generation: None,
        })
    }
    /// Makes everything written so far durable (files: one syncfs).
    fn flush(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Makes a staged (and flushed) generation the live one in one atomic step, durable at
    /// the next `flush`.
    fn switch_live(&self, _staged: &Staged) -> anyhow::Result<()> {
        Ok(())
    }
    /// Removes a staged generation that will not be switched.
    fn abandon(&self, _staged: &Staged) {}
    /// Drops the generations older than the live one's predecessor.
    fn prune_generations(&self, _name: &CertName) {}
    /// Stops managing `name`: its state (with `attachments`, e.g. the bundle's bytes) moves
    /// to an archive; returns where, for the user.
    fn archive(
        &self,
        name: &CertName,
        now: i64,
        attachments: &[(String, Vec<u8>)],
    ) -> anyhow::Result<String>;
    /// Where hooks find the live files on this host's disk (certbot's RENEWED_LINEAGE);
    /// None for a backend that keeps nothing on local disk.
    fn live_paths(&self, name: &CertName) -> Option<LivePaths>;
    /// A shared store's view of `name` across nodes (None: a store of this host alone).
    fn cluster_view(&self, _name: &CertName) -> Option<anyhow::Result<ClusterView>> {
        None
    }
    /// Changes of the certificates as they happen (a shared store; None otherwise).
    fn watch(&self) -> Option<anyhow::Result<Box<dyn Watch>>> {
        None
    }

    /// What `name`'s stored state is now, told cheaply (files: inode, size and times of its
    /// directory and settings): equal versions mean nothing of it was written since. None
    /// (the default) when the backend cannot tell cheaply: callers read the state.
    fn version(&self, _name: &CertName) -> Option<Version> {
        None
    }
    /// `version` of many certificates through one handle (files: `certs/` opened once),
    /// shared by threads. None (the default): no cheap versions.
    fn versions(&self) -> Option<Box<dyn Versions + '_>> {
        None
    }
    /// The same for the set of names.
    fn names_version(&self) -> Option<Version> {
        None
    }
    /// This host's index of when each certificate next needs attention: a cache that is
    /// rebuilt whenever it disagrees with the state. None (the default): no index kept.
    fn index(&self) -> Option<Vec<u8>> {
        None
    }
    /// Replaces the index (atomically; a backend without one ignores it).
    fn save_index(&self, _bytes: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }
    /// The same for `list`'s cache of what it shows of each certificate.
    fn list_cache(&self) -> Option<Vec<u8>> {
        None
    }
    fn save_list_cache(&self, _bytes: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }
}

/// One read of the live generation: each file, or why it could not be read.
pub struct LiveRead {
    pub key_pem: anyhow::Result<String>,
    pub cert_pem: anyhow::Result<Vec<u8>>,
    pub chain_pem: anyhow::Result<Vec<u8>>,
    pub meta: anyhow::Result<Vec<u8>>,
    /// Names the generation's files in messages ("/var/lib/certctl/certs/a/g3/cert.pem").
    pub cert_label: String,
    pub chain_label: String,
    pub meta_label: String,
    pub key_label: String,
}

/// Paths of a certificate's live files, as hooks see them.
#[derive(Debug, Clone)]
pub struct LivePaths {
    pub dir: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub chain: std::path::PathBuf,
    pub fullchain: std::path::PathBuf,
}

/// A managed certificate as stored: its settings and the facts of its current leaf.
#[derive(Debug, Clone)]
pub struct Lineage {
    pub name: CertName,
    pub settings: CertSettings,
    pub info: CertInfo,
}

/// Key and chain of a certificate's live generation, all from one generation.
pub struct LiveFiles {
    pub key_pem: String,
    pub chain: Chain,
    /// Name the key and the certificate in messages.
    pub key_label: String,
    pub cert_label: String,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    server: Server,
    credentials: instant_acme::AccountCredentials,
}

/// The typed state every command works with, over any backend. Clones share the backend.
#[derive(Clone)]
pub struct Store {
    backend: std::sync::Arc<dyn Backend>,
}

impl Store {
    pub fn new(backend: Box<dyn Backend>) -> Self {
        Self {
            backend: backend.into(),
        }
    }

    /// The file backend in `state_dir` (today's layout).
    pub fn files(state_dir: &std::path::Path) -> Self {
        Self::new(Box::new(Files::new(state_dir)))
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    pub fn check_writable(&self) -> anyhow::Result<()> {
        self.backend.check_writable()
    }

    pub fn check_trusted(&self) -> Result<(), String> {
        self.backend.check_trusted()
    }

    pub fn lock(&self, wait: Duration) -> anyhow::Result<Box<dyn Lock>> {
        self.backend.lock(wait)
    }

    pub fn lock_cert(&self, name: &CertName, wait: Option<Duration>) -> anyhow::Result<Taken> {
        self.backend.lock_cert(name, wait)
    }

    pub fn lock_account(
        &self,
        server: &Server,
        wait: Duration,
    ) -> anyhow::Result<Option<Box<dyn Lock>>> {
        self.backend.lock_account(server, wait)
    }

    pub fn account(
        &self,
        server: &Server,
    ) -> anyhow::Result<Option<instant_acme::AccountCredentials>> {
        let Some(bytes) = self.backend.read(&Key::Account(server.clone()))? else {
            return Ok(None);
        };
        let stored: StoredAccount = serde_json::from_slice(&bytes).map_err(|_| {
            anyhow::anyhow!(
                "the account file {} is damaged; move it away to create a new account",
                self.backend.label(&Key::Account(server.clone()))
            )
        })?;
        Ok(Some(stored.credentials))
    }

    pub fn save_account(
        &self,
        server: &Server,
        credentials: instant_acme::AccountCredentials,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(&StoredAccount {
            server: server.clone(),
            credentials,
        })?;
        self.backend
            .write(&Key::Account(server.clone()), &json)
            .context("saving the ACME account")
    }

    pub fn names(&self) -> anyhow::Result<Vec<CertName>> {
        self.backend.names()
    }

    pub fn manages(&self, name: &CertName) -> bool {
        self.backend.manages(name).unwrap_or(false)
    }

    pub fn settings(&self, name: &CertName) -> anyhow::Result<Option<CertSettings>> {
        self.json(&Key::Settings(name.clone()))
    }

    pub fn save_settings(&self, name: &CertName, settings: &CertSettings) -> anyhow::Result<()> {
        self.backend
            .write(
                &Key::Settings(name.clone()),
                &serde_json::to_vec_pretty(settings)?,
            )
            .with_context(|| format!("{name}: saving the settings"))
    }

    /// Whether `name` was left half made by a first request stopped while storing it (killed,
    /// or a full disk): managed, but without its settings or without a live certificate.
    /// Some(its settings, when they were stored); None for a whole (or a damaged) entry.
    pub fn half_made(&self, name: &CertName) -> Option<Option<CertSettings>> {
        if !self.manages(name) {
            return None;
        }
        // a damaged file (settings, or a live meta that cannot be read) is damage, not an
        // interrupted request: it is reported, never ordered again or cleared
        let settings = self.settings(name).ok()?;
        match (settings, self.backend.live_meta(name)) {
            (_, Err(_)) | (Some(_), Ok(Some(_))) => None,
            (settings, Ok(_)) => Some(settings),
        }
    }

    /// The stored certificate `name`, or None when certctl does not manage it.
    pub fn lineage(&self, name: &CertName) -> anyhow::Result<Option<Lineage>> {
        if !self.backend.manages(name)? {
            return Ok(None);
        }
        let settings = self.settings(name)?.with_context(|| {
            format!(
                "{} is missing",
                self.backend.label(&Key::Settings(name.clone()))
            )
        })?;
        // the generation's own name for its meta only on the error path: one read otherwise
        let meta_label = || self.backend.live(name).meta_label;
        let meta = self
            .backend
            .live_meta(name)?
            .with_context(|| format!("{} is missing", meta_label()))?;
        let info: CertInfo = serde_json::from_slice(&meta)
            .with_context(|| format!("{} is damaged", meta_label()))?;
        Ok(Some(Lineage {
            name: name.clone(),
            settings,
            info,
        }))
    }

    /// The CA's last ARI answer for `name` (a damaged value counts as none: the lifetime
    /// rule then decides, which is always safe).
    pub fn ari(&self, name: &CertName) -> Option<AriState> {
        self.json(&Key::Ari(name.clone())).ok().flatten()
    }

    /// Records the CA's ARI answer, or removes it when the CA offers none.
    pub fn save_ari(&self, name: &CertName, ari: Option<&AriState>) -> anyhow::Result<()> {
        let key = Key::Ari(name.clone());
        match ari {
            Some(ari) => self.backend.write(&key, &serde_json::to_vec_pretty(ari)?),
            None => self.backend.remove(&key),
        }
        .with_context(|| format!("{name}: saving the renewal window"))
    }

    /// Stores a new generation of key, certificate and chain and makes it the live one.
    pub fn save_generation(
        &self,
        name: &CertName,
        key_pem: &str,
        chain: &Chain,
        info: &CertInfo,
    ) -> anyhow::Result<()> {
        self.backend
            .save_generation(name, &Generation::new(key_pem, chain, info)?)
    }

    /// The DER of `name`'s live leaf.
    pub fn live_leaf(&self, name: &CertName) -> anyhow::Result<Vec<u8>> {
        let live = self.backend.live(name);
        leaf_of(&live.cert_pem?, &live.cert_label)
    }

    /// Key, leaf and intermediates of `name`'s live generation: what a bundle is built from.
    pub fn live_files(&self, name: &CertName) -> anyhow::Result<LiveFiles> {
        let live = self.backend.live(name);
        let leaf = leaf_of(&live.cert_pem?, &live.cert_label)?;
        let intermediates = crate::pem::certificates(&live.chain_pem?)
            .with_context(|| format!("{} is damaged", live.chain_label))?;
        Ok(LiveFiles {
            key_pem: live.key_pem?,
            chain: Chain {
                leaf,
                intermediates,
            },
            key_label: live.key_label,
            cert_label: live.cert_label,
        })
    }

    /// Stops managing `name`; `attachments` (the bundle) go into the archive with its state.
    pub fn archive(
        &self,
        name: &CertName,
        now: i64,
        attachments: &[(String, Vec<u8>)],
    ) -> anyhow::Result<String> {
        self.backend.archive(name, now, attachments)
    }

    pub fn live_paths(&self, name: &CertName) -> Option<LivePaths> {
        self.backend.live_paths(name)
    }

    /// Changes of the certificates as they happen (shared stores only).
    pub fn watch(&self) -> Option<anyhow::Result<Box<dyn Watch>>> {
        self.backend.watch()
    }

    /// Which node renewed `name` last and what each node installed (shared stores only).
    pub fn cluster_view(&self, name: &CertName) -> Option<anyhow::Result<ClusterView>> {
        self.backend.cluster_view(name)
    }

    /// Names a value in messages.
    pub fn label(&self, key: &Key) -> String {
        self.backend.label(key)
    }

    /// The raw bytes of a value (the local CA's files).
    pub fn read(&self, key: &Key) -> anyhow::Result<Option<Vec<u8>>> {
        self.backend.read(key)
    }

    pub fn write(&self, key: &Key, value: &[u8]) -> anyhow::Result<()> {
        self.backend.write(key, value)
    }

    pub fn remove(&self, key: &Key) -> anyhow::Result<()> {
        self.backend.remove(key)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: &Key) -> anyhow::Result<Option<T>> {
        match self.backend.read(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is damaged", self.backend.label(key))),
        }
    }
}

/// Whether a certificate's names are the ones asked for (DNS names without case, IP
/// addresses by value).
pub fn same_names(asked: &[crate::types::DomainName], names: &[String]) -> bool {
    let norm = |n: &str| match n.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => n.to_ascii_lowercase(),
    };
    let mut a: Vec<String> = asked.iter().map(|d| norm(d.as_str())).collect();
    let mut b: Vec<String> = names.iter().map(|n| norm(n)).collect();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// A stored certificate file must hold exactly one certificate (the leaf), as DER.
fn leaf_of(pem_bytes: &[u8], label: &str) -> anyhow::Result<Vec<u8>> {
    let mut certs =
        crate::pem::certificates(pem_bytes).with_context(|| format!("{label} is damaged"))?;
    match certs.len() {
        1 => Ok(certs.remove(0)),
        0 => anyhow::bail!("{label} holds no certificate"),
        n => anyhow::bail!(
            "{label} holds {n} certificates; it should hold the leaf only (intermediates go in chain.pem)"
        ),
    }
}
