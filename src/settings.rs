//! Turns flags, environment and the config file into validated values, once, at the edge.
//! Inner code receives `DomainName`, `CertName`, `Server` and `Settings`, never raw strings.
//! Precedence: flags > environment (clap reads both) > config file > built-in defaults.
//! Nothing here touches the network or writes to disk.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::cli::GlobalArgs;
use crate::types::{ChallengeKind, KeyType};
// re-exported while callers move to crate::types
pub use crate::types::{CertName, DomainName, KNOWN_SERVERS, MAX_NAMES, Server, parse_domains};
use crate::error::BadInput;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/certctl";
pub const DEFAULT_SSL_DIR: &str = "/etc/haproxy/ssl";
pub const DEFAULT_CONFIG: &str = "/etc/certctl/config.toml";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:2031";
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

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
            None => Server::default(),
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
