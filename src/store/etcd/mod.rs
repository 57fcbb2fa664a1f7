//! The etcd backend of the state, shared by every node of a cluster. Layout under
//! `<prefix>/`: accounts/<url hash>, certs/<name>/{managed, settings, live, previous, ari,
//! status, reissue}, certs/<name>/nodes/<node>/{host, deployed, pushed} (what belongs to one
//! node), dns-pending/<name>, ca/*, keycheck; the locks: lock (the store's), locks/cert/<name>,
//! locks/account/<url hash> (lock.rs). Secrets (`Key::is_secret`, every private key) are
//! sealed with the store key before they are sent; each value is read once per process
//! (cache.rs); nothing here writes to local disk.

mod cache;
mod client;
mod lock;
pub mod seal;
mod settings;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use etcd_client::{Compare, CompareOp, DeleteOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::{Backend, ClusterView, Generation, Key, LivePaths, LiveRead, Lock, Taken, Watch};
use crate::settings::EtcdSpec;
use crate::types::CertName;
use seal::Sealer;

/// A generation as stored: one value, so that a reader sees one generation whole.
#[derive(Serialize, Deserialize)]
struct StoredGeneration {
    generation: u64,
    /// The node that stored it, and when (unix seconds).
    node: String,
    time: i64,
    /// The private key, sealed.
    key: String,
    cert: String,
    chain: String,
    fullchain: String,
    meta: String,
}

pub struct Etcd {
    conn: Arc<Conn>,
    /// What this process read and wrote: each value is read once.
    cache: cache::Cache,
    /// The lease of this process's locks, granted at the first one.
    session: std::sync::Mutex<Option<Arc<lock::Session>>>,
    /// The locks this process holds: what they cover is stored only while they exist.
    held: lock::Held,
    spec: EtcdSpec,
    sealer: Sealer,
}

use client::Conn;

impl Drop for Etcd {
    fn drop(&mut self) {
        crate::log::verbose(format_args!(
            "{}: {} round trips",
            self.spec.describe(),
            self.conn.round_trips()
        ));
    }
}

impl Etcd {
    /// Connects, and proves the store key is the one the store was sealed with (the first
    /// node to connect records a check value): a node with another key changes nothing.
    pub fn open(spec: &EtcdSpec) -> anyhow::Result<Self> {
        let key_file = spec.store_key_file.as_ref().ok_or_else(|| {
            crate::error::BadInput::new(format!(
                "{} needs store_key_file in the config file: private keys are sealed with it \
                 before they leave this node; `certctl store init-key --out FILE` makes one, the \
                 same file goes to every node",
                spec.describe()
            ))
        })?;
        let sealer =
            Sealer::load(key_file).map_err(|e| crate::error::BadInput::new(format!("{e:#}")))?;
        let conn = Arc::new(Conn::connect(spec)?);
        let etcd = Self {
            conn,
            cache: Default::default(),
            session: Default::default(),
            held: Default::default(),
            spec: spec.clone(),
            sealer,
        };
        etcd.check_key()?;
        Ok(etcd)
    }

