//! `certctl import certbot [DIR]`: takes over certbot's lineages without issuing anything:
//! each renewal/NAME.conf with its certificate, chain, key, CA, key type, hooks, challenge
//! settings and (when certctl can sign with its key) the account. certbot's directory is
//! only read, never written; nothing is sent to any CA. Everything is checked before the
//! first write, and each lineage is stored the way `request` stores a new certificate.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::certbot::{RenewalConf, Value, account_dir, account_key_pkcs8, pkcs8_pem};
use crate::cli::{ImportCertbotArgs, KeyType};
use crate::deploy::Bundles;
use crate::error::BadInput;
use crate::issue::{date, rfc3339};
use crate::pem::{self, CertInfo, Chain};
use crate::settings::{
    CertConfig, CertSettings, Challenge, ConfigFile, DEFAULT_HTTP_ADDR, Global, Hooks, HostConfig,
};
use crate::store::Store;
use crate::types::{CertName, DomainName, MAX_NAMES, Server};

/// certbot's CA when a renewal file names none.
const CERTBOT_DEFAULT_SERVER: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Hook scripts larger than this are not read to look for certbot's paths.
const MAX_SCRIPT_BYTES: u64 = 1 << 20;

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

/// A lineage read and checked, ready to be stored.
struct Plan {
    name: CertName,
    settings: CertSettings,
    key_pem: String,
    chain: Chain,
    info: CertInfo,
    account: AccountPlan,
    taken_over: Vec<String>,
    not_taken_over: Vec<String>,
}

enum AccountPlan {
    /// certbot's account, usable by certctl.
    Usable {
        credentials: serde_json::Value,
        id: String,
    },
    /// Why certbot's account cannot be used.
    Unusable(String),
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
            println!("[]");
        }
        return Ok(());
    }

    // 2. read and check every lineage before anything is written
    let context = Context::new(&dir, global, config);
    let plans: Vec<(String, Result<Plan, String>)> = selected
        .into_iter()
        .map(|raw| {
            let plan = read_lineage(&context, &raw);
            (raw, plan)
        })
        .collect();

    // 3. under the lock, store each lineage as `request` stores a new certificate
    let (store, bundles) = super::open(global);
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
        println!("{}", serde_json::to_string_pretty(&reports)?);
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

/// What every lineage is read against.
struct Context<'a> {
    dir: &'a Path,
    global: &'a Global,
    config: &'a ConfigFile,
    /// Scripts in certbot's renewal-hooks/{pre,deploy,post}/, which certctl does not run.
    directory_hooks: Vec<String>,
}

impl<'a> Context<'a> {
    fn new(dir: &'a Path, global: &'a Global, config: &'a ConfigFile) -> Self {
        let mut directory_hooks = Vec::new();
        for kind in ["pre", "deploy", "post"] {
            let hooks_dir = dir.join("renewal-hooks").join(kind);
            let Ok(entries) = fs::read_dir(&hooks_dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.path().display().to_string())
                .collect();
            names.sort();
            directory_hooks.extend(names);
        }
        Self {
            dir,
            global,
            config,
            directory_hooks,
        }
    }
}

