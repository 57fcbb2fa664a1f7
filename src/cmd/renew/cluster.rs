//! `renew` with a shared store: each certificate under its own lock across the nodes, so
//! that nodes renewing at once place one order per certificate and never wait for each
//! other over different ones. A certificate another node holds is left until this node's
//! own are done, then waited for and decided again (usually: install what that node
//! stored). With a store of one host every lock is given at once (the run's lock covers it).

use crate::cli::RenewArgs;
use crate::issue::{Outcome, Run};
use crate::settings::Global;
use crate::store::{Lock, Store, Taken};
use crate::types::CertName;

/// The certificates' locks this run holds, and those other nodes held when asked.
#[derive(Default)]
pub(super) struct Locks {
    held: Vec<Box<dyn Lock>>,
    busy: Vec<(CertName, String)>,
}

impl Locks {
    /// Takes the lock of each of `names` without waiting; returns those held. A dry run
    /// takes none and writes nothing.
    pub(super) fn take_free(
        &mut self,
        store: &Store,
        names: Vec<CertName>,
        dry_run: bool,
        failures: &mut Vec<(String, anyhow::Error)>,
    ) -> Vec<CertName> {
        if dry_run {
            return names;
        }
        let mut free = Vec::with_capacity(names.len());
        for name in names {
            match store.lock_cert(&name, None) {
                Ok(Taken::Held(lock)) => {
                    self.held.push(lock);
                    free.push(name);
                }
                Ok(Taken::Busy(node)) => {
                    crate::log::verbose(format_args!(
                        "{name}: node {node} is at work on it; it comes after the others"
                    ));
                    self.busy.push((name, node));
                }
                Err(e) => failures.push((name.to_string(), e)),
            }
        }
        free
    }

    /// The certificates other nodes held: each lock waited for (at most the lock wait),
    /// then the certificate decided again and done as it stands now, as a second batch of
    /// the same run (its post-hooks still run once, at the end; a pre-hook runs again only
    /// if this batch orders, when the other node failed).
    pub(super) async fn after_holders(
        &mut self,
        run: &Run<'_>,
        global: &Global,
        args: &RenewArgs,
        failures: &mut Vec<(String, anyhow::Error)>,
    ) -> anyhow::Result<Vec<Outcome>> {
        if self.busy.is_empty() {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        for (name, node) in std::mem::take(&mut self.busy) {
            crate::log::verbose(format_args!("{name}: waiting for node {node} to finish it"));
            match run.store.lock_cert(&name, Some(global.lock_wait)) {
                Ok(Taken::Held(lock)) => {
                    self.held.push(lock);
                    names.push(name);
                }
                Ok(Taken::Busy(node)) => failures.push((
                    name.to_string(),
                    anyhow::anyhow!("node {node} holds its lock"),
                )),
                Err(e) => failures.push((name.to_string(), e)),
            }
        }
        let jobs = super::jobs(run.store, run.bundles, &names, args, failures);
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        run.run_jobs(jobs).await
    }
}
