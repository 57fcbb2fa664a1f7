//! What monitoring wants to know of each managed certificate, gathered once from the state
//! and this host's ssl directory: expiry, whether renewal is due, how the last renewals
//! went, whether the bundle in place is the stored certificate, what is damaged. Reads only.

use crate::deploy::Bundles;
use crate::pem::{self, CertInfo};
use crate::store::{RenewalStatus, Store};
use crate::types::CertName;

/// The facts of one certificate at one moment.
#[derive(Debug, Clone)]
pub struct Health {
    pub name: CertName,
    /// The names it is for (settings, else the certificate's own).
    pub domains: Vec<String>,
    /// The live certificate's facts, when readable.
    pub info: Option<CertInfo>,
    /// Renewal is due now (the CA's ARI window, or a third of the lifetime left).
    pub renewal_due: bool,
    pub status: RenewalStatus,
    /// The bundle in the ssl directory is missing or not the stored certificate's.
    pub deploy_pending: bool,
    /// Why the stored entry is damaged; empty when whole.
    pub problems: Vec<String>,
}

impl Health {
    /// Seconds left until expiry (negative once expired).
    pub fn seconds_left(&self, now: i64) -> Option<i64> {
        self.info.as_ref().map(|i| i.not_after - now)
    }

    /// The whole lifetime in seconds.
    pub fn lifetime(&self) -> Option<i64> {
        self.info.as_ref().map(|i| i.not_after - i.not_before)
    }
}

/// The health of each of `names` at `now`.
pub fn gather(store: &Store, bundles: &Bundles, names: &[CertName], now: i64) -> Vec<Health> {
    names
        .iter()
        .map(|name| {
            let inspection = store.inspect(name);
            let domains = match (&inspection.settings, &inspection.info) {
                (Some(s), _) => s.cert.domains.iter().map(ToString::to_string).collect(),
                (None, Some(info)) => info.names.clone(),
                (None, None) => Vec::new(),
            };
            let renewal_due = inspection.info.as_ref().is_some_and(|info| {
                let ari = store.ari(name);
                pem::decide(now, info.not_before, info.not_after, ari.as_ref(), false)
                    == pem::Decision::Due
            });
            let deploy_pending = match &inspection.info {
                Some(info) => {
                    !bundles.exists(name)
                        || !crate::issue::bundle_is_current(store, bundles, name, &info.serial)
                }
                None => false,
            };
            Health {
                name: name.clone(),
                domains,
                renewal_due,
                status: store.status(name),
                deploy_pending,
                info: inspection.info,
                problems: inspection.problems,
            }
        })
        .collect()
}