/// The names of certbot's lineages: renewal/NAME.conf, sorted.
fn lineage_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let renewal = dir.join("renewal");
    let entries = fs::read_dir(&renewal).map_err(|e| {
        BadInput::new(format!(
            "{} is not a certbot configuration directory ({}: {e}); give certbot's --config-dir, \
             /etc/letsencrypt by default",
            dir.display(),
            renewal.display()
        ))
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.strip_suffix(".conf")
                .filter(|n| !n.is_empty() && e.path().is_file())
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Reads one lineage and decides what certctl takes over; writes nothing.
fn read_lineage(cx: &Context<'_>, raw: &str) -> Result<Plan, String> {
    let mut taken_over = Vec::new();
    let mut not_taken_over = Vec::new();

    // the name, the renewal file
    let name = CertName::parse(raw).map_err(|e| format!("certctl cannot use the name: {e}"))?;
    let conf_path = cx.dir.join("renewal").join(format!("{raw}.conf"));
    let text = fs::read_to_string(&conf_path)
        .map_err(|e| format!("reading {}: {e}", conf_path.display()))?;
    let conf = RenewalConf::parse(&text).map_err(|e| format!("{}: {e}", conf_path.display()))?;
    let params = |key: &str| conf.value("renewalparams", key);

    // certificate, chain and key, through certbot's live/ links
    let file = |key: &str, default: &str| -> PathBuf {
        match conf.value("", key) {
            Some(p) if !p.is_empty() => cx.dir.join(p),
            _ => cx.dir.join("live").join(raw).join(default),
        }
    };
    let cert_path = file("cert", "cert.pem");
    let chain_path = file("chain", "chain.pem");
    let key_path = file("privkey", "privkey.pem");
    let read = |path: &Path| fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()));
    let leaves = pem::certificates(&read(&cert_path)?)
        .map_err(|e| format!("{}: {e:#}", cert_path.display()))?;
    let leaf = match <[Vec<u8>; 1]>::try_from(leaves) {
        Ok([leaf]) => leaf,
        Err(v) => {
            return Err(format!(
                "{} holds {} certificates; certbot keeps the leaf alone there",
                cert_path.display(),
                v.len()
            ));
        }
    };
    let intermediates = pem::certificates(&read(&chain_path)?)
        .map_err(|e| format!("{}: {e:#}", chain_path.display()))?;
    let key_text = String::from_utf8(read(&key_path)?)
        .map_err(|_| format!("{} is not PEM text", key_path.display()))?;
    let key_pem = pkcs8_pem(&key_text).map_err(|e| format!("{}: {e}", key_path.display()))?;
    pem::check_key_matches(&leaf, &key_pem)
        .map_err(|e| format!("{} and {}: {e:#}", key_path.display(), cert_path.display()))?;
    let info = pem::cert_info(&leaf).map_err(|e| format!("{}: {e:#}", cert_path.display()))?;
    let chain = Chain {
        leaf,
        intermediates,
    };

    // the names, from the certificate itself (certbot keeps them nowhere else)
    if info.names.is_empty() {
        return Err(format!(
            "{} names no DNS name (no subjectAltName)",
            cert_path.display()
        ));
    }
    if info.names.len() > MAX_NAMES {
        return Err(format!(
            "the certificate has {} names; certctl orders at most {MAX_NAMES}",
            info.names.len()
        ));
    }
    let mut domains = Vec::new();
    for san in &info.names {
        let domain = DomainName::parse(san).map_err(|e| format!("the certificate's name {e}"))?;
        if domain.is_wildcard() {
            return Err(format!(
                "{domain} is a wildcard: renewing it needs the DNS-01 challenge, and certctl answers HTTP-01; keep it with certbot"
            ));
        }
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }

    // the CA
    let server_raw = params("server").unwrap_or(CERTBOT_DEFAULT_SERVER);
    let server = Server::parse(server_raw).map_err(|e| format!("its CA: {e}"))?;

    // how challenges are answered
    let challenge = challenge(&conf, &domains, &mut taken_over, &mut not_taken_over)?;
    if let Some(installer) =
        params("installer").filter(|i| !i.is_empty() && !i.eq_ignore_ascii_case("none"))
    {
        not_taken_over.push(format!(
            "certbot's {installer} installer: certctl writes the bundle {} and runs hooks; \
             point {installer} at the bundle or reload it from a --deploy-hook",
            cx.global.ssl_dir.join(format!("{name}.pem")).display()
        ));
    }

    if let Some(before) = conf.value("", "renew_before_expiry") {
        not_taken_over.push(format!(
            "renew_before_expiry = {before}: certctl renews inside the CA's ARI window, or \
             when a third of the lifetime is left"
        ));
    }

    // the key type for renewals: the renewal file's, else the certificate's own
    let key_type = key_type(&conf, &chain.leaf, &mut not_taken_over)?;

    // hooks; those that read certbot's files are left out, they would undo renewals
    let mut hooks = Hooks::default();
    for (kind, keys, slot) in [
        ("pre", &["pre_hook"][..], &mut hooks.pre),
        (
            "deploy",
            &["deploy_hook", "renew_hook"][..],
            &mut hooks.deploy,
        ),
        ("post", &["post_hook"][..], &mut hooks.post),
    ] {
        let Some(command) = keys
            .iter()
            .find_map(|k| params(k))
            .filter(|c| !c.trim().is_empty())
        else {
            continue;
        };
        *slot = take_hook(cx.dir, kind, command, &mut taken_over, &mut not_taken_over);
    }
    if !cx.directory_hooks.is_empty() {
        not_taken_over.push(format!(
            "certbot's directory hooks {}: certctl runs only the hooks stored with each \
             certificate; give them with --pre-hook, --deploy-hook or --post-hook",
            cx.directory_hooks.join(", ")
        ));
    }

    // the account: usable when its key is one certctl can sign with
    let server_path = account_dir(&server);
    let account = match params("account") {
        None => AccountPlan::Unusable("the renewal file names no account".into()),
        Some(id) => {
            let account_dir = cx.dir.join("accounts").join(&server_path).join(id);
            read_account(&account_dir, &server)
                .map(|credentials| AccountPlan::Usable {
                    credentials,
                    id: id.to_owned(),
                })
                .unwrap_or_else(AccountPlan::Unusable)
        }
    };
    let email =
        contact(cx.dir, &server_path, params("account")).or_else(|| cx.config.email.clone());

    let settings = CertSettings {
        cert: CertConfig {
            domains,
            key_type,
            server,
            challenge,
            email,
            days: None,
            client_auth: false,
        },
        host: HostConfig {
            ca_bundle: cx.global.ca_bundle.clone(),
            hooks,
            haproxy_sockets: Vec::new(),
        },
    };
    taken_over.insert(
        0,
        format!(
            "certificate {} for {} (valid until {}), its chain and key",
            info.serial,
            crate::issue::join(&settings.cert.domains),
            date(info.not_after)
        ),
    );
    taken_over.insert(1, format!("CA {}", settings.cert.server));
    taken_over.insert(
        2,
        format!("key type {} for renewals", key_type_name(key_type)),
    );
    if let Some(ca) = &settings.host.ca_bundle {
        taken_over.push(format!("trust for the CA from {}", ca.display()));
    }
    Ok(Plan {
        name,
        settings,
        key_pem,
        chain,
        info,
        account,
        taken_over,
        not_taken_over,
    })
}

