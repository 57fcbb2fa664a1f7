//! The domain's nouns, shared by every room: names, servers, key types, revocation reasons,
//! challenge kinds. Each is parsed once from raw text and cannot hold an invalid value;
//! several are also part of the on-disk format (settings.json), so their serde form is stable.
//! Nothing here reads files, the environment or the network.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

mod domain;
pub use domain::{DomainName, MAX_NAMES};

/// Longest certificate name, in bytes.
pub const MAX_CERT_NAME: usize = 200;

/// The name of a managed certificate: its state directory and its bundle `<name>.pem`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertName(String);

impl CertName {
    /// Whether `raw` is a usable name (what `parse` accepts), without making one.
    pub fn is_valid(raw: &str) -> bool {
        !raw.is_empty()
            && raw.len() <= MAX_CERT_NAME
            && !raw.starts_with(['.', '-'])
            && raw.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            })
            && !raw.contains("..")
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        if Self::is_valid(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a usable certificate name; use lowercase letters, digits, '.', '-' and '_' (like mon-app.fr)"
            ))
        }
    }

    /// The default name: the first domain, with a wildcard's `*.` dropped (and an IPv6
    /// address's ':' made '_'). A domain name may be longer than a certificate name (253
    /// bytes against 200, which keeps `.<name>.pem.certctl-tmp-<pid>` within a file name's
    /// 255): such a domain needs `--name`.
    pub fn from_domain(domain: &DomainName) -> Result<Self, String> {
        let name = domain.as_str().trim_start_matches("*.").replace(':', "_");
        Self::parse(&name).map_err(|_| {
            format!(
                "{domain} is too long to name the certificate and its bundle ({} characters, \
                 {MAX_CERT_NAME} at most); choose a shorter name with --name",
                name.len()
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CertName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<CertName> for String {
    fn from(n: CertName) -> String {
        n.0
    }
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where certificates come from: an ACME directory URL (https).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Server(String);

pub const KNOWN_SERVERS: &[(&str, &str)] = &[
    (
        "letsencrypt",
        "https://acme-v02.api.letsencrypt.org/directory",
    ),
    (
        "letsencrypt-staging",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ),
    ("zerossl", "https://acme.zerossl.com/v2/DV90"),
    ("google", "https://dv.acme-v02.api.pki.goog/directory"),
    ("buypass", "https://api.buypass.com/acme/directory"),
];

impl Server {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some((_, url)) = KNOWN_SERVERS.iter().find(|(name, _)| *name == raw) {
            return Ok(Self((*url).to_owned()));
        }
        let names: Vec<&str> = KNOWN_SERVERS.iter().map(|(n, _)| *n).collect();
        let names = names.join(", ");
        if raw == "local" {
            return Ok(Self("local".to_owned()));
        }
        let uri: http::Uri = raw
            .parse()
            .map_err(|_| format!("{raw:?} is neither an https URL nor one of: {names}"))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(format!(
                "{raw:?} is neither an https URL nor one of: {names} (ACME directories are served over https)"
            ));
        }
        let authority = uri.authority().map_or("", |a| a.as_str());
        if authority.contains('@') {
            return Err(format!(
                "{raw:?} carries a user name or password; an ACME directory URL has none"
            ));
        }
        if authority.rsplit_once(':').is_some_and(|(host, port)| {
            !host.ends_with(']') && !host.contains(':') && port.parse::<u16>().is_err()
                || host.ends_with(']') && port.parse::<u16>().is_err()
        }) {
            return Err(format!(
                "{raw:?} has a port that is not a number from 1 to 65535"
            ));
        }
        if uri.port_u16() == Some(0) {
            return Err(format!("{raw:?} has port 0; give a port from 1 to 65535"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn url(&self) -> &str {
        &self.0
    }

    /// The local CA (`--server local`): certctl signs, no network.
    pub fn is_local(&self) -> bool {
        self.0 == "local"
    }

    /// Let's Encrypt production: `renew --dry-run` switches it to staging.
    pub fn staging_counterpart(&self) -> Option<Server> {
        (self.0 == KNOWN_SERVERS[0].1).then(|| Server(KNOWN_SERVERS[1].1.to_owned()))
    }
}

/// Let's Encrypt production, the default CA.
impl Default for Server {
    fn default() -> Self {
        Self(KNOWN_SERVERS[0].1.to_owned())
    }
}

impl TryFrom<String> for Server {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Server> for String {
    fn from(s: Server) -> String {
        s.0
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the names of a request: each valid, no duplicates, at most `MAX_NAMES`.
pub fn parse_domains(raw: &[String], local: bool) -> Result<Vec<DomainName>, String> {
    if raw.is_empty() {
        return Err("no domain given; name at least one, like: certctl request mon-app.fr".into());
    }
    if raw.len() > MAX_NAMES {
        return Err(format!(
            "{} names given; a certificate holds at most {MAX_NAMES}",
            raw.len()
        ));
    }
    let mut domains: Vec<DomainName> = Vec::with_capacity(raw.len());
    for r in raw {
        let d = if local {
            DomainName::parse_local(r)?
        } else {
            DomainName::parse_acme(r)?
        };
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    Ok(domains)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Ec256,
    Ec384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    /// certctl's own responder on --http-addr, only while an order runs
    Standalone,
    /// token files under --webroot/.well-known/acme-challenge/
    Webroot,
    /// the proxy answers from the account thumbprint (see `certctl account thumbprint`)
    Stateless,
    /// a TXT record under _acme-challenge, by RFC 2136 (--dns-server, --tsig-key) or hooks
    #[value(name = "dns-01")]
    #[serde(rename = "dns-01")]
    Dns01,
    /// certctl answers acme-tls/1 on --tls-alpn-addr, behind HAProxy's TCP frontend on 443
    #[value(name = "tls-alpn-01")]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

/// How DNS-01 hooks are called: certbot's manual hooks (CERTBOT_* environment) or lego's
/// exec provider (`present|cleanup FQDN VALUE` as arguments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookStyle {
    /// --dns-hook and --dns-cleanup-hook with CERTBOT_DOMAIN, CERTBOT_VALIDATION, ...
    #[default]
    Certbot,
    /// one program called as `CMD present FQDN VALUE` and `CMD cleanup FQDN VALUE`
    Lego,
}

/// RFC 5280 reason codes (the discriminants are the codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RevocationReason {
    Unspecified = 0,
    Keycompromise = 1,
    Superseded = 4,
    Cessationofoperation = 5,
    Affiliationchanged = 3,
}

/// Where a HAProxy admin socket listens: a unix socket path, or HOST:PORT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Socket {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Socket {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err(
                "--haproxy-socket is empty; give the admin socket's path or HOST:PORT".into(),
            );
        }
        if raw.contains('/') {
            return Ok(Self::Unix(PathBuf::from(raw)));
        }
        raw.parse().map(Self::Tcp).map_err(|_| {
            format!("--haproxy-socket {raw:?} is neither a socket path (with a '/') nor an IP:PORT")
        })
    }
}

impl TryFrom<String> for Socket {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Socket> for String {
    fn from(s: Socket) -> String {
        s.to_string()
    }
}

impl fmt::Display for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "{}", p.display()),
            Self::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Names as a person reads them: space-separated.
pub fn join(domains: &[DomainName]) -> String {
    domains
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_lowercased_and_punycoded() {
        assert_eq!(
            DomainName::parse("Mon-App.FR").unwrap().as_str(),
            "mon-app.fr"
        );
        assert_eq!(
            DomainName::parse("café.fr").unwrap().as_str(),
            "xn--caf-dma.fr"
        );
        assert_eq!(
            DomainName::parse("*.mon-app.fr").unwrap().as_str(),
            "*.mon-app.fr"
        );
        assert!(DomainName::parse("*.mon-app.fr").unwrap().is_wildcard());
    }

    #[test]
    fn bad_domain_names_are_refused() {
        let long_label = format!("{}.fr", "a".repeat(64));
        for bad in [
            "",
            " ",
            "a b.fr",
            "a/b.fr",
            "..",
            "a..b",
            ".a.fr",
            "a.fr.",
            "localhost",
            "-a.fr",
            "a-.fr",
            "a_b.fr",
            "xn--zz.fr",
            "xn--0.aa",
            "1.2.3.4",
            "http://a.fr",
            "a.fr:443",
            "a\u{7}.fr",
            long_label.as_str(),
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}.fr", ["abcdefghij"; 25].join("."));
        assert!(DomainName::parse(&long).is_err());
    }

    #[test]
    fn cert_names_cannot_escape_their_directory() {
        for bad in ["", "..", "a/b", "../x", ".hidden", "A", "a b"] {
            assert!(CertName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CertName::parse("mon-app.fr").is_ok());
    }

    #[test]
    fn servers_resolve_short_names_and_require_https() {
        assert_eq!(
            Server::parse("letsencrypt").unwrap().url(),
            KNOWN_SERVERS[0].1
        );
        assert!(Server::parse("https://127.0.0.1:14000/dir").is_ok());
        assert!(Server::parse("local").unwrap().is_local());
        for bad in [
            "http://x/dir",
            "nope",
            "ftp://x",
            "https://",
            "https://u@127.0.0.1/dir",
            "https://127.0.0.1:99999/dir",
            "https://127.0.0.1:0/dir",
            "https://[::1]:70000/dir",
        ] {
            assert!(Server::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_local_ca_also_takes_ip_addresses_and_single_labels() {
        assert_eq!(
            DomainName::parse_local("10.0.0.5").unwrap().as_str(),
            "10.0.0.5"
        );
        assert!(DomainName::parse_local("10.0.0.5").unwrap().is_ip());
        assert_eq!(DomainName::parse_local("::1").unwrap().as_str(), "::1");
        assert_eq!(
            DomainName::parse_local("Backend1").unwrap().as_str(),
            "backend1"
        );
        assert_eq!(
            DomainName::parse_local("api.lan").unwrap().as_str(),
            "api.lan"
        );
        for bad in ["", "a b", "a/b", "-x", "a..b"] {
            assert!(DomainName::parse_local(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            CertName::from_domain(&DomainName::parse_local("::1").unwrap())
                .unwrap()
                .as_str(),
            "__1"
        );
    }

    #[test]
    fn an_acme_ca_takes_ip_addresses_but_no_wildcard_on_them() {
        let names = [
            "203.0.113.7".to_owned(),
            "2001:DB8:0::1".to_owned(),
            "*.mon-app.fr".to_owned(),
        ];
        let parsed = parse_domains(&names, false).unwrap();
        let texts: Vec<&str> = parsed.iter().map(DomainName::as_str).collect();
        assert_eq!(texts, ["203.0.113.7", "2001:db8::1", "*.mon-app.fr"]);
        assert!(parsed[0].is_ip() && parsed[1].is_ip() && !parsed[2].is_ip());
        for bad in [
            "*.1.2.3.4",
            "*.2001:db8::1",
            "[2001:db8::1]",
            "1.2.3",
            "1.2.3.4:80",
        ] {
            assert!(DomainName::parse_acme(bad).is_err(), "{bad:?}");
            assert!(DomainName::parse_local(bad).is_err(), "{bad:?}");
        }
        let err = DomainName::parse_acme("*.1.2.3.4").unwrap_err();
        assert!(err.contains("wildcard on an IP address"), "{err}");
        // the store directory and bundle of an IPv6 certificate: no ':' (HAProxy's crt-list
        // commands take `file:line`)
        let v6 = CertName::from_domain(&parsed[1]).unwrap();
        assert_eq!(v6.as_str(), "2001_db8__1");
    }

    #[test]
    fn too_many_names_and_duplicates() {
        let many: Vec<String> = (0..101).map(|i| format!("n{i}.mon-app.fr")).collect();
        assert!(parse_domains(&many, false).is_err());
        let dup = vec!["a.fr".to_owned(), "A.fr".to_owned()];
        assert_eq!(parse_domains(&dup, false).unwrap().len(), 1);
    }
}
