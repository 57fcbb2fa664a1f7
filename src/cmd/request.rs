//! `certctl request DOMAIN...`: check every input first, then order one certificate for all
//! names, store it, write the bundle, and run the hooks. Nothing is written when any input
//! is bad, and an existing certificate stays in place when anything fails.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::Serialize;

use crate::acme::{self, AcmeHttp};
use crate::challenge::{Responders, Solvers};
use crate::cli::{HookArgs, KeyType, RequestArgs};
use crate::error::BadInput;
use crate::hooks::Hook;
use crate::pem::{self, CertInfo, Chain};
use crate::settings::{self, CertName, CertSettings, Challenge, ConfigFile, Global, Hooks};
use crate::store::{Lineage, Store};

/// Default wait for the state lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);

/// How long a command waits for another certctl to release the state lock; the
/// environment variable CERTCTL_LOCK_TIMEOUT (seconds) overrides it.
pub fn lock_wait() -> Duration {
    std::env::var("CERTCTL_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(LOCK_WAIT, Duration::from_secs)
}

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
    let local = global.server.is_local();
    let domains = settings::parse_domains(&args.domains, local).map_err(BadInput::new)?;
    if !local && (args.days.is_some() || args.client_auth) {
        return Err(BadInput::new(
            "--days and --client-auth apply to the local CA only (--server local); an ACME CA decides the lifetime",
        )
        .into());
    }
    if args.days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(BadInput::new("--days must be between 1 and 3650").into());
    }
    let name = match &args.name {
        Some(raw) => CertName::parse(raw).map_err(BadInput::new)?,
        None => CertName::from_domain(&domains[0]).map_err(BadInput::new)?,
    };
    let challenge = Challenge::resolve(
        args.challenge.or(config.challenge),
        args.http_addr.as_deref().or(config.http_addr.as_deref()),
        args.webroot.as_deref().or(config.webroot.as_deref()),
    )
    .map_err(BadInput::new)?;
    if let Some(wild) = domains.iter().find(|d| d.is_wildcard() && !local) {
        return Err(BadInput::new(format!(
            "{wild} is a wildcard; wildcards need the DNS-01 challenge, and certctl answers HTTP-01: list each name instead"
        ))
        .into());
    }
    let email = args.email.clone().or_else(|| config.email.clone());
    if let Some(e) = &email {
        if !e.contains('@') || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(BadInput::new(format!("--email {e:?} is not an e-mail address")).into());
        }
    }
    let wanted = CertSettings {
        domains: domains.clone(),
        key_type: args.key_type.or(config.key_type).unwrap_or(KeyType::Ec256),
        server: global.server.clone(),
        ca_bundle: global.ca_bundle.clone(),
        challenge,
        hooks: merge_hooks(&args.hooks, config),
        email,
        haproxy_sockets: settings::parse_sockets(if args.haproxy_sockets.is_empty() {
            &config.haproxy_sockets
        } else {
            &args.haproxy_sockets
        })
        .map_err(BadInput::new)?,
        days: args.days,
        client_auth: args.client_auth,
    };
    let hook_timeout = hook_timeout(&args.hooks, config);

    // 2. a new account needs the terms agreed to: without a terminal to ask on, that is
    //    --agree-tos; then the directories must take the result, and nobody else may write
    let store = Store::new(&global.state_dir, &global.ssl_dir);
    if !local
        && !args.agree_tos
        && !std::io::stdin().is_terminal()
        && store.account(&wanted.server)?.is_none()
    {
        return Err(BadInput::new(format!(
            "no account yet for {}: creating one means agreeing to the CA's terms of service; \
             pass --agree-tos (there is no terminal to ask on)",
            wanted.server
        ))
        .into());
    }
    store.check_writable()?;
    let _lock = store.lock(lock_wait())?;

    // 3. a valid certificate for the same names is left alone unless --force
    let existing = store.lineage(&name)?;
    if let Some(current) = &existing {
        let now = now();
        let same_names = same_set(&current.settings.domains, &wanted.domains);
        // the CA's ARI window when it gave one, else the lifetime rule (as renew decides)
        let ari = store.ari(&name);
        let decision = pem::decide(
            now,
            current.info.not_before,
            current.info.not_after,
            ari.as_ref(),
            false,
        );
        if same_names && !args.force && decision != pem::Decision::Due {
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
                print_json(&store, current, "unchanged")?;
            }
            return Ok(());
        }
    }

    // 4. pre-hook (it may free the responder's port, as with certbot)
    if let Some(cmd) = &wanted.hooks.pre {
        let hook = Hook {
            kind: "pre",
            command: cmd,
            env: vec![],
        };
        hook.run(hook_timeout).await?;
    }
    let no_cert =
        || format!("{name}: no certificate issued; the current one, if any, is unchanged");
    let issued = if local {
        // 5a. the local CA signs, with no network
        let issued = issue_local(&store, &wanted).with_context(no_cert)?;
        install(&store, &name, &wanted, &issued)?;
        issued
    } else {
        // 5b. the responder's address must be free before anything is sent to the CA; then
        //     the account (stored, or created once the terms are agreed to), the order
        let mut responders = Responders::default();
        let solvers = Solvers::from_setting(&wanted.challenge, &mut responders).await?;
        let http = AcmeHttp::new(wanted.ca_bundle.as_deref())?;
        let account = open_account(&store, &http, &wanted, args.agree_tos).await?;
        // replacing a certificate of an ARI CA: say which one (RFC 9773)
        let replaces = existing
            .as_ref()
            .filter(|_| store.ari(&name).is_some())
            .and_then(|_| store.leaf_der(&name).ok())
            .and_then(|der| acme::cert_id(&der).ok());
        let progress = crate::progress::Progress::new(global.verbosity);
        let line = progress.line(name.as_str());
        let issued = line
            .clone()
            .scope(order(&account, &solvers, &name, &wanted, replaces.as_ref()))
            .await;
        line.finish(if issued.is_ok() { "issued" } else { "failed" });
        let issued = issued.with_context(no_cert)?;
        drop((solvers, responders));
        install(&store, &name, &wanted, &issued)?;
        refresh_ari(&store, &account, &name, &wanted.server, &issued.chain.leaf).await;
        issued
    };
    let mut failures = push_to_haproxy(&store, &name, &wanted.haproxy_sockets, &issued);
    let issued = issued.info;

    // 6. hooks; a failing hook leaves the new certificate in place and makes the exit code 1
    let lineage = Lineage {
        name: name.clone(),
        settings: wanted.clone(),
        info: issued,
    };
    crate::log::info(format_args!(
        "{name}: issued for {}, valid until {}; bundle {}",
        join(&lineage.settings.domains),
        date(lineage.info.not_after),
        store.bundle_path(&name).display()
    ));
    if args.json {
        print_json(&store, &lineage, "issued")?;
    }
    if let Some(cmd) = &wanted.hooks.deploy {
        if let Err(e) = (Hook {
            kind: "deploy",
            command: cmd,
            env: hook_env(&store, &lineage),
        })
        .run(hook_timeout)
        .await
        {
            failures.push(e);
        }
    }
    if let Some(cmd) = &wanted.hooks.post {
        if let Err(e) = post_hook(&store, std::slice::from_ref(&name), cmd)
            .run(hook_timeout)
            .await
        {
            failures.push(e);
        }
    }
    // every proxy or hook that failed is reported; the exit code is 1
    let count = failures.len();
    let mut failures = failures.into_iter();
    match failures.next() {
        None => Ok(()),
        Some(first) => {
            for e in failures {
                eprintln!("certctl: {e:#}");
            }
            Err(first.context(format!(
                "{name}: the new certificate is installed (bundle written), but {count} of its hooks or proxies failed"
            )))
        }
    }
}

