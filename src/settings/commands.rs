//! Settings of the commands that merge flags, environment and config file (request, renew,
//! account), resolved once into typed values: the commands receive these, never the raw
//! flags and the config file both.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    CertConfig, CertSettings, Challenge, ConfigFile, DnsFlags, Global, Hooks, HostConfig,
    flag_hooks, hook_timeout, merge_hooks, parse_sockets,
};
use crate::cli::{RenewArgs, RequestArgs};
use crate::error::BadInput;
use crate::types::{CertName, ChallengeKind, DomainName, KeyType, Socket, join, parse_domains};

/// What `certctl request` works with.
pub struct RequestSettings {
    pub name: CertName,
    /// What the certificate stores: the hooks of the command line among them.
    pub wanted: CertSettings,
    /// The config file's hooks, run in this run only (they are not stored).
    pub run_hooks: Hooks,
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
        let (challenge, challenges) = challenges(args, config, &domains, local)?;
        let email = email(args.email.as_deref(), config)?;
        let (profile, preferred_chain) = super::ca_choices(&args.ca, local)?;
        let wanted = CertSettings {
            cert: CertConfig {
                domains: domains.clone(),
                key_type: args.key_type.or(config.key_type).unwrap_or(KeyType::Ec256),
                server: global.server.clone(),
                challenge,
                email,
                days: args.days,
                client_auth: args.client_auth,
                challenges,
                profile,
                preferred_chain,
            },
            host: HostConfig {
                ca_bundle: global.ca_bundle.clone(),
                hooks: flag_hooks(&args.hooks),
                haproxy_sockets: parse_sockets(if args.haproxy_sockets.is_empty() {
                    &config.haproxy_sockets
                } else {
                    &args.haproxy_sockets
                })
                .map_err(BadInput::new)?,
                ssl_dir: Some(global.ssl_dir.clone()),
                outputs: Default::default(),
            },
            unknown: Default::default(),
        };
        let hook_timeout = hook_timeout(&args.hooks, config);
        // the config file's hooks run as configuration: for kinds no flag gives
        let merged = merge_hooks(&args.hooks, config)?;
        let flags = &wanted.host.hooks;
        let run_hooks = Hooks {
            pre: merged.pre.filter(|_| flags.pre.is_none()),
            deploy: merged.deploy.filter(|_| flags.deploy.is_none()),
            post: merged.post.filter(|_| flags.post.is_none()),
        };
        Ok(Self {
            name,
            wanted,
            run_hooks,
            hook_timeout,
        })
    }
}

/// How each name's challenge is answered: the default (`--challenge HOW`, else the config
/// file's, else standalone) and the names answered otherwise (`--challenge NAME=HOW`). A
/// wildcard can only be proved with DNS-01.
fn challenges(
    args: &RequestArgs,
    config: &ConfigFile,
    domains: &[DomainName],
    local: bool,
) -> anyhow::Result<(Challenge, BTreeMap<DomainName, Challenge>)> {
    let a = &args.dns;
    let flags = DnsFlags {
        server: a.dns_server.as_deref(),
        tsig_key: a.tsig_key.as_deref(),
        hook: a.dns_hook.as_deref(),
        cleanup_hook: a.dns_cleanup_hook.as_deref(),
        style: a.dns_hook_style,
        zone: a.dns_zone.as_deref(),
        resolver: a.dns_resolver.as_deref(),
        timeout: a.dns_timeout,
    };
    let c = config;
    let dns = DnsFlags {
        server: flags.server.or(c.dns_server.as_deref()),
        tsig_key: flags.tsig_key.or(c.tsig_key.as_deref()),
        hook: flags.hook.or(c.dns_hook.as_deref()),
        cleanup_hook: flags.cleanup_hook.or(c.dns_cleanup_hook.as_deref()),
        style: flags.style.or(c.dns_hook_style),
        zone: flags.zone.or(c.dns_zone.as_deref()),
        resolver: flags.resolver.or(c.dns_resolver.as_deref()),
        timeout: flags.timeout.or(c.dns_timeout),
    };
    let http_addr = args.http_addr.as_deref().or(config.http_addr.as_deref());
    let webroot = args.webroot.as_deref().or(config.webroot.as_deref());
    let tls_alpn_flag = args.tls_alpn.tls_alpn_addr.as_deref();
    let tls_alpn_addr = tls_alpn_flag.or(config.tls_alpn_addr.as_deref());
    let resolve = |kind| match kind {
        Some(ChallengeKind::TlsAlpn01) => Challenge::tls_alpn(tls_alpn_addr).map_err(BadInput::new),
        kind => Challenge::resolve(kind, http_addr, webroot, &dns).map_err(BadInput::new),
    };
    let defaults: Vec<ChallengeKind> = args
        .challenge
        .iter()
        .filter(|c| c.name.is_none())
        .map(|c| c.kind)
        .collect();
    if let [_, _, ..] = defaults.as_slice() {
        return Err(BadInput::new(
            "--challenge HOW given more than once; give one default, and NAME=HOW for the names answered otherwise",
        )
        .into());
    }
    let challenge = resolve(defaults.first().copied().or(config.challenge))?;
    let mut challenges = BTreeMap::new();
    for choice in args.challenge.iter() {
        let Some(raw) = &choice.name else { continue };
        let name = DomainName::parse_acme(raw)
            .ok()
            .filter(|n| domains.contains(n))
            .ok_or_else(|| {
                BadInput::new(format!(
                    "--challenge {raw}={}: {raw} is not one of the certificate's names ({})",
                    kind_name(choice.kind),
                    join(domains)
                ))
            })?;
        let setting = resolve(Some(choice.kind))?;
        if setting != challenge {
            challenges.insert(name, setting);
        }
    }
    let dns_used = std::iter::once(&challenge)
        .chain(challenges.values())
        .any(|c| matches!(c, Challenge::Dns01(_)));
    // a DNS-01 flag given for an HTTP-01 certificate is a mistake; the config file's
    // DNS-01 values are defaults for the certificates that use it
    if let (false, Some(flag)) = (dns_used, flags.first_given()) {
        return Err(BadInput::new(format!(
            "{flag} applies to DNS-01: add --challenge dns-01 (or --challenge NAME=dns-01 for some names)"
        ))
        .into());
    }
    let tls_alpn_used = std::iter::once(&challenge)
        .chain(challenges.values())
        .any(|c| matches!(c, Challenge::TlsAlpn01 { .. }));
    // the config file's address is a default for the certificates that use tls-alpn-01
    if let (false, Some(raw)) = (tls_alpn_used, tls_alpn_flag) {
        Challenge::tls_alpn(Some(raw)).map_err(BadInput::new)?;
        return Err(BadInput::new(
            "--tls-alpn-addr applies to tls-alpn-01: add --challenge tls-alpn-01 (or --challenge NAME=tls-alpn-01 for some names)",
        )
        .into());
    }
    if local {
        return Ok((challenge, challenges));
    }
    let ip_dns = domains.iter().find(|d| {
        d.is_ip()
            && matches!(
                challenges.get(*d).unwrap_or(&challenge),
                Challenge::Dns01(_)
            )
    });
    if let Some(ip) = ip_dns {
        return Err(BadInput::new(format!(
            "{ip} is an IP address, which DNS-01 cannot prove (RFC 8738): answer it by HTTP-01 \
             or tls-alpn-01, e.g. --challenge '{ip}=standalone'"
        ))
        .into());
    }
    let wildcard_http = domains.iter().find(|d| {
        d.is_wildcard()
            && !matches!(
                challenges.get(*d).unwrap_or(&challenge),
                Challenge::Dns01(_)
            )
    });
    if let Some(wild) = wildcard_http {
        return Err(BadInput::new(format!(
            "{wild} is a wildcard; wildcards need the DNS-01 challenge, which HTTP-01 cannot \
             replace: add --challenge dns-01 with --dns-server HOST --tsig-key FILE (or \
             --dns-hook CMD --dns-cleanup-hook CMD), or --challenge '{wild}=dns-01' to use it \
             for the wildcard alone"
        ))
        .into());
    }
    Ok((challenge, challenges))
}

