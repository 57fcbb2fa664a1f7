//! The pipeline every command that produces a certificate shares: obtain (ACME order or
//! local CA) -> store -> install the bundle -> deploy to the proxies -> hooks. `run` takes a
//! batch of jobs (one for `request`, many for `renew`), runs the orders side by side over one
//! account per CA and one responder per address, and reports each job's outcome; the
//! commands only decide what to do and print. Never reads flags or the config file.

mod account;
mod batch;
mod crl;
mod hooks;
pub(crate) mod index;
mod install;
mod obtain;
mod push;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use futures_util::StreamExt;

use crate::acme;
use crate::challenge::{Journal, Shared, Solvers};
use crate::deploy::Bundles;
use crate::pem::{CertInfo, Chain};
use crate::settings::{CertSettings, Hooks, Verbosity};
use crate::store::{Key, Lineage, Store};
use crate::types::{CertName, Server, Socket};

pub use crate::output::{date, rfc3339};
pub use crate::types::join;
pub use account::{MissingAccount, ask_terms, open_account};
pub use crl::{crl_is_due, refresh_crl};
pub use hooks::{hook_env, post_hook};
pub use index::{attention, needing_attention};
pub use install::{bundle_is_current, install, write_outputs};
pub use obtain::{issue_local, order, refresh_ari};
pub use push::{pending, push};

use install::reinstall;
use obtain::ask_ca;

/// A certificate the CA issued, with its key, not yet stored.
pub struct Issued {
    pub key_pem: String,
    pub chain: Chain,
    pub info: CertInfo,
}

/// What a run shares: where to store and install, what was given on the command line, and
/// how far to go.
pub struct Run<'a> {
    pub store: &'a Store,
    pub bundles: &'a Bundles,
    pub verbosity: Verbosity,
    /// Hooks given now (flags or config file), run in addition to each certificate's own.
    pub hooks: Hooks,
    pub hook_timeout: Duration,
    /// Sockets given now, pushed to in addition to each certificate's own.
    pub sockets: Vec<Socket>,
    /// How long one HAProxy admin command may take.
    pub haproxy_timeout: Duration,
    /// How long one exchange with a CA may take, connect to the last byte of its answer.
    pub http_timeout: Duration,
    /// Orders placed at once.
    pub jobs: usize,
    /// Take every step up to saving, then stop (staging instead of Let's Encrypt).
    pub dry_run: bool,
    /// What to do when a CA has no stored account.
    pub missing_account: MissingAccount,
}

/// One certificate to produce.
pub struct Job {
    pub lineage: JobCert,
    pub work: Work,
}

/// The certificate a job is for: its name and the settings to use.
#[derive(Clone)]
pub struct JobCert {
    pub name: CertName,
    pub settings: CertSettings,
}

pub enum Work {
    /// A new certificate from the CA; an ARI CA is told which one it replaces.
    Order { replaces: Option<Vec<u8>> },
    /// The stored certificate installed again (its bundle was not the stored one's).
    Reinstall,
    /// An ARI certificate whose window must be asked for first: ordered only when due.
    AskCa,
}

/// What became of one job.
pub struct Outcome {
    pub name: CertName,
    pub settings: CertSettings,
    pub kind: OutcomeKind,
}

pub enum OutcomeKind {
    /// Not due after all (the CA's window said so).
    NotDue,
    /// Issued (or reinstalled) and installed; proxies and hooks that failed afterwards.
    Installed {
        info: CertInfo,
        reinstalled: bool,
        after: Vec<anyhow::Error>,
    },
    /// A dry run: the CA would issue it; nothing written.
    Rehearsed { info: CertInfo },
    /// No certificate came from the CA; the current one is unchanged.
    NotIssued(anyhow::Error),
    /// Issued, but it could not be stored or its bundle written (the error says which).
    NotInstalled(anyhow::Error),
}

/// Everything a run did: each job's outcome, then the post-hooks that failed.
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub post_failures: Vec<anyhow::Error>,
}

