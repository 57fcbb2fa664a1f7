//! The optional TOML config file (`/etc/certctl/config.toml`, `--config`): read once,
//! every value checked by the rules of its flag, every error naming the file, the line
//! and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{DEFAULT_CONFIG, check_ca_bundle, parse_sockets, read_small_file};
use crate::error::BadInput;
use crate::types::{ChallengeKind, HookStyle, KeyType, Server};

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
    pub tls_alpn_addr: Option<String>,
    pub webroot: Option<PathBuf>,
    pub dns_server: Option<String>,
    pub tsig_key: Option<PathBuf>,
    pub dns_hook: Option<String>,
    pub dns_cleanup_hook: Option<String>,
    pub dns_hook_style: Option<HookStyle>,
    pub dns_zone: Option<String>,
    pub dns_resolver: Option<String>,
    pub dns_timeout: Option<u64>,
    pub pre_hook: Option<String>,
    pub deploy_hook: Option<String>,
    pub post_hook: Option<String>,
    pub hook_timeout: Option<u64>,
    #[serde(default)]
    pub haproxy_sockets: Vec<String>,
    /// A shared store (settings/cluster.rs): `etcd://h1:2379,h2:2379/prefix`, TLS, user,
    /// store key, this node's name, the lock lease's lifetime in seconds.
    pub store: Option<String>,
    pub store_key_file: Option<PathBuf>,
    pub etcd_ca_file: Option<PathBuf>,
    pub etcd_cert_file: Option<PathBuf>,
    pub etcd_key_file: Option<PathBuf>,
    pub etcd_user: Option<String>,
    pub etcd_password_file: Option<PathBuf>,
    pub node_name: Option<String>,
    pub etcd_lease_ttl: Option<u64>,
    /// The file read, and its text (to name the line of a value); None when none was read.
    #[serde(skip)]
    path: Option<PathBuf>,
    #[serde(skip)]
    text: String,
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
        // it names the hooks root runs: only root (or the running user) may write it
        crate::trust::check(&path, "config file", crate::trust::Rule::Private)
            .map_err(BadInput::new)?;
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
        if let Some(n) = text.find('\0').map(|at| config_line_of_offset(text, at)) {
            return Err(error(
                Some(n),
                config_key_on_line(text, n),
                "contains a NUL byte; a config file is text",
            ));
        }
        let mut config: Self = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| config_line_of_offset(text, span.start));
            let key = line.and_then(|n| config_key_on_line(text, n));
            error(line, key, e.message())
        })?;
        if let Err((key, message)) = config.check() {
            return Err(error(config_line_of_key(text, key), Some(key), &message));
        }
        config.path = Some(path.to_path_buf());
        config.text = text.to_owned();
        Ok(config)
    }

    /// The file that was read, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Where the value of `key` came from: this file, at the line that sets it.
    pub fn source(&self, key: &'static str) -> super::Source {
        super::Source::Config {
            path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
            line: config_line_of_key(&self.text, key),
            key,
        }
    }

    /// The checks TOML's types cannot make, as the flags get them.
    fn check(&self) -> Result<(), (&'static str, String)> {
        // a NUL written as an escape (`"\u0000"`) reaches a value though the text has none;
        // no path, address or command can hold one
        for (key, value) in self.text_values() {
            if value.contains('\0') {
                return Err((key, "holds a NUL character; no value can".into()));
            }
        }
        for (key, hook) in [
            ("pre_hook", &self.pre_hook),
            ("deploy_hook", &self.deploy_hook),
            ("post_hook", &self.post_hook),
        ] {
            if let Some(command) = hook {
                crate::trust::check_hook(&key.replace("_hook", ""), command)
                    .map_err(|e| (key, e))?;
            }
        }
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
        if let Some(raw) = &self.tls_alpn_addr {
            raw.parse::<SocketAddr>().map_err(|_| {
                (
                    "tls_alpn_addr",
                    format!("{raw:?} is not an address:port like 127.0.0.1:2032"),
                )
            })?;
        }
        if let Some(e) = &self.email {
            if !e.contains('@') || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(("email", format!("{e:?} is not an e-mail address")));
            }
        }
        for (key, raw) in [
            ("dns_server", &self.dns_server),
            ("dns_resolver", &self.dns_resolver),
        ] {
            if let Some(raw) = raw {
                super::DnsAddr::parse(raw).map_err(|e| (key, e))?;
            }
        }
        parse_sockets(&self.haproxy_sockets).map_err(|e| ("haproxy_sockets", e))?;
        if let Some(raw) = &self.store {
            super::StoreSpec::parse(raw, self).map_err(|e| ("store", e))?;
        }
        Ok(())
    }
}

impl ConfigFile {
    /// Every text value of the file, with its key.
    fn text_values(&self) -> Vec<(&'static str, std::borrow::Cow<'_, str>)> {
        fn path(p: &Option<PathBuf>) -> Option<std::borrow::Cow<'_, str>> {
            p.as_ref().map(|p| p.to_string_lossy())
        }
        fn text(s: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
            s.as_deref().map(std::borrow::Cow::Borrowed)
        }
        let mut values = vec![
            ("state_dir", path(&self.state_dir)),
            ("ssl_dir", path(&self.ssl_dir)),
            ("ca_bundle", path(&self.ca_bundle)),
            ("webroot", path(&self.webroot)),
            ("server", text(&self.server)),
            ("email", text(&self.email)),
            ("http_addr", text(&self.http_addr)),
            ("tls_alpn_addr", text(&self.tls_alpn_addr)),
            ("pre_hook", text(&self.pre_hook)),
            ("deploy_hook", text(&self.deploy_hook)),
            ("post_hook", text(&self.post_hook)),
        ];
        values.extend(self.haproxy_sockets.iter().map(|s| {
            (
                "haproxy_sockets",
                Some(std::borrow::Cow::Borrowed(s.as_str())),
            )
        }));
        values
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
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
