//! Turns flags, environment and the config file into validated values, once, at the edge.
//! Inner code receives `DomainName`, `CertName`, `Server` and `Settings`, never raw strings.
//! Precedence: flags > environment (clap reads both) > config file > built-in defaults.
//! Nothing here touches the network or writes to disk.

mod choices;
mod cluster;
mod commands;
mod config;
mod dns;
mod merge;
mod stored;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::error::BadInput;
pub use crate::log::Verbosity;
use crate::types::Server;

pub use choices::ca_choices;
pub use cluster::{DEFAULT_LEASE_TTL, EtcdSpec, StoreSpec, refuse_standalone_in_cluster};
pub use commands::{RenewSettings, RequestSettings, email};
pub use config::ConfigFile;
pub use dns::{DEFAULT_DNS_TIMEOUT, Dns01, DnsAddr, DnsFlags, DnsProvider, Secret, Tsig};
pub use merge::{Change, changes, keep_stored, names_added_removed};
pub use stored::{CertConfig, CertSettings, Challenge, Hooks, HostConfig, Outputs, parse_sockets};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/certctl";
pub const DEFAULT_SSL_DIR: &str = "/etc/haproxy/ssl";
pub const DEFAULT_CONFIG: &str = "/etc/certctl/config.toml";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:2031";
/// Where certctl answers tls-alpn-01 when `--tls-alpn-addr` is not given.
pub const DEFAULT_TLS_ALPN_ADDR: &str = "127.0.0.1:2032";
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// Where a setting's value came from, to name it in an error: the user fixes it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    /// The config file, with the line and key that set it.
    Config {
        path: PathBuf,
        line: Option<usize>,
        key: &'static str,
    },
    /// A certificate's stored settings (settings.json).
    Stored(String),
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(flag) => f.write_str(flag),
            Source::Env(var) => write!(f, "the environment variable {var}"),
            Source::Config { path, line, key } => {
                write!(f, "config file {}", path.display())?;
                if let Some(n) = line {
                    write!(f, ", line {n}")?;
                }
                write!(f, ", key `{key}`")
            }
            Source::Stored(label) => write!(f, "the stored settings {label}"),
            Source::Default => f.write_str("the built-in default"),
        }
    }
}

/// The global settings every subcommand works with, resolved once.
#[derive(Debug, Clone)]
pub struct Global {
    pub state_dir: PathBuf,
    /// Where the state is kept: the state directory, or a shared etcd store.
    pub store: StoreSpec,
    pub ssl_dir: PathBuf,
    pub server: Server,
    pub ca_bundle: Option<PathBuf>,
    pub verbosity: Verbosity,
    /// How long a command waits for another certctl's lock (CERTCTL_LOCK_TIMEOUT).
    pub lock_wait: Duration,
    /// How long one HAProxy admin command may take (CERTCTL_HAPROXY_TIMEOUT).
    pub haproxy_timeout: Duration,
    /// How long one exchange with a CA may take, connect to the last byte of its answer
    /// (CERTCTL_HTTP_TIMEOUT).
    pub http_timeout: Duration,
    /// The root of the system trust store `ca install` writes to (CERTCTL_TRUST_ROOT).
    pub trust_root: PathBuf,
    /// stderr goes to systemd's journal (JOURNAL_STREAM): lines carry their priority.
    pub journal: bool,
    /// Which of --ssl-dir, --server, --ca-bundle were given (flag or environment) rather
    /// than taken from the config file or the default: given ones replace stored values.
    pub given: Given,
}

/// Global options given on the command line or in the environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Given {
    pub ssl_dir: bool,
    pub server: bool,
    pub ca_bundle: bool,
}

/// Default wait for the state lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);
/// Default time for one HAProxy admin command, connect to last byte.
pub const DEFAULT_HAPROXY_TIMEOUT: Duration = Duration::from_secs(10);
/// No wait is longer than this, whatever a variable says (a day).
const MAX_WAIT: Duration = Duration::from_secs(86_400);

