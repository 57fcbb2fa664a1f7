//! `certctl renew [NAME...]`: decide from stored metadata alone which certificates are due
//! (no network when none is), then renew those with their stored settings, several orders
//! at once over one account per CA and one responder per address. One failure never stops
//! the others, and a failed renewal leaves the old key, certificate and bundle untouched.

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::RenewArgs;
use crate::deploy::Bundles;
use crate::issue::{
    self, Job, JobCert, MissingAccount, OutcomeKind, Run, Work, date, now, rfc3339,
};
use crate::pem::{self, Decision};
use crate::settings::{CertSettings, ConfigFile, Global, RenewSettings};
use crate::store::{Lineage, Store};
use crate::types::CertName;

mod cluster;
mod pending;
mod summary;
use pending::{has_pending, rehearse_repairs, retry_pushes};
use summary::summary_line;

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
    let started = std::time::Instant::now();
    let timestamp = now();
    let metrics_file = args.metrics_file.clone();
    let result = renew(global, config, args).await;
    // the metrics of every certificate, whatever this run did (nothing due included)
    if let Some(path) = metrics_file {
        let (store, bundles) = super::open(global)?;
        let names = store.names()?;
        let healths = crate::health::gather(&store, &bundles, &names, now());
        let run = crate::metrics::Run {
            timestamp,
            duration: started.elapsed(),
        };
        if let Err(e) = crate::metrics::write(&path, &crate::metrics::render(&healths, Some(run))) {
            // both are said: the run's own failure stays the error
            return match result {
                Ok(()) => Err(e),
                Err(run_failed) => {
                    crate::log::error(format_args!("{e:#}"));
                    Err(run_failed)
                }
            };
        }
    }
    result
}

