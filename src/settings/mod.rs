//! Turns flags, environment and the config file into validated values, once, at the edge.
//! Inner code receives `DomainName`, `CertName`, `Server` and `Settings`, never raw strings.
//! Precedence: flags > environment (clap reads both) > config file > built-in defaults.
//! Nothing here touches the network or writes to disk.

mod config;
mod stored;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::error::BadInput;
pub use crate::log::Verbosity;
use crate::types::Server;

pub use config::ConfigFile;
pub use stored::{CertConfig, CertSettings, Challenge, Hooks, HostConfig, parse_sockets};
// re-exported while callers move to crate::types
pub use crate::types::{CertName, DomainName, KNOWN_SERVERS, MAX_NAMES, parse_domains};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/certctl";
pub const DEFAULT_SSL_DIR: &str = "/etc/haproxy/ssl";
pub const DEFAULT_CONFIG: &str = "/etc/certctl/config.toml";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:2031";
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// The global settings every subcommand works with.
#[derive(Debug, Clone)]
pub struct Global {
    pub state_dir: PathBuf,
    pub ssl_dir: PathBuf,
    pub server: Server,
    pub ca_bundle: Option<PathBuf>,
    pub verbosity: Verbosity,
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

/// The hooks given on the command line, else in the config file.
pub fn merge_hooks(args: &crate::cli::HookArgs, config: &ConfigFile) -> Hooks {
    Hooks {
        pre: args.pre_hook.clone().or_else(|| config.pre_hook.clone()),
        deploy: args
            .deploy_hook
            .clone()
            .or_else(|| config.deploy_hook.clone()),
        post: args.post_hook.clone().or_else(|| config.post_hook.clone()),
    }
}

/// How long one hook may run: the flag, else the config file, else the default.
pub fn hook_timeout(args: &crate::cli::HookArgs, config: &ConfigFile) -> Duration {
    args.hook_timeout
        .or(config.hook_timeout)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_HOOK_TIMEOUT)
}
