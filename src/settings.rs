//! Turns flags, environment and the config file into validated values, once, at the edge.
//! Inner code receives `DomainName`, `CertName`, `Server` and `Settings`, never raw strings.
//! Precedence: flags > environment (clap reads both) > config file > built-in defaults.
//! Nothing here touches the network or writes to disk.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::cli::{ChallengeKind, GlobalArgs, KeyType};
use crate::error::BadInput;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/certctl";
pub const DEFAULT_SSL_DIR: &str = "/etc/haproxy/ssl";
pub const DEFAULT_CONFIG: &str = "/etc/certctl/config.toml";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:2031";
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// Let's Encrypt and most CAs refuse orders with more names than this.
pub const MAX_NAMES: usize = 100;

/// A DNS name as it goes into an order: lowercase ASCII (punycode), RFC 1123 labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("empty name".into());
        }
        if let Some(c) = raw.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{:?} contains {}; a name is one word like mon-app.fr",
                raw,
                if c.is_whitespace() {
                    "a space"
                } else {
                    "a control character"
                }
            ));
        }
        if raw.contains(['/', '\\']) {
            return Err(format!(
                "{raw:?} contains a path separator; give the bare host name, without scheme or path"
            ));
        }
        if raw.contains(':') {
            return Err(format!(
                "{raw:?} contains ':'; give the bare host name, without scheme or port"
            ));
        }
        if raw.ends_with('.') {
            return Err(format!("{raw:?} ends with a dot; drop the trailing dot"));
        }
        if raw.starts_with('.') || raw.contains("..") {
            return Err(format!(
                "{raw:?} has an empty label (a leading dot or two dots in a row)"
            ));
        }
        let (wildcard, rest) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let ascii = idna::domain_to_ascii(rest).map_err(|_| {
            format!("{raw:?} is not a valid domain name (bad characters or punycode)")
        })?;
        if ascii.len() > 253 {
            return Err(format!("{raw:?} is longer than 253 characters"));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(format!(
                "{raw:?} has a single label; certificates name fully qualified hosts like mon-app.fr"
            ));
        }
        for label in &labels {
            check_label(raw, label)?;
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "{raw:?} looks like an IP address; ACME HTTP-01 here issues for DNS names"
            ));
        }
        Ok(Self(if wildcard {
            format!("*.{ascii}")
        } else {
            ascii
        }))
    }

    /// A name for the local CA: also IP addresses and single-label hosts (closed networks
    /// name backends that way); still no spaces, separators or control characters.
    pub fn parse_local(raw: &str) -> Result<Self, String> {
        if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
            return Ok(Self(ip.to_string()));
        }
        let single_label = !raw.trim_start_matches("*.").contains('.');
        if single_label && !raw.is_empty() && raw.len() <= 63 {
            let lower = raw.to_ascii_lowercase();
            check_label(raw, &lower)?;
            return Ok(Self(lower));
        }
        Self::parse(raw)
    }

    pub fn is_ip(&self) -> bool {
        self.0.parse::<std::net::IpAddr>().is_ok()
    }

    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_label(raw: &str, label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err(format!(
            "{raw:?} has an empty label (two dots in a row, or a leading dot)"
        ));
    }
    if label.len() > 63 {
        return Err(format!(
            "{raw:?} has a label longer than 63 bytes: {label:?}"
        ));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "{raw:?} has characters other than letters, digits and '-' in {label:?}"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "{raw:?} has a label that starts or ends with '-': {label:?}"
        ));
    }
    Ok(())
}

/// Stored names were checked when requested; reading accepts every form any CA takes
/// (the local CA's IP addresses and single labels included).
impl TryFrom<String> for DomainName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse_local(&s)
    }
}

