//! `certctl request DOMAIN...`: check every input first, then order one certificate for all
//! names, store it, write the bundle, and run the hooks. Nothing is written when any input
//! is bad, and an existing certificate stays in place when anything fails.

use std::io::IsTerminal;

use serde::Serialize;

use crate::cli::RequestArgs;
use crate::deploy::Bundles;
use crate::error::BadInput;
use crate::issue::{
    self, Job, JobCert, MissingAccount, OutcomeKind, Run, Work, date, now, rfc3339,
};
use crate::pem;
use crate::settings::{
    CertSettings, ConfigFile, Global, RequestSettings, changes, keep_stored, names_added_removed,
};
use crate::store::Lineage;

#[derive(Serialize)]
struct Outcome<'a> {
    name: &'a str,
    status: &'a str,
    domains: Vec<String>,
    serial: &'a str,
    not_after: String,
    bundle: String,
}

pub async fn run(global: &Global, config: &ConfigFile, args: RequestArgs) -> anyhow::Result<()> {
    // 1. every input, before anything is written or sent
    let RequestSettings {
        name,
        mut wanted,
        run_hooks,
        hook_timeout,
    } = RequestSettings::resolve(global, config, &args)?;
    crate::settings::refuse_standalone_in_cluster(&global.store, &wanted.cert)?;
    let (store, mut bundles) = super::open(global)?;

    // 2. requesting again keeps every stored setting the command line does not give; names
    //    removed need a yes
    let stored = store.settings(&name).ok().flatten();
    keep_stored(&mut wanted, stored.as_ref(), global, &args)?;
    if let Some(owner) = &wanted.host.outputs.owner {
        crate::deploy::outputs::resolve_owner(owner)
            .map_err(|e| BadInput::new(format!("{e:#}")))?;
    }
    if let Some(stored) = &stored {
        if !confirm_changes(&name, stored, &wanted, args.yes)? {
            crate::log::info(format_args!("request cancelled; nothing changed"));
            return Ok(());
        }
    }
    if let Some(dir) = &wanted.host.ssl_dir {
        bundles.set_dir(&name, dir);
    }
    let local = wanted.cert.server.is_local();
    // a DNS-01 key file must parse before anything is written or sent (bad input, exit 2)
    for setting in std::iter::once(&wanted.cert.challenge).chain(wanted.cert.challenges.values()) {
        if let crate::settings::Challenge::Dns01(dns) = setting {
            crate::challenge::dns01::check(dns)?;
        }
        // a taken tls-alpn-01 address too (bad input, exit 2)
        if let crate::settings::Challenge::TlsAlpn01 { tls_alpn_addr } = setting {
            crate::challenge::tls_alpn::check(*tls_alpn_addr)?;
        }
    }

    // a CA that asked not to be contacted before a time is not (a failure, not bad input)
    let server = &wanted.cert.server;
    let limit = store
        .rate_limit(server)
        .max(store.status(&name).retry_after);
    if let Some(until) = limit.filter(|t| *t > now()) {
        anyhow::bail!(
            "{name}: the CA ({server}) asked not to be contacted before {} (a rate limit); \
             certctl will not order before then",
            date(until)
        );
    }
    let eab = ca_directory(global, &args, &wanted, &store).await?;

    // 3. a new account needs the terms agreed to: without a terminal to ask on, that is
    //    --agree-tos; then the directories must take the result, and nobody else may write
    if !local
        && !args.agree_tos
        && !std::io::stdin().is_terminal()
        && store.account(&wanted.cert.server)?.is_none()
    {
        return Err(BadInput::new(format!(
            "no account yet for {}: creating one means agreeing to the CA's terms of service; \
             pass --agree-tos (there is no terminal to ask on)",
            wanted.cert.server
        ))
        .into());
    }
    let _lock = super::lock_for_writing(global, &store, &bundles)?;
    let _cert_lock = super::lock_cert(global, &store, &name)?;

    // 4. a valid certificate for the same names is left alone unless --force (its new
    //    settings, if any, are saved); one that a stopped request left half made is done again
    let existing = match store.lineage(&name) {
        Ok(existing) => existing,
        Err(e) => match store.half_made(&name) {
            Some(_) => {
                crate::log::info(format_args!(
                    "{name}: an earlier request was stopped before everything was stored; \
                     requesting it again"
                ));
                None
            }
            None => return Err(e),
        },
    };
    if let Some(current) = &existing {
        // what a newer certctl stored stays stored
        wanted.unknown = current.settings.unknown.clone();
        let now = now();
        // the names asked for now, in the stored settings and in the live certificate (a
        // request stopped between the two leaves them different)
        let same_names = same_set(&current.settings.cert.domains, &wanted.cert.domains)
            && crate::store::same_names(&wanted.cert.domains, &current.info.names);
        // the CA's ARI window when it gave one, else the lifetime rule (as renew decides)
        let ari = store.ari(&name);
        let decision = pem::decide(
            now,
            current.info.not_before,
            current.info.not_after,
            ari.as_ref(),
            false,
        );
        // a new profile or chain is a new certificate (never one only stored, unused)
        let choice_changed = stored.as_ref().is_some_and(|s| {
            (&s.cert.profile, &s.cert.preferred_chain)
                != (&wanted.cert.profile, &wanted.cert.preferred_chain)
        });
        if same_names && !args.force && !choice_changed && decision != pem::Decision::Due {
            if stored.as_ref() != Some(&wanted) {
                store.save_settings(&name, &wanted)?;
                crate::log::info(format_args!("{name}: settings saved"));
            }
            let renew_at = ari.map_or_else(
                || pem::renewal_time(current.info.not_before, current.info.not_after),
                |a| a.renew_at,
            );
            crate::log::info(format_args!(
                "{name}: the certificate is valid until {} and not due for renewal before {}; nothing to do (--force renews now)",
                date(current.info.not_after),
                date(renew_at),
            ));
            if args.json {
                print_json(&bundles, current, "unchanged")?;
            }
            return Ok(());
        }
    }

    // 5. the pipeline: pre-hook, account, order (or the local CA), store, bundle, proxies,
    //    hooks; replacing a certificate of an ARI CA says which one (RFC 9773)
    let replaces = existing
        .as_ref()
        .filter(|_| store.ari(&name).is_some())
        .and_then(|_| store.live_leaf(&name).ok());
    let run = Run {
        store: &store,
        bundles: &bundles,
        verbosity: global.verbosity,
        hooks: run_hooks,
        hook_timeout,
        haproxy_timeout: global.haproxy_timeout,
        http_timeout: global.http_timeout,
        sockets: Vec::new(),
        jobs: 1,
        dry_run: false,
        missing_account: MissingAccount::AgreeOrAsk {
            agree_tos: args.agree_tos,
            eab,
        },
    };
    let job = Job {
        lineage: JobCert {
            name: name.clone(),
            settings: wanted.clone(),
        },
        work: Work::Order { replaces },
    };
    let mut report = run.run(vec![job]).await?;
    let Some(outcome) = report.outcomes.pop() else {
        anyhow::bail!("{name}: no certificate issued");
    };
    let (info, mut failures) = match outcome.kind {
        OutcomeKind::Installed { info, after, .. } => (info, after),
        OutcomeKind::NotIssued(e) => {
            return Err(e.context(format!(
                "{name}: no certificate issued; the current one, if any, is unchanged"
            )));
        }
        OutcomeKind::NotInstalled(e) => return Err(e),
        OutcomeKind::NotDue | OutcomeKind::Rehearsed { .. } => return Ok(()),
    };
    failures.append(&mut report.post_failures);

    // 6. what was done; a failing hook or proxy leaves the new certificate in place and
    //    makes the exit code 1
    let lineage = Lineage {
        name: name.clone(),
        settings: wanted,
        info,
    };
    crate::log::info(format_args!(
        "{name}: issued for {}, valid until {}; bundle {}",
        issue::join(&lineage.settings.cert.domains),
        date(lineage.info.not_after),
        bundles.path(&name).display()
    ));
    if args.json {
        print_json(&bundles, &lineage, "issued")?;
    }
    let count = failures.len();
    let mut failures = failures.into_iter();
    match failures.next() {
        None => Ok(()),
        Some(first) => {
            for e in failures {
                crate::log::error(format_args!("{e:#}"));
            }
            Err(first.context(format!(
                "{name}: the new certificate is installed (bundle written), but {count} of its hooks or proxies failed"
            )))
        }
    }
}

