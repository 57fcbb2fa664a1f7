//! Where the state is: the local state directory (the default) or a shared etcd store
//! (`store = "etcd://h1:2379,h2:2379/prefix"` in the config file) with its TLS, user and
//! store-key settings and this node's name. Parsed and checked here, opened by `store`.

use std::path::PathBuf;
use std::time::Duration;

use super::ConfigFile;
use crate::error::BadInput;

/// The default lifetime of an etcd lock's lease: a node that dies loses its locks after it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// Which backend holds the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The state directory (`--state-dir`).
    Files,
    Etcd(Box<EtcdSpec>),
}

/// A shared store on etcd (v3 API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSpec {
    /// `host:port` of each member, as written.
    pub endpoints: Vec<String>,
    /// Every key lives under `<prefix>/`.
    pub prefix: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The AEAD key that seals private keys before they leave this node.
    pub store_key_file: Option<PathBuf>,
    /// This node's name (`node_name`, else the host name).
    pub node: String,
    pub lease_ttl: Duration,
}

impl EtcdSpec {
    /// The endpoints as URLs: https when a CA file is given.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.ca_file.is_some() || self.cert_file.is_some() {
            "https"
        } else {
            "http"
        };
        self.endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect()
    }

    /// Names the store in messages: `etcd h1:2379,h2:2379/prefix`.
    pub fn describe(&self) -> String {
        format!("etcd store {}/{}", self.endpoints.join(","), self.prefix)
    }
}

impl StoreSpec {
    /// `store` from the config file (or `raw`, e.g. `store copy --to`); the etcd keys are
    /// read from the config file too. Errors name the key (bad input).
    pub fn resolve(config: &ConfigFile) -> anyhow::Result<Self> {
        match &config.store {
            None => Ok(Self::Files),
            Some(raw) => Self::parse(raw, config)
                .map_err(|e| BadInput::new(format!("{}: {e}", config.source("store"))).into()),
        }
    }

    /// Parses `etcd://h1:2379,h2:2379/prefix`, `files` (or a plain directory: files).
    pub fn parse(raw: &str, config: &ConfigFile) -> Result<Self, String> {
        if raw == "files" {
            return Ok(Self::Files);
        }
        let Some(rest) = raw.strip_prefix("etcd://") else {
            return Err(format!(
                "{raw:?} is not a store; give etcd://HOST:PORT[,HOST:PORT...]/PREFIX"
            ));
        };
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, "certctl"));
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { "certctl" } else { prefix };
        if prefix
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(c)))
        {
            return Err(format!(
                "the prefix {prefix:?} may hold only letters, digits, '-', '_', '.' and '/'"
            ));
        }
        let endpoints: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return Err(format!(
                "{raw:?} names no etcd member; give etcd://HOST:PORT/PREFIX"
            ));
        }
        for e in &endpoints {
            let port = e.rsplit_once(':').map(|(_, p)| p);
            if port.is_none_or(|p| p.parse::<u16>().is_err())
                || e.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                return Err(format!("{e:?} is not HOST:PORT (like 10.0.0.1:2379)"));
            }
        }
        let node = match &config.node_name {
            Some(n) => n.clone(),
            None => host_name(),
        };
        if node.is_empty()
            || node
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(format!(
                "the node name {node:?} may hold only letters, digits, '-', '_' and '.'; set node_name"
            ));
        }
        Ok(Self::Etcd(Box::new(EtcdSpec {
            endpoints,
            prefix: prefix.to_owned(),
            ca_file: config.etcd_ca_file.clone(),
            cert_file: config.etcd_cert_file.clone(),
            key_file: config.etcd_key_file.clone(),
            user: config.etcd_user.clone(),
            password_file: config.etcd_password_file.clone(),
            store_key_file: config.store_key_file.clone(),
            node,
            lease_ttl: config
                .etcd_lease_ttl
                .map(|s| Duration::from_secs(s.clamp(1, 3600)))
                .unwrap_or(DEFAULT_LEASE_TTL),
        })))
    }

    /// The shared store, if any.
    pub fn etcd(&self) -> Option<&EtcdSpec> {
        match self {
            Self::Files => None,
            Self::Etcd(spec) => Some(spec),
        }
    }
}

/// A shared store serves several nodes behind one name: the CA may reach any of them, so a
/// responder on the node that orders does not answer it. Bad input, saying what to use.
pub fn refuse_standalone_in_cluster(
    store: &StoreSpec,
    cert: &super::CertConfig,
) -> anyhow::Result<()> {
    let Some(etcd) = store.etcd() else {
        return Ok(());
    };
    let standalone = std::iter::once(&cert.challenge)
        .chain(cert.challenges.values())
        .any(|c| matches!(c, super::Challenge::Standalone { .. }));
    if standalone && !cert.server.is_local() {
        return Err(BadInput::new(format!(
            "the standalone HTTP-01 responder answers only on the node that orders, but with              the shared {} the CA may reach any node; use --challenge stateless (every              HAProxy answers from the account thumbprint: `certctl account thumbprint`) or              --challenge dns-01",
            etcd.describe()
        ))
        .into());
    }
    Ok(())
}

/// This host's name (the kernel's), or "node" when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<StoreSpec, String> {
        StoreSpec::parse(raw, &ConfigFile::default())
    }

    #[test]
    fn an_etcd_store_names_its_members_and_prefix() {
        let spec = parse("etcd://10.0.0.1:2379,10.0.0.2:2379/certctl/prod").unwrap();
        let etcd = spec.etcd().unwrap();
        assert_eq!(etcd.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(etcd.prefix, "certctl/prod");
        assert_eq!(etcd.urls()[0], "http://10.0.0.1:2379");
        assert_eq!(etcd.lease_ttl, DEFAULT_LEASE_TTL);
    }

    #[test]
    fn a_bad_store_is_refused_with_the_expected_form() {
        for bad in ["etcd://", "etcd://h1/p", "http://h:1/p", "etcd://h:1/a b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