    fn check_key(&self) -> anyhow::Result<()> {
        const CHECK: &[u8] = b"certctl store key check";
        let key = self.full("keycheck");
        match self.conn.get(&key)? {
            Some(kv) => {
                let plain = self
                    .sealer
                    .open(kv.value(), &format!("etcd key {key}"))
                    .map_err(|e| crate::error::BadInput::new(format!("{e:#}")))?;
                if plain != CHECK {
                    bail!("etcd key {key} is damaged");
                }
                Ok(())
            }
            None => {
                let sealed = self.sealer.seal(CHECK)?;
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.clone(), sealed, None)]);
                self.conn.txn("recording the store key check", txn)?;
                Ok(())
            }
        }
    }

    fn full(&self, rest: &str) -> String {
        format!("{}/{rest}", self.spec.prefix)
    }

    fn cert(&self, name: &CertName, rest: &str) -> String {
        self.full(&format!("certs/{name}/{rest}"))
    }

    fn node_key(&self, name: &CertName, rest: &str) -> String {
        self.cert(name, &format!("nodes/{}/{rest}", self.spec.node))
    }

    fn key(&self, key: &Key) -> String {
        let hash = url_hash;
        match key {
            Key::Account(s) => self.full(&format!("accounts/{}", hash(s))),
            Key::NoReplaces(s) => self.full(&format!("no-replaces/{}", hash(s))),
            Key::RateLimit(s) => self.full(&format!("rate-limit/{}", hash(s))),
            Key::Settings(n) => self.cert(n, "settings"),
            Key::Ari(n) => self.cert(n, "ari"),
            Key::Status(n) => self.cert(n, "status"),
            Key::Reissue(n) => self.cert(n, "reissue"),
            Key::Deployed(n) => self.node_key(n, "deployed"),
            Key::Pushed(n) => self.node_key(n, "pushed"),
            Key::DnsPending(n) => self.full(&format!("dns-pending/{n}")),
            Key::CaCert => self.full("ca/cert"),
            Key::CaKey => self.full("ca/key"),
            Key::CaRevoked => self.full("ca/revoked"),
            Key::Crl => self.full("ca/crl"),
        }
    }

    /// Values that exist only while their certificate is managed.
    fn per_cert(key: &Key) -> Option<&CertName> {
        match key {
            Key::Ari(n) | Key::Status(n) | Key::Reissue(n) | Key::Deployed(n) | Key::Pushed(n) => {
                Some(n)
            }
            _ => None,
        }
    }

    fn stored_generation(
        &self,
        name: &CertName,
    ) -> anyhow::Result<Option<(StoredGeneration, i64)>> {
        let key = self.cert(name, "live");
        let Some(kv) = self.get(&key)? else {
            return Ok(None);
        };
        let generation = serde_json::from_slice(&kv.value)
            .with_context(|| format!("etcd key {key} is damaged"))?;
        Ok(Some((generation, kv.mod_revision)))
    }

    fn view(&self, name: &CertName) -> anyhow::Result<ClusterView> {
        let mut view = ClusterView::default();
        if let Some((g, _)) = self.stored_generation(name)? {
            view.generation = g.generation;
            view.renewed_by = g.node;
        }
        let nodes = self.cert(name, "nodes/");
        for kv in self.conn.prefix(&nodes, false)? {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some((node, "deployed")) = key
                .strip_prefix(&nodes)
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            let serial = serde_json::from_slice::<serde_json::Value>(kv.value())
                .ok()
                .and_then(|v| v["serial"].as_str().map(str::to_owned))
                .unwrap_or_default();
            view.installed.insert(node.to_owned(), serial);
        }
        Ok(view)
    }

    fn seal_if_secret(&self, key: &Key, value: &[u8]) -> anyhow::Result<Vec<u8>> {
        if key.is_secret() {
            self.sealer.seal(value)
        } else {
            Ok(value.to_vec())
        }
    }
}

/// A CA's directory URL as a short key part.
fn url_hash(server: &crate::types::Server) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, server.url().as_bytes());
    d.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

impl Backend for Etcd {
    fn describe(&self) -> String {
        self.spec.describe()
    }

    fn check_writable(&self) -> anyhow::Result<()> {
        // a write needs a quorum: prove there is one before any order is placed
        self.conn.put(
            &self.full(&format!("nodes/{}", self.spec.node)),
            b"up".to_vec(),
        )
    }

    fn lock(&self, wait: Duration) -> anyhow::Result<Box<dyn Lock>> {
        match self.take(&self.full("lock"), Some(wait))? {
            Taken::Held(lock) => {
                // what is decided under the lock is read afresh
                self.cache.clear();
                Ok(lock)
            }
            Taken::Busy(node) => bail!("node {node} holds the lock"),
        }
    }

    fn lock_cert(&self, name: &CertName, wait: Option<Duration>) -> anyhow::Result<Taken> {
        let taken = self.take(&self.cert_lock(name), wait)?;
        if let Taken::Held(_) = taken {
            self.cache.forget_prefix(&self.cert(name, ""));
        }
        Ok(taken)
    }

    fn lock_account(
        &self,
        server: &crate::types::Server,
        wait: Duration,
    ) -> anyhow::Result<Option<Box<dyn Lock>>> {
        let name = self.account_lock(server);
        match self.take(&name, Some(wait))? {
            Taken::Held(lock) => {
                self.cache.forget(&self.key(&Key::Account(server.clone())));
                Ok(Some(lock))
            }
            Taken::Busy(node) => bail!("node {node} holds the lock {name}"),
        }
    }

    fn label(&self, key: &Key) -> String {
        format!("etcd key {}", self.key(key))
    }

    fn read(&self, key: &Key) -> anyhow::Result<Option<Vec<u8>>> {
        if let Key::Settings(name) = key {
            return self.read_settings(name);
        }
        let full = self.key(key);
        match self.get(&full)? {
            None => Ok(None),
            Some(kv) if key.is_secret() => self
                .sealer
                .open(&kv.value, &format!("etcd key {full}"))
                .map(Some),
            Some(kv) => Ok(Some(kv.value)),
        }
    }

