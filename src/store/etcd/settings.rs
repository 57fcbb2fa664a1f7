//! A certificate's settings in the etcd store: the certificate's part (names, key type, CA,
//! challenge; with the CA's trust bundle, which any node may need) is shared by every node,
//! the host's part (ssl dir, sockets, hooks, outputs) is each node's own. Both sealed.

use anyhow::Context;
use etcd_client::TxnOp;

use super::{Etcd, cache};
use crate::settings::{CertSettings, HostConfig};
use crate::types::CertName;

impl Etcd {
    pub(super) fn write_settings(&self, name: &CertName, value: &[u8]) -> anyhow::Result<()> {
        // the certificate's part is shared; the host's part (ssl dir, sockets, hooks,
        // outputs) is this node's own. The CA's trust bundle goes with the shared part too:
        // any node may have to reach the CA, and a node that never wrote its own part
        // deploys with its own flags and config file
        let settings: CertSettings = serde_json::from_slice(value)
            .context("the settings to store are not certctl's settings")?;
        let host = serde_json::to_vec(&settings.host)?;
        let shared = serde_json::to_vec(&CertSettings {
            host: HostConfig {
                ca_bundle: settings.host.ca_bundle.clone(),
                ..HostConfig::default()
            },
            ..settings
        })?;
        if self.stored_settings_are(name, &shared, &host) {
            return Ok(());
        }
        let (shared, host) = (self.sealer.seal(&shared)?, self.sealer.seal(&host)?);
        let keys = [
            self.cert(name, "settings"),
            self.node_key(name, "host"),
            self.cert(name, "managed"),
        ];
        let values = [shared, host, b"1".to_vec()];
        let ops: Vec<TxnOp> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| TxnOp::put(k.clone(), v.clone(), None))
            .collect();
        let txn = self.fenced(self.fence(Some(name))).and_then(ops);
        let stored = self
            .conn
            .txn(&format!("storing the settings of {name}"), txn)?;
        if stored.succeeded() {
            let writes: Vec<(&str, Option<&[u8]>)> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
                .collect();
            self.wrote(cache::revision(&stored), &writes);
        }
        self.check_fenced(stored.succeeded(), name.as_str())
    }

    pub(super) fn read_settings(&self, name: &CertName) -> anyhow::Result<Option<Vec<u8>>> {
        let key = self.cert(name, "settings");
        let Some(kv) = self.get(&key)? else {
            return Ok(None);
        };
        let shared = self.sealer.open(&kv.value, &format!("etcd key {key}"))?;
        let mut value: serde_json::Value = serde_json::from_slice(&shared)
            .with_context(|| format!("etcd key {key} is damaged"))?;
        let host_key = self.node_key(name, "host");
        let host = match self.get(&host_key)? {
            Some(kv) => serde_json::from_slice::<serde_json::Value>(
                &self
                    .sealer
                    .open(&kv.value, &format!("etcd key {host_key}"))?,
            )
            .with_context(|| format!("etcd key {host_key} is damaged"))?,
            None => serde_json::to_value(HostConfig::default())?,
        };
        if let (Some(all), Some(own)) = (value.as_object_mut(), host.as_object()) {
            for (k, v) in own {
                all.insert(k.clone(), v.clone());
            }
        }
        Ok(Some(serde_json::to_vec_pretty(&value)?))
    }

    /// Whether the settings stored (as this process read them) are these already: a renewal
    /// saves the settings it read, which then costs nothing.
    fn stored_settings_are(&self, name: &CertName, shared: &[u8], host: &[u8]) -> bool {
        let plain = |key: String| -> Option<serde_json::Value> {
            let entry = self.cache.lookup(&key)??;
            let bytes = self.sealer.open(&entry.value, &key).ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).ok();
        let managed = matches!(
            self.cache.lookup(&self.cert(name, "managed")),
            Some(Some(_))
        );
        managed
            && plain(self.cert(name, "settings")).is_some_and(|v| Some(v) == json(shared))
            && plain(self.node_key(name, "host")).is_some_and(|v| Some(v) == json(host))
    }
}
