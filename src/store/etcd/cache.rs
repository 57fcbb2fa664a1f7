//! What this process read from etcd, so that a run reads each value once: a certificate's
//! keys come with one prefix read the first time any of them is needed, any other value
//! with one read; what this process writes replaces what it read (never read back). Taking
//! a certificate's lock forgets that certificate, and any other lock everything: what is
//! decided under a lock is read afresh.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::types::CertName;

/// A value as read or written, with the revision it was last changed at.
#[derive(Clone)]
pub(super) struct Entry {
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

#[derive(Default)]
pub(super) struct Cache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    values: HashMap<String, Option<Entry>>,
    /// Prefixes read whole: a key under one that `values` does not hold is absent.
    loaded: HashSet<String>,
    names: Option<Vec<CertName>>,
}

impl Cache {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Some(the value, or None when absent) when known; None when it must be read.
    pub(super) fn lookup(&self, key: &str) -> Option<Option<Entry>> {
        let state = self.state();
        if let Some(known) = state.values.get(key) {
            return Some(known.clone());
        }
        state
            .loaded
            .iter()
            .any(|prefix| key.starts_with(prefix.as_str()))
            .then_some(None)
    }

    /// Records every key read under `prefix` (the others are absent).
    pub(super) fn loaded(&self, prefix: &str, kvs: &[etcd_client::KeyValue]) {
        let mut state = self.state();
        state.values.retain(|k, _| !k.starts_with(prefix));
        for kv in kvs {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let entry = Entry {
                value: kv.value().to_vec(),
                mod_revision: kv.mod_revision(),
            };
            state.values.insert(key, Some(entry));
        }
        state.loaded.insert(prefix.to_owned());
    }

    /// Records a value read or written (None: absent, or removed).
    pub(super) fn set(&self, key: &str, entry: Option<Entry>) {
        let mut state = self.state();
        if key.ends_with("/managed") {
            state.names = None;
        }
        state.values.insert(key.to_owned(), entry);
    }

    /// Forgets one value (a write whose outcome is not known).
    pub(super) fn forget(&self, key: &str) {
        let mut state = self.state();
        state.values.remove(key);
        state.loaded.retain(|p| !key.starts_with(p.as_str()));
    }

    /// Forgets everything under `prefix` (a certificate locked, archived).
    pub(super) fn forget_prefix(&self, prefix: &str) {
        let mut state = self.state();
        state.values.retain(|k, _| !k.starts_with(prefix));
        state.loaded.retain(|p| !p.starts_with(prefix));
        state.names = None;
    }

    pub(super) fn clear(&self) {
        *self.state() = State::default();
    }

    pub(super) fn names(&self) -> Option<Vec<CertName>> {
        self.state().names.clone()
    }

    pub(super) fn set_names(&self, names: &[CertName]) {
        self.state().names = Some(names.to_vec());
    }
}

impl super::Etcd {
    /// The value of `key`, read at most once by this process (see the module's comment).
    pub(super) fn get(&self, key: &str) -> anyhow::Result<Option<Entry>> {
        if let Some(known) = self.cache.lookup(key) {
            return Ok(known);
        }
        if let Some(prefix) = self.cert_prefix_of(key) {
            let kvs = self.conn.prefix(&prefix, false)?;
            self.cache.loaded(&prefix, &kvs);
            return Ok(self.cache.lookup(key).flatten());
        }
        let entry = self.conn.get(key)?.map(|kv| Entry {
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        });
        self.cache.set(key, entry.clone());
        Ok(entry)
    }

    /// Records what a transaction that succeeded at `revision` wrote.
    pub(super) fn wrote(&self, revision: Option<i64>, writes: &[(&str, Option<&[u8]>)]) {
        for (key, value) in writes {
            match (revision, value) {
                (Some(rev), Some(value)) => self.cache.set(
                    key,
                    Some(Entry {
                        value: value.to_vec(),
                        mod_revision: rev,
                    }),
                ),
                (_, None) => self.cache.set(key, None),
                (None, Some(_)) => self.cache.forget(key),
            }
        }
    }

    /// `<prefix>/certs/<name>/` when `key` is one of a certificate's keys.
    fn cert_prefix_of(&self, key: &str) -> Option<String> {
        let base = self.full("certs/");
        let rest = key.strip_prefix(&base)?;
        let (name, _) = rest.split_once('/')?;
        Some(format!("{base}{name}/"))
    }
}

/// The revision a transaction's answer was made at.
pub(super) fn revision(response: &etcd_client::TxnResponse) -> Option<i64> {
    response.header().map(|h| h.revision())
}
