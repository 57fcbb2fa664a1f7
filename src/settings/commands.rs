//! Settings of the commands that merge flags, environment and config file (request, renew,
//! account), resolved once into typed values: the commands receive these, never the raw
//! flags and the config file both.

use std::time::Duration;

use super::{
    CertConfig, CertSettings, Challenge, ConfigFile, Global, Hooks, HostConfig, hook_timeout,
    merge_hooks, parse_sockets,
};
use crate::cli::{RenewArgs, RequestArgs};
use crate::error::BadInput;
use crate::types::{CertName, KeyType, Socket, parse_domains};

/// What `certctl request` works with.
pub struct RequestSettings {
    pub name: CertName,
    pub wanted: CertSettings,
    pub hook_timeout: Duration,
}

impl RequestSettings {
    pub fn resolve(
        global: &Global,
        config: &ConfigFile,
        args: &RequestArgs,
    ) -> anyhow::Result<Self> {
        let local = global.server.is_local();
        let domains = parse_domains(&args.domains, local).map_err(BadInput::new)?;
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
        let email = email(args.email.as_deref(), config)?;
        let wanted = CertSettings {
            cert: CertConfig {
                domains: domains.clone(),
                key_type: args.key_type.or(config.key_type).unwrap_or(KeyType::Ec256),
                server: global.server.clone(),
                challenge,
                email,
                days: args.days,
                client_auth: args.client_auth,
            },
            host: HostConfig {
                ca_bundle: global.ca_bundle.clone(),
                hooks: merge_hooks(&args.hooks, config),
                haproxy_sockets: parse_sockets(if args.haproxy_sockets.is_empty() {
                    &config.haproxy_sockets
                } else {
                    &args.haproxy_sockets
                })
                .map_err(BadInput::new)?,
                ssl_dir: Some(global.ssl_dir.clone()),
                outputs: Default::default(),
            },
        };
        let hook_timeout = hook_timeout(&args.hooks, config);
        Ok(Self {
            name,
            wanted,
            hook_timeout,
        })
    }
}

/// What `certctl renew` works with besides each certificate's stored settings.
pub struct RenewSettings {
    /// Orders placed at once.
    pub jobs: usize,
    /// Hooks and sockets given now, in addition to each certificate's own.
    pub hooks: Hooks,
    pub hook_timeout: Duration,
    pub sockets: Vec<Socket>,
}

/// Orders placed at once by `renew` when --jobs is not given.
pub const DEFAULT_JOBS: usize = 4;

impl RenewSettings {
    pub fn resolve(config: &ConfigFile, args: &RenewArgs) -> anyhow::Result<Self> {
        let jobs = args.jobs.unwrap_or(DEFAULT_JOBS);
        if jobs == 0 {
            return Err(BadInput::new("--jobs 0: give at least 1").into());
        }
        let sockets = parse_sockets(if args.haproxy_sockets.is_empty() {
            &config.haproxy_sockets
        } else {
            &args.haproxy_sockets
        })
        .map_err(BadInput::new)?;
        Ok(Self {
            jobs,
            hooks: merge_hooks(&args.hooks, config),
            hook_timeout: hook_timeout(&args.hooks, config),
            sockets,
        })
    }
}

/// The e-mail for a new account: the flag, else the config file; checked.
pub fn email(flag: Option<&str>, config: &ConfigFile) -> anyhow::Result<Option<String>> {
    let email = flag.map(str::to_owned).or_else(|| config.email.clone());
    if let Some(e) = &email {
        if !e.contains('@') || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(BadInput::new(format!("--email {e:?} is not an e-mail address")).into());
        }
    }
    Ok(email)
}
