//! DNS-01 (RFC 8555 §8.4): a TXT record `_acme-challenge.NAME` holding the key
//! authorization's digest, placed by RFC 2136 updates (`rfc2136`) or user hooks (`hook`),
//! followed through CNAMEs to the zone that holds it, and waited for until every nameserver
//! of that zone serves it (`propagation`). The records of the orders of one run go out
//! together (`batch`: one UPDATE per zone per round). Each certificate's records are written
//! to its journal before they are placed, so a killed run's are removed by the next run.
//! It removes only the values it placed, never other records.

mod batch;
mod hook;
mod propagation;
mod rfc2136;
mod tsig;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ChallengeType, Identifier, Journal, Pending, Solver, Task};
use crate::settings::{Dns01 as Setting, DnsProvider};
use batch::Batcher;
use propagation::Lookups;
use rfc2136::{Change, Rfc2136};

pub use tsig::TsigKey;

/// One TXT value certctl places, with where it goes; also the journal's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The name proved (a wildcard's base name), as certbot's CERTBOT_DOMAIN.
    pub domain: String,
    /// Where the TXT record goes: `_acme-challenge.DOMAIN` or the end of its CNAMEs.
    pub owner: String,
    /// The zone that holds `owner`.
    pub zone: String,
    pub value: String,
    pub token: String,
    /// The certificate's names, comma-separated (CERTBOT_ALL_DOMAINS).
    pub all_domains: String,
}

/// Why the records of a zone were not placed (or removed): the message, and whether the
/// server refused the change outright (then none of it was applied).
pub struct Failure {
    message: String,
    unplaced: bool,
}

impl Failure {
    fn of(e: &anyhow::Error) -> Self {
        Self {
            message: format!("{e:#}"),
            unplaced: e.downcast_ref::<rfc2136::Refused>().is_some(),
        }
    }
}

/// Checks a DNS-01 setting before anything is sent: the TSIG key file must parse (bad input,
/// exit 2, naming the line and the field).
pub fn check(setting: &Setting) -> anyhow::Result<()> {
    if let DnsProvider::Rfc2136 { tsig, .. } = &setting.provider {
        TsigKey::load(tsig)?;
    }
    Ok(())
}

/// Who places the records of one setting, where lookups go, and how long to wait.
pub struct Provider {
    kind: Kind,
    lookups: Lookups,
    zone: Option<Name>,
    timeout: Duration,
}

enum Kind {
    Rfc2136(Rfc2136),
    Hooks(hook::Hooks),
}

impl Provider {
    async fn new(setting: &Setting) -> anyhow::Result<Self> {
        let kind = match &setting.provider {
            DnsProvider::Rfc2136 { server, tsig } => Kind::Rfc2136(Rfc2136 {
                server: server.clone(),
                key: TsigKey::load(tsig)?,
            }),
            DnsProvider::Hook {
                hook,
                cleanup_hook,
                style,
            } => Kind::Hooks(hook::Hooks::new(hook.clone(), cleanup_hook.clone(), *style)),
        };
        let zone = match &setting.zone {
            Some(z) => Some(fqdn(z.as_str())?),
            None => None,
        };
        Ok(Self {
            kind,
            lookups: Lookups::new(setting.resolver.as_ref()).await?,
            zone,
            timeout: Duration::from_secs(setting.timeout),
        })
    }

    /// The records for `tasks`: each `_acme-challenge` name followed through its CNAMEs,
    /// and the zone that holds the end (`--dns-zone`, else by SOA lookup).
    async fn records(&self, tasks: &[Task], all_domains: &str) -> anyhow::Result<Vec<Record>> {
        let deadline = Instant::now() + self.timeout;
        let mut records = Vec::with_capacity(tasks.len());
        for task in tasks {
            let Identifier::Dns(name) = &task.identifier else {
                anyhow::bail!(
                    "DNS-01 proves DNS names, not the IP address {}",
                    task.identifier
                );
            };
            let domain = name.as_str().trim_start_matches("*.").to_owned();
            let challenge = fqdn(&format!("_acme-challenge.{domain}"))?;
            let owner = self.lookups.follow_cnames(&challenge, deadline).await?;
            let zone = match &self.zone {
                Some(zone) if zone.zone_of(&owner) => zone.clone(),
                Some(zone) => anyhow::bail!(
                    "{challenge} leads to {owner}, which is not in --dns-zone {zone}; give the zone that holds {owner}"
                ),
                None => self.lookups.zone_of(&owner, deadline).await?,
            };
            records.push(Record {
                domain,
                owner: plain(&owner),
                zone: plain(&zone),
                value: task.key_authorization.dns_value(),
                token: task.token.as_str().to_owned(),
                all_domains: all_domains.to_owned(),
            });
        }
        Ok(records)
    }