/// What the CA's directory must allow before anything is written: the profile given now
/// (exit 2 listing the CA's), and for a new account, External Account Binding when the CA
/// requires it. Returns the EAB to bind a new account to (None when there is an account).
async fn ca_directory(
    global: &Global,
    args: &RequestArgs,
    wanted: &CertSettings,
    store: &crate::store::Store,
) -> anyhow::Result<Option<crate::acme::Eab>> {
    let eab = crate::acme::Eab::parse(
        args.eab.eab_kid.as_deref(),
        args.eab.eab_hmac_key.as_deref(),
    )?;
    let server = &wanted.cert.server;
    if server.is_local() {
        if eab.is_some() {
            return Err(BadInput::new(
                "--eab-kid and --eab-hmac-key apply to ACME CAs; the local CA has no accounts",
            )
            .into());
        }
        return Ok(None);
    }
    let new_account = store.account(server)?.is_none();
    if !new_account && eab.is_some() {
        crate::log::info(format_args!(
            "note: the account at {server} exists already; --eab-kid and --eab-hmac-key \
             bind a new account only, and are ignored"
        ));
    }
    let profile = wanted
        .cert
        .profile
        .as_deref()
        .filter(|_| args.ca.profile.is_some());
    if !new_account && profile.is_none() {
        return Ok(None);
    }
    let http = crate::acme::AcmeHttp::new(wanted.host.ca_bundle.as_deref(), global.http_timeout)?;
    let meta = crate::acme::directory_meta(&http, server).await?;
    if let Some(profile) = profile {
        crate::acme::check_profile(server, profile, &meta.profiles, false)?;
    }
    if !new_account {
        return Ok(None);
    }
    Ok(crate::acme::check_eab(server, &meta, eab)?)
}

