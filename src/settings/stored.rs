//! What is stored per certificate (settings.json): the certificate's part and this host's
//! part, the challenge setting and the hooks. These types are the on-disk format: a field
//! renamed here breaks existing state directories.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dns::{Dns01, DnsFlags};
use super::{DEFAULT_HTTP_ADDR, DEFAULT_TLS_ALPN_ADDR};
use crate::types::{ChallengeKind, DomainName, KeyType, Server, Socket};

/// What is stored for a certificate, so that `renew` repeats it with no flags. Two parts:
/// what belongs to the certificate (shared by every host that serves it) and what belongs to
/// the host that deploys it. On disk both sit side by side in one flat settings.json, as
/// before the split, so existing state keeps working; fields a newer certctl wrote there
/// are kept as they are when this one rewrites the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSettings {
    #[serde(flatten)]
    pub cert: CertConfig,
    #[serde(flatten)]
    pub host: HostConfig,
    /// Every other field of the file (last: the parts above take theirs first).
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The certificate's own settings: names, key, CA, how challenges are answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertConfig {
    pub domains: Vec<DomainName>,
    pub key_type: KeyType,
    pub server: Server,
    pub challenge: Challenge,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Local CA only: lifetime in days, and the clientAuth usage for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_auth: bool,
    /// Names answered another way than `challenge` (`--challenge NAME=HOW`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub challenges: BTreeMap<DomainName, Challenge>,
    /// The CA's profile (`--profile`), sent with every order, renewals included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The chain whose top names this CA (`--preferred-chain`), when the CA offers several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_chain: Option<String>,
}

impl CertConfig {
    /// How the challenge for `name` is answered.
    pub fn challenge_for(&self, name: &DomainName) -> &Challenge {
        self.challenges.get(name).unwrap_or(&self.challenge)
    }
}

/// This host's settings for the certificate: trust for the CA, hooks, proxies to push to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    #[serde(default)]
    pub hooks: Hooks,
    /// HAProxy admin sockets that receive the certificate without a reload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub haproxy_sockets: Vec<Socket>,
    /// Where this certificate's bundle is written (None: the ssl dir of the run, as
    /// before this was stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_dir: Option<PathBuf>,
    /// Files written for services that terminate TLS themselves.
    #[serde(default, skip_serializing_if = "Outputs::is_empty")]
    pub outputs: Outputs,
}

/// `--cert-file`, `--key-file`, `--chain-file`, `--fullchain-file` (absolute paths), with
/// `--owner USER:GROUP` and `--mode` (octal) for all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outputs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullchain_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

impl Outputs {
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none()
            && self.key_file.is_none()
            && self.chain_file.is_none()
            && self.fullchain_file.is_none()
    }
}

/// How challenges get answered, with what each way needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Challenge {
    Standalone {
        http_addr: SocketAddr,
    },
    Webroot {
        webroot: PathBuf,
    },
    Stateless,
    #[serde(rename = "dns-01")]
    Dns01(Dns01),
    /// certctl answers `acme-tls/1` on this address while an order runs (RFC 8737).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01 {
        tls_alpn_addr: SocketAddr,
    },
}

impl Challenge {
    pub fn resolve(
        kind: Option<ChallengeKind>,
        http_addr: Option<&str>,
        webroot: Option<&Path>,
        dns: &DnsFlags<'_>,
    ) -> Result<Self, String> {
        match kind.unwrap_or(ChallengeKind::Standalone) {
            ChallengeKind::Dns01 => dns.resolve().map(Self::Dns01),
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
            ChallengeKind::TlsAlpn01 => Self::tls_alpn(None),
        }
    }

    /// tls-alpn-01 on `--tls-alpn-addr` (else the default address).
    pub fn tls_alpn(raw: Option<&str>) -> Result<Self, String> {
        let raw = raw.unwrap_or(DEFAULT_TLS_ALPN_ADDR);
        let tls_alpn_addr = raw.parse().map_err(|_| {
            format!("--tls-alpn-addr {raw:?} is not an address:port like 127.0.0.1:2032")
        })?;
        Ok(Self::TlsAlpn01 { tls_alpn_addr })
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

/// Parses `--haproxy-socket` values (or the config file's), dropping duplicates; `none`
/// stands for no socket (`--haproxy-socket none` clears the stored ones).
pub fn parse_sockets(raw: &[String]) -> Result<Vec<Socket>, String> {
    let mut sockets = Vec::new();
    for r in raw.iter().filter(|r| *r != "none") {
        let socket = Socket::parse(r)?;
        if !sockets.contains(&socket) {
            sockets.push(socket);
        }
    }
    Ok(sockets)
}
