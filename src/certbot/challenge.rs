//! certbot's authenticators as certctl challenges: standalone and webroot (HTTP-01), the
//! dns-rfc2136 plugin (its credentials file: server, port, key name, secret, algorithm) and
//! manual hooks (DNS-01 the certbot way). Reads certbot's files only; says what it took over
//! and what not.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use super::{RenewalConf, Value};
use crate::settings::{
    Challenge, DEFAULT_DNS_TIMEOUT, DEFAULT_HTTP_ADDR, Dns01, DnsAddr, DnsProvider, Secret, Tsig,
};
use crate::types::{DomainName, HookStyle};

/// certbot's authenticator, as a certctl challenge.
pub(super) fn challenge(
    conf: &RenewalConf,
    domains: &[DomainName],
    taken_over: &mut Vec<String>,
    not_taken_over: &mut Vec<String>,
) -> Result<Challenge, String> {
    let params = |key: &str| conf.value("renewalparams", key);
    let authenticator = params("authenticator").unwrap_or("standalone");
    match authenticator {
        "standalone" => {
            let port = params("http01_port").filter(|p| !p.is_empty());
            let http_addr = match port {
                Some(port) => {
                    let port: u16 = port
                        .parse()
                        .map_err(|_| format!("http01_port {port:?} is not a port number"))?;
                    let ip = match params("http01_address").filter(|a| !a.is_empty()) {
                        Some(a) => a
                            .parse::<IpAddr>()
                            .map_err(|_| format!("http01_address {a:?} is not an IP address"))?,
                        // certbot's empty address: every interface
                        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    };
                    let addr = SocketAddr::new(ip, port);
                    taken_over.push(format!(
                        "standalone HTTP-01 on {addr} (certbot's http01_address and http01_port)"
                    ));
                    addr
                }
                None => {
                    not_taken_over.push(format!(
                        "certbot's standalone port 80 (the renewal file sets no \
                         http01_port): certctl's responder listens on {DEFAULT_HTTP_ADDR}, its \
                         default, where the proxy must forward /.well-known/acme-challenge/"
                    ));
                    DEFAULT_HTTP_ADDR
                        .parse()
                        .map_err(|_| "the default responder address".to_owned())?
                }
            };
            Ok(Challenge::Standalone { http_addr })
        }
        "webroot" => {
            let map = conf.section("renewalparams/webroot_map");
            let mut roots: Vec<&str> = domains
                .iter()
                .filter_map(|d| map.and_then(|m| m.get(d.as_str())).map(Value::first))
                .collect();
            if roots.is_empty() {
                roots.extend(
                    conf.list("renewalparams", "webroot_path")
                        .into_iter()
                        .take(1),
                );
            }
            roots.sort_unstable();
            roots.dedup();
            let root = match roots.as_slice() {
                [] => return Err("webroot authenticator without webroot_path".into()),
                [root] => *root,
                _ => {
                    return Err(format!(
                        "its names are served from different webroots ({}); certctl uses one \
                         webroot per certificate: `certctl request` them in groups instead",
                        roots.join(", ")
                    ));
                }
            };
            let challenge = Challenge::resolve(
                Some(crate::types::ChallengeKind::Webroot),
                None,
                Some(Path::new(root)),
                &Default::default(),
            )?;
            taken_over.push(format!("webroot HTTP-01 in {root}"));
            Ok(challenge)
        }
        "dns-rfc2136" => rfc2136(conf, taken_over, not_taken_over),
        "manual" => manual(conf, domains, taken_over),
        other => Err(format!(
            "certbot answers its challenges with the {other} authenticator; certctl answers \
             HTTP-01 with its own responder (standalone), a webroot or the proxy (stateless), \
             and DNS-01 by RFC 2136 or hooks: keep it with certbot, or `certctl request` it \
             with one of those"
        )),
    }
}

/// The dns-rfc2136 plugin: its credentials file holds the server and the key. Lookups go to
/// that server as certbot's own SOA query does (so a lab or closed network keeps working);
/// the secret is kept in the certificate's settings.json (0600).
fn rfc2136(
    conf: &RenewalConf,
    taken_over: &mut Vec<String>,
    not_taken_over: &mut Vec<String>,
) -> Result<Challenge, String> {
    let params = |key: &str| conf.value("renewalparams", key);
    let path = params("dns_rfc2136_credentials")
        .filter(|p| !p.is_empty())
        .ok_or("the dns-rfc2136 authenticator without dns_rfc2136_credentials")?;
    let text = fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let ini = credentials(&text);
    let field = |key: &str| -> Result<&str, String> {
        ini.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{path} has no {key}"))
    };
    let host = field("dns_rfc2136_server")?;
    let port = ini
        .iter()
        .find(|(k, _)| *k == "dns_rfc2136_port")
        .map(|(_, v)| *v);
    let raw = match port {
        Some(p) if host.contains(':') => format!("[{host}]:{p}"),
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let server = DnsAddr::parse(&raw).map_err(|e| format!("{path}: dns_rfc2136_server {e}"))?;
    let name = field("dns_rfc2136_name")?;
    let algorithm = ini
        .iter()
        .find(|(k, _)| *k == "dns_rfc2136_algorithm")
        .map_or("HMAC-MD5", |(_, v)| *v);
    let secret = field("dns_rfc2136_secret")?;
    crate::challenge::dns01::TsigKey::from_parts(name, algorithm, secret)
        .map_err(|e| format!("{path}: {e}"))?;
    taken_over.push(format!(
        "DNS-01 by RFC 2136 updates to {server} with the TSIG key {} ({algorithm}) from {path}; \
         its secret is kept in certctl's settings for the certificate (0600), and lookups ask \
         {server} as certbot does",
        name.trim_end_matches('.')
    ));
    if let Some(seconds) = params("dns_rfc2136_propagation_seconds") {
        not_taken_over.push(format!(
            "dns_rfc2136_propagation_seconds = {seconds}: certctl does not sleep, it asks every \
             nameserver of the zone until they serve the record (up to --dns-timeout)"
        ));
    }
    Ok(Challenge::Dns01(Dns01 {
        provider: DnsProvider::Rfc2136 {
            server: server.clone(),
            tsig: Tsig::Inline {
                name: name.trim_end_matches('.').to_owned(),
                algorithm: algorithm.to_ascii_lowercase(),
                secret: Secret::new(secret.to_owned()),
            },
        },
        zone: None,
        resolver: Some(server),
        timeout: DEFAULT_DNS_TIMEOUT,
    }))
}

/// `key = value` lines of certbot's credentials file (an ini without sections).
fn credentials(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '[']))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches(['"', '\''])))
        .collect()
}