impl From<DomainName> for String {
    fn from(d: DomainName) -> String {
        d.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest certificate name, in bytes.
pub const MAX_CERT_NAME: usize = 200;

/// The name of a managed certificate: its state directory and its bundle `<name>.pem`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertName(String);

impl CertName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_CERT_NAME
            && !raw.starts_with(['.', '-'])
            && raw.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            })
            && !raw.contains("..");
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a usable certificate name; use lowercase letters, digits, '.', '-' and '_' (like mon-app.fr)"
            ))
        }
    }

    /// The default name: the first domain, with a wildcard's `*.` dropped (and an IPv6
    /// address's ':' made '_'). A domain name may be longer than a certificate name (253
    /// bytes against 200, which keeps `.<name>.pem.certctl-tmp-<pid>` within a file name's
    /// 255): such a domain needs `--name`.
    pub fn from_domain(domain: &DomainName) -> Result<Self, String> {
        let name = domain.as_str().trim_start_matches("*.").replace(':', "_");
        Self::parse(&name).map_err(|_| {
            format!(
                "{domain} is too long to name the certificate and its bundle ({} characters, \
                 {MAX_CERT_NAME} at most); choose a shorter name with --name",
                name.len()
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CertName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<CertName> for String {
    fn from(n: CertName) -> String {
        n.0
    }
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where certificates come from: an ACME directory URL (https).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Server(String);

pub const KNOWN_SERVERS: &[(&str, &str)] = &[
    (
        "letsencrypt",
        "https://acme-v02.api.letsencrypt.org/directory",
    ),
    (
        "letsencrypt-staging",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ),
    ("zerossl", "https://acme.zerossl.com/v2/DV90"),
    ("google", "https://dv.acme-v02.api.pki.goog/directory"),
    ("buypass", "https://api.buypass.com/acme/directory"),
];

impl Server {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some((_, url)) = KNOWN_SERVERS.iter().find(|(name, _)| *name == raw) {
            return Ok(Self((*url).to_owned()));
        }
        let names: Vec<&str> = KNOWN_SERVERS.iter().map(|(n, _)| *n).collect();
        let names = names.join(", ");
        if raw == "local" {
            return Ok(Self("local".to_owned()));
        }
        let uri: http::Uri = raw
            .parse()
            .map_err(|_| format!("--server {raw:?} is neither an https URL nor one of: {names}"))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(format!(
                "--server {raw:?} is neither an https URL nor one of: {names} (ACME directories are served over https)"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn url(&self) -> &str {
        &self.0
    }

    /// The local CA (`--server local`): certctl signs, no network.
    pub fn is_local(&self) -> bool {
        self.0 == "local"
    }

    /// Let's Encrypt production: `renew --dry-run` switches it to staging.
    pub fn staging_counterpart(&self) -> Option<Server> {
        (self.0 == KNOWN_SERVERS[0].1).then(|| Server(KNOWN_SERVERS[1].1.to_owned()))
    }
}

impl TryFrom<String> for Server {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Server> for String {
    fn from(s: Server) -> String {
        s.0
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The optional TOML config file; every key is optional, unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub state_dir: Option<PathBuf>,
    pub ssl_dir: Option<PathBuf>,
    pub server: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    pub email: Option<String>,
    pub key_type: Option<KeyType>,
    pub challenge: Option<ChallengeKind>,
    pub http_addr: Option<String>,
    pub webroot: Option<PathBuf>,
    pub pre_hook: Option<String>,
    pub deploy_hook: Option<String>,
    pub post_hook: Option<String>,
    pub hook_timeout: Option<u64>,
    #[serde(default)]
    pub haproxy_sockets: Vec<String>,
}

impl ConfigFile {
    /// Reads `--config` (must exist) or the default path (may be absent).
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let text = match read_small_file(&path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
                BadInput::new(format!(
                    "config file {} is not UTF-8 text; it must be TOML",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(e) => {
                return Err(
                    BadInput::new(format!("reading config file {}: {e}", path.display())).into(),
                );
            }
        };
        Self::parse(&path, &text)
    }

    /// Parses the file's text and checks each value by the rules of its flag; every error
    /// names the file, the line and the key (bad input: exit 2).
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Self> {
        let error = |line: Option<usize>, key: Option<&str>, message: &str| -> anyhow::Error {
            let line = line.map(|n| format!(", line {n}")).unwrap_or_default();
            let key = key.map(|k| format!(", key `{k}`")).unwrap_or_default();
            let message: Vec<&str> = message.lines().map(str::trim).collect();
            BadInput::new(format!(
                "config file {}{line}{key}: {}",
                path.display(),
                message.join("; ")
            ))
            .into()
        };
        let config: Self = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| config_line_of_offset(text, span.start));
            let key = line.and_then(|n| config_key_on_line(text, n));
            error(line, key, e.message())
        })?;
        if let Err((key, message)) = config.check() {
            return Err(error(config_line_of_key(text, key), Some(key), &message));
        }
        Ok(config)
    }

    /// The checks TOML's types cannot make, as the flags get them.
    fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, dir) in [("state_dir", &self.state_dir), ("ssl_dir", &self.ssl_dir)] {
            if dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
                return Err((key, "an empty path; give a directory".into()));
            }
        }
        if let Some(raw) = &self.server {
            Server::parse(raw).map_err(|e| ("server", e))?;
        }
        if let Some(path) = &self.ca_bundle {
            check_ca_bundle(path).map_err(|e| ("ca_bundle", format!("{e:#}")))?;
        }
        if let Some(raw) = &self.http_addr {
            raw.parse::<SocketAddr>().map_err(|_| {
                (
                    "http_addr",
                    format!("{raw:?} is not an address:port like 127.0.0.1:2031"),
                )
            })?;
        }
        if let Some(e) = &self.email {
            if !e.contains('@') || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(("email", format!("{e:?} is not an e-mail address")));
            }
        }
        parse_sockets(&self.haproxy_sockets).map_err(|e| ("haproxy_sockets", e))?;
        Ok(())
    }
}

/// The 1-based line of a byte offset in `text`.
fn config_line_of_offset(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The key set on line `n` (1-based) of a TOML text, if that line is `key = ...`.
fn config_key_on_line(text: &str, n: usize) -> Option<&str> {
    let line = text.lines().nth(n.checked_sub(1)?)?;
    let key = line.split_once('=')?.0.trim().trim_matches(['"', '\'']);
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some(key)
}

/// The 1-based line that sets `key` in a TOML text.
fn config_line_of_key(text: &str, key: &str) -> Option<usize> {
    (1..=text.lines().count()).find(|n| config_key_on_line(text, *n) == Some(key))
}

/// The global settings every subcommand works with.
#[derive(Debug, Clone)]
pub struct Global {
    pub state_dir: PathBuf,
    pub ssl_dir: PathBuf,
    pub server: Server,
    pub ca_bundle: Option<PathBuf>,
    pub verbosity: Verbosity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    Debug,
}

impl Global {
    pub fn resolve(args: &GlobalArgs, config: &ConfigFile) -> anyhow::Result<Self> {
        let server_raw = args.server.clone().or_else(|| config.server.clone());
        let server = match server_raw {
            Some(raw) => Server::parse(&raw).map_err(BadInput::new)?,
            None => Server(KNOWN_SERVERS[0].1.to_owned()),
        };
        let ca_bundle = args.ca_bundle.clone().or_else(|| config.ca_bundle.clone());
        if let Some(path) = &ca_bundle {
            check_ca_bundle(path)?;
        }
        let verbosity = match (args.quiet, args.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => match std::env::var("CERTCTL_LOG") {
                Ok(raw) if !raw.trim().is_empty() => {
                    crate::log::parse_level(&raw).map_err(BadInput::new)?
                }
                _ => Verbosity::Normal,
            },
            (false, 1) => Verbosity::Verbose,
            (false, _) => Verbosity::Debug,
        };
        Ok(Self {
            state_dir: non_empty_path(
                args.state_dir.clone().or_else(|| config.state_dir.clone()),
                "--state-dir",
            )?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            ssl_dir: non_empty_path(
                args.ssl_dir.clone().or_else(|| config.ssl_dir.clone()),
                "--ssl-dir",
            )?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SSL_DIR)),
            server,
            ca_bundle: ca_bundle.map(|p| std::path::absolute(&p).unwrap_or(p)),
            verbosity,
        })
    }
}

fn non_empty_path(path: Option<PathBuf>, flag: &str) -> anyhow::Result<Option<PathBuf>> {
    match path {
        Some(p) if p.as_os_str().is_empty() => {
            Err(BadInput::new(format!("{flag} is empty; give a directory")).into())
        }
        Some(p) => Ok(Some(std::path::absolute(&p).unwrap_or(p))),
        None => Ok(None),
    }
}

/// Largest config file or `--ca-bundle` read: both are a few kilobytes; this keeps a
/// mistaken path (`/dev/zero`, a disk image) from eating the memory.
pub const MAX_INPUT_FILE: u64 = 1 << 20;

/// Reads a regular file of at most `MAX_INPUT_FILE` bytes; anything else is an error that
/// says what the path is instead.
pub fn read_small_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(Error::new(ErrorKind::InvalidInput, "it is a directory"));
    }
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "it is not a regular file (a device, pipe or socket)",
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_FILE {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("it is larger than {} KiB", MAX_INPUT_FILE / 1024),
        ));
    }
    Ok(bytes)
}