/// certbot's authenticator, as a certctl challenge.
fn challenge(
    conf: &RenewalConf,
    domains: &[DomainName],
    taken_over: &mut Vec<String>,
    not_taken_over: &mut Vec<String>,
) -> Result<Challenge, String> {
    let params = |key: &str| conf.value("renewalparams", key);
    let authenticator = params("authenticator").unwrap_or("standalone");
    match authenticator {
        "standalone" => {
            let port = params("http01_port").filter(|p| !p.is_empty());
            let http_addr = match port {
                Some(port) => {
                    let port: u16 = port
                        .parse()
                        .map_err(|_| format!("http01_port {port:?} is not a port number"))?;
                    let ip = match params("http01_address").filter(|a| !a.is_empty()) {
                        Some(a) => a
                            .parse::<IpAddr>()
                            .map_err(|_| format!("http01_address {a:?} is not an IP address"))?,
                        // certbot's empty address: every interface
                        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    };
                    let addr = SocketAddr::new(ip, port);
                    taken_over.push(format!(
                        "standalone HTTP-01 on {addr} (certbot's http01_address and http01_port)"
                    ));
                    addr
                }
                None => {
                    not_taken_over.push(format!(
                        "certbot's standalone port 80 (the renewal file sets no \
                         http01_port): certctl's responder listens on {DEFAULT_HTTP_ADDR}, its \
                         default, where the proxy must forward /.well-known/acme-challenge/"
                    ));
                    DEFAULT_HTTP_ADDR
                        .parse()
                        .map_err(|_| "the default responder address".to_owned())?
                }
            };
            Ok(Challenge::Standalone { http_addr })
        }
        "webroot" => {
            let map = conf.section("renewalparams/webroot_map");
            let mut roots: Vec<&str> = domains
                .iter()
                .filter_map(|d| map.and_then(|m| m.get(d.as_str())).map(Value::first))
                .collect();
            if roots.is_empty() {
                roots.extend(
                    conf.list("renewalparams", "webroot_path")
                        .into_iter()
                        .take(1),
                );
            }
            roots.sort_unstable();
            roots.dedup();
            let root = match roots.as_slice() {
                [] => return Err("webroot authenticator without webroot_path".into()),
                [root] => *root,
                _ => {
                    return Err(format!(
                        "its names are served from different webroots ({}); certctl uses one \
                         webroot per certificate: `certctl request` them in groups instead",
                        roots.join(", ")
                    ));
                }
            };
            let challenge = Challenge::resolve(
                Some(crate::cli::ChallengeKind::Webroot),
                None,
                Some(Path::new(root)),
            )?;
            taken_over.push(format!("webroot HTTP-01 in {root}"));
            Ok(challenge)
        }
        other => Err(format!(
            "certbot answers its challenges with the {other} authenticator; certctl answers \
             HTTP-01 with its own responder (standalone), a webroot or the proxy (stateless): \
             keep it with certbot, or `certctl request` it with one of those"
        )),
    }
}