impl Global {
    pub fn resolve(args: &GlobalArgs, config: &ConfigFile) -> anyhow::Result<Self> {
        let origins = &args.origins;
        let server = match (&args.server, &config.server) {
            (Some(raw), _) => Server::parse(raw).map_err(|e| {
                let source = if origins.from_env("server") {
                    Source::Env("CERTCTL_SERVER")
                } else {
                    Source::Flag("--server")
                };
                BadInput::new(format!("{source} {e}"))
            })?,
            (None, Some(raw)) => Server::parse(raw)
                .map_err(|e| BadInput::new(format!("{}: {e}", config.source("server"))))?,
            (None, None) => Server::default(),
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
        let ssl_dir = non_empty_path(
            args.ssl_dir.clone().or_else(|| config.ssl_dir.clone()),
            "--ssl-dir",
        )?
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SSL_DIR));
        // bundle paths go to HAProxy's admin socket, one command per line: a line break (or
        // any control character) in one could end a command and start another
        if ssl_dir
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .any(|b| b.is_ascii_control())
        {
            return Err(BadInput::new(format!(
                "--ssl-dir {:?} holds a control character (a line break?); give a plain directory path",
                ssl_dir.display().to_string()
            ))
            .into());
        }
        Ok(Self {
            state_dir: non_empty_path(
                args.state_dir.clone().or_else(|| config.state_dir.clone()),
                "--state-dir",
            )?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            store: StoreSpec::resolve(config)?,
            ssl_dir,
            server,
            ca_bundle: ca_bundle.map(|p| std::path::absolute(&p).unwrap_or(p)),
            verbosity,
            lock_wait: seconds_var("CERTCTL_LOCK_TIMEOUT", false)?.unwrap_or(DEFAULT_LOCK_WAIT),
            haproxy_timeout: seconds_var("CERTCTL_HAPROXY_TIMEOUT", true)?
                .unwrap_or(DEFAULT_HAPROXY_TIMEOUT),
            http_timeout: seconds_var("CERTCTL_HTTP_TIMEOUT", true)?
                .unwrap_or(crate::acme::DEFAULT_HTTP_TIMEOUT),
            trust_root: std::env::var_os("CERTCTL_TRUST_ROOT")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("/"), PathBuf::from),
            journal: crate::log::journal_from_env(),
            given: Given {
                ssl_dir: args.ssl_dir.is_some(),
                server: args.server.is_some(),
                ca_bundle: args.ca_bundle.is_some(),
            },
        })
    }
}

/// A number of seconds from the environment variable `var` (fractions when `fractions`),
/// at most a day; unset or empty is None, anything else that is not such a number is bad
/// input naming the variable.
fn seconds_var(var: &'static str, fractions: bool) -> anyhow::Result<Option<Duration>> {
    let raw = match std::env::var(var) {
        Ok(raw) if !raw.trim().is_empty() => raw,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(
                BadInput::new(format!("{var} is not text; give a number of seconds")).into(),
            );
        }
        _ => return Ok(None),
    };
    let bad = || {
        BadInput::new(format!(
            "{var}={raw:?} is not a number of seconds; give {}",
            if fractions {
                "a positive number like 10 or 2.5"
            } else {
                "a whole number like 120"
            }
        ))
    };
    let secs: f64 = if fractions {
        raw.trim().parse().map_err(|_| bad())?
    } else {
        match raw.trim().parse::<u64>() {
            Ok(n) => n.min(MAX_WAIT.as_secs()) as f64,
            Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => {
                MAX_WAIT.as_secs_f64()
            }
            Err(_) => return Err(bad().into()),
        }
    };
    if !secs.is_finite() || secs < 0.0 || (fractions && secs == 0.0) {
        return Err(bad().into());
    }
    Ok(Some(Duration::from_secs_f64(
        secs.min(MAX_WAIT.as_secs_f64()),
    )))
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

pub use crate::durable::{MAX_INPUT_FILE, read_small_file};

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

/// The hooks given on the command line, else in the config file.
pub fn merge_hooks(args: &crate::cli::HookArgs, config: &ConfigFile) -> anyhow::Result<Hooks> {
    let hooks = Hooks {
        pre: args.pre_hook.clone().or_else(|| config.pre_hook.clone()),
        deploy: args
            .deploy_hook
            .clone()
            .or_else(|| config.deploy_hook.clone()),
        post: args.post_hook.clone().or_else(|| config.post_hook.clone()),
    };
    check_hooks(&flag_hooks(args))?;
    Ok(hooks)
}

/// The hooks given on the command line alone: what a certificate stores. Hooks of the config
/// file are configuration, read again at every run, never copied into settings.json.
pub fn flag_hooks(args: &crate::cli::HookArgs) -> Hooks {
    Hooks {
        pre: args.pre_hook.clone(),
        deploy: args.deploy_hook.clone(),
        post: args.post_hook.clone(),
    }
}

/// Refuses (bad input) a hook whose script anyone may rewrite or another user owns.
pub fn check_hooks(hooks: &Hooks) -> anyhow::Result<()> {
    for (kind, command) in [
        ("pre", &hooks.pre),
        ("deploy", &hooks.deploy),
        ("post", &hooks.post),
    ] {
        if let Some(command) = command {
            crate::trust::check_hook(kind, command)
                .map_err(|e| BadInput::new(format!("--{kind}-hook: {e}")))?;
        }
    }
    Ok(())
}

/// How long one hook may run: the flag, else the config file, else the default.
pub fn hook_timeout(args: &crate::cli::HookArgs, config: &ConfigFile) -> Duration {
    args.hook_timeout
        .or(config.hook_timeout)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_HOOK_TIMEOUT)
}
