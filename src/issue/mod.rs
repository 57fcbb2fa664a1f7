//! The pipeline every command that produces a certificate shares: obtain (ACME order or
//! local CA) -> store -> install the bundle -> deploy to the proxies -> hooks. `run` takes a
//! batch of jobs (one for `request`, many for `renew`), runs the orders side by side over one
//! account per CA and one responder per address, and reports each job's outcome; the
//! commands only decide what to do and print. Never reads flags or the config file.

mod account;
mod hooks;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;

use crate::acme::{self, Answer};
use crate::deploy::{self, Bundles};
use crate::http01::Responder;
use crate::pem::{self, CertInfo, Chain};
use crate::settings::{CertSettings, Challenge, Hooks, Verbosity};
use crate::store::{Lineage, Store};
use crate::types::{CertName, Server, Socket};

pub use account::{MissingAccount, ask_terms, open_account};
pub use hooks::{hook_env, post_hook};

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
                        Ok(account) => ask_ca(self.store, account, &cert).await,
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
            return Ok(Report {
                outcomes,
                post_failures: Vec::new(),
            });
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

        // 3. one responder per address, shared by all orders, bound before anything is sent
        //    to the CA
        let mut responders: HashMap<SocketAddr, anyhow::Result<Responder>> = HashMap::new();
        for (cert, _) in &orders {
            if let Challenge::Standalone { http_addr } = cert.settings.cert.challenge {
                if let Entry::Vacant(slot) = responders.entry(http_addr) {
                    slot.insert(Responder::bind(http_addr).await);
                }
            }
        }
        let responder_of = |settings: &CertSettings| match settings.cert.challenge {
            Challenge::Standalone { http_addr } => responders.get(&http_addr),
            _ => None,
        };

        // 4. the accounts of the CAs that orders go to (none for an order that cannot run)
        for (cert, _) in &orders {
            if !matches!(responder_of(&cert.settings), Some(Err(_))) {
                accounts.open(self, &cert.settings).await;
            }
        }
        let accounts = &accounts;

        // 5. the orders, `jobs` at a time, each with its progress line on a terminal
        let progress = crate::progress::Progress::new(self.verbosity);
        let results: Vec<(JobCert, anyhow::Result<Issued>)> =
            futures_util::stream::iter(orders.into_iter().map(|(cert, replaces)| {
                let line = progress.line(cert.name.as_str());
                let responder = responder_of(&cert.settings);
                async move {
                    let result = line
                        .clone()
                        .scope(async {
                            if cert.settings.cert.server.is_local() {
                                return issue_local(self.store, &cert.settings);
                            }
                            let responder = match responder {
                                Some(Ok(r)) => Some(r),
                                Some(Err(e)) => return Err(anyhow!("{e:#}")),
                                None => None,
                            };
                            let mut wanted = cert.settings.clone();
                            wanted.cert.server = self.effective_server(&wanted.cert.server);
                            // never by a dry run: a CA takes one replacement per certificate
                            let replaces = replaces
                                .filter(|_| !self.dry_run)
                                .and_then(|der| acme::cert_id(&der).ok());
                            let account = accounts.get(self, &cert.settings)?;
                            order(account, responder, &cert.name, &wanted, replaces.as_ref()).await
                        })
                        .await;
                    line.finish(if result.is_ok() { "issued" } else { "failed" });
                    (cert, result)
                }
            }))
            .buffer_unordered(self.jobs.max(1))
            .collect()
            .await;
        drop(responders);

        // 6. store and install each new certificate; a reinstall takes the stored one
        let mut installed: Vec<(JobCert, Issued, bool)> = Vec::new();
        for (cert, result) in results {
            let issued = match result {
                Ok(issued) => issued,
                Err(e) => {
                    outcomes.push(outcome(cert, OutcomeKind::NotIssued(e)));
                    continue;
                }
            };
            if self.dry_run {
                outcomes.push(outcome(cert, OutcomeKind::Rehearsed { info: issued.info }));
                continue;
            }
            match install(
                self.store,
                self.bundles,
                &cert.name,
                &cert.settings,
                &issued,
            ) {
                Ok(()) => installed.push((cert, issued, false)),
                Err(e) => outcomes.push(outcome(
                    cert,
                    OutcomeKind::NotInstalled(e.context(
                        "renewed but not installed; the bundle in the ssl directory is still \
                         the previous one, and the next `certctl renew` writes it",
                    )),
                )),
            }
        }
        for cert in reinstalls {
            match reinstall(self.store, self.bundles, &cert.name) {
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

        // 7. the CA's next window, the proxies, the deploy hooks
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
            let mut sockets = cert.settings.host.haproxy_sockets.clone();
            sockets.extend(
                self.sockets
                    .iter()
                    .filter(|s| !sockets.contains(s))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            let mut after = deploy::push_to_haproxy(
                self.bundles,
                name,
                &sockets,
                &issued.chain,
                &issued.key_pem,
                &issued.info,
            );
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

        // 8. post-hooks once, when anything was installed
        let mut post_failures = Vec::new();
        if !installed.is_empty() {
            let names: Vec<CertName> = installed.iter().map(|(c, _, _)| c.name.clone()).collect();
            let stored = installed
                .iter()
                .map(|(c, _, _)| c.settings.host.hooks.post.as_deref());
            for cmd in dedup(stored.chain([self.hooks.post.as_deref()])) {
                if let Err(e) = post_hook(self.bundles, &names, cmd)
                    .run(self.hook_timeout)
                    .await
                {
                    post_failures.push(e);
                }
            }
        }
        outcomes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Report {
            outcomes,
            post_failures,
        })
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
struct Accounts(HashMap<AccountKey, Result<instant_acme::Account, anyhow::Error>>);

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

fn outcome(cert: JobCert, kind: OutcomeKind) -> Outcome {
    Outcome {
        name: cert.name,
        settings: cert.settings,
        kind,
    }
}

/// Orders one certificate and checks what came back; writes nothing. The responder, when
/// the challenge needs one, is bound by the caller and serves the tokens of every order.
pub async fn order(
    account: &instant_acme::Account,
    responder: Option<&Responder>,
    name: &CertName,
    wanted: &CertSettings,
    replaces: Option<&instant_acme::CertificateIdentifier<'static>>,
) -> anyhow::Result<Issued> {
    let answer = match (&wanted.cert.challenge, responder) {
        (Challenge::Webroot { webroot }, _) => Answer::Webroot(webroot),
        (_, Some(r)) => Answer::Responder(&r.tokens),
        _ => Answer::Stateless,
    };
    let key = crate::keys::generate(wanted.cert.key_type)?;
    let csr = crate::keys::csr(&wanted.cert.domains, &key)?;
    crate::log::verbose(format_args!(
        "{name}: ordering a certificate for {} from {}",
        join(&wanted.cert.domains),
        wanted.cert.server
    ));
    let chain_pem = acme::issue(
        account,
        &wanted.cert.server,
        &wanted.cert.domains,
        &csr,
        &answer,
        replaces,
    )
    .await?;
    let key_pem = key.serialize_pem();
    let chain = Chain::parse(&chain_pem).context("reading the certificate the CA sent")?;
    pem::check_key_matches(&chain.leaf, &key_pem)
        .context("the CA's certificate does not match the key certctl sent")?;
    let info = pem::cert_info(&chain.leaf).context("reading the certificate the CA sent")?;
    Ok(Issued {
        key_pem,
        chain,
        info,
    })
}

/// A certificate from the local CA (created on first use): no network, no account.
pub fn issue_local(store: &Store, wanted: &CertSettings) -> anyhow::Result<Issued> {
    let ca = crate::local_ca::LocalCa::open_or_create(store)?;
    let key = crate::keys::generate(wanted.cert.key_type)?;
    let days = wanted.cert.days.unwrap_or(crate::local_ca::DEFAULT_DAYS);
    let (chain, info) = ca.sign(&wanted.cert.domains, &key, days, wanted.cert.client_auth)?;
    Ok(Issued {
        key_pem: key.serialize_pem(),
        chain,
        info,
    })
}

/// Stores a new certificate and its settings, then writes its bundle.
pub fn install(
    store: &Store,
    bundles: &Bundles,
    name: &CertName,
    wanted: &CertSettings,
    issued: &Issued,
) -> anyhow::Result<()> {
    store.save_generation(name, &issued.key_pem, &issued.chain, &issued.info)?;
    store.save_settings(name, wanted)?;
    bundles.write(
        store,
        name,
        &issued.info.serial,
        &pem::bundle(&issued.chain, &issued.key_pem),
    )?;
    Ok(())
}

/// Writes the bundle of `name` again from its stored files.
fn reinstall(store: &Store, bundles: &Bundles, name: &CertName) -> anyhow::Result<Issued> {
    let files = store.live_files(name)?;
    let issued = Issued {
        info: pem::cert_info(&files.chain.leaf)?,
        key_pem: files.key_pem,
        chain: files.chain,
    };
    bundles.write(
        store,
        name,
        &issued.info.serial,
        &pem::bundle(&issued.chain, &issued.key_pem),
    )?;
    crate::log::info(format_args!(
        "{name}: the bundle was not the stored certificate's (an earlier run was \
         interrupted); written again"
    ));
    Ok(issued)
}

/// Whether the bundle of `name` holds its live generation. False when a run was stopped
/// between storing a new certificate and writing its bundle; true when the live files
/// cannot be read (a damaged entry is for `list` to report, not a reason to write).
pub fn bundle_is_current(store: &Store, bundles: &Bundles, name: &CertName, serial: &str) -> bool {
    if bundles.stamped(store, name, serial) {
        return true;
    }
    let Ok(files) = store.live_files(name) else {
        return true;
    };
    bundles.holds(name, &pem::bundle(&files.chain, &files.key_pem))
}

/// Fetches the CA's renewal window for `cert`, records it, and says whether it is due now:
/// Some(the leaf it replaces) when due.
async fn ask_ca(
    store: &Store,
    account: &instant_acme::Account,
    cert: &JobCert,
) -> anyhow::Result<Option<Option<Vec<u8>>>> {
    let leaf = store.live_leaf(&cert.name)?;
    refresh_ari(
        store,
        account,
        &cert.name,
        &cert.settings.cert.server,
        &leaf,
    )
    .await;
    let meta = store
        .lineage(&cert.name)?
        .with_context(|| format!("{} is no longer managed", cert.name))?
        .info;
    let ari = store.ari(&cert.name);
    let decision = pem::decide(now(), meta.not_before, meta.not_after, ari.as_ref(), false);
    if decision != pem::Decision::Due {
        crate::log::verbose(format_args!(
            "{}: not due; the CA's renewal window starts {}",
            cert.name,
            ari.map_or_else(|| "nowhere (no ARI)".to_owned(), |a| date(a.window_start))
        ));
        return Ok(None);
    }
    Ok(Some(Some(leaf)))
}

/// Asks an ARI CA (RFC 9773) for the new certificate's renewal window and records it, so
/// `renew` follows the CA's schedule; with a CA without ARI this sends nothing. A failure
/// only costs the window: the lifetime rule then decides, so it is a warning.
pub async fn refresh_ari(
    store: &Store,
    account: &instant_acme::Account,
    name: &CertName,
    server: &Server,
    leaf_der: &[u8],
) {
    let result = async {
        let ari =
            acme::renewal_info(account, server, leaf_der)
                .await?
                .map(|(window, retry_after)| {
                    pem::AriState::new(
                        window.start.unix_timestamp(),
                        window.end.unix_timestamp(),
                        random_fraction(),
                        now(),
                        retry_after.as_secs(),
                    )
                });
        store.save_ari(name, ari.as_ref())
    }
    .await;
    if let Err(e) = result {
        // a stale window must not decide: without one the lifetime rule does
        let _ = store.save_ari(name, None);
        crate::log::warn(format_args!(
            "{name}: {e:#}; renewal falls back to the certificate's lifetime"
        ));
    }
}

/// A number in [0, 1) that differs between runs and hosts (to spread renewals in a window).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
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

pub fn join(domains: &[crate::types::DomainName]) -> String {
    domains
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn date(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| ts.to_string())
}

pub fn rfc3339(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}
