//! `certctl renew [NAME...]`: decide from stored metadata alone which certificates are due
//! (no network when none is), then renew those with their stored settings, several orders
//! at once over one account per CA and one responder per address. One failure never stops
//! the others, and a failed renewal leaves the old key, certificate and bundle untouched.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use serde::Serialize;

use crate::acme::AcmeHttp;
use crate::challenge::{Responders, Solvers};
use crate::cli::RenewArgs;
use crate::cmd::request::{self, Issued, date, hook_env, now, rfc3339};
use crate::error::BadInput;
use crate::hooks::Hook;
use crate::pem::{self, Decision};
use crate::settings::{self, CertName, CertSettings, ConfigFile, Global, Server};
use crate::store::{Lineage, Store};

const DEFAULT_JOBS: usize = 4;

#[derive(Serialize)]
struct Outcome {
    name: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(global: &Global, config: &ConfigFile, args: RenewArgs) -> anyhow::Result<()> {
    // 1. which certificates; every named one must exist
    let store = Store::new(&global.state_dir, &global.ssl_dir);
    let names = super::list::selected_names(global, &store, &args.names)?;
    let jobs = args.jobs.unwrap_or(DEFAULT_JOBS);
    if jobs == 0 {
        return Err(BadInput::new("--jobs 0: give at least 1").into());
    }
    // hooks from the command line (or the config file) run in addition to the stored ones
    let cli_hooks = request::merge_hooks(&args.hooks, config);
    let hook_timeout = request::hook_timeout(&args.hooks, config);
    let cli_sockets = settings::parse_sockets(if args.haproxy_sockets.is_empty() {
        &config.haproxy_sockets
    } else {
        &args.haproxy_sockets
    })
    .map_err(BadInput::new)?;

    // 2. what is due, from the small metadata files alone: no request unless a certificate
    //    is due or its CA's ARI Retry-After has passed
    let mut failures: Vec<(String, anyhow::Error)> = Vec::new();
    let first = select(&store, &names, args.force, &mut failures);
    if first.due.is_empty()
        && (first.ask.is_empty() || args.dry_run)
        && (first.repair.is_empty() || args.dry_run)
    {
        return summarize(failures, Vec::new(), args.json);
    }

    // 3. under the lock, read again: a run that held it may have renewed them already; and
    //    no order is placed for a certificate that could not be saved
    let _lock = if args.dry_run {
        None
    } else {
        store.check_writable()?;
        Some(store.lock(request::lock_wait())?)
    };
    let again: Vec<CertName> = first
        .due
        .iter()
        .chain(&first.ask)
        .chain(&first.repair)
        .map(|l| l.name.clone())
        .collect();
    let Selection {
        mut due,
        ask,
        repair,
    } = select(&store, &again, args.force, &mut failures);
    let ask = if args.dry_run { Vec::new() } else { ask };
    let repair = if args.dry_run { Vec::new() } else { repair };

    // 4. one account per CA, shared by every request of the run; then the renewal windows
    //    of the ARI certificates whose Retry-After has passed
    let mut accounts: HashMap<
        (Server, Option<std::path::PathBuf>),
        Result<instant_acme::Account, String>,
    > = HashMap::new();
    for lineage in due
        .iter()
        .chain(&ask)
        .filter(|l| !l.settings.server.is_local())
    {
        let server = effective_server(&lineage.settings.server, args.dry_run);
        if let Entry::Vacant(slot) =
            accounts.entry((server.clone(), lineage.settings.ca_bundle.clone()))
        {
            let account = account_for(&store, &server, &lineage.settings, args.dry_run).await;
            slot.insert(account.map_err(|e| format!("{e:#}")));
        }
    }
    for lineage in ask {
        let key = (
            lineage.settings.server.clone(),
            lineage.settings.ca_bundle.clone(),
        );
        let account = match accounts.get(&key) {
            Some(Ok(account)) => account,
            Some(Err(e)) => {
                failures.push((
                    lineage.name.to_string(),
                    anyhow!("{e}").context("asking the CA for its renewal window"),
                ));
                continue;
            }
            None => continue,
        };
        match ask_ca(&store, account, &lineage).await {
            Ok(true) => due.push(lineage),
            Ok(false) => {}
            Err(e) => failures.push((lineage.name.to_string(), e)),
        }
    }
    if due.is_empty() && repair.is_empty() {
        return summarize(failures, Vec::new(), args.json);
    }

    // 4. pre-hooks: each distinct command once, before the first order
    if !args.dry_run {
        let mut pre: Vec<&str> = Vec::new();
        for cmd in due
            .iter()
            .filter_map(|l| l.settings.hooks.pre.as_deref())
            .chain(cli_hooks.pre.as_deref())
        {
            if !pre.contains(&cmd) {
                pre.push(cmd);
            }
        }
        for cmd in pre {
            Hook {
                kind: "pre",
                command: cmd,
                env: vec![],
            }
            .run(hook_timeout)
            .await?;
        }
    }

    // 5. the challenge solvers of each certificate, one responder per address shared by all
    let mut responders = Responders::default();
    let mut solvers = HashMap::new();
    for lineage in &due {
        let built = Solvers::from_setting(&lineage.settings.challenge, &mut responders).await;
        solvers.insert(lineage.name.clone(), built);
    }

    let store_ref = &store;
    // 6. the orders, `jobs` at a time, each with its progress line on a terminal
    let progress = crate::progress::Progress::new(global.verbosity);
    let results: Vec<(Lineage, anyhow::Result<Issued>)> =
        futures_util::stream::iter(due.into_iter().map(|lineage| {
            let server = effective_server(&lineage.settings.server, args.dry_run);
            let account = accounts.get(&(server.clone(), lineage.settings.ca_bundle.clone()));
            let solvers = solvers.get(&lineage.name);
            // an ARI CA is told which certificate this one replaces (RFC 9773); never by a
            // dry run: a CA takes one replacement per certificate, so a rehearsal would
            // make the real renewal fail (and staging knows no production certificate)
            let replaces = store
                .ari(&lineage.name)
                .filter(|_| !args.dry_run)
                .and_then(|_| store.leaf_der(&lineage.name).ok())
                .and_then(|der| crate::acme::cert_id(&der).ok());
            let line = progress.line(lineage.name.as_str());
            async move {
                let result = line
                    .clone()
                    .scope(async {
                        if lineage.settings.server.is_local() {
                            return request::issue_local(store_ref, &lineage.settings);
                        }
                        let account = account
                            .ok_or_else(|| anyhow!("no account"))?
                            .as_ref()
                            .map_err(|e| anyhow!("{e}"))?;
                        let solvers = match solvers {
                            Some(Ok(s)) => s,
                            Some(Err(e)) => return Err(anyhow!("{e:#}")),
                            None => return Err(anyhow!("no challenge solver")),
                        };
                        let wanted = CertSettings {
                            server,
                            ..lineage.settings.clone()
                        };
                        request::order(account, solvers, &lineage.name, &wanted, replaces.as_ref())
                            .await
                    })
                    .await;
                line.finish(if result.is_ok() { "issued" } else { "failed" });
                (lineage, result)
            }
        }))
        .buffer_unordered(jobs)
        .collect()
        .await;
    drop((solvers, responders));

    // 7. install each new certificate (or, for a repair, the stored one), then its deploy
    //    hooks
    let mut renewed: Vec<(Lineage, Issued)> = Vec::new();
    for (lineage, result) in results {
        let name = lineage.name.clone();
        let issued = match result {
            Ok(issued) => issued,
            Err(e) => {
                failures.push((
                    name.to_string(),
                    e.context("not renewed; the current certificate is unchanged"),
                ));
                continue;
            }
        };
        if !args.dry_run {
            if let Err(e) = request::install(&store, &name, &lineage.settings, &issued) {
                failures.push((
                    name.to_string(),
                    e.context(
                        "renewed but not installed; the bundle in the ssl directory is still \
                         the previous one, and the next `certctl renew` writes it",
                    ),
                ));
                continue;
            }
        }
        renewed.push((lineage, issued));
    }
    for lineage in repair {
        let name = lineage.name.clone();
        let reinstalled = store.live_files(&name).and_then(|files| {
            let issued = Issued {
                info: pem::cert_info(&files.chain.leaf)?,
                key_pem: files.key_pem,
                chain: files.chain,
            };
            store.write_bundle(&name, &pem::bundle(&issued.chain, &issued.key_pem))?;
            Ok(issued)
        });
        match reinstalled {
            Ok(issued) => {
                crate::log::info(format_args!(
                    "{name}: the bundle was not the stored certificate's (an earlier run was \
                     interrupted); written again"
                ));
                renewed.push((lineage, issued));
            }
            Err(e) => failures.push((
                name.to_string(),
                e.context("the bundle is not the stored certificate's and could not be written"),
            )),
        }
    }
    renewed.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for (lineage, issued) in &renewed {
        if args.dry_run {
            crate::log::info(format_args!(
                "{}: dry run: the CA would issue a certificate; nothing written",
                lineage.name
            ));
            continue;
        }
        crate::log::info(format_args!(
            "{}: renewed, valid until {}; bundle {}",
            lineage.name,
            date(issued.info.not_after),
            store.bundle_path(&lineage.name).display()
        ));
        // an ARI CA gives the new certificate its own window (no request to other CAs)
        let key = (
            lineage.settings.server.clone(),
            lineage.settings.ca_bundle.clone(),
        );
        if let Some(Ok(account)) = accounts.get(&key) {
            request::refresh_ari(
                &store,
                account,
                &lineage.name,
                &lineage.settings.server,
                &issued.chain.leaf,
            )
            .await;
        }
        // hot-swap into every HAProxy: the stored sockets and those given now
        let mut sockets = lineage.settings.haproxy_sockets.clone();
        sockets.extend(
            cli_sockets
                .iter()
                .filter(|s| !lineage.settings.haproxy_sockets.contains(s))
                .cloned(),
        );
        for e in request::push_to_haproxy(&store, &lineage.name, &sockets, issued) {
            failures.push((lineage.name.to_string(), e));
        }
        let current = Lineage {
            info: issued.info.clone(),
            ..lineage.clone()
        };
        for cmd in dedup([
            lineage.settings.hooks.deploy.as_deref(),
            cli_hooks.deploy.as_deref(),
        ]) {
            let hook = Hook {
                kind: "deploy",
                command: cmd,
                env: hook_env(&store, &current),
            };
            if let Err(e) = hook.run(hook_timeout).await {
                failures.push((lineage.name.to_string(), e));
            }
        }
    }

    // 8. post-hooks once, when anything was renewed
    if !args.dry_run && !renewed.is_empty() {
        let names: Vec<CertName> = renewed.iter().map(|(l, _)| l.name.clone()).collect();
        let stored = renewed
            .iter()
            .map(|(l, _)| l.settings.hooks.post.as_deref());
        let post: Vec<&str> = dedup(stored.chain([cli_hooks.post.as_deref()]));
        for cmd in post {
            if let Err(e) = request::post_hook(&store, &names, cmd)
                .run(hook_timeout)
                .await
            {
                failures.push(("post-hook".into(), e));
            }
        }
    }
    summarize(
        failures,
        renewed
            .iter()
            .map(|(l, i)| (l.name.to_string(), i.info.clone()))
            .collect(),
        args.json,
    )
}

/// Certificates to renew now, ARI certificates whose window must be fetched again, and
/// certificates whose bundle is not the one of their live files: a run stopped (or a
/// disk that filled up) between storing a new certificate and writing its bundle. Those
/// are installed again without an order: bundle, proxies, hooks.
struct Selection {
    due: Vec<Lineage>,
    ask: Vec<Lineage>,
    repair: Vec<Lineage>,
}

/// Sorts `names` by `pem::decide` (all due with `force`); damaged entries are recorded as
/// failures and skipped.
fn select(
    store: &Store,
    names: &[CertName],
    force: bool,
    failures: &mut Vec<(String, anyhow::Error)>,
) -> Selection {
    let now = now();
    let mut selection = Selection {
        due: Vec::new(),
        ask: Vec::new(),
        repair: Vec::new(),
    };
    for name in names {
        match store.lineage(name) {
            Ok(Some(lineage)) => {
                let info = &lineage.info;
                let ari = store.ari(name);
                match pem::decide(now, info.not_before, info.not_after, ari.as_ref(), force) {
                    Decision::Due => selection.due.push(lineage),
                    _ if !store.bundle_is_current(name) => selection.repair.push(lineage),
                    Decision::AskCa => selection.ask.push(lineage),
                    Decision::NotDue => crate::log::verbose(format_args!(
                        "{name}: not due; valid until {}, renewal from {}",
                        date(info.not_after),
                        date(ari.map_or_else(
                            || pem::renewal_time(info.not_before, info.not_after),
                            |a| a.renew_at
                        ))
                    )),
                }
            }
            Ok(None) => {}
            Err(e) => failures.push((
                name.to_string(),
                e.context("cannot read the stored certificate"),
            )),
        }
    }
    selection
}

/// Fetches the CA's renewal window for `lineage`, records it, and says whether it is due now.
async fn ask_ca(
    store: &Store,
    account: &instant_acme::Account,
    lineage: &Lineage,
) -> anyhow::Result<bool> {
    let leaf = store.leaf_der(&lineage.name)?;
    request::refresh_ari(
        store,
        account,
        &lineage.name,
        &lineage.settings.server,
        &leaf,
    )
    .await;
    let info = &lineage.info;
    let ari = store.ari(&lineage.name);
    let decision = pem::decide(now(), info.not_before, info.not_after, ari.as_ref(), false);
    if decision != Decision::Due {
        crate::log::verbose(format_args!(
            "{}: not due; the CA's renewal window starts {}",
            lineage.name,
            ari.map_or_else(|| "nowhere (no ARI)".to_owned(), |a| date(a.window_start))
        ));
    }
    Ok(decision == Decision::Due)
}

/// `--dry-run` against Let's Encrypt production goes to staging instead.
fn effective_server(server: &Server, dry_run: bool) -> Server {
    if dry_run {
        server
            .staging_counterpart()
            .unwrap_or_else(|| server.clone())
    } else {
        server.clone()
    }
}

/// The stored account for `server`; when there is none (a deleted account file, or a dry
/// run against staging), a new one: the terms were agreed to when the certificate was
/// requested. A dry run keeps it in memory only.
async fn account_for(
    store: &Store,
    server: &Server,
    settings: &CertSettings,
    dry_run: bool,
) -> anyhow::Result<instant_acme::Account> {
    let http = AcmeHttp::new(settings.ca_bundle.as_deref())?;
    if let Some(credentials) = store.account(server)? {
        return crate::acme::restore_account(&http, server, credentials).await;
    }
    let (account, credentials) =
        crate::acme::create_account(&http, server, settings.email.as_deref()).await?;
    if !dry_run {
        store.save_account(server, credentials)?;
    }
    Ok(account)
}

fn dedup<'a>(commands: impl IntoIterator<Item = Option<&'a str>>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for cmd in commands.into_iter().flatten() {
        if !out.contains(&cmd) {
            out.push(cmd);
        }
    }
    out
}

/// Prints the results; exit 1 (an error) naming every failure, silent when nothing happened.
fn summarize(
    failures: Vec<(String, anyhow::Error)>,
    renewed: Vec<(String, pem::CertInfo)>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut outcomes: Vec<Outcome> = renewed
            .iter()
            .map(|(name, info)| Outcome {
                name: name.clone(),
                status: "renewed",
                serial: Some(info.serial.clone()),
                not_after: Some(rfc3339(info.not_after)),
                error: None,
            })
            .collect();
        outcomes.extend(failures.iter().map(|(name, e)| Outcome {
            name: name.clone(),
            status: "failed",
            serial: None,
            not_after: None,
            error: Some(format!("{e:#}")),
        }));
        println!("{}", serde_json::to_string(&outcomes)?);
    }
    if failures.is_empty() {
        return Ok(());
    }
    for (name, e) in &failures {
        eprintln!("certctl: {name}: {e:#}");
    }
    let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    Err(anyhow!("renewal failed for: {}", names.join(", "))).context(format!(
        "{} renewed, {} failed",
        renewed.len(),
        failures.len()
    ))
}