type AccountKey = (Server, Option<PathBuf>);

impl Run<'_> {
    /// Runs every job: accounts, pre-hooks, orders `jobs` at a time, then each result stored,
    /// installed and deployed with its hooks, then the post-hooks once.
    pub async fn run(&self, jobs: Vec<Job>) -> anyhow::Result<Report> {
        let outcomes = self.run_jobs(jobs).await?;
        Ok(self.conclude(outcomes).await)
    }

    /// `run` without its end: the outcomes of `jobs`, recorded, for `conclude` (after other
    /// batches of the same run, if any).
    pub async fn run_jobs(&self, jobs: Vec<Job>) -> anyhow::Result<Vec<Outcome>> {
        // 1. the renewal windows of ARI certificates whose Retry-After has passed (their
        //    CA's account first: one per CA and trust bundle, shared by the whole run)
        let mut accounts = Accounts::default();
        let mut outcomes = Vec::new();
        let mut orders = Vec::new();
        let mut reinstalls = Vec::new();
        for job in jobs {
            match job.work {
                Work::Reinstall => reinstalls.push(job.lineage),
                Work::Order { replaces } => orders.push((job.lineage, replaces)),
                Work::AskCa => {
                    let cert = job.lineage;
                    accounts.open(self, &cert.settings).await;
                    let asked = match accounts.get(self, &cert.settings) {
                        Ok(account) => ask_ca(self.store, account, &cert, self.dry_run).await,
                        Err(e) => Err(e.context("asking the CA for its renewal window")),
                    };
                    match asked {
                        Ok(Some(replaces)) => orders.push((cert, replaces)),
                        Ok(None) => outcomes.push(outcome(cert, OutcomeKind::NotDue)),
                        Err(e) => outcomes.push(outcome(cert, OutcomeKind::NotIssued(e))),
                    }
                }
            }
        }
        if orders.is_empty() && reinstalls.is_empty() {
            return Ok(outcomes);
        }

        // 2. pre-hooks: each distinct command once, before the first order (one may free
        //    the responder's port, as with certbot)
        if !self.dry_run && !orders.is_empty() {
            let stored = orders
                .iter()
                .map(|(c, _)| c.settings.host.hooks.pre.as_deref());
            for cmd in dedup(stored.chain([self.hooks.pre.as_deref()])) {
                hooks::pre_hook(cmd).run(self.hook_timeout).await?;
            }
        }

        // 3. each certificate's challenge solvers, with one responder per address and one
        //    DNS-01 batcher per setting shared by all orders, bound before anything is sent
        //    to the CA; then what a killed earlier run left placed (DNS records) is removed
        let mut shared = Shared::default();
        let mut solvers = Vec::with_capacity(orders.len());
        for (cert, _) in &orders {
            let journal = Arc::new(StoreJournal {
                store: self.store.clone(),
                key: Key::DnsPending(cert.name.clone()),
            });
            let built = Solvers::from_setting(&cert.settings.cert, &mut shared, journal).await;
            if let Ok(built) = &built {
                if let Err(e) = built.recover().await {
                    crate::log::warn(format_args!("{}: {e:#}", cert.name));
                }
            }
            solvers.push(built);
        }

        // 4. the accounts of the CAs that orders go to (none for an order that cannot run)
        for ((cert, _), solver) in orders.iter().zip(&solvers) {
            if solver.is_ok() {
                accounts.open(self, &cert.settings).await;
            }
        }
        let accounts = &accounts;

        // 5. the orders, `jobs` at a time, each with its progress line on a terminal
        let progress = crate::progress::Progress::new(self.verbosity);
        let results: Vec<(JobCert, anyhow::Result<Issued>)> =
            futures_util::stream::iter(orders.into_iter().zip(&solvers).map(
                |((cert, replaces), solvers)| {
                    let line = progress.line(cert.name.as_str());
                    async move {
                        let result = line
                            .clone()
                            .scope(async {
                                if cert.settings.cert.server.is_local() {
                                    return issue_local(self.store, &cert.settings);
                                }
                                // a taken tls-alpn-01 address stays bad input (exit 2)
                                let solvers = solvers.as_ref().map_err(|e| {
                                    match e.chain().any(|c| c.is::<crate::error::BadInput>()) {
                                        true => {
                                            crate::error::BadInput::new(format!("{e:#}")).into()
                                        }
                                        false => anyhow!("{e:#}"),
                                    }
                                })?;
                                let mut wanted = cert.settings.clone();
                                wanted.cert.server = self.effective_server(&wanted.cert.server);
                                // never by a dry run: a CA takes one replacement per
                                // certificate; never to a CA that mishandled it before
                                let server = &wanted.cert.server;
                                let replaces = replaces
                                    .filter(|_| !self.dry_run && !self.store.no_replaces(server))
                                    .and_then(|der| acme::cert_id(&der).ok());
                                let account = accounts.get(self, &cert.settings)?;
                                let first =
                                    order(account, solvers, &cert.name, &wanted, replaces.as_ref())
                                        .await;
                                let (issued, mishandled) = match first {
                                    // the CA lost the account: a new one, and the order again
                                    Err(e) if acme::account_gone(&e) => {
                                        let fresh = accounts.replace(self, &cert.settings).await?;
                                        order(
                                            &fresh,
                                            solvers,
                                            &cert.name,
                                            &wanted,
                                            replaces.as_ref(),
                                        )
                                        .await?
                                    }
                                    other => other?,
                                };
                                if mishandled && !self.dry_run {
                                    if let Err(e) = self.store.save_no_replaces(server) {
                                        crate::log::warn(format_args!("{e:#}"));
                                    }
                                }
                                Ok(issued)
                            })
                            .await;
                        line.finish(if result.is_ok() { "issued" } else { "failed" });
                        (cert, result)
                    }
                },
            ))
            .buffer_unordered(self.jobs.max(1))
            .collect()
            .await;
        drop((solvers, shared));

        // 6. store and install each new certificate (many at once: in one batch, with one
        //    flush per phase); a reinstall takes the stored one
        let mut installed: Vec<(JobCert, Issued, bool)> = Vec::new();
        let mut issued_certs = Vec::new();
        for (cert, result) in results {
            match result {
                Err(e) => outcomes.push(outcome(cert, OutcomeKind::NotIssued(e))),
                Ok(issued) if self.dry_run => {
                    outcomes.push(outcome(cert, OutcomeKind::Rehearsed { info: issued.info }))
                }
                Ok(issued) => issued_certs.push((cert, issued)),
            }
        }
        let not_installed = |e: anyhow::Error| {
            OutcomeKind::NotInstalled(e.context(
                "renewed but not installed; the bundle in the ssl directory is still the \
                 previous one, and the next `certctl renew` writes it",
            ))
        };
        let mut pruning = None;
        if issued_certs.len() > 1 && self.store.stages() {
            let (done, failed) = batch::install_batch(self.store, self.bundles, issued_certs);
            let names = done.iter().map(|(cert, _)| cert.name.clone()).collect();
            pruning = Some(batch::prune(self.store, names));
            installed.extend(done.into_iter().map(|(cert, issued)| (cert, issued, false)));
            for (cert, e) in failed {
                outcomes.push(outcome(cert, not_installed(e)));
            }
        } else {
            for (cert, issued) in issued_certs {
                let settings = &cert.settings;
                match install(self.store, self.bundles, &cert.name, settings, &issued) {
                    Ok(()) => installed.push((cert, issued, false)),
                    Err(e) => outcomes.push(outcome(cert, not_installed(e))),
                }
            }
        }
        for cert in reinstalls {
            match reinstall(self.store, self.bundles, &cert.name, &cert.settings) {
                Ok(issued) => installed.push((cert, issued, true)),
                Err(e) => outcomes.push(outcome(
                    cert,
                    OutcomeKind::NotInstalled(e.context(
                        "the bundle is not the stored certificate's and could not be written",
                    )),
                )),
            }
        }
        installed.sort_by(|a, b| a.0.name.cmp(&b.0.name));

        // 7. the proxies (every certificate at once: the commands to each socket pipelined
        //    across certificates), then each one's next window at the CA and deploy hooks
        let to_push: Vec<(CertName, Vec<Socket>)> = installed
            .iter()
            .map(|(cert, _, _)| {
                let mut sockets = cert.settings.host.haproxy_sockets.clone();
                for s in self.sockets.iter() {
                    if !sockets.contains(s) {
                        sockets.push(s.clone());
                    }
                }
                (cert.name.clone(), sockets)
            })
            .collect();
        let mut push_failures: HashMap<CertName, Vec<anyhow::Error>> = HashMap::new();
        for (name, e) in push::push(self.store, self.bundles, &to_push, self.haproxy_timeout) {
            push_failures.entry(name).or_default().push(e);
        }
        for (cert, issued, reinstalled) in &installed {
            let name = &cert.name;
            if let Ok(account) = accounts.get(self, &cert.settings) {
                if !reinstalled {
                    refresh_ari(
                        self.store,
                        account,
                        name,
                        &cert.settings.cert.server,
                        &issued.chain.leaf,
                    )
                    .await;
                }
            }
            let mut after = push_failures.remove(name).unwrap_or_default();
            let lineage = Lineage {
                name: name.clone(),
                settings: cert.settings.clone(),
                info: issued.info.clone(),
            };
            let env = hook_env(self.store, self.bundles, &lineage);
            for cmd in dedup([
                cert.settings.host.hooks.deploy.as_deref(),
                self.hooks.deploy.as_deref(),
            ]) {
                let hook = crate::hooks::Hook {
                    kind: "deploy",
                    command: cmd,
                    env: env.clone(),
                };
                if let Err(e) = hook.run(self.hook_timeout).await {
                    after.push(e);
                }
            }
            outcomes.push(Outcome {
                name: name.clone(),
                settings: cert.settings.clone(),
                kind: OutcomeKind::Installed {
                    info: issued.info.clone(),
                    reinstalled: *reinstalled,
                    after,
                },
            });
        }

        if !self.dry_run {
            self.record(&outcomes);
        }
        if let Some(pruning) = pruning {
            let _ = pruning.join();
        }
        Ok(outcomes)
    }

    /// 8. post-hooks once, when anything was installed; the report.
    pub async fn conclude(&self, mut outcomes: Vec<Outcome>) -> Report {
        outcomes.sort_by(|a, b| a.name.cmp(&b.name));
        let installed: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| matches!(o.kind, OutcomeKind::Installed { .. }))
            .collect();
        let mut post_failures = Vec::new();
        if !installed.is_empty() {
            let names: Vec<CertName> = installed.iter().map(|o| o.name.clone()).collect();
            let stored = installed
                .iter()
                .map(|o| o.settings.host.hooks.post.as_deref());
            for cmd in dedup(stored.chain([self.hooks.post.as_deref()])) {
                if let Err(e) = post_hook(self.bundles, &names, cmd)
                    .run(self.hook_timeout)
                    .await
                {
                    post_failures.push(e);
                }
            }
        }
        Report {
            outcomes,
            post_failures,
        }
    }

    /// Records each attempt's result with its certificate (for `check`, metrics, back-off);
    /// a record that cannot be written costs only the record.
    fn record(&self, outcomes: &[Outcome]) {
        let now = now();
        for outcome in outcomes {
            let error = match &outcome.kind {
                OutcomeKind::NotDue | OutcomeKind::Rehearsed { .. } => continue,
                OutcomeKind::Installed {
                    reinstalled: true, ..
                } => continue,
                OutcomeKind::Installed { .. } => None,
                OutcomeKind::NotIssued(e) | OutcomeKind::NotInstalled(e) => Some(format!("{e:#}")),
            };
            if let Err(e) = self.store.record_attempt(&outcome.name, now, error) {
                crate::log::verbose(format_args!("{}: {e:#}", outcome.name));
            }
            // a CA's "not before then": on these names, or on every order to it
            if let OutcomeKind::NotIssued(e) = &outcome.kind {
                if let Some(limit) = acme::rate_limited(e) {
                    let until = acme::retry_at(&limit.wait, now);
                    let server = &outcome.settings.cert.server;
                    let saved = match limit.per_name {
                        true => self.store.save_retry_after(&outcome.name, until),
                        false => self.store.save_rate_limit(server, until),
                    };
                    if let Err(e) = saved {
                        crate::log::warn(format_args!("{}: {e:#}", outcome.name));
                    }
                }
            }
        }
    }

    /// `--dry-run` against Let's Encrypt production goes to staging instead.
    fn effective_server(&self, server: &Server) -> Server {
        match server.staging_counterpart() {
            Some(staging) if self.dry_run => staging,
            _ => server.clone(),
        }
    }
}