/// A `--ca-bundle` must be a readable PEM file with at least one certificate.
pub fn check_ca_bundle(path: &Path) -> anyhow::Result<()> {
    let bytes = read_small_file(path).map_err(|e| {
        BadInput::new(format!(
            "--ca-bundle {}: {e}; give a PEM file of CA certificates",
            path.display()
        ))
    })?;
    let certs = crate::pem::certificates(&bytes)
        .with_context(|| format!("--ca-bundle {}", path.display()))
        .map_err(|e| BadInput::new(format!("{e:#}")))?;
    if certs.is_empty() {
        return Err(BadInput::new(format!(
            "--ca-bundle {} holds no certificate; give a PEM file with -----BEGIN CERTIFICATE----- blocks",
            path.display()
        ))
        .into());
    }
    Ok(())
}

/// How HTTP-01 challenges get answered, with what each way needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Challenge {
    Standalone { http_addr: SocketAddr },
    Webroot { webroot: PathBuf },
    Stateless,
}

impl Challenge {
    pub fn resolve(
        kind: Option<ChallengeKind>,
        http_addr: Option<&str>,
        webroot: Option<&Path>,
    ) -> Result<Self, String> {
        match kind.unwrap_or(ChallengeKind::Standalone) {
            ChallengeKind::Standalone => {
                let raw = http_addr.unwrap_or(DEFAULT_HTTP_ADDR);
                let http_addr = raw.parse().map_err(|_| {
                    format!("--http-addr {raw:?} is not an address:port like 127.0.0.1:2031")
                })?;
                Ok(Self::Standalone { http_addr })
            }
            ChallengeKind::Webroot => {
                let webroot = webroot.ok_or(
                    "--challenge webroot needs --webroot DIR (the web server's document root)",
                )?;
                if !webroot.is_dir() {
                    return Err(format!(
                        "--webroot {} is not a directory",
                        webroot.display()
                    ));
                }
                let webroot =
                    std::path::absolute(webroot).unwrap_or_else(|_| webroot.to_path_buf());
                Ok(Self::Webroot { webroot })
            }
            ChallengeKind::Stateless => Ok(Self::Stateless),
        }
    }
}