/// The key type renewals use: the renewal file's key_type, else the certificate's key.
fn key_type(
    conf: &RenewalConf,
    leaf: &[u8],
    not_taken_over: &mut Vec<String>,
) -> Result<KeyType, String> {
    let params = |key: &str| conf.value("renewalparams", key);
    let (kind, bits) = match params("key_type") {
        Some("ecdsa") => {
            let curve = params("elliptic_curve").unwrap_or("secp256r1");
            let bits = match curve {
                "secp256r1" | "prime256v1" | "P-256" => 256,
                "secp384r1" | "P-384" => 384,
                "secp521r1" | "P-521" => 521,
                other => return Err(format!("elliptic_curve {other:?} is unknown to certctl")),
            };
            ("ec", bits)
        }
        Some("rsa") => {
            let bits = params("rsa_key_size").unwrap_or("2048");
            let bits = bits
                .parse()
                .map_err(|_| format!("rsa_key_size {bits:?} is not a number"))?;
            ("rsa", bits)
        }
        Some(other) => return Err(format!("key_type {other:?} is unknown to certctl")),
        None => leaf_key(leaf)?,
    };
    let key_type = match (kind, bits) {
        ("ec", 256) => KeyType::Ec256,
        ("ec", 384) => KeyType::Ec384,
        ("ec", _) => {
            not_taken_over.push(format!(
                "the {bits}-bit EC key type: certctl makes P-256 and P-384 keys; renewals use P-384"
            ));
            KeyType::Ec384
        }
        (_, 2048) => KeyType::Rsa2048,
        (_, 3072) => KeyType::Rsa3072,
        (_, 4096) => KeyType::Rsa4096,
        (_, bits) => {
            let next_up = if bits < 2048 {
                KeyType::Rsa2048
            } else if bits < 3072 {
                KeyType::Rsa3072
            } else {
                KeyType::Rsa4096
            };
            not_taken_over.push(format!(
                "the {bits}-bit RSA key size: certctl makes 2048, 3072 and 4096-bit keys; \
                 renewals use {}",
                key_type_name(next_up)
            ));
            next_up
        }
    };
    Ok(key_type)
}

/// "ec" or "rsa" and the size of the certificate's public key.
fn leaf_key(leaf: &[u8]) -> Result<(&'static str, usize), String> {
    let (_, cert) =
        X509Certificate::from_der(leaf).map_err(|e| format!("reading the certificate: {e}"))?;
    match cert.public_key().parsed() {
        Ok(PublicKey::EC(point)) => Ok(("ec", point.key_size())),
        Ok(PublicKey::RSA(rsa)) => Ok(("rsa", rsa.key_size())),
        _ => Err("the certificate's key is neither EC nor RSA".into()),
    }
}

