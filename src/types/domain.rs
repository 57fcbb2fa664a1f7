//! A DNS name or an IP address as it goes into an order, parsed once (RFC 1123 labels,
//! punycode, RFC 8738 addresses), with its serde form as stored in settings.json.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Let's Encrypt and most CAs refuse orders with more names than this.
pub const MAX_NAMES: usize = 100;

/// A DNS name as it goes into an order: lowercase ASCII (punycode), RFC 1123 labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("empty name".into());
        }
        if let Some(c) = raw.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{:?} contains {}; a name is one word like mon-app.fr",
                raw,
                if c.is_whitespace() {
                    "a space"
                } else {
                    "a control character"
                }
            ));
        }
        if raw.contains(['/', '\\']) {
            return Err(format!(
                "{raw:?} contains a path separator; give the bare host name, without scheme or path"
            ));
        }
        if raw.contains(':') {
            return Err(format!(
                "{raw:?} contains ':'; give the bare host name, without scheme or port"
            ));
        }
        if raw.ends_with('.') {
            return Err(format!("{raw:?} ends with a dot; drop the trailing dot"));
        }
        if raw.starts_with('.') || raw.contains("..") {
            return Err(format!(
                "{raw:?} has an empty label (a leading dot or two dots in a row)"
            ));
        }
        let (wildcard, rest) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if wildcard && rest.parse::<std::net::IpAddr>().is_ok() {
            return Err(format!(
                "{raw:?} puts a wildcard on an IP address; an IP address is named alone: give {rest}"
            ));
        }
        let ascii = idna::domain_to_ascii(rest).map_err(|_| {
            format!("{raw:?} is not a valid domain name (bad characters or punycode)")
        })?;
        if ascii.len() > 253 {
            return Err(format!("{raw:?} is longer than 253 characters"));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(format!(
                "{raw:?} has a single label; certificates name fully qualified hosts like mon-app.fr"
            ));
        }
        for label in &labels {
            check_label(raw, label)?;
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "{raw:?} ends with a numeric label: it is neither a domain name nor an IP address"
            ));
        }
        Ok(Self(if wildcard {
            format!("*.{ascii}")
        } else {
            ascii
        }))
    }

    /// A name for an ACME CA: a domain name, or an IP address (RFC 8738), IPv6 without
    /// brackets; an address is kept in its canonical form (`2001:db8::1`).
    pub fn parse_acme(raw: &str) -> Result<Self, String> {
        if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
            return Ok(Self(ip.to_string()));
        }
        if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            if inner.parse::<std::net::Ipv6Addr>().is_ok() {
                return Err(format!(
                    "{raw:?}: give an IPv6 address without brackets, like {inner}"
                ));
            }
        }
        Self::parse(raw)
    }

    /// A name for the local CA: also IP addresses and single-label hosts (closed networks
    /// name backends that way); still no spaces, separators or control characters.
    pub fn parse_local(raw: &str) -> Result<Self, String> {
        if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
            return Ok(Self(ip.to_string()));
        }
        let single_label = !raw.trim_start_matches("*.").contains('.');
        if single_label && !raw.is_empty() && raw.len() <= 63 {
            let lower = raw.to_ascii_lowercase();
            check_label(raw, &lower)?;
            return Ok(Self(lower));
        }
        Self::parse(raw)
    }

    pub fn is_ip(&self) -> bool {
        self.0.parse::<std::net::IpAddr>().is_ok()
    }

    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_label(raw: &str, label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err(format!(
            "{raw:?} has an empty label (two dots in a row, or a leading dot)"
        ));
    }
    if label.len() > 63 {
        return Err(format!(
            "{raw:?} has a label longer than 63 bytes: {label:?}"
        ));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "{raw:?} has characters other than letters, digits and '-' in {label:?}"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "{raw:?} has a label that starts or ends with '-': {label:?}"
        ));
    }
    Ok(())
}

/// Stored names were checked when requested; reading accepts every form any CA takes
/// (the local CA's IP addresses and single labels included).
impl TryFrom<String> for DomainName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse_local(&s)
    }
}

impl From<DomainName> for String {
    fn from(d: DomainName) -> String {
        d.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
