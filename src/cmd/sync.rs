//! `certctl sync [--watch]`: install on this node what the shared store holds and its
//! bundles do not (bundle file, HAProxy push, deploy hooks), now, or at each change the
//! store reports. Never orders anything and never takes the cluster's lock: what it writes
//! is this node's own (under the state directory's local lock).

use std::time::Duration;

use crate::cli::store::SyncArgs;
use crate::error::BadInput;
use crate::issue::{self, Job, JobCert, MissingAccount, OutcomeKind, Run, Work, date};
use crate::settings::{ConfigFile, Global, Hooks, parse_sockets};
use crate::store::Store;

/// How often a watching sync reads everything again even when no change was reported.
const FULL_PASS: Duration = Duration::from_secs(300);

pub async fn run(global: &Global, config: &ConfigFile, args: SyncArgs) -> anyhow::Result<()> {
    if global.store.etcd().is_none() {
        return Err(BadInput::new(
            "certctl sync installs what a shared store holds, and this node's store is its \
             state directory; set store = \"etcd://HOST:PORT,.../PREFIX\" in the config file",
        )
        .into());
    }
    if !args.watch {
        return once(global, config).await;
    }
    loop {
        let (store, _) = super::open(global)?;
        let Some(watch) = store.watch() else {
            return Err(anyhow::anyhow!("{} cannot be watched", store.describe()));
        };
        let mut watch = watch?;
        // the watch is open before the pass: a change made during the pass wakes it
        report(once(global, config).await);
        loop {
            let (back, changed) = tokio::task::spawn_blocking(move || {
                let changed = watch.next(FULL_PASS);
                (watch, changed)
            })
            .await?;
            watch = back;
            match changed {
                Ok(true) => report(once(global, config).await),
                Ok(false) => break,
                Err(e) => {
                    crate::log::warn(format_args!("{e:#}; watching again"));
                    break;
                }
            }
        }
    }
}

fn report(result: anyhow::Result<()>) {
    if let Err(e) = result {
        crate::log::warn(format_args!("sync: {e:#}"));
    }
}

/// One pass: every certificate whose bundle on this node is not the live generation is
/// installed (bundle, proxies, deploy hooks; the post-hook once if any was).
async fn once(global: &Global, config: &ConfigFile) -> anyhow::Result<()> {
    let (store, bundles) = super::open(global)?;
    bundles.check_writable()?;
    let _local = Store::files(&global.state_dir).lock(global.lock_wait)?;
    bundles.remove_stale_temp_files();
    let mut jobs = Vec::new();
    for name in store.names()? {
        let Ok(Some(lineage)) = store.lineage(&name) else {
            continue;
        };
        if !issue::bundle_is_current(&store, &bundles, &name, &lineage.info.serial) {
            jobs.push(Job {
                lineage: JobCert {
                    name,
                    settings: lineage.settings,
                },
                work: Work::Reinstall,
            });
        }
    }
    if jobs.is_empty() {
        crate::log::verbose(format_args!(
            "sync: every bundle is the store's live generation"
        ));
        return Ok(());
    }
    let run = Run {
        store: &store,
        bundles: &bundles,
        verbosity: global.verbosity,
        hooks: Hooks {
            pre: None,
            deploy: config.deploy_hook.clone(),
            post: config.post_hook.clone(),
        },
        hook_timeout: config
            .hook_timeout
            .map(Duration::from_secs)
            .unwrap_or(crate::settings::DEFAULT_HOOK_TIMEOUT),
        haproxy_timeout: global.haproxy_timeout,
        http_timeout: global.http_timeout,
        sockets: parse_sockets(&config.haproxy_sockets).map_err(BadInput::new)?,
        jobs: 1,
        dry_run: false,
        missing_account: MissingAccount::Create,
    };
    let report = run.run(jobs).await?;
    let mut failed = Vec::new();
    for outcome in report.outcomes {
        let name = outcome.name;
        match outcome.kind {
            OutcomeKind::Installed { info, after, .. } => {
                crate::log::info(format_args!(
                    "{name}: installed serial {} from {}, valid until {}; bundle {}",
                    info.serial,
                    store.describe(),
                    date(info.not_after),
                    bundles.path(&name).display()
                ));
                failed.extend(after.into_iter().map(|e| format!("{name}: {e:#}")));
            }
            OutcomeKind::NotInstalled(e) | OutcomeKind::NotIssued(e) => {
                failed.push(format!("{name}: {e:#}"))
            }
            OutcomeKind::NotDue | OutcomeKind::Rehearsed { .. } => {}
        }
    }
    failed.extend(
        report
            .post_failures
            .iter()
            .map(|e| format!("post-hook: {e:#}")),
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{}", failed.join("\n")))
    }
}