fn key_type_name(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::Ec256 => "ec256",
        KeyType::Ec384 => "ec384",
        KeyType::Rsa2048 => "rsa2048",
        KeyType::Rsa3072 => "rsa3072",
        KeyType::Rsa4096 => "rsa4096",
    }
}

/// A hook command as certctl stores it. Parts of an `a && b` chain that read certbot's
/// files (a concatenation script) are dropped: once certctl renews, those files stop
/// changing, so they would put the old certificate back over the new bundle.
fn take_hook(
    certbot_dir: &Path,
    kind: &str,
    command: &str,
    taken_over: &mut Vec<String>,
    not_taken_over: &mut Vec<String>,
) -> Option<String> {
    let parts = split_and_chain(command);
    let reads_certbot = |part: &str| reads_certbot_files(certbot_dir, part);
    let (dropped, kept): (Vec<&str>, Vec<&str>) = match &parts {
        Some(parts) => parts.iter().partition(|p| reads_certbot(p)),
        None if reads_certbot(command) => (vec![command], Vec::new()),
        None => (Vec::new(), vec![command]),
    };
    let why = format!(
        "it reads certbot's files under {}, which stop changing once certctl renews, so it \
         would put the old certificate back; certctl writes the bundle itself",
        certbot_dir.display()
    );
    if kept
        .iter()
        .any(|part| script_text(part).contains("privkey.pem"))
    {
        not_taken_over.push(format!(
            "the file name privkey.pem in the {kind} hook: certctl's $RENEWED_LINEAGE holds \
             key.pem, cert.pem, chain.pem and fullchain.pem; use $CERTCTL_KEY (or \
             $CERTCTL_BUNDLE, the whole bundle) instead"
        ));
    }
    if dropped.is_empty() {
        taken_over.push(format!("{kind} hook {command:?}"));
        return Some(command.to_owned());
    }
    if kept.is_empty() {
        not_taken_over.push(format!("{kind} hook {command:?}: {why}"));
        return None;
    }
    let kept = kept.join(" && ");
    taken_over.push(format!("{kind} hook {kept:?}"));
    not_taken_over.push(format!(
        "the part {:?} of the {kind} hook: {why}",
        dropped.join(" && ")
    ));
    Some(kept)
}

/// `a && b && c` split at the `&&`s outside quotes, trimmed; None when the command has
/// `||`, `;`, `|`, `&` alone, a subshell, a backquote or a newline outside quotes, or is a
/// single part (then it is taken whole or not at all).
fn split_and_chain(command: &str) -> Option<Vec<&str>> {
    let bytes = command.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i, mut quote) = (0, 0, None);
    while i < bytes.len() {
        let b = bytes[i];
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(b'"'), b'`') | (Some(b'"'), b'\\') => return None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'&') if bytes.get(i + 1) == Some(&b'&') => {
                parts.push(command[start..i].trim());
                i += 2;
                start = i;
                continue;
            }
            (None, b'&' | b'|' | b';' | b'(' | b')' | b'`' | b'\n' | b'\\') => return None,
            (None, _) => {}
        }
        i += 1;
    }
    if quote.is_some() {
        return None;
    }
    parts.push(command[start..].trim());
    (parts.len() > 1 && parts.iter().all(|p| !p.is_empty())).then_some(parts)
}

/// True when a command, or a script it runs, names certbot's directory.
fn reads_certbot_files(certbot_dir: &Path, command: &str) -> bool {
    let mut needles = vec![certbot_dir.display().to_string()];
    if let Ok(real) = fs::canonicalize(certbot_dir) {
        needles.push(real.display().to_string());
    }
    let text = script_text(command);
    needles.iter().any(|n| text.contains(n.as_str()))
}

