//! `certctl import certbot [DIR]`: takes over certbot's lineages without issuing anything:
//! each renewal/NAME.conf with its certificate, chain, key, CA, key type, hooks, challenge
//! settings and (when certctl can sign with its key) the account. certbot's directory is
//! only read, never written; nothing is sent to any CA. Everything is checked before the
//! first write, and each lineage is stored the way `request` stores a new certificate.

use std::collections::HashMap;

use anyhow::anyhow;
use serde::Serialize;

use crate::certbot::lineage::{AccountPlan, Context, Plan, lineage_names, read_lineage};
use crate::cli::ImportCertbotArgs;
use crate::deploy::Bundles;
use crate::error::BadInput;
use crate::issue::rfc3339;
use crate::settings::{ConfigFile, Global};
use crate::store::Store;
use crate::types::{CertName, KeyType, Server};

/// What `import --json` prints for one lineage; the field names are a stable interface.
#[derive(Debug, Serialize)]
struct Report {
    name: String,
    status: Status,
    domains: Vec<String>,
    serial: Option<String>,
    not_after: Option<String>,
    server: Option<String>,
    key_type: Option<KeyType>,
    bundle: Option<String>,
    /// What certctl took over, one phrase each.
    taken_over: Vec<String>,
    /// What it could not take over, each with the reason.
    not_taken_over: Vec<String>,
    /// Why the lineage was skipped or failed (null when imported).
    error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Imported,
    /// With --dry-run: would be imported.
    Importable,
    /// certctl already manages a certificate of that name (and no --force).
    Skipped,
    Failed,
}

pub fn certbot(
    global: &Global,
    config: &ConfigFile,
    args: ImportCertbotArgs,
) -> anyhow::Result<()> {
    // 1. certbot's directory, and which lineages: every name given must exist
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let all = lineage_names(&dir)?;
    let selected: Vec<String> = if args.names.is_empty() {
        all
    } else {
        let mut selected = Vec::new();
        for raw in &args.names {
            if !all.contains(raw) {
                return Err(BadInput::new(format!(
                    "certbot has no certificate named {raw:?}: there is no {}",
                    dir.join("renewal").join(format!("{raw}.conf")).display()
                ))
                .into());
            }
            if !selected.contains(raw) {
                selected.push(raw.clone());
            }
        }
        selected
    };
    if selected.is_empty() {
        crate::log::info(format_args!(
            "no certificate to take over: {} holds no NAME.conf",
            dir.join("renewal").display()
        ));
        if args.json {
            super::print_stdout("[]\n")?;
        }
        return Ok(());
    }

    // 2. read and check every lineage before anything is written
    let email = crate::settings::email(None, config)?;
    let context = Context::new(
        &dir,
        global.ssl_dir.clone(),
        global.ca_bundle.clone(),
        email,
    );
    let plans: Vec<(String, Result<Plan, String>)> = selected
        .into_iter()
        .map(|raw| {
            let plan = read_lineage(&context, &raw);
            (raw, plan)
        })
        .collect();

    // 3. under the lock, store each lineage as `request` stores a new certificate
    let (store, bundles) = super::open(global)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(super::lock_for_writing(global, &store, &bundles)?)
    };
    let mut accounts: HashMap<Server, (String, CertName)> = HashMap::new();
    let mut reports = Vec::new();
    for (raw, plan) in plans {
        let report = match plan {
            Err(reason) => failed(&raw, reason),
            Ok(plan) => {
                let managed = store.manages(&plan.name);
                if managed && !args.force {
                    skipped(&bundles, plan)
                } else if args.dry_run {
                    finish(&bundles, plan, Status::Importable, managed)
                } else {
                    match store_lineage(&store, &bundles, &plan, &mut accounts) {
                        Ok(account_note) => {
                            let mut plan = plan;
                            match account_note {
                                Ok(note) => plan.taken_over.push(note),
                                Err(note) => plan.not_taken_over.push(note),
                            }
                            finish(&bundles, plan, Status::Imported, managed)
                        }
                        Err(e) => failed(plan.name.as_str(), format!("{e:#}")),
                    }
                }
            }
        };
        say(&report);
        reports.push(report);
    }

    // 4. the results; exit 1 when any lineage could not be taken over
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&reports)?))?;
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| r.name.as_str())
        .collect();
    let imported = reports
        .iter()
        .filter(|r| r.status == Status::Imported)
        .count();
    if imported > 0 {
        crate::log::info(format_args!(
            "certctl now renews {imported} certificate(s) with `certctl renew`; stop certbot's own \
             renewal (systemctl disable --now certbot.timer, or its cron job), and point hooks \
             and the proxy at {} instead of {}",
            global.ssl_dir.display(),
            dir.join("live").display()
        ));
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(anyhow!(
        "{} of {} certbot certificates could not be taken over: {}",
        failed.len(),
        reports.len(),
        failed.join(", ")
    ))
}

