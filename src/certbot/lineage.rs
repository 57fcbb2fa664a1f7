//! Reading one certbot lineage (renewal/NAME.conf, its live files, its account) into a plan
//! certctl can store: names, key type, CA, challenge, hooks that still make sense. Reads
//! certbot's directory only; writes nothing and sends nothing.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::challenge::challenge;
use super::hooks::take_hook;
use super::{RenewalConf, account_dir, account_key_pkcs8, pkcs8_pem};
use crate::durable::read_small_file;
use crate::error::BadInput;
use crate::output::date;
use crate::pem::{self, CertInfo, Chain};
use crate::settings::{CertConfig, CertSettings, Challenge, Hooks, HostConfig};
use crate::types::{CertName, DomainName, KeyType, MAX_NAMES, Server};

/// certbot's CA when a renewal file names none.
const CERTBOT_DEFAULT_SERVER: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A lineage read and checked, ready to be stored.
pub struct Plan {
    pub name: CertName,
    pub settings: CertSettings,
    pub key_pem: String,
    pub chain: Chain,
    pub info: CertInfo,
    pub account: AccountPlan,
    pub taken_over: Vec<String>,
    pub not_taken_over: Vec<String>,
}

pub enum AccountPlan {
    /// certbot's account, usable by certctl.
    Usable {
        credentials: serde_json::Value,
        id: String,
    },
    /// Why certbot's account cannot be used.
    Unusable(String),
}

/// What every lineage is read against.
pub struct Context<'a> {
    dir: &'a Path,
    /// Where bundles go, trust for the CA (--ca-bundle) and the e-mail for an account, from
    /// certctl's settings.
    ssl_dir: PathBuf,
    ca_bundle: Option<PathBuf>,
    email: Option<String>,
    /// Scripts in certbot's renewal-hooks/{pre,deploy,post}/, which certctl does not run.
    directory_hooks: Vec<String>,
}

impl<'a> Context<'a> {
    pub fn new(
        dir: &'a Path,
        ssl_dir: PathBuf,
        ca_bundle: Option<PathBuf>,
        email: Option<String>,
    ) -> Self {
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
            ssl_dir,
            ca_bundle,
            email,
            directory_hooks,
        }
    }
}

/// The names of certbot's lineages: renewal/NAME.conf, sorted.
pub fn lineage_names(dir: &Path) -> anyhow::Result<Vec<String>> {
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
pub fn read_lineage(cx: &Context<'_>, raw: &str) -> Result<Plan, String> {
    let mut taken_over = Vec::new();
    let mut not_taken_over = Vec::new();

    // the name, the renewal file
    let name = CertName::parse(raw).map_err(|e| format!("certctl cannot use the name: {e}"))?;
    let conf_path = cx.dir.join("renewal").join(format!("{raw}.conf"));
    let text = read_small_file(&conf_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
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
    let read =
        |path: &Path| read_small_file(path).map_err(|e| format!("reading {}: {e}", path.display()));
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
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }

    // the CA
    let server_raw = params("server").unwrap_or(CERTBOT_DEFAULT_SERVER);
    let server = Server::parse(server_raw).map_err(|e| format!("its CA: {e}"))?;

    // how challenges are answered; a wildcard only by DNS-01
    let challenge = challenge(&conf, &domains, &mut taken_over, &mut not_taken_over)?;
    let dns01 = matches!(challenge, Challenge::Dns01(_));
    if let Some(wild) = domains.iter().find(|d| d.is_wildcard() && !dns01) {
        return Err(format!(
            "{wild} is a wildcard: renewing it needs the DNS-01 challenge, which certbot's \
             authenticator here does not answer; keep it with certbot, or `certctl request` it \
             with --challenge dns-01"
        ));
    }
    if let Some(installer) =
        params("installer").filter(|i| !i.is_empty() && !i.eq_ignore_ascii_case("none"))
    {
        not_taken_over.push(format!(
            "certbot's {installer} installer: certctl writes the bundle {} and runs hooks; \
             point {installer} at the bundle or reload it from a --deploy-hook",
            cx.ssl_dir.join(format!("{name}.pem")).display()
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
    let email = contact(cx.dir, &server_path, params("account")).or_else(|| cx.email.clone());

    let settings = CertSettings {
        cert: CertConfig {
            domains,
            key_type,
            server,
            challenge,
            email,
            days: None,
            client_auth: false,
            challenges: Default::default(),
            profile: None,
            preferred_chain: None,
        },
        host: HostConfig {
            ca_bundle: cx.ca_bundle.clone(),
            hooks,
            haproxy_sockets: Vec::new(),
            ssl_dir: None,
            outputs: Default::default(),
        },
        unknown: Default::default(),
    };
    taken_over.insert(
        0,
        format!(
            "certificate {} for {} (valid until {}), its chain and key",
            info.serial,
            crate::types::join(&settings.cert.domains),
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

/// certbot's account in a form certctl stores (instant-acme's credentials), when its key
/// is one certctl can sign with; else why not.
fn read_account(account_dir: &Path, server: &Server) -> Result<serde_json::Value, String> {
    let key_path = account_dir.join("private_key.json");
    let regr_path = account_dir.join("regr.json");
    let read_json = |path: &Path| -> Result<serde_json::Value, String> {
        let bytes =
            read_small_file(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
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
    let regr: serde_json::Value = serde_json::from_slice(&read_small_file(&path).ok()?).ok()?;
    regr["body"]["contact"]
        .as_array()?
        .iter()
        .filter_map(|c| c.as_str()?.strip_prefix("mailto:"))
        .map(str::to_owned)
        .next()
}
