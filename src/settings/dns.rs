//! The DNS-01 part of a certificate's stored settings (settings.json) and its resolution
//! from flags and the config file: who places the TXT records (RFC 2136 updates signed with
//! a TSIG key, or hooks), the zone, the resolver and the deadline. These types are the
//! on-disk format. A TSIG secret kept here (taken over from certbot) lives only in
//! settings.json, which is 0600, and `Debug` never shows it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::types::{DomainName, HookStyle};

/// Seconds the records may take to reach every nameserver, when --dns-timeout is not given.
pub const DEFAULT_DNS_TIMEOUT: u64 = 120;
/// The longest --dns-timeout: an hour.
const MAX_DNS_TIMEOUT: u64 = 3600;

/// How DNS-01 challenges are answered, with what each way needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns01 {
    #[serde(flatten)]
    pub provider: DnsProvider,
    /// The zone that holds the records (after CNAMEs); found by SOA lookup when None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<DomainName>,
    /// Where SOA, NS and CNAME lookups go; the system's resolvers when None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<DnsAddr>,
    /// Seconds for the records to reach every nameserver (and for one exchange or hook).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_DNS_TIMEOUT
}

/// Who writes the TXT records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum DnsProvider {
    /// RFC 2136 dynamic updates to the primary server, signed with a TSIG key.
    Rfc2136 { server: DnsAddr, tsig: Tsig },
    /// User commands, called the certbot or the lego way.
    Hook {
        hook: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cleanup_hook: Option<String>,
        #[serde(default)]
        style: HookStyle,
    },
}

/// Where the TSIG key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tsig {
    /// A key file in BIND's format, read at each run (so a rotated key is picked up).
    File { key_file: PathBuf },
    /// The key itself, taken over from certbot's rfc2136 credentials file.
    Inline {
        name: String,
        algorithm: String,
        secret: Secret,
    },
}

/// A secret that no log line, error or `Debug` output shows.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// HOST[:PORT] of a DNS server (port 53 unless given): an IP address or a host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsAddr {
    pub host: String,
    pub port: u16,
    /// Whether the port was written out (a resolver's port then applies to nameservers too).
    pub explicit_port: bool,
}

impl DnsAddr {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{raw:?} is not a DNS server; give HOST or HOST:PORT, like 192.0.2.53 or ns1.mon-app.fr:53"
            )
        };
        if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
            return Ok(Self {
                host: ip.to_string(),
                port: 53,
                explicit_port: false,
            });
        }
        if let Ok(addr) = raw.parse::<std::net::SocketAddr>() {
            if addr.port() == 0 {
                return Err(bad());
            }
            return Ok(Self {
                host: addr.ip().to_string(),
                port: addr.port(),
                explicit_port: true,
            });
        }
        let (host, port) = match raw.rsplit_once(':') {
            Some((host, port)) => (
                host,
                Some(
                    port.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(bad)?,
                ),
            ),
            None => (raw, None),
        };
        DomainName::parse_local(host).map_err(|_| bad())?;
        if host.contains(['[', ']', '*']) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(53),
            explicit_port: port.is_some(),
        })
    }
}

impl fmt::Display for DnsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.explicit_port, self.host.contains(':')) {
            (false, _) => f.write_str(&self.host),
            (true, true) => write!(f, "[{}]:{}", self.host, self.port),
            (true, false) => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl TryFrom<String> for DnsAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<DnsAddr> for String {
    fn from(a: DnsAddr) -> String {
        a.to_string()
    }
}

/// The DNS-01 values given on the command line or in the config file, not yet checked.
#[derive(Debug, Default, Clone)]
pub struct DnsFlags<'a> {
    pub server: Option<&'a str>,
    pub tsig_key: Option<&'a Path>,
    pub hook: Option<&'a str>,
    pub cleanup_hook: Option<&'a str>,
    pub style: Option<HookStyle>,
    pub zone: Option<&'a str>,
    pub resolver: Option<&'a str>,
    pub timeout: Option<u64>,
}

