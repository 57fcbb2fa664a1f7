//! The DNS-01 flags of `request` and `reconfigure`, and `--challenge [NAME=]HOW`: clap
//! definitions only, the doc comments being the help text.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};

use crate::types::{ChallengeKind, HookStyle};

/// DNS-01: who writes the TXT records, where the zone is, how long to wait for it.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "DNS-01 (--challenge dns-01)")]
pub struct DnsArgs {
    /// The primary DNS server that takes RFC 2136 updates, HOST[:PORT] (port 53 by default),
    /// e.g. --dns-server ns1.mon-app.fr --tsig-key /etc/certctl/tsig.key
    #[arg(long, value_name = "HOST[:PORT]")]
    pub dns_server: Option<String>,

    /// The TSIG key that signs the updates: a file in BIND's format, as `tsig-keygen -a
    /// hmac-sha256 NAME` prints it (hmac-sha256, hmac-sha384 or hmac-sha512); keep it 0600.
    /// Referenced by path and read at each renewal; its secret is never logged or stored.
    #[arg(long, value_name = "FILE")]
    pub tsig_key: Option<PathBuf>,

    /// Command that creates the TXT record, instead of --dns-server (run with /bin/sh -c).
    ///
    /// certbot style (default): once per name with CERTBOT_DOMAIN, CERTBOT_VALIDATION,
    /// CERTBOT_TOKEN, CERTBOT_REMAINING_CHALLENGES, CERTBOT_ALL_DOMAINS (and CERTCTL_* ones,
    /// CERTCTL_RECORD: the record's name), as certbot's manual hooks. lego style: `CMD present
    /// FQDN VALUE`.
    #[arg(long, value_name = "CMD")]
    pub dns_hook: Option<String>,

    /// Command that removes the TXT record again; it also sees CERTBOT_AUTH_OUTPUT (what the
    /// --dns-hook printed). lego style: `CMD cleanup FQDN VALUE` (the --dns-hook by default).
    #[arg(long, value_name = "CMD")]
    pub dns_cleanup_hook: Option<String>,

    /// How the hooks are called [default: certbot].
    #[arg(long, value_enum, value_name = "STYLE")]
    pub dns_hook_style: Option<HookStyle>,

    /// The zone that holds the _acme-challenge records (the target zone when they are
    /// CNAMEs) [default: found by SOA lookup].
    #[arg(long, value_name = "ZONE")]
    pub dns_zone: Option<String>,

    /// The DNS resolver for SOA, NS and CNAME lookups, HOST[:PORT] [default: the system's,
    /// /etc/resolv.conf]. With a port, the zone's nameservers are asked on that port too.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub dns_resolver: Option<String>,

    /// Seconds to wait for every nameserver of the zone to serve the records (and for each
    /// DNS exchange or hook) [default: 120].
    #[arg(long, value_name = "SECS")]
    pub dns_timeout: Option<u64>,
}

/// `--challenge HOW` for every name, or `--challenge NAME=HOW` for one of them (the name is
/// checked against the certificate's names by settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeChoice {
    pub name: Option<String>,
    pub kind: ChallengeKind,
}

impl ChallengeChoice {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (name, how) = match raw.rsplit_once('=') {
            Some((name, how)) => (Some(name.to_owned()), how),
            None => (None, raw),
        };
        let kind = ChallengeKind::from_str(how, false).map_err(|_| {
            let kinds: Vec<String> = ChallengeKind::value_variants()
                .iter()
                .filter_map(|k| k.to_possible_value().map(|v| v.get_name().to_owned()))
                .collect();
            format!(
                "{how:?} is not a challenge; give one of {} (or NAME=HOW for one name)",
                kinds.join(", ")
            )
        })?;
        if name.as_deref() == Some("") {
            return Err(format!("{raw:?} names no domain before '='"));
        }
        Ok(Self { name, kind })
    }
}

/// Parses `[NAME=]HOW` and offers the challenge kinds to completions and `--help`.
#[derive(Clone)]
pub(super) struct ChallengeChoiceParser;

impl clap::builder::TypedValueParser for ChallengeChoiceParser {
    type Value = ChallengeChoice;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<ChallengeChoice, clap::Error> {
        let raw = value.to_string_lossy();
        ChallengeChoice::parse(&raw).map_err(|e| {
            let message = format!("invalid value '{raw}' for '--challenge <[NAME=]HOW>': {e}\n");
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, message).with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        let kinds = ChallengeKind::value_variants().iter();
        Some(Box::new(kinds.filter_map(ValueEnum::to_possible_value)))
    }
}
