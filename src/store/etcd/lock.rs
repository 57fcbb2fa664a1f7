//! The etcd store's lock: etcd's lock service on a lease of `etcd_lease_ttl` seconds (30 by
//! default), kept alive in the background while held. A node that dies or is cut off loses
//! it when the lease expires; `check` then says so, and the holder commits nothing more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{LockOptions, PutOptions};

use super::client::Conn;
use crate::store::Lock;

/// The key of the lock this process holds, if any: commits are fenced on it.
pub(super) type Held = Arc<std::sync::Mutex<Option<Vec<u8>>>>;

pub(super) struct LeaseLock {
    conn: Arc<Conn>,
    held: Held,
    lease: i64,
    key: Vec<u8>,
    lost: Arc<AtomicBool>,
    keeper: Option<tokio::task::JoinHandle<()>>,
    ttl: Duration,
}

impl LeaseLock {
    /// Takes the lock `name` (a full etcd key) for `node`, waiting at most `wait`.
    pub(super) fn acquire(
        conn: Arc<Conn>,
        held: Held,
        name: String,
        holders: String,
        node: &str,
        ttl: Duration,
        wait: Duration,
    ) -> anyhow::Result<Self> {
        let secs = ttl.as_secs().max(1) as i64;
        let lease = conn.call("granting a lease for the lock", move |mut c| {
            Box::pin(async move { c.lease_grant(secs, None).await.map(|r| r.id()) })
        })?;
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = conn.spawn(keep_alive(conn.client.clone(), lease, ttl, lost.clone()));
        let mut lock = Self {
            conn: conn.clone(),
            held: held.clone(),
            lease,
            key: Vec::new(),
            lost,
            keeper,
            ttl,
        };
        // who waits or holds, for the message of a node that waits too long
        let holder_key = format!("{holders}/{lease:x}");
        let value = node.to_owned();
        conn.call("recording the lock's holder", move |mut c| {
            let (holder_key, value) = (holder_key.clone(), value.clone());
            Box::pin(async move {
                c.put(holder_key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
                    .map(|_| ())
            })
        })?;
        let mut client = conn.client.clone();
        let got = conn.block(wait, async move {
            loop {
                let options = Some(LockOptions::new().with_lease(lease));
                match client.lock(name.clone(), options).await {
                    // a member out of reach: another one, until the wait is over
                    Err(e) if super::client::unreachable(&e) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => return other,
                }
            }
        });
        match got {
            Some(Ok(response)) => {
                lock.key = response.key().to_vec();
                if let Ok(mut h) = held.lock() {
                    *h = Some(lock.key.clone());
                }
                Ok(lock)
            }
            Some(Err(e)) => Err(anyhow::anyhow!(
                "{}: taking the lock: {e}; check that a majority of the etcd members is up",
                conn.describe
            )),
            None => {
                let others: Vec<String> = conn
                    .prefix(&format!("{holders}/"), false)
                    .unwrap_or_default()
                    .iter()
                    .filter(|kv| !kv.key().ends_with(format!("/{lease:x}").as_bytes()))
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
                    .collect();
                anyhow::bail!(
                    "{}: another certctl (node {}) holds the lock and did not finish within {}s; \
                     wait for it, or stop it (a stopped node's lock expires after {}s)",
                    conn.describe,
                    if others.is_empty() {
                        "unknown".to_owned()
                    } else {
                        others.join(", ")
                    },
                    wait.as_secs(),
                    ttl.as_secs()
                )
            }
        }
    }
}

impl Lock for LeaseLock {
    fn check(&self) -> anyhow::Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            anyhow::bail!(
                "{}: the lock's lease expired (etcd out of reach for more than {}s); another \
                 node may be at work, so nothing more is written",
                self.conn.describe,
                self.ttl.as_secs()
            );
        }
        Ok(())
    }
}

impl Drop for LeaseLock {
    fn drop(&mut self) {
        if let Ok(mut h) = self.held.lock() {
            *h = None;
        }
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        // revoking the lease releases the lock and the holder record; if etcd is out of
        // reach, the lease expires on its own
        let mut client = self.conn.client.clone();
        let lease = self.lease;
        let key = std::mem::take(&mut self.key);
        self.conn.block(Duration::from_secs(3), async move {
            if !key.is_empty() {
                let _ = client.unlock(key).await;
            }
            let _ = client.lease_revoke(lease).await;
        });
    }
}

/// Renews the lease every third of its lifetime; marks it lost when etcd says it expired
/// or cannot be reached for longer than the lifetime.
async fn keep_alive(
    mut client: etcd_client::Client,
    lease: i64,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let period = ttl / 3;
    let mut last_ok = tokio::time::Instant::now();
    let mut stream = None;
    loop {
        tokio::time::sleep(period).await;
        if stream.is_none() {
            stream = tokio::time::timeout(period, client.lease_keep_alive(lease))
                .await
                .ok()
                .and_then(Result::ok);
        }
        let renewed = match stream.as_mut() {
            Some((keeper, answers)) => {
                let exchange = async {
                    keeper.keep_alive().await?;
                    answers.message().await
                };
                match tokio::time::timeout(period, exchange).await {
                    Ok(Ok(Some(answer))) if answer.ttl() > 0 => true,
                    Ok(Ok(Some(_))) => {
                        // etcd says the lease is gone
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    _ => {
                        stream = None;
                        false
                    }
                }
            }
            None => false,
        };
        if renewed {
            last_ok = tokio::time::Instant::now();
        } else if last_ok.elapsed() >= ttl {
            lost.store(true, Ordering::SeqCst);
            return;
        }
    }
}