/// A certificate the CA issued, with its key, not yet stored.
pub struct Issued {
    pub key_pem: String,
    pub chain: Chain,
    pub info: CertInfo,
}

/// Orders one certificate and checks what came back; writes nothing. The solvers answer
/// its challenges; the caller builds them (one responder per address for every order).
pub async fn order(
    account: &instant_acme::Account,
    solvers: &Solvers,
    name: &CertName,
    wanted: &CertSettings,
    replaces: Option<&instant_acme::CertificateIdentifier<'static>>,
) -> anyhow::Result<Issued> {
    let key = crate::keys::generate(wanted.key_type)?;
    let csr = crate::keys::csr(&wanted.domains, &key)?;
    crate::log::verbose(format_args!(
        "{name}: ordering a certificate for {} from {}",
        join(&wanted.domains),
        wanted.server
    ));
    let chain_pem = acme::issue(
        account,
        &wanted.server,
        &wanted.domains,
        &csr,
        solvers,
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

/// Asks an ARI CA (RFC 9773) for the new certificate's renewal window and records it, so
/// `renew` follows the CA's schedule; with a CA without ARI this sends nothing. A failure
/// only costs the window: the lifetime rule then decides, so it is a warning.
pub async fn refresh_ari(
    store: &Store,
    account: &instant_acme::Account,
    name: &CertName,
    server: &settings::Server,
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

/// Hot-swaps the new certificate into every HAProxy listed, each independently; returns
/// one error per proxy that failed (the bundle on disk is right for its next reload).
pub fn push_to_haproxy(
    store: &Store,
    name: &CertName,
    sockets: &[crate::haproxy::Socket],
    issued: &Issued,
) -> Vec<anyhow::Error> {
    let path = store.bundle_path(name);
    let bundle = pem::bundle(&issued.chain, &issued.key_pem);
    let mut failures = Vec::new();
    for socket in sockets {
        let haproxy = crate::haproxy::Haproxy::new(socket.clone());
        match haproxy.deploy(&path, &bundle, &issued.info.serial) {
            Ok(crate::haproxy::Deployed::Replaced(n)) => crate::log::info(format_args!(
                "{name}: HAProxy at {socket} now serves it ({n} replaced, no reload)"
            )),
            Ok(crate::haproxy::Deployed::Added(n)) => crate::log::info(format_args!(
                "{name}: HAProxy at {socket} now serves it ({n} added, no reload)"
            )),
            Err(e) => {
                failures.push(anyhow::Error::new(e).context(format!("{name}: HAProxy at {socket}")))
            }
        }
    }
    failures
}

/// A certificate from the local CA (created on first use): no network, no account.
pub fn issue_local(store: &Store, wanted: &CertSettings) -> anyhow::Result<Issued> {
    let ca = crate::local_ca::LocalCa::open_or_create(store.state_dir())?;
    let key = crate::keys::generate(wanted.key_type)?;
    let days = wanted.days.unwrap_or(crate::local_ca::DEFAULT_DAYS);
    let (chain, info) = ca.sign(&wanted.domains, &key, days, wanted.client_auth)?;
    Ok(Issued {
        key_pem: key.serialize_pem(),
        chain,
        info,
    })
}

/// Stores a new certificate and its settings, then writes its bundle.
pub fn install(
    store: &Store,
    name: &CertName,
    wanted: &CertSettings,
    issued: &Issued,
) -> anyhow::Result<()> {
    store.save_generation(name, &issued.key_pem, &issued.chain, &issued.info)?;
    store.save_settings(name, wanted)?;
    store.write_bundle(name, &pem::bundle(&issued.chain, &issued.key_pem))?;
    Ok(())
}

pub async fn open_account(
    store: &Store,
    http: &AcmeHttp,
    wanted: &CertSettings,
    agree_tos: bool,
) -> anyhow::Result<instant_acme::Account> {
    if let Some(credentials) = store.account(&wanted.server)? {
        crate::log::verbose(format_args!(
            "using the stored account for {}",
            wanted.server
        ));
        return acme::restore_account(http, &wanted.server, credentials).await;
    }
    if !agree_tos {
        ask_terms(http, &wanted.server).await?;
    }
    let (account, credentials) =
        acme::create_account(http, &wanted.server, wanted.email.as_deref()).await?;
    store.save_account(&wanted.server, credentials)?;
    crate::log::info(format_args!("created an ACME account at {}", wanted.server));
    Ok(account)
}

/// Asks on the terminal whether the CA's terms of service are agreed to (showing their
/// URL from the directory); a "no" is bad input and nothing is done.
pub async fn ask_terms(http: &AcmeHttp, server: &settings::Server) -> anyhow::Result<()> {
    let tos = acme::terms_of_service(http, server).await?;
    let question = match &tos {
        Some(url) => format!("Do you agree to the terms of service at {url}?"),
        None => format!("Do you agree to the terms of service of {server}?"),
    };
    let agreed = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| anyhow!("reading the answer: {e}"))?;
    if !agreed {
        return Err(
            BadInput::new("the terms of service were not agreed to; nothing was done").into(),
        );
    }
    Ok(())
}

/// The post-hook of a run, once for all it issued: their names and bundles reach it as
/// space-separated lists.
pub fn post_hook<'a>(store: &Store, names: &[CertName], command: &'a str) -> Hook<'a> {
    let bundles: Vec<String> = names
        .iter()
        .map(|n| store.bundle_path(n).display().to_string())
        .collect();
    let names: Vec<&str> = names.iter().map(CertName::as_str).collect();
    Hook {
        kind: "post",
        command,
        env: vec![
            ("CERTCTL_RENEWED_NAMES", names.join(" ")),
            ("CERTCTL_RENEWED_BUNDLES", bundles.join(" ")),
        ],
    }
}