async fn renew(global: &Global, config: &ConfigFile, args: RenewArgs) -> anyhow::Result<()> {
    // 1. which certificates; every named one must exist
    // hooks and sockets from the command line (or the config file) apply in addition to
    // the stored ones
    let given = RenewSettings::resolve(config, &args)?;
    let (store, bundles, names) = match attention_only(global, &args, &given)? {
        Some(opened) => opened,
        None => {
            let (store, bundles) = super::open(global)?;
            let names = super::selected_names(global, &store, &args.names)?;
            (store, bundles, names)
        }
    };

    // 2. the local CA's CRL, signed again once half its validity has passed
    let mut failures: Vec<(String, anyhow::Error)> = Vec::new();
    if args.dry_run && issue::crl_is_due(&store, now()) {
        crate::log::info(format_args!(
            "dry run: the local CA's CRL is past half its validity; a real run signs it again \
             and hands it to the proxies"
        ));
    } else if issue::crl_is_due(&store, now()) {
        let _lock = super::lock_for_writing(global, &store, &bundles)?;
        let local: Vec<Lineage> = names
            .iter()
            .filter_map(|n| store.lineage(n).ok().flatten())
            .filter(|l| l.settings.cert.server.is_local())
            .collect();
        let mut sockets = given.sockets.clone();
        let mut posts: Vec<&str> = given.hooks.post.iter().map(String::as_str).collect();
        for l in &local {
            sockets.extend(l.settings.host.haproxy_sockets.iter().cloned());
            posts.extend(l.settings.host.hooks.post.as_deref());
        }
        sockets.dedup();
        let posts = issue::dedup(posts.into_iter().map(Some));
        let errors = issue::refresh_crl(
            &store,
            now(),
            &sockets,
            &posts,
            given.hook_timeout,
            global.haproxy_timeout,
        )
        .await;
        failures.extend(errors.into_iter().map(|e| ("local CA CRL".to_owned(), e)));
    }

    // 3. what is due, from the small metadata files alone: no request unless a certificate
    //    is due or its CA's ARI Retry-After has passed
    let first = select(&store, &bundles, &names, args.force, &mut failures);
    if args.dry_run {
        rehearse_repairs(&store, &first, &names, &given.sockets);
    }
    if first.due.is_empty()
        && first.ask.is_empty()
        && (first.repair.is_empty() || args.dry_run)
        && (first.half_made.is_empty() || args.dry_run)
    {
        let repairs = !(first.repair.is_empty() && first.half_made.is_empty());
        if args.dry_run && failures.is_empty() && !repairs {
            crate::log::info(format_args!(
                "dry run: no certificate is due, so there is nothing to rehearse; \
                 `certctl renew --dry-run --force` rehearses every one (or name one)"
            ));
        }
        // a push that failed before is tried again, due or not
        let mut after = Vec::new();
        if !args.dry_run && has_pending(&store, &names, &given.sockets) {
            let _lock = super::lock_this_host(global, &store, &bundles)?;
            after = retry_pushes(global, &store, &bundles, &names, &given.sockets, &[]);
        }
        return summarize(failures, Vec::new(), after, args.json);
    }

    // 3. under the lock, read again: a run that held it may have renewed them already; and
    //    no order is placed for a certificate that could not be saved. A shared store: this
    //    host's lock, then each certificate's, taken without waiting (cluster.rs)
    let _lock = if args.dry_run {
        None
    } else {
        Some(super::lock_this_host(global, &store, &bundles)?)
    };
    let again: Vec<CertName> = first
        .due
        .iter()
        .chain(&first.ask)
        .chain(&first.repair)
        .map(|l| l.name.clone())
        .chain(first.half_made.iter().map(|(name, _)| name.clone()))
        .collect();
    let mut locks = cluster::Locks::default();
    let again = locks.take_free(&store, again, args.dry_run, &mut failures);
    let jobs_todo = jobs(&store, &bundles, &again, &args, &mut failures);

    // 4. the pipeline: accounts, pre-hooks, orders, store, bundles, proxies, hooks
    let run = Run {
        store: &store,
        bundles: &bundles,
        verbosity: global.verbosity,
        hooks: given.hooks,
        hook_timeout: given.hook_timeout,
        haproxy_timeout: global.haproxy_timeout,
        http_timeout: global.http_timeout,
        sockets: given.sockets,
        jobs: given.jobs,
        dry_run: args.dry_run,
        missing_account: MissingAccount::Create,
    };
    let mut outcomes = run.run_jobs(jobs_todo).await?;
    // the certificates other nodes held: waited for, then done as they stand now
    outcomes.extend(
        locks
            .after_holders(&run, global, &args, &mut failures)
            .await?,
    );
    let report = run.conclude(outcomes).await;

    // 5. what happened to each; a hook or proxy that failed after a renewal is counted apart
    let mut renewed: Vec<(String, pem::CertInfo, bool)> = Vec::new();
    let mut after_failures: Vec<(String, anyhow::Error)> = Vec::new();
    for outcome in report.outcomes {
        let name = outcome.name.to_string();
        match outcome.kind {
            OutcomeKind::NotDue => {}
            OutcomeKind::NotIssued(e) => failures.push((
                name,
                e.context("not renewed; the current certificate is unchanged"),
            )),
            OutcomeKind::NotInstalled(e) => failures.push((name, e)),
            OutcomeKind::Rehearsed { .. } => crate::log::info(format_args!(
                "{name}: dry run: the CA would issue a certificate; nothing written"
            )),
            OutcomeKind::Installed {
                info,
                reinstalled,
                after,
            } => {
                if reinstalled && global.store.etcd().is_some() {
                    crate::log::info(format_args!(
                        "{name}: installed the shared store's newer certificate, valid until \
                         {}; bundle {}",
                        date(info.not_after),
                        bundles.path(&outcome.name).display()
                    ));
                } else if reinstalled {
                    crate::log::info(format_args!(
                        "{name}: reinstalled from the stored files (its bundle was not the \
                         stored certificate's: an earlier run was interrupted), valid until {}; \
                         bundle {}",
                        date(info.not_after),
                        bundles.path(&outcome.name).display()
                    ));
                } else {
                    crate::log::info(format_args!(
                        "{name}: renewed, valid until {}; bundle {}",
                        date(info.not_after),
                        bundles.path(&outcome.name).display()
                    ));
                }
                after_failures.extend(after.into_iter().map(|e| (name.clone(), e)));
                renewed.push((name, info, reinstalled));
            }
        }
    }
    if !args.dry_run {
        let done: Vec<String> = renewed.iter().map(|(n, _, _)| n.clone()).collect();
        after_failures.extend(retry_pushes(
            global,
            &store,
            &bundles,
            &names,
            &run.sockets,
            &done,
        ));
    }
    after_failures.extend(
        report
            .post_failures
            .into_iter()
            .map(|e| (POST_HOOK.to_owned(), e)),
    );
    summarize(failures, renewed, after_failures, args.json)
}