/// Stores one lineage: generation, settings, bundle, then the account when certctl has
/// none for that CA. Returns what became of the account (Ok: taken over or kept).
fn store_lineage(
    store: &Store,
    bundles: &Bundles,
    plan: &Plan,
    accounts: &mut HashMap<Server, (String, CertName)>,
) -> anyhow::Result<Result<String, String>> {
    let issued = crate::issue::Issued {
        key_pem: plan.key_pem.clone(),
        chain: plan.chain.clone(),
        info: plan.info.clone(),
    };
    crate::issue::install(store, bundles, &plan.name, &plan.settings, &issued)?;
    let server = &plan.settings.cert.server;
    if let Some((id, first)) = accounts.get(server) {
        return Ok(Ok(format!("certbot's account {id}, shared with {first}")));
    }
    if store.account(server)?.is_some() {
        return Ok(Err(format!(
            "certbot's account: certctl already has an account at {server}, which renewals use"
        )));
    }
    match &plan.account {
        AccountPlan::Usable { credentials, id } => {
            let credentials: instant_acme::AccountCredentials =
                serde_json::from_value(credentials.clone())
                    .map_err(|e| anyhow!("certbot's account {id}: {e}"))?;
            store.save_account(server, credentials)?;
            accounts.insert(server.clone(), (id.clone(), plan.name.clone()));
            Ok(Ok(format!("certbot's account {id}")))
        }
        AccountPlan::Unusable(reason) => Ok(Err(format!(
            "the account: {reason}; `certctl renew` creates a new account at {server} \
             (the CA's terms were agreed to with certbot)"
        ))),
    }
}

fn finish(bundles: &Bundles, plan: Plan, status: Status, replaced: bool) -> Report {
    let mut taken_over = plan.taken_over;
    let mut not_taken_over = plan.not_taken_over;
    if status == Status::Importable {
        match &plan.account {
            AccountPlan::Usable { id, .. } => {
                taken_over.push(format!("certbot's account {id}, unless certctl has one"))
            }
            AccountPlan::Unusable(reason) => not_taken_over.push(format!(
                "the account: {reason}; `certctl renew` would create a new account"
            )),
        }
    }
    if replaced {
        taken_over.push("in place of the certificate certctl managed under that name".into());
    }
    Report {
        name: plan.name.to_string(),
        status,
        domains: plan
            .settings
            .cert
            .domains
            .iter()
            .map(ToString::to_string)
            .collect(),
        serial: Some(plan.info.serial.clone()),
        not_after: Some(rfc3339(plan.info.not_after)),
        server: Some(plan.settings.cert.server.to_string()),
        key_type: Some(plan.settings.cert.key_type),
        bundle: Some(bundles.path(&plan.name).display().to_string()),
        taken_over,
        not_taken_over,
        error: None,
    }
}

fn skipped(bundles: &Bundles, plan: Plan) -> Report {
    let mut report = finish(bundles, plan, Status::Skipped, false);
    report.error =
        Some("certctl already manages a certificate of that name; --force replaces it".into());
    report.taken_over.clear();
    report.not_taken_over.clear();
    report
}

fn failed(name: &str, reason: String) -> Report {
    Report {
        name: name.to_owned(),
        status: Status::Failed,
        domains: Vec::new(),
        serial: None,
        not_after: None,
        server: None,
        key_type: None,
        bundle: None,
        taken_over: Vec::new(),
        not_taken_over: Vec::new(),
        error: Some(reason),
    }
}

/// One line per lineage, then one per thing taken over or not, on stderr.
fn say(report: &Report) {
    let name = &report.name;
    match report.status {
        Status::Failed => crate::log::error(format_args!(
            "{name}: not taken over: {}; certbot's files are unchanged",
            report.error.as_deref().unwrap_or("")
        )),
        Status::Skipped => crate::log::info(format_args!(
            "{name}: skipped: {}",
            report.error.as_deref().unwrap_or("")
        )),
        Status::Imported | Status::Importable => {
            crate::log::info(format_args!(
                "{name}: {}; bundle {}",
                if report.status == Status::Importable {
                    "would be taken over (dry run: nothing written)"
                } else {
                    "taken over from certbot"
                },
                report.bundle.as_deref().unwrap_or("")
            ));
            for item in &report.taken_over {
                crate::log::info(format_args!("{name}:   took over {item}"));
            }
            for item in &report.not_taken_over {
                crate::log::warn(format_args!("{name}: not taken over: {item}"));
            }
        }
    }
}