/// Hook commands and their time limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
}

/// What `request` used for a certificate, stored so that `renew` repeats it with no flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSettings {
    pub domains: Vec<DomainName>,
    pub key_type: KeyType,
    pub server: Server,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    pub challenge: Challenge,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// HAProxy admin sockets that receive the certificate without a reload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub haproxy_sockets: Vec<crate::haproxy::Socket>,
    /// Local CA only: lifetime in days, and the clientAuth usage for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_auth: bool,
}

/// Parses `--haproxy-socket` values (or the config file's), dropping duplicates.
pub fn parse_sockets(raw: &[String]) -> Result<Vec<crate::haproxy::Socket>, String> {
    let mut sockets = Vec::new();
    for r in raw {
        let socket = crate::haproxy::Socket::parse(r)?;
        if !sockets.contains(&socket) {
            sockets.push(socket);
        }
    }
    Ok(sockets)
}

/// Parses the names of a request: each valid, no duplicates, at most `MAX_NAMES`.
pub fn parse_domains(raw: &[String], local: bool) -> Result<Vec<DomainName>, String> {
    if raw.is_empty() {
        return Err("no domain given; name at least one, like: certctl request mon-app.fr".into());
    }
    if raw.len() > MAX_NAMES {
        return Err(format!(
            "{} names given; a certificate holds at most {MAX_NAMES}",
            raw.len()
        ));
    }
    let mut domains: Vec<DomainName> = Vec::with_capacity(raw.len());
    for r in raw {
        let d = if local {
            DomainName::parse_local(r)?
        } else {
            DomainName::parse(r)?
        };
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    Ok(domains)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_lowercased_and_punycoded() {
        assert_eq!(
            DomainName::parse("Mon-App.FR").unwrap().as_str(),
            "mon-app.fr"
        );
        assert_eq!(
            DomainName::parse("café.fr").unwrap().as_str(),
            "xn--caf-dma.fr"
        );
        assert_eq!(
            DomainName::parse("*.mon-app.fr").unwrap().as_str(),
            "*.mon-app.fr"
        );
        assert!(DomainName::parse("*.mon-app.fr").unwrap().is_wildcard());
    }

    #[test]
    fn bad_domain_names_are_refused() {
        let long_label = format!("{}.fr", "a".repeat(64));
        for bad in [
            "",
            " ",
            "a b.fr",
            "a/b.fr",
            "..",
            "a..b",
            ".a.fr",
            "a.fr.",
            "localhost",
            "-a.fr",
            "a-.fr",
            "a_b.fr",
            "xn--zz.fr",
            "xn--0.aa",
            "1.2.3.4",
            "http://a.fr",
            "a.fr:443",
            "a\u{7}.fr",
            long_label.as_str(),
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}.fr", ["abcdefghij"; 25].join("."));
        assert!(DomainName::parse(&long).is_err());
    }

    #[test]
    fn cert_names_cannot_escape_their_directory() {
        for bad in ["", "..", "a/b", "../x", ".hidden", "A", "a b"] {
            assert!(CertName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CertName::parse("mon-app.fr").is_ok());
    }

    #[test]
    fn servers_resolve_short_names_and_require_https() {
        assert_eq!(
            Server::parse("letsencrypt").unwrap().url(),
            KNOWN_SERVERS[0].1
        );
        assert!(Server::parse("https://127.0.0.1:14000/dir").is_ok());
        assert!(Server::parse("local").unwrap().is_local());
        for bad in ["http://x/dir", "nope", "ftp://x", "https://"] {
            assert!(Server::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_local_ca_also_takes_ip_addresses_and_single_labels() {
        assert_eq!(
            DomainName::parse_local("10.0.0.5").unwrap().as_str(),
            "10.0.0.5"
        );
        assert!(DomainName::parse_local("10.0.0.5").unwrap().is_ip());
        assert_eq!(DomainName::parse_local("::1").unwrap().as_str(), "::1");
        assert_eq!(
            DomainName::parse_local("Backend1").unwrap().as_str(),
            "backend1"
        );
        assert_eq!(
            DomainName::parse_local("api.lan").unwrap().as_str(),
            "api.lan"
        );
        for bad in ["", "a b", "a/b", "-x", "a..b"] {
            assert!(DomainName::parse_local(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            CertName::from_domain(&DomainName::parse_local("::1").unwrap())
                .unwrap()
                .as_str(),
            "__1"
        );
    }

    #[test]
    fn too_many_names_and_duplicates() {
        let many: Vec<String> = (0..101).map(|i| format!("n{i}.mon-app.fr")).collect();
        assert!(parse_domains(&many, false).is_err());
        let dup = vec!["a.fr".to_owned(), "A.fr".to_owned()];
        assert_eq!(parse_domains(&dup, false).unwrap().len(), 1);
    }
}