impl DnsFlags<'_> {
    /// The first DNS-01 flag given, to name it when no name uses DNS-01.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.server.is_some(), "--dns-server"),
            (self.tsig_key.is_some(), "--tsig-key"),
            (self.hook.is_some(), "--dns-hook"),
            (self.cleanup_hook.is_some(), "--dns-cleanup-hook"),
            (self.style.is_some(), "--dns-hook-style"),
            (self.zone.is_some(), "--dns-zone"),
            (self.resolver.is_some(), "--dns-resolver"),
            (self.timeout.is_some(), "--dns-timeout"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// The DNS-01 setting these flags make; a message naming the flag when they make none.
    /// The key file is only located here: `challenge::dns01::check` reads it.
    pub fn resolve(&self) -> Result<Dns01, String> {
        const HOW: &str = "--challenge dns-01 needs --dns-server HOST --tsig-key FILE (RFC 2136 \
                           updates), or --dns-hook CMD --dns-cleanup-hook CMD";
        let provider = match (self.server, self.hook) {
            (Some(_), Some(_)) => {
                return Err(
                    "--dns-server and --dns-hook both given: choose RFC 2136 updates or hooks"
                        .into(),
                );
            }
            (None, None) => return Err(HOW.into()),
            (Some(server), None) => {
                if let Some(flag) = [
                    (self.cleanup_hook.is_some(), "--dns-cleanup-hook"),
                    (self.style.is_some(), "--dns-hook-style"),
                ]
                .into_iter()
                .find_map(|(given, flag)| given.then_some(flag))
                {
                    return Err(format!("{flag} applies to --dns-hook, not to --dns-server"));
                }
                let server = DnsAddr::parse(server).map_err(|e| format!("--dns-server {e}"))?;
                let key_file = self.tsig_key.ok_or(
                    "--dns-server needs --tsig-key FILE: the TSIG key the server accepts \
                     updates with (`tsig-keygen -a hmac-sha256 NAME` makes one)",
                )?;
                let key_file =
                    std::path::absolute(key_file).unwrap_or_else(|_| key_file.to_path_buf());
                DnsProvider::Rfc2136 {
                    server,
                    tsig: Tsig::File { key_file },
                }
            }
            (None, Some(hook)) => {
                if self.tsig_key.is_some() {
                    return Err("--tsig-key applies to --dns-server, not to --dns-hook".into());
                }
                let style = self.style.unwrap_or_default();
                let nonempty = |flag: &str, cmd: &str| match cmd.trim().is_empty() {
                    true => Err(format!("{flag} is empty; give a command")),
                    false => Ok(cmd.to_owned()),
                };
                let hook = nonempty("--dns-hook", hook)?;
                let cleanup_hook = match (self.cleanup_hook, style) {
                    (Some(cmd), _) => Some(nonempty("--dns-cleanup-hook", cmd)?),
                    (None, HookStyle::Lego) => None,
                    (None, HookStyle::Certbot) => {
                        return Err(
                            "--dns-hook needs --dns-cleanup-hook CMD, which removes the \
                                    record again (certctl leaves no record behind)"
                                .into(),
                        );
                    }
                };
                DnsProvider::Hook {
                    hook,
                    cleanup_hook,
                    style,
                }
            }
        };
        let zone = match self.zone {
            None => None,
            Some(raw) => {
                let zone = DomainName::parse_local(raw.trim_end_matches('.'))
                    .ok()
                    .filter(|z| !z.is_ip() && !z.is_wildcard())
                    .ok_or_else(|| {
                        format!("--dns-zone {raw:?} is not a DNS zone name like mon-app.fr")
                    })?;
                Some(zone)
            }
        };
        let resolver = self
            .resolver
            .map(|raw| DnsAddr::parse(raw).map_err(|e| format!("--dns-resolver {e}")))
            .transpose()?;
        let timeout = self.timeout.unwrap_or(DEFAULT_DNS_TIMEOUT);
        if !(1..=MAX_DNS_TIMEOUT).contains(&timeout) {
            return Err(format!(
                "--dns-timeout {timeout}: give a number of seconds from 1 to {MAX_DNS_TIMEOUT}"
            ));
        }
        Ok(Dns01 {
            provider,
            zone,
            resolver,
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Challenge;

    #[test]
    fn dns_settings_round_trip_through_settings_json() {
        let flags = DnsFlags {
            server: Some("127.0.0.1:5353"),
            tsig_key: Some(Path::new("/etc/certctl/tsig.key")),
            zone: Some("mon-app.fr."),
            resolver: Some("127.0.0.1:5353"),
            ..Default::default()
        };
        let challenge = Challenge::Dns01(flags.resolve().unwrap());
        let json = serde_json::to_value(&challenge).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "dns-01", "provider": "rfc2136", "server": "127.0.0.1:5353",
                "tsig": {"key_file": "/etc/certctl/tsig.key"}, "zone": "mon-app.fr",
                "resolver": "127.0.0.1:5353", "timeout": 120,
            })
        );
        let back: Challenge = serde_json::from_value(json).unwrap();
        assert_eq!(back, challenge);

        let inline: Challenge = serde_json::from_value(serde_json::json!({
            "kind": "dns-01", "provider": "rfc2136", "server": "ns1.mon-app.fr",
            "tsig": {"name": "k", "algorithm": "hmac-sha512", "secret": "c2VjcmV0"},
        }))
        .unwrap();
        let Challenge::Dns01(dns) = &inline else {
            panic!("{inline:?}")
        };
        assert_eq!(dns.timeout, DEFAULT_DNS_TIMEOUT);
        assert!(
            !format!("{inline:?}").contains("c2VjcmV0"),
            "Debug shows the secret"
        );

        let hook = DnsFlags {
            hook: Some("/usr/local/bin/dns"),
            style: Some(HookStyle::Lego),
            ..Default::default()
        };
        let json = serde_json::to_value(Challenge::Dns01(hook.resolve().unwrap())).unwrap();
        assert_eq!(json["provider"], "hook");
        assert_eq!(json["style"], "lego");
    }

    #[test]
    fn incomplete_dns_flags_say_what_is_missing() {
        let cases: Vec<(DnsFlags, &str)> = vec![
            (DnsFlags::default(), "--dns-server HOST --tsig-key FILE"),
            (
                DnsFlags {
                    server: Some("ns1.a.fr"),
                    ..Default::default()
                },
                "--tsig-key FILE",
            ),
            (
                DnsFlags {
                    hook: Some("x"),
                    ..Default::default()
                },
                "--dns-cleanup-hook",
            ),
            (
                DnsFlags {
                    server: Some("ns1.a.fr"),
                    hook: Some("x"),
                    ..Default::default()
                },
                "both given",
            ),
            (
                DnsFlags {
                    server: Some("ns1.a.fr:0"),
                    tsig_key: Some(Path::new("k")),
                    ..Default::default()
                },
                "HOST:PORT",
            ),
            (
                DnsFlags {
                    hook: Some("x"),
                    cleanup_hook: Some("y"),
                    timeout: Some(0),
                    ..Default::default()
                },
                "--dns-timeout 0",
            ),
        ];
        for (flags, expected) in cases {
            let err = flags.resolve().unwrap_err();
            assert!(err.contains(expected), "{flags:?}: {err}");
        }
    }

    #[test]
    fn dns_addresses_take_names_ips_and_ports() {
        let a = DnsAddr::parse("ns1.mon-app.fr").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.to_string().as_str()),
            ("ns1.mon-app.fr", 53, "ns1.mon-app.fr")
        );
        let b = DnsAddr::parse("[::1]:5353").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.to_string().as_str()),
            ("::1", 5353, "[::1]:5353")
        );
        assert_eq!(DnsAddr::parse("127.0.0.1").unwrap().port, 53);
        for bad in ["", "a b", "ns1:x", "ns1.fr:70000", "http://x", "*.a.fr"] {
            assert!(DnsAddr::parse(bad).is_err(), "{bad:?}");
        }
    }
}