/// The jobs for `names`, decided again from the store (under the lock): orders, windows to
/// ask for, bundles to install again, first requests to complete or archive.
fn jobs(
    store: &Store,
    bundles: &Bundles,
    names: &[CertName],
    args: &RenewArgs,
    failures: &mut Vec<(String, anyhow::Error)>,
) -> Vec<Job> {
    let Selection {
        due,
        ask,
        repair,
        half_made,
    } = select(store, bundles, names, args.force, failures);
    let work = |lineage: Lineage, work: Work| Job {
        lineage: JobCert {
            name: lineage.name,
            settings: lineage.settings,
        },
        work,
    };
    let mut jobs_todo: Vec<Job> = Vec::new();
    for lineage in due {
        // an ARI CA is told which certificate this one replaces (RFC 9773)
        let replaces = store
            .ari(&lineage.name)
            .and_then(|_| store.live_leaf(&lineage.name).ok());
        jobs_todo.push(work(lineage, Work::Order { replaces }));
    }
    // a dry run asks the CA for its window as a real run does, and records nothing
    jobs_todo.extend(ask.into_iter().map(|l| work(l, Work::AskCa)));
    if !args.dry_run {
        jobs_todo.extend(repair.into_iter().map(|l| work(l, Work::Reinstall)));
        // a first request stopped while storing: ordered again when its settings were
        // stored, otherwise moved to the archive so that `request` starts afresh
        for (name, settings) in half_made {
            match settings {
                Some(settings) => {
                    crate::log::info(format_args!(
                        "{name}: its first request was stopped before its certificate was \
                         stored; ordering it now"
                    ));
                    jobs_todo.push(Job {
                        lineage: JobCert { name, settings },
                        work: Work::Order { replaces: None },
                    });
                }
                None => match super::archive(store, bundles, &name, false) {
                    Ok(folder) => crate::log::info(format_args!(
                        "{name}: its first request was stopped before its settings were \
                         stored; what it left is in {folder}, and `certctl request` issues it \
                         again"
                    )),
                    Err(e) => failures.push((name.to_string(), e)),
                },
            }
        }
    }

    jobs_todo
}

/// For a plain `renew` (no names, no force, no sockets on the command line, the CRL not
/// due): the state, and only the certificates that need attention now, from this host's
/// index (`issue::needing_attention`, which checks it against the state). None: read all.
fn attention_only(
    global: &Global,
    args: &RenewArgs,
    given: &RenewSettings,
) -> anyhow::Result<Option<(Store, Bundles, Vec<CertName>)>> {
    // `-v` says why each certificate is not due: that needs every one read
    let verbose = global.verbosity as u8 >= crate::log::Verbosity::Verbose as u8;
    if !args.names.is_empty() || args.force || !given.sockets.is_empty() || verbose {
        return Ok(None);
    }
    let store = super::open_store(global)?;
    if issue::crl_is_due(&store, now()) {
        return Ok(None);
    }
    let Some(due) = issue::needing_attention(&store, &global.ssl_dir, now()) else {
        return Ok(None);
    };
    let mut bundles = Bundles::new(&global.ssl_dir);
    for (name, dir) in &due {
        if let Some(dir) = dir {
            bundles.set_dir(name, dir);
        }
    }
    Ok(Some((
        store,
        bundles,
        due.into_iter().map(|(n, _)| n).collect(),
    )))
}

/// Marks a failed push of an earlier renewal (`{PENDING}{name}`) among the after-failures.
const PENDING: &str = "pending:";

/// Stands for the post-hook where a certificate name stands for the others.
const POST_HOOK: &str = "post-hook";

/// Certificates to renew now, ARI certificates whose window must be fetched again, and
/// certificates whose bundle is not the one of their live files: a run stopped (or a
/// disk that filled up) between storing a new certificate and writing its bundle. Those
/// are installed again without an order: bundle, proxies, hooks.
struct Selection {
    due: Vec<Lineage>,
    ask: Vec<Lineage>,
    repair: Vec<Lineage>,
    /// Half made by a first request stopped while storing, with its settings if stored.
    half_made: Vec<(CertName, Option<CertSettings>)>,
}