/// The run's accounts, one per CA and trust bundle; a CA whose account could not be opened
/// fails its certificates with that reason.
#[derive(Default)]
struct Accounts(
    HashMap<AccountKey, Result<instant_acme::Account, anyhow::Error>>,
    /// New accounts made in this run for CAs that no longer knew the stored one.
    tokio::sync::Mutex<HashMap<AccountKey, instant_acme::Account>>,
);

impl Accounts {
    fn key(run: &Run<'_>, settings: &CertSettings) -> AccountKey {
        (
            run.effective_server(&settings.cert.server),
            settings.host.ca_bundle.clone(),
        )
    }

    async fn open(&mut self, run: &Run<'_>, settings: &CertSettings) {
        if settings.cert.server.is_local() {
            return;
        }
        let key = Self::key(run, settings);
        if let Entry::Vacant(slot) = self.0.entry(key) {
            let server = run.effective_server(&settings.cert.server);
            let account = account::for_run(run, &server, settings).await;
            slot.insert(account);
        }
    }

    /// The account that replaces a lost one for this CA: made once per run, shared by the
    /// orders that find the stored one gone.
    async fn replace(
        &self,
        run: &Run<'_>,
        settings: &CertSettings,
    ) -> anyhow::Result<instant_acme::Account> {
        let key = Self::key(run, settings);
        let mut fresh = self.1.lock().await;
        if let Some(account) = fresh.get(&key) {
            return Ok(account.clone());
        }
        let account = account::replace_gone(run, &key.0, settings).await?;
        fresh.insert(key, account.clone());
        Ok(account)
    }