    fn write(&self, key: &Key, value: &[u8]) -> anyhow::Result<()> {
        if let Key::Settings(name) = key {
            return self.write_settings(name, value);
        }
        let full = self.key(key);
        let value = self.seal_if_secret(key, value)?;
        match Self::per_cert(key) {
            Some(name) => {
                let txn = Txn::new()
                    .when([Compare::create_revision(
                        self.cert(name, "managed"),
                        CompareOp::Greater,
                        0,
                    )])
                    .and_then([TxnOp::put(full.clone(), value.clone(), None)]);
                let stored = self.conn.txn(&format!("writing {full}"), txn)?;
                if !stored.succeeded() {
                    self.cache.forget_prefix(&self.cert(name, ""));
                    bail!("{name} is not managed any more ({})", self.describe());
                }
                self.wrote(cache::revision(&stored), &[(&full, Some(&value))]);
                Ok(())
            }
            // a new account is stored only while its lock is held
            None => {
                let fence = match key {
                    Key::Account(server) => self.held_key(&self.account_lock(server)),
                    _ => None,
                };
                let txn =
                    self.fenced(fence)
                        .and_then([TxnOp::put(full.clone(), value.clone(), None)]);
                let stored = self.conn.txn(&format!("writing {full}"), txn)?;
                if stored.succeeded() {
                    self.wrote(cache::revision(&stored), &[(&full, Some(&value))]);
                }
                self.check_fenced(stored.succeeded(), &full)
            }
        }
    }

    fn remove(&self, key: &Key) -> anyhow::Result<()> {
        let full = self.key(key);
        // known to be absent (read or removed by this process): nothing to send
        if let Some(None) = self.cache.lookup(&full) {
            return Ok(());
        }
        let txn = Txn::new().and_then([TxnOp::delete(full.clone(), None)]);
        let removed = self.conn.txn(&format!("removing {full}"), txn);
        match &removed {
            Ok(_) => self.cache.set(&full, None),
            Err(_) => self.cache.forget(&full),
        }
        removed.map(|_| ())
    }