/// Sorts `names` by `pem::decide` (all due with `force`); damaged entries are recorded as
/// failures and skipped.
fn select(
    store: &Store,
    bundles: &Bundles,
    names: &[CertName],
    force: bool,
    failures: &mut Vec<(String, anyhow::Error)>,
) -> Selection {
    let now = now();
    let mut selection = Selection {
        due: Vec::new(),
        ask: Vec::new(),
        repair: Vec::new(),
        half_made: Vec::new(),
    };
    for name in names {
        match store.lineage(name) {
            Ok(Some(lineage)) => {
                let info = &lineage.info;
                let ari = store.ari(name);
                if !crate::store::same_names(&lineage.settings.cert.domains, &info.names) {
                    // a request stopped between saving its settings and its certificate
                    crate::log::info(format_args!(
                        "{name}: its certificate does not name what its settings ask for (an \
                         interrupted request); ordering one that does"
                    ));
                    selection.due.push(lineage);
                    continue;
                }
                let reissue = force || store.reissue(name).is_some();
                let decision =
                    pem::decide(now, info.not_before, info.not_after, ari.as_ref(), reissue);
                // what needs the CA waits for its rate limit, and for the back-off after
                // failures (unless --force)
                let server = &lineage.settings.cert.server;
                let held = store
                    .next_attempt(name, server, force)
                    .filter(|at| *at > now);
                if let (Some(at), Decision::Due | Decision::AskCa) = (held, decision) {
                    crate::log::info(format_args!(
                        "{name}: not contacting the CA before {} ({}); `certctl list` shows it",
                        date(at),
                        hold_reason(store, name, server, now)
                    ));
                    continue;
                }
                match decision {
                    Decision::Due => selection.due.push(lineage),
                    _ if !issue::bundle_is_current(store, bundles, name, &info.serial) => {
                        selection.repair.push(lineage)
                    }
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
            Err(e) => match store.half_made(name) {
                Some(settings) => selection.half_made.push((name.clone(), settings)),
                None => failures.push((
                    name.to_string(),
                    e.context("cannot read the stored certificate"),
                )),
            },
        }
    }
    selection
}

/// Why `renew` waits for `name`: the CA's limit, or failed attempts.
fn hold_reason(store: &Store, name: &CertName, server: &crate::types::Server, now: i64) -> String {
    if store.rate_limit(server).is_some_and(|t| t > now) {
        return "the CA asked for that with a rate limit".to_owned();
    }
    let status = store.status(name);
    if status.retry_after.is_some_and(|t| t > now) {
        return "the CA rate-limited these names".to_owned();
    }
    format!(
        "backing off after {} failed attempts; --force tries now",
        status.consecutive_failures
    )
}

/// Prints the results; exit 1 (an error) naming every failure, silent when nothing
/// happened. Renewals that failed and hooks or proxies that failed after a renewal are
/// counted apart, each name once.
fn summarize(
    failures: Vec<(String, anyhow::Error)>,
    renewed: Vec<(String, pem::CertInfo, bool)>,
    after: Vec<(String, anyhow::Error)>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut outcomes: Vec<Outcome> = renewed
            .iter()
            .map(|(name, info, reinstalled)| {
                let errors: Vec<String> = after
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, e)| format!("{e:#}"))
                    .collect();
                Outcome {
                    name: name.clone(),
                    status: if *reinstalled {
                        "reinstalled"
                    } else {
                        "renewed"
                    },
                    serial: Some(info.serial.clone()),
                    not_after: Some(rfc3339(info.not_after)),
                    error: (!errors.is_empty()).then(|| errors.join("; ")),
                }
            })
            .collect();
        outcomes.extend(after.iter().filter_map(|(name, e)| {
            name.strip_prefix(PENDING).map(|name| Outcome {
                name: name.to_owned(),
                status: "deploy pending",
                serial: None,
                not_after: None,
                error: Some(format!("{e:#}")),
            })
        }));
        outcomes.extend(failures.iter().map(|(name, e)| Outcome {
            name: name.clone(),
            status: "failed",
            serial: None,
            not_after: None,
            error: Some(format!("{e:#}")),
        }));
        super::print_stdout(&format!("{}\n", serde_json::to_string(&outcomes)?))?;
    }
    if failures.is_empty() && after.is_empty() {
        return Ok(());
    }
    for (name, e) in &failures {
        crate::log::error(format_args!("{name}: {e:#}"));
    }
    for (name, e) in &after {
        if name == POST_HOOK {
            crate::log::error(format_args!("post-hook failed: {e:#}"));
        } else if let Some(name) = name.strip_prefix(PENDING) {
            crate::log::error(format_args!("{name}: deploy pending; {e:#}"));
        } else {
            crate::log::error(format_args!("{name}: renewed; {e:#}"));
        }
    }
    Err(anyhow!(summary_line(&failures, renewed.len(), &after)))
}
