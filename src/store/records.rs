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
    /// The CA asked not to order these names again before then (a rate limit on them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
}

/// The first wait after a failed renewal; it doubles with each failure, up to a day.
const FIRST_BACKOFF: i64 = 3600;
const LONGEST_BACKOFF: i64 = 86_400;

impl RenewalStatus {
    /// The status after an attempt at `now` that succeeded or failed with `error`.
    pub fn after(mut self, now: i64, error: Option<String>) -> Self {
        match error {
            None => {
                self.last_success = Some(now);
                self.consecutive_failures = 0;
                self.last_error = None;
                self.retry_after = None;
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

    /// When `renew` tries again after failures (1 h after the first, doubling, at most a
    /// day); None when the last attempt succeeded.
    pub fn backoff_until(&self) -> Option<i64> {
        let failed_at = self.last_failure.filter(|_| self.failing())?;
        let doublings = self.consecutive_failures.saturating_sub(1).min(16);
        let wait = (FIRST_BACKOFF << doublings).min(LONGEST_BACKOFF);
        Some(failed_at.saturating_add(wait))
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

    /// Remembers that the CA asked not to order `name`'s names before `until`.
    pub fn save_retry_after(&self, name: &CertName, until: i64) -> anyhow::Result<()> {
        let status = RenewalStatus {
            retry_after: Some(until),
            ..self.status(name)
        };
        self.backend.write(
            &Key::Status(name.clone()),
            &serde_json::to_vec_pretty(&status)?,
        )
    }

    /// Until when the CA at `server` asked not to be contacted (None: no such request, or
    /// it is unreadable).
    pub fn rate_limit(&self, server: &Server) -> Option<i64> {
        let bytes = self.backend.read(&Key::RateLimit(server.clone())).ok()??;
        String::from_utf8_lossy(&bytes).trim().parse().ok()
    }

    /// Remembers that the CA at `server` asked not to be contacted before `until`.
    pub fn save_rate_limit(&self, server: &Server, until: i64) -> anyhow::Result<()> {
        self.backend
            .write(
                &Key::RateLimit(server.clone()),
                format!("{until}\n").as_bytes(),
            )
            .with_context(|| format!("remembering {server}'s rate limit"))
    }

    /// When `renew` may next contact the CA for `name` (None: now): the CA's limit on it or
    /// on every order, and, unless `force`, the back-off after failed attempts.
    pub fn next_attempt(&self, name: &CertName, server: &Server, force: bool) -> Option<i64> {
        let status = self.status(name);
        let backoff = status.backoff_until().filter(|_| !force);
        [backoff, status.retry_after, self.rate_limit(server)]
            .into_iter()
            .flatten()
            .max()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_an_hour_to_a_day_and_ends_with_a_success() {
        let t = 1_790_000_000;
        let mut status = RenewalStatus::default();
        assert_eq!(status.backoff_until(), None);
        let mut waits = Vec::new();
        for _ in 0..7 {
            status = status.after(t, Some("refused".into()));
            waits.push(status.backoff_until().unwrap() - t);
        }
        assert_eq!(waits, [3600, 7200, 14_400, 28_800, 57_600, 86_400, 86_400]);
        status.retry_after = Some(t + 10);
        let status = status.after(t + 1, None);
        assert_eq!(status.backoff_until(), None);
        assert_eq!(
            status.retry_after, None,
            "a success ends the CA's limit on the names"
        );
    }
}