/// A command followed by the text of the scripts it runs (each word that is an absolute
/// path to a small file), to look for file names in.
fn script_text(command: &str) -> String {
    let mut text = command.to_owned();
    for word in command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| matches!(c, '"' | '\'' | '&' | '|' | ';')))
        .filter(|w| w.starts_with('/'))
    {
        let path = Path::new(word);
        if path.is_file() && fs::metadata(path).is_ok_and(|m| m.len() <= MAX_SCRIPT_BYTES) {
            if let Ok(bytes) = fs::read(path) {
                text.push('\n');
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    text
}

/// certbot's account in a form certctl stores (instant-acme's credentials), when its key
/// is one certctl can sign with; else why not.
fn read_account(account_dir: &Path, server: &Server) -> Result<serde_json::Value, String> {
    let key_path = account_dir.join("private_key.json");
    let regr_path = account_dir.join("regr.json");
    let read_json = |path: &Path| -> Result<serde_json::Value, String> {
        let bytes = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is damaged: {e}", path.display()))
    };
    let jwk = read_json(&key_path)?;
    let pkcs8 = account_key_pkcs8(&jwk)?;
    let regr = read_json(&regr_path)?;
    let uri = regr["uri"]
        .as_str()
        .ok_or_else(|| format!("{} holds no account URL", regr_path.display()))?;
    Ok(serde_json::json!({
        "id": uri,
        "key_pkcs8": URL_SAFE_NO_PAD.encode(pkcs8),
        "directory": server.url(),
    }))
}

/// The account's contact address, if certbot kept it (regr.json's body.contact).
fn contact(dir: &Path, server_path: &Path, account: Option<&str>) -> Option<String> {
    let path = dir
        .join("accounts")
        .join(server_path)
        .join(account?)
        .join("regr.json");
    let regr: serde_json::Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    regr["body"]["contact"]
        .as_array()?
        .iter()
        .filter_map(|c| c.as_str()?.strip_prefix("mailto:"))
        .map(str::to_owned)
        .next()
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
        Status::Failed => eprintln!(
            "certctl: {name}: not taken over: {}; certbot's files are unchanged",
            report.error.as_deref().unwrap_or("")
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_that_copy_certbot_files_are_dropped_from_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let certbot = dir.path().join("letsencrypt");
        fs::create_dir(&certbot).unwrap();
        let script = dir.path().join("concatenates.sh");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat {0}/live/x/fullchain.pem {0}/live/x/privkey.pem > /etc/haproxy/ssl/x.pem\n",
                certbot.display()
            ),
        )
        .unwrap();
        let (mut taken, mut not) = (Vec::new(), Vec::new());
        let hook = format!("{} && systemctl reload haproxy.service", script.display());
        let kept = take_hook(&certbot, "post", &hook, &mut taken, &mut not);
        assert_eq!(kept.as_deref(), Some("systemctl reload haproxy.service"));
        assert_eq!(not.len(), 1, "{not:?}");
        assert!(not[0].contains("concatenates.sh"), "{not:?}");

        let whole = format!("cp {}/live/x/fullchain.pem /tmp/x", certbot.display());
        assert_eq!(
            take_hook(&certbot, "deploy", &whole, &mut taken, &mut not),
            None
        );
        assert_eq!(
            take_hook(
                &certbot,
                "pre",
                "systemctl stop nginx",
                &mut taken,
                &mut not
            )
            .as_deref(),
            Some("systemctl stop nginx")
        );
        assert_eq!(
            split_and_chain("a && '/x y/reload.sh' && \"b && c\""),
            Some(vec!["a", "'/x y/reload.sh'", "\"b && c\""])
        );
        assert_eq!(
            split_and_chain("a && 'b && c'"),
            Some(vec!["a", "'b && c'"])
        );
        assert_eq!(split_and_chain("a&&b"), Some(vec!["a", "b"]));
        for whole in [
            "a || b && c",
            "a; b && c",
            "a | b && c",
            "a & b",
            "a && $(b)",
            "a && 'b",
            "one",
        ] {
            assert_eq!(split_and_chain(whole), None, "{whole}");
        }
    }
}