    /// Places a round's records: per zone one UPDATE (or the hooks). Returns each failed
    /// zone's error.
    async fn place(&self, records: &[Record]) -> HashMap<String, Failure> {
        let mut failed = HashMap::new();
        let deadline = Instant::now() + self.timeout;
        for (zone, records) in by_zone(records) {
            if let Err(e) = self.change(&zone, Change::Add, &records, deadline).await {
                failed.insert(zone, Failure::of(&e));
            }
        }
        failed
    }

    /// One wait for a round's placed records (those of zones not in `failed`) until every
    /// nameserver of their zones serves them; adds the zones that did not make it.
    async fn wait_served(&self, records: &[Record], failed: &mut HashMap<String, Failure>) {
        let by_zone = by_zone(records);
        let deadline = Instant::now() + self.timeout;
        let waits = by_zone.iter().filter(|(z, _)| !failed.contains_key(z)).map(
            |(zone, records)| async move {
                let served = async {
                    let (zone, pairs) = (fqdn(zone)?, pairs(records)?);
                    let secs = self.timeout.as_secs();
                    self.lookups
                        .wait_until_served(&zone, &pairs, deadline, secs)
                        .await
                };
                (zone.clone(), served.await)
            },
        );
        for (zone, result) in futures_util::future::join_all(waits).await {
            if let Err(e) = result {
                failed.insert(zone, Failure::of(&e));
            }
        }
    }

    /// Removes records, per zone; every zone is tried. Returns each failed zone's error.
    async fn remove_each_zone(&self, records: &[Record]) -> HashMap<String, Failure> {
        let deadline = Instant::now() + self.timeout;
        let mut failed = HashMap::new();
        for (zone, records) in by_zone(records) {
            if let Err(e) = self.change(&zone, Change::Delete, &records, deadline).await {
                failed.insert(zone, Failure::of(&e));
            }
        }
        failed
    }