fn print_json(bundles: &Bundles, lineage: &Lineage, status: &str) -> anyhow::Result<()> {
    let outcome = Outcome {
        name: lineage.name.as_str(),
        status,
        domains: lineage
            .settings
            .cert
            .domains
            .iter()
            .map(ToString::to_string)
            .collect(),
        serial: &lineage.info.serial,
        not_after: rfc3339(lineage.info.not_after),
        bundle: bundles.path(&lineage.name).display().to_string(),
    };
    super::print_stdout(&format!("{}\n", serde_json::to_string(&outcome)?))
}

/// Shows what a new request changes in the stored settings; removing names needs a yes
/// (`--yes`, or an answer on the terminal), and with neither nothing is changed (exit 2).
fn confirm_changes(
    name: &crate::types::CertName,
    stored: &CertSettings,
    wanted: &CertSettings,
    yes: bool,
) -> anyhow::Result<bool> {
    for c in changes(stored, wanted) {
        crate::log::info(format_args!("{name}: {}: {} -> {}", c.what, c.old, c.new));
    }
    let (added, removed) = names_added_removed(&stored.cert.domains, &wanted.cert.domains);
    if !added.is_empty() {
        crate::log::info(format_args!("{name}: names added: {}", issue::join(&added)));
    }
    if removed.is_empty() {
        return Ok(true);
    }
    crate::log::info(format_args!(
        "{name}: names removed: {} (the new certificate will not cover them)",
        issue::join(&removed)
    ));
    let summary = format!("  kept: {}", issue::join(&wanted.cert.domains));
    let question = format!("Remove {} from {name}?", issue::join(&removed));
    let command = format!("certctl request {}", issue::join(&wanted.cert.domains));
    super::confirm_action(yes, &command, "remove names", &question, &summary)
}

fn same_set(a: &[crate::types::DomainName], b: &[crate::types::DomainName]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}
