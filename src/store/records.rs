//! The small per-certificate and per-CA records beside the certificates themselves: how
//! renewals went, what was pushed to which proxy, what must be issued again, which CA
//! mishandles ARI's `replaces`, and this host's bundle stamp. Typed accessors over `Key`s.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{Key, Store};
use crate::types::{CertName, Server};

/// How a certificate's renewals went, for `check`, metrics and back-off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalStatus {
    /// When a certificate was last issued and installed (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<i64>,
    /// Failed attempts since the last success, and ever.
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default)]
    pub failures_total: u64,
    /// Why the last attempt failed (no key material: the error's text as shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl RenewalStatus {
    /// The status after an attempt at `now` that succeeded or failed with `error`.
    pub fn after(mut self, now: i64, error: Option<String>) -> Self {
        match error {
            None => {
                self.last_success = Some(now);
                self.consecutive_failures = 0;
                self.last_error = None;
            }
            Some(e) => {
                self.last_failure = Some(now);
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.failures_total = self.failures_total.saturating_add(1);
                self.last_error = Some(e);
            }
        }
        self
    }

    /// Whether the last attempt failed.
    pub fn failing(&self) -> bool {
        self.consecutive_failures > 0
    }
}

impl Store {
    /// How `name`'s renewals went (empty when never recorded or unreadable).
    pub fn status(&self, name: &CertName) -> RenewalStatus {
        self.json(&Key::Status(name.clone()))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Records an attempt at `now` for `name`: a success, or a failure with its reason.
    pub fn record_attempt(
        &self,
        name: &CertName,
        now: i64,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        let status = self.status(name).after(now, error);
        self.backend.write(
            &Key::Status(name.clone()),
            &serde_json::to_vec_pretty(&status)?,
        )
    }

    /// The serial each HAProxy socket was last given for `name` (empty when none or unreadable).
    pub fn pushed(&self, name: &CertName) -> std::collections::BTreeMap<String, String> {
        self.json(&Key::Pushed(name.clone()))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub fn save_pushed(
        &self,
        name: &CertName,
        record: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        self.backend
            .write(
                &Key::Pushed(name.clone()),
                &serde_json::to_vec_pretty(record)?,
            )
            .with_context(|| format!("{name}: saving the deploy record"))
    }

    /// Whether the CA at `server` mishandled `replaces` before (orders go without it).
    pub fn no_replaces(&self, server: &Server) -> bool {
        matches!(
            self.backend.read(&Key::NoReplaces(server.clone())),
            Ok(Some(_))
        )
    }

    /// Remembers that the CA at `server` mishandles `replaces`.
    pub fn save_no_replaces(&self, server: &Server) -> anyhow::Result<()> {
        self.backend
            .write(&Key::NoReplaces(server.clone()), b"mishandles replaces\n")
            .with_context(|| format!("remembering that {server} mishandles `replaces`"))
    }

    /// Why `name` must be issued again at the next renew, if it must.
    pub fn reissue(&self, name: &CertName) -> Option<String> {
        let bytes = self.backend.read(&Key::Reissue(name.clone())).ok()??;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Makes `name` due at the next renew (`why`), or no longer (None).
    pub fn save_reissue(&self, name: &CertName, why: Option<&str>) -> anyhow::Result<()> {
        let key = Key::Reissue(name.clone());
        match why {
            Some(why) => self.backend.write(&key, why.as_bytes()),
            None => self.backend.remove(&key),
        }
        .with_context(|| format!("{name}: recording that it must be issued again"))
    }

    /// What this host recorded when it last installed `name` (None when unknown).
    pub fn deployed(&self, name: &CertName) -> Option<Vec<u8>> {
        self.backend
            .read(&Key::Deployed(name.clone()))
            .ok()
            .flatten()
    }

    pub fn save_deployed(&self, name: &CertName, record: &[u8]) -> anyhow::Result<()> {
        self.backend.write(&Key::Deployed(name.clone()), record)
    }
}