    fn get(
        &self,
        run: &Run<'_>,
        settings: &CertSettings,
    ) -> anyhow::Result<&instant_acme::Account> {
        match self.0.get(&Self::key(run, settings)) {
            Some(Ok(account)) => Ok(account),
            // each certificate of that CA fails for the same reason, bad input included
            Some(Err(e)) if crate::error::exit_code(e) == 2 => {
                Err(crate::error::BadInput::new(format!("{e:#}")).into())
            }
            Some(Err(e)) => Err(anyhow!("{e:#}")),
            None => Err(anyhow!("no account")),
        }
    }
}

/// A certificate's journal of placed challenge answers, in the store.
struct StoreJournal {
    store: Store,
    key: Key,
}

impl Journal for StoreJournal {
    fn read(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.store.read(&self.key)
    }

    fn write(&self, value: Option<&[u8]>) -> anyhow::Result<()> {
        match value {
            Some(bytes) => self.store.write(&self.key, bytes),
            None => self.store.remove(&self.key),
        }
    }
}

fn outcome(cert: JobCert, kind: OutcomeKind) -> Outcome {
    Outcome {
        name: cert.name,
        settings: cert.settings,
        kind,
    }
}

/// Each distinct command once, in order.
pub fn dedup<'a>(commands: impl IntoIterator<Item = Option<&'a str>>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for cmd in commands.into_iter().flatten() {
        if !out.contains(&cmd) {
            out.push(cmd);
        }
    }
    out
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