fn kind_name(kind: ChallengeKind) -> String {
    use clap::ValueEnum;
    kind.to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
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
            hooks: merge_hooks(&args.hooks, config)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn resolve(argv: &[&str]) -> anyhow::Result<RequestSettings> {
        resolve_with(argv, ConfigFile::default())
    }

    fn resolve_with(argv: &[&str], config: ConfigFile) -> anyhow::Result<RequestSettings> {
        let cli = Cli::parse_from(argv);
        let global = Global::resolve(&cli.global, &config).unwrap();
        let Command::Request(args) = cli.command else {
            panic!("not request")
        };
        RequestSettings::resolve(&global, &config, &args)
    }

    #[test]
    fn the_config_files_tls_alpn_addr_is_a_default_for_tls_alpn_01_only() {
        let config = || {
            let mut config = ConfigFile::default();
            config.tls_alpn_addr = Some("127.0.0.1:4443".into());
            config
        };
        let s = resolve_with(
            &["certctl", "request", "a.fr", "--challenge", "tls-alpn-01"],
            config(),
        )
        .unwrap();
        assert_eq!(
            s.wanted.cert.challenge,
            Challenge::tls_alpn(Some("127.0.0.1:4443")).unwrap()
        );
        // an HTTP-01 certificate is not refused for it
        let s = resolve_with(&["certctl", "request", "a.fr"], config()).unwrap();
        assert!(!matches!(
            s.wanted.cert.challenge,
            Challenge::TlsAlpn01 { .. }
        ));
    }

    #[test]
    fn a_wildcard_beside_ip_addresses_each_with_its_own_challenge() {
        let s = resolve(&[
            "certctl",
            "request",
            "203.0.113.7",
            "*.mon-app.fr",
            "2001:db8::1",
            "--challenge",
            "tls-alpn-01",
            "--challenge",
            "*.mon-app.fr=dns-01",
            "--dns-hook",
            "true",
            "--dns-cleanup-hook",
            "true",
        ])
        .unwrap();
        let cert = &s.wanted.cert;
        assert_eq!(s.name.as_str(), "203.0.113.7");
        let alpn = Challenge::tls_alpn(None).unwrap();
        assert_eq!(cert.challenge_for(&cert.domains[0]), &alpn);
        assert_eq!(cert.challenge_for(&cert.domains[2]), &alpn);
        assert!(matches!(
            cert.challenge_for(&cert.domains[1]),
            Challenge::Dns01(_)
        ));
    }

    #[test]
    fn an_ip_address_cannot_be_proved_by_dns_01() {
        // DNS-01 by default, one name answered otherwise
        let with_other = |other: &str| {
            resolve(&[
                "certctl",
                "request",
                "mon-app.fr",
                "203.0.113.7",
                "--challenge",
                "dns-01",
                "--challenge",
                other,
                "--dns-hook",
                "true",
                "--dns-cleanup-hook",
                "true",
            ])
        };
        let err = with_other("mon-app.fr=standalone").err().expect("refused");
        assert!(crate::error::exit_code(&err) == 2, "{err:#}");
        assert!(
            format!("{err:#}").contains("203.0.113.7 is an IP address"),
            "{err:#}"
        );
        let ok = with_other("203.0.113.7=standalone");
        assert!(ok.is_ok(), "{:#}", ok.err().unwrap());
    }
}
