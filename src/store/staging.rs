//! New generations stored in batches (`renew` over many certificates): each written, then
//! all made durable at once, then each switched live; the backend decides whether it
//! stages (files) or stores one at a time (the defaults).

use super::{Generation, Staged, Store};
use crate::pem::{CertInfo, Chain};
use crate::types::CertName;

impl Store {
    /// Whether new generations are best stored in batches (`stage_generation`...).
    pub fn stages(&self) -> bool {
        self.backend.stages()
    }

    /// A new generation written, neither durable nor live: `flush`, then `switch_live`.
    pub fn stage_generation(
        &self,
        name: &CertName,
        key_pem: &str,
        chain: &Chain,
        info: &CertInfo,
    ) -> anyhow::Result<Staged> {
        self.backend
            .stage_generation(name, &Generation::new(key_pem, chain, info)?)
    }

    /// Everything written so far made durable.
    pub fn flush(&self) -> anyhow::Result<()> {
        self.backend.flush()
    }

    pub fn switch_live(&self, staged: &Staged) -> anyhow::Result<()> {
        self.backend.switch_live(staged)
    }

    pub fn abandon(&self, staged: &Staged) {
        self.backend.abandon(staged)
    }

    pub fn prune_generations(&self, name: &CertName) {
        self.backend.prune_generations(name)
    }
}