/// The manual authenticator with an auth hook: DNS-01 through the same hooks, certbot style,
/// when certbot answered DNS-01 with them (pref_challs, or a wildcard).
fn manual(
    conf: &RenewalConf,
    domains: &[DomainName],
    taken_over: &mut Vec<String>,
) -> Result<Challenge, String> {
    let params = |key: &str| {
        conf.value("renewalparams", key)
            .filter(|v| !v.trim().is_empty())
    };
    let challenges = conf.list("renewalparams", "pref_challs");
    let dns = challenges.iter().any(|c| c.eq_ignore_ascii_case("dns-01"))
        || domains.iter().any(DomainName::is_wildcard);
    if !dns {
        return Err(
            "certbot answers HTTP-01 by hand or with manual hooks; certctl answers \
                    HTTP-01 itself: `certctl request` it with --challenge standalone, webroot or \
                    stateless"
                .into(),
        );
    }
    let hook = params("manual_auth_hook").ok_or(
        "the manual authenticator without manual_auth_hook needs a person at each renewal; \
         `certctl request` it with --challenge dns-01 and --dns-server or --dns-hook",
    )?;
    let cleanup = params("manual_cleanup_hook");
    taken_over.push(format!(
        "DNS-01 through certbot's manual hooks: auth hook {hook:?}{}",
        cleanup.map_or_else(String::new, |c| format!(", cleanup hook {c:?}"))
    ));
    Ok(Challenge::Dns01(Dns01 {
        provider: DnsProvider::Hook {
            hook: hook.to_owned(),
            cleanup_hook: cleanup.map(str::to_owned),
            style: HookStyle::Certbot,
        },
        zone: None,
        resolver: None,
        timeout: DEFAULT_DNS_TIMEOUT,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2136_credentials_become_a_stored_dns01_setting() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("rfc2136.ini");
        fs::write(
            &ini,
            "# certbot\ndns_rfc2136_server = 192.0.2.53\ndns_rfc2136_port = 5353\n\
             dns_rfc2136_name = keyname.\ndns_rfc2136_secret = c2VjcmV0\n\
             dns_rfc2136_algorithm = HMAC-SHA512\n",
        )
        .unwrap();
        let conf = RenewalConf::parse(&format!(
            "[renewalparams]\nauthenticator = dns-rfc2136\ndns_rfc2136_credentials = {}\n\
             dns_rfc2136_propagation_seconds = 60\n",
            ini.display()
        ))
        .unwrap();
        let (mut taken, mut not) = (Vec::new(), Vec::new());
        let wild = [DomainName::parse("*.a.test").unwrap()];
        let taken_over = challenge(&conf, &wild, &mut taken, &mut not).unwrap();
        let json = serde_json::to_value(&taken_over).unwrap();
        assert_eq!(json["server"], "192.0.2.53:5353");
        assert_eq!(json["resolver"], "192.0.2.53:5353");
        assert_eq!(json["tsig"]["name"], "keyname");
        assert_eq!(json["tsig"]["algorithm"], "hmac-sha512");
        assert!(!taken.join(" ").contains("c2VjcmV0") && !not.join(" ").contains("c2VjcmV0"));
        assert!(not[0].contains("does not sleep"), "{not:?}");

        fs::write(&ini, "dns_rfc2136_server = 192.0.2.53\ndns_rfc2136_name = k\ndns_rfc2136_secret = c2VjcmV0\ndns_rfc2136_algorithm = HMAC-SHA1\n").unwrap();
        let err = challenge(&conf, &wild, &mut taken, &mut not).unwrap_err();
        assert!(err.contains("too weak"), "{err}");
    }

    #[test]
    fn manual_hooks_are_taken_over_for_dns01_only() {
        let conf = |challs: &str| {
            RenewalConf::parse(&format!(
                "[renewalparams]\nauthenticator = manual\nmanual_auth_hook = /etc/le/auth.sh\n\
                 manual_cleanup_hook = /etc/le/clean.sh\npref_challs = {challs}\n"
            ))
            .unwrap()
        };
        let plain = [DomainName::parse("a.test").unwrap()];
        let (mut taken, mut not) = (Vec::new(), Vec::new());
        let dns = challenge(&conf("dns-01,"), &plain, &mut taken, &mut not).unwrap();
        let json = serde_json::to_value(&dns).unwrap();
        assert_eq!(json["provider"], "hook");
        assert_eq!(json["hook"], "/etc/le/auth.sh");
        assert_eq!(json["cleanup_hook"], "/etc/le/clean.sh");
        let http = challenge(&conf("http-01,"), &plain, &mut taken, &mut not);
        assert!(http.unwrap_err().contains("HTTP-01"));
    }
}