    fn names(&self) -> anyhow::Result<Vec<CertName>> {
        if let Some(names) = self.cache.names() {
            return Ok(names);
        }
        let base = self.full("certs/");
        let mut names: Vec<CertName> = self
            .conn
            .prefix(&base, true)?
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let name = key
                    .strip_prefix(&base)?
                    .strip_suffix("/managed")?
                    .to_owned();
                CertName::parse(&name).ok()
            })
            .collect();
        names.sort();
        names.dedup();
        self.cache.set_names(&names);
        Ok(names)
    }

    fn manages(&self, name: &CertName) -> anyhow::Result<bool> {
        Ok(self.get(&self.cert(name, "managed"))?.is_some())
    }

    fn live_meta(&self, name: &CertName) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self
            .stored_generation(name)?
            .map(|(g, _)| g.meta.into_bytes()))
    }

    fn live(&self, name: &CertName) -> LiveRead {
        let key = self.cert(name, "live");
        let label = |part: &str| format!("etcd key {key} ({part})");
        let (cert_label, chain_label, meta_label, key_label) =
            (label("cert"), label("chain"), label("meta"), label("key"));
        let read = self.stored_generation(name).and_then(|g| {
            g.map(|(g, _)| g)
                .ok_or_else(|| anyhow::anyhow!("etcd key {key} is missing"))
        });
        match read {
            Ok(g) => LiveRead {
                key_pem: self
                    .sealer
                    .open(g.key.as_bytes(), &key_label)
                    .map(|k| String::from_utf8_lossy(&k).into_owned()),
                cert_pem: Ok(g.cert.into_bytes()),
                chain_pem: Ok(g.chain.into_bytes()),
                meta: Ok(g.meta.into_bytes()),
                cert_label,
                chain_label,
                meta_label,
                key_label,
            },
            Err(e) => {
                let text = format!("{e:#}");
                LiveRead {
                    key_pem: Err(anyhow::anyhow!("{text}")),
                    cert_pem: Err(anyhow::anyhow!("{text}")),
                    chain_pem: Err(anyhow::anyhow!("{text}")),
                    meta: Err(anyhow::anyhow!("{text}")),
                    cert_label,
                    chain_label,
                    meta_label,
                    key_label,
                }
            }
        }
    }

    fn save_generation(&self, name: &CertName, generation: &Generation) -> anyhow::Result<()> {
        let live = self.cert(name, "live");
        let previous = self.cert(name, "previous");
        let key = String::from_utf8(self.sealer.seal(generation.key_pem.as_bytes())?)?;
        // compare-and-swap on the live value: a generation stored by another node meanwhile
        // is kept as the previous one, never lost
        for _ in 0..5 {
            let current = self.get(&live)?;
            let number = current
                .as_ref()
                .and_then(|kv| serde_json::from_slice::<StoredGeneration>(&kv.value).ok())
                .map_or(1, |g| g.generation + 1);
            let stored = StoredGeneration {
                generation: number,
                node: self.spec.node.clone(),
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
                key: key.clone(),
                cert: generation.cert_pem.clone(),
                chain: generation.chain_pem.clone(),
                fullchain: generation.fullchain_pem.clone(),
                meta: String::from_utf8_lossy(&generation.meta).into_owned(),
            };
            let value = serde_json::to_vec(&stored)?;
            let managed = self.cert(name, "managed");
            // a reason to issue again is void once a new generation is saved
            let reissue = self.cert(name, "reissue");
            let mut ops = vec![
                TxnOp::put(live.clone(), value.clone(), None),
                TxnOp::put(managed.clone(), "1", None),
                TxnOp::delete(reissue.clone(), None),
            ];
            let compare = match &current {
                Some(kv) => {
                    ops.push(TxnOp::put(previous.clone(), kv.value.clone(), None));
                    Compare::mod_revision(live.clone(), CompareOp::Equal, kv.mod_revision)
                }
                None => Compare::create_revision(live.clone(), CompareOp::Equal, 0),
            };
            // fenced on the lock: a holder whose lease expired (another node may be at work)
            // stores nothing
            let held = self.fence(Some(name));
            let mut compares = vec![compare];
            if let Some(key) = &held {
                compares.push(Compare::create_revision(key.clone(), CompareOp::Greater, 0));
            }
            let txn = Txn::new().when(compares).and_then(ops);
            let stored = self
                .conn
                .txn(&format!("storing the new certificate of {name}"), txn)?;
            if stored.succeeded() {
                let before = current.as_ref().map(|kv| kv.value.as_slice());
                let mut writes = vec![(live.as_str(), Some(value.as_slice()))];
                writes.push((managed.as_str(), Some(b"1".as_slice())));
                writes.push((reissue.as_str(), None));
                if before.is_some() {
                    writes.push((previous.as_str(), before));
                }
                self.wrote(cache::revision(&stored), &writes);
                return Ok(());
            }
            // another node stored one meanwhile: read it
            self.cache.forget(&live);
            if let Some(key) = held {
                let key = String::from_utf8_lossy(&key).into_owned();
                if self.conn.get(&key)?.is_none() {
                    bail!(
                        "{name}: this node's lock expired before the new certificate was stored \
                         (etcd out of reach for longer than {}s); not stored, the next run \
                         renews it",
                        self.spec.lease_ttl.as_secs()
                    );
                }
            }
        }
        bail!("{name}: the live generation kept changing under this node; run again")
    }

    fn archive(
        &self,
        name: &CertName,
        now: i64,
        attachments: &[(String, Vec<u8>)],
    ) -> anyhow::Result<String> {
        let from = self.cert(name, "");
        let values = self.conn.prefix(&from, false)?;
        let base = self.full(&format!("archive/{name}-{now}"));
        let mut folder = base.clone();
        let mut n = 1;
        while !self.conn.prefix(&format!("{folder}/"), true)?.is_empty() {
            n += 1;
            folder = format!("{base}-{n}");
        }
        let mut ops: Vec<TxnOp> = values
            .iter()
            .map(|kv| {
                let rest = String::from_utf8_lossy(&kv.key()[from.len()..]).into_owned();
                TxnOp::put(format!("{folder}/{rest}"), kv.value().to_vec(), None)
            })
            .collect();
        for (file, data) in attachments {
            ops.push(TxnOp::put(
                format!("{folder}/attachments/{file}"),
                self.sealer.seal(data)?,
                None,
            ));
        }
        ops.push(TxnOp::delete(
            from.clone(),
            Some(DeleteOptions::new().with_prefix()),
        ));
        let archived = self
            .conn
            .txn(&format!("archiving {name}"), Txn::new().and_then(ops));
        self.cache.forget_prefix(&from);
        archived?;
        Ok(format!("etcd keys {folder}/"))
    }

    fn live_paths(&self, _name: &CertName) -> Option<LivePaths> {
        None
    }

    fn cluster_view(&self, name: &CertName) -> Option<anyhow::Result<ClusterView>> {
        Some(self.view(name))
    }

    fn watch(&self) -> Option<anyhow::Result<Box<dyn Watch>>> {
        Some(
            watch::CertWatch::start(self.conn.clone(), self.full("certs/"))
                .map(|w| Box::new(w) as Box<dyn Watch>),
        )
    }
}

#[cfg(test)]
mod tests;