    async fn remove(&self, records: &[Record]) -> anyhow::Result<()> {
        let failed = self.remove_each_zone(records).await;
        match failed.is_empty() {
            true => Ok(()),
            false => Err(anyhow!(
                "{}",
                failed
                    .into_values()
                    .map(|f| f.message)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }

    async fn change(
        &self,
        zone: &str,
        change: Change,
        records: &[Record],
        deadline: Instant,
    ) -> anyhow::Result<()> {
        match &self.kind {
            Kind::Rfc2136(server) => {
                let pairs = pairs(records)?;
                server
                    .update(&fqdn(zone)?, change, &pairs, deadline, self.timeout)
                    .await
            }
            Kind::Hooks(hooks) => match change {
                Change::Add => hooks.present(records, self.timeout).await,
                Change::Delete => hooks.cleanup(records, self.timeout).await,
            },
        }
    }
}

/// The records grouped by zone, zones in a stable order.
fn by_zone(records: &[Record]) -> Vec<(String, Vec<Record>)> {
    let mut zones: Vec<(String, Vec<Record>)> = Vec::new();
    for record in records {
        match zones.iter_mut().find(|(z, _)| *z == record.zone) {
            Some((_, list)) => list.push(record.clone()),
            None => zones.push((record.zone.clone(), vec![record.clone()])),
        }
    }
    zones
}

fn pairs(records: &[Record]) -> anyhow::Result<Vec<(Name, String)>> {
    records
        .iter()
        .map(|r| Ok((fqdn(&r.owner)?, r.value.clone())))
        .collect()
}

/// A name as a fully qualified hickory name.
fn fqdn(name: &str) -> anyhow::Result<Name> {
    let mut parsed = Name::from_ascii(name.trim_end_matches('.'))
        .with_context(|| format!("{name:?} is not a DNS name"))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// A name without its trailing dot, as people write it.
fn plain(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_owned()
}

/// The batchers of a run, one per DNS-01 setting, shared by every certificate that uses it.
#[derive(Default)]
pub struct Batchers(Vec<(Setting, Arc<Batcher>)>);

impl Batchers {
    async fn batcher(&mut self, setting: &Setting) -> anyhow::Result<Arc<Batcher>> {
        if let Some((_, b)) = self.0.iter().find(|(s, _)| s == setting) {
            return Ok(b.clone());
        }
        let batcher = Batcher::new(Arc::new(Provider::new(setting).await?));
        self.0.push((setting.clone(), batcher.clone()));
        Ok(batcher)
    }
}

/// The DNS-01 solver of one certificate: a member of its setting's batcher, with the
/// certificate's journal and the records it has out.
pub struct Dns01 {
    batcher: Arc<Batcher>,
    member: u64,
    journal: Arc<dyn Journal>,
    all_domains: String,
    placed: Mutex<Vec<Record>>,
}

impl Dns01 {
    pub async fn new(
        setting: &Setting,
        batchers: &mut Batchers,
        journal: Arc<dyn Journal>,
        all_domains: String,
    ) -> anyhow::Result<Self> {
        let batcher = batchers.batcher(setting).await?;
        let member = batcher.member();
        Ok(Self {
            batcher,
            member,
            journal,
            all_domains,
            placed: Mutex::new(Vec::new()),
        })
    }

    fn journal_read(&self) -> anyhow::Result<Vec<Record>> {
        match self.journal.read()? {
            None => Ok(Vec::new()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .context("the record of DNS-01 records placed is damaged"),
        }
    }

    fn journal_write(&self, records: &[Record]) -> anyhow::Result<()> {
        match records.is_empty() {
            true => self.journal.write(None),
            false => self
                .journal
                .write(Some(&serde_json::to_vec_pretty(records)?)),
        }
    }
}

impl Solver for Dns01 {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Dns01
    }

    fn begin(&self) {
        self.batcher.begin(self.member);
    }

    fn end(&self) {
        self.batcher.end(self.member);
    }

    fn present<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(async move {
            let records = self
                .batcher
                .provider()
                .records(tasks, &self.all_domains)
                .await?;
            // written down before anything is placed: a killed run's records are known
            let mut journal = self.journal_read().unwrap_or_default();
            journal.extend(
                records
                    .iter()
                    .filter(|r| !journal.contains(r))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            self.journal_write(&journal)
                .context("recording the DNS records before placing them")?;
            self.placed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(records.clone());
            let Err(not_placed) = self.batcher.present(self.member, records).await else {
                return Ok(());
            };
            // refused outright: those are not in the zone, nothing to remove later
            let unplaced = &not_placed.unplaced;
            let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
            placed.retain(|r| !unplaced.contains(r));
            drop(placed);
            let left: Vec<Record> = self
                .journal_read()?
                .into_iter()
                .filter(|r| !unplaced.contains(r))
                .collect();
            self.journal_write(&left)?;
            Err(anyhow!(not_placed.error))
        })
    }

    fn cleanup<'a>(&'a self, _tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(async move {
            let records = {
                let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut *placed)
            };
            if records.is_empty() {
                return Ok(());
            }
            let result = self.batcher.cleanup(self.member, records.clone()).await;
            if result.is_ok() {
                let left: Vec<Record> = self
                    .journal_read()?
                    .into_iter()
                    .filter(|r| !records.contains(r))
                    .collect();
                self.journal_write(&left)?;
            }
            result.context("the DNS-01 records are left in place; the next run of this certificate removes them")
        })
    }

    fn recover(&self) -> Pending<'_> {
        Box::pin(async move {
            let left = self.journal_read()?;
            if left.is_empty() {
                return Ok(());
            }
            crate::log::info(format_args!(
                "removing {} DNS-01 record(s) an earlier run left in place: {}",
                left.len(),
                left.iter()
                    .map(|r| r.owner.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            self.batcher
                .provider()
                .remove(&left)
                .await
                .context("removing the DNS-01 records an earlier run left in place")?;
            self.journal_write(&[])
        })
    }
}