/// Environment for deploy hooks: paths and names, never spliced into the command.
pub fn hook_env(store: &Store, lineage: &Lineage) -> Vec<(&'static str, String)> {
    let paths = store.live_paths(&lineage.name);
    let domains = join(&lineage.settings.domains);
    let live_dir = paths
        .cert
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    vec![
        ("CERTCTL_NAME", lineage.name.to_string()),
        ("CERTCTL_DOMAINS", domains.clone()),
        ("CERTCTL_BUNDLE", paths.bundle.display().to_string()),
        ("CERTCTL_CERT", paths.cert.display().to_string()),
        ("CERTCTL_KEY", paths.key.display().to_string()),
        ("CERTCTL_CHAIN", paths.chain.display().to_string()),
        ("CERTCTL_FULLCHAIN", paths.fullchain.display().to_string()),
        ("CERTCTL_SERIAL", lineage.info.serial.clone()),
        ("RENEWED_LINEAGE", live_dir),
        ("RENEWED_DOMAINS", domains),
    ]
}

pub fn merge_hooks(args: &HookArgs, config: &ConfigFile) -> Hooks {
    Hooks {
        pre: args.pre_hook.clone().or_else(|| config.pre_hook.clone()),
        deploy: args
            .deploy_hook
            .clone()
            .or_else(|| config.deploy_hook.clone()),
        post: args.post_hook.clone().or_else(|| config.post_hook.clone()),
    }
}

pub fn hook_timeout(args: &HookArgs, config: &ConfigFile) -> Duration {
    args.hook_timeout
        .or(config.hook_timeout)
        .map(Duration::from_secs)
        .unwrap_or(settings::DEFAULT_HOOK_TIMEOUT)
}

fn print_json(store: &Store, lineage: &Lineage, status: &str) -> anyhow::Result<()> {
    let outcome = Outcome {
        name: lineage.name.as_str(),
        status,
        domains: lineage
            .settings
            .domains
            .iter()
            .map(ToString::to_string)
            .collect(),
        serial: &lineage.info.serial,
        not_after: rfc3339(lineage.info.not_after),
        bundle: store.bundle_path(&lineage.name).display().to_string(),
    };
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

fn same_set(a: &[settings::DomainName], b: &[settings::DomainName]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

pub fn join(domains: &[settings::DomainName]) -> String {
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
