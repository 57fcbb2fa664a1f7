//! An etcd watch over the certificates' keys: a new live generation (or a certificate
//! added or archived) wakes `certctl sync --watch`; what nodes record about themselves
//! does not. A broken watch is reopened by the caller (an error here).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{WatchOptions, WatchStream};

use super::client::Conn;
use crate::store::Watch;

pub(super) struct CertWatch {
    conn: Arc<Conn>,
    stream: Option<WatchStream>,
}

impl CertWatch {
    pub(super) fn start(conn: Arc<Conn>, prefix: String) -> anyhow::Result<Self> {
        let stream = conn.call(&format!("watching {prefix}"), move |mut c| {
            let prefix = prefix.clone();
            Box::pin(async move {
                c.watch(prefix, Some(WatchOptions::new().with_prefix()))
                    .await
            })
        })?;
        Ok(Self {
            conn,
            stream: Some(stream),
        })
    }
}

/// Whether a changed key is one that a node installs from.
fn matters(key: &[u8]) -> bool {
    key.ends_with(b"/live") || key.ends_with(b"/managed")
}

impl Watch for CertWatch {
    fn next(&mut self, limit: Duration) -> anyhow::Result<bool> {
        let Some(mut stream) = self.stream.take() else {
            anyhow::bail!("{}: the watch ended", self.conn.describe);
        };
        let waited = self.conn.block(limit, async move {
            loop {
                match stream.message().await {
                    Ok(Some(answer)) => {
                        let hit = answer
                            .events()
                            .iter()
                            .any(|e| e.kv().is_some_and(|kv| matters(kv.key())));
                        if hit {
                            return (Ok(true), stream);
                        }
                    }
                    Ok(None) => return (Ok(false), stream),
                    Err(e) => return (Err(e), stream),
                }
            }
        });
        match waited {
            // the time ran out: the future (and the stream with it) was dropped; start again
            None => Ok(false),
            Some((Ok(true), stream)) => {
                self.stream = Some(stream);
                Ok(true)
            }
            Some((Ok(false), _)) => {
                anyhow::bail!("{}: etcd closed the watch", self.conn.describe)
            }
            Some((Err(e), _)) => anyhow::bail!("{}: watching: {e}", self.conn.describe),
        }
    }
}
