//! The etcd store's locks: one per certificate (a node orders it), one per CA for creating
//! its account, one around the commands that change the store as a whole. All of a process's
//! locks stand on one lease of `etcd_lease_ttl` seconds (30 by default), granted at the first
//! lock and kept alive in the background while this node works: a node that dies or is cut
//! off loses every lock when its lease expires. Keys are `<lock>/<lease hex>` with the node's
//! name as value, as etcd's lock service makes them: the first one created holds the lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, GetOptions, LockOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse,
};

use super::client::Conn;
use crate::store::{Lock, Taken};

/// The key of each lock this process holds, by lock name: commits are fenced on them.
pub(super) type Held = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// The lease under a process's locks, with its keep-alive; revoked when the last lock and
/// the store are gone (etcd then drops every key on it at once).
pub(super) struct Session {
    conn: Arc<Conn>,
    lease: i64,
    lost: Arc<AtomicBool>,
    keeper: Option<tokio::task::JoinHandle<()>>,
    ttl: Duration,
}

impl Session {
    pub(super) fn grant(conn: Arc<Conn>, ttl: Duration) -> anyhow::Result<Self> {
        let secs = ttl.as_secs().max(1) as i64;
        let lease = conn.call("granting a lease for the locks", move |mut c| {
            Box::pin(async move { c.lease_grant(secs, None).await.map(|r| r.id()) })
        })?;
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = conn.spawn(keep_alive(conn.client.clone(), lease, ttl, lost.clone()));
        Ok(Self {
            conn,
            lease,
            lost,
            keeper,
            ttl,
        })
    }

    /// Whether the lease expired (etcd said so, or could not be reached for its lifetime).
    pub(super) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        // revoking the lease releases every lock on it; if etcd is out of reach, the lease
        // expires on its own
        let mut client = self.conn.client.clone();
        let lease = self.lease;
        self.conn.block(Duration::from_secs(3), async move {
            let _ = client.lease_revoke(lease).await;
        });
    }
}

/// What taking a lock gave.
pub(super) enum Acquired {
    Held(LeaseLock),
    /// Another node holds it (its name), and the caller did not want to wait.
    Busy(String),
}

pub(super) struct LeaseLock {
    session: Arc<Session>,
    held: Held,
    name: String,
    key: Vec<u8>,
}

/// Takes the lock `name` (a full etcd key) for `node` on `session`'s lease: at once when it
/// is free; when another node holds it, `Busy` without `wait`, else waiting at most `wait`.
pub(super) fn acquire(
    session: &Arc<Session>,
    held: &Held,
    name: &str,
    node: &str,
    wait: Option<Duration>,
) -> anyhow::Result<Acquired> {
    let conn = &session.conn;
    let lease = session.lease;
    let key = format!("{name}/{lease:x}");
    // one exchange when the lock is free: this node's key (kept if it exists), and the
    // first key created under the lock, which is the holder's
    let first = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1);
    let owner_of = TxnOp::get(format!("{name}/"), Some(first));
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([
            TxnOp::put(
                key.clone(),
                node.to_owned(),
                Some(PutOptions::new().with_lease(lease)),
            ),
            owner_of.clone(),
        ])
        .or_else([TxnOp::get(key.clone(), None), owner_of]);
    let response = conn.txn(&format!("taking the lock {name}"), txn)?;
    // the last answer in either branch is the first key under the lock
    let first = match response.op_responses().pop() {
        Some(TxnOpResponse::Get(g)) => g
            .kvs()
            .first()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec())),
        _ => None,
    };
    let holder = match first {
        Some((first, _)) if first == key.as_bytes() => {
            return Ok(Acquired::Held(hold(session, held, name, key)));
        }
        Some((_, node)) => String::from_utf8_lossy(&node).into_owned(),
        None => anyhow::bail!("{}: taking the lock {name}: no answer", conn.describe),
    };
    let Some(wait) = wait else {
        let k = key.clone();
        conn.call(&format!("leaving the lock {name}"), move |mut c| {
            let k = k.clone();
            Box::pin(async move { c.delete(k, None).await.map(|_| ()) })
        })?;
        return Ok(Acquired::Busy(holder));
    };
    // etcd's lock service waits on this node's key until the keys created before it are gone
    let mut client = conn.client.clone();
    let lock_name = name.to_owned();
    let got = conn.block(wait, async move {
        loop {
            let options = Some(LockOptions::new().with_lease(lease));
            match client.lock(lock_name.clone(), options).await {
                // a member out of reach: another one, until the wait is over
                Err(e) if super::client::unreachable(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => return other,
            }
        }
    });
    match got {
        Some(Ok(_)) => Ok(Acquired::Held(hold(session, held, name, key))),
        Some(Err(e)) => Err(anyhow::anyhow!(
            "{}: taking the lock {name}: {e}; check that a majority of the etcd members is up",
            conn.describe
        )),
        None => {
            // etcd drops a cancelled waiter's key itself; this is in case it could not
            let k = key.clone();
            let _ = conn.call("leaving the lock", move |mut c| {
                let k = k.clone();
                Box::pin(async move { c.delete(k, None).await.map(|_| ()) })
            });
            anyhow::bail!(
                "{}: another certctl (node {holder}) holds the lock {name} and did not finish \
             within {}s; wait for it, or stop it (a stopped node's lock expires after {}s)",
                conn.describe,
                wait.as_secs(),
                session.ttl.as_secs()
            )
        }
    }
}

fn hold(session: &Arc<Session>, held: &Held, name: &str, key: String) -> LeaseLock {
    let key = key.into_bytes();
    if let Ok(mut h) = held.lock() {
        h.insert(name.to_owned(), key.clone());
    }
    LeaseLock {
        session: session.clone(),
        held: held.clone(),
        name: name.to_owned(),
        key,
    }
}

impl Lock for LeaseLock {
    fn check(&self) -> anyhow::Result<()> {
        if self.session.is_lost() {
            anyhow::bail!(
                "{}: the lock's lease expired (etcd out of reach for more than {}s); another \
                 node may be at work, so nothing more is written",
                self.session.conn.describe,
                self.session.ttl.as_secs()
            );
        }
        Ok(())
    }
}

impl Drop for LeaseLock {
    fn drop(&mut self) {
        if let Ok(mut h) = self.held.lock() {
            h.remove(&self.name);
        }
        // the key goes now, so that a node waiting for it goes on; if etcd is out of
        // reach, it goes with the lease
        let mut client = self.session.conn.client.clone();
        let key = std::mem::take(&mut self.key);
        self.session.conn.block(Duration::from_secs(3), async move {
            let _ = client.delete(key, None).await;
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

impl super::Etcd {
    /// This process's lease, granted at the first lock (again if the first one was lost).
    fn session(&self) -> anyhow::Result<Arc<Session>> {
        let mut session = self
            .session
            .lock()
            .map_err(|_| anyhow::anyhow!("the etcd lease's record is poisoned"))?;
        if let Some(live) = session.as_ref().filter(|s| !s.is_lost()) {
            return Ok(live.clone());
        }
        let fresh = Arc::new(Session::grant(self.conn.clone(), self.spec.lease_ttl)?);
        *session = Some(fresh.clone());
        Ok(fresh)
    }

    /// Takes the lock `name` (see `acquire`).
    pub(super) fn take(&self, name: &str, wait: Option<Duration>) -> anyhow::Result<Taken> {
        let session = self.session()?;
        Ok(
            match acquire(&session, &self.held, name, &self.spec.node, wait)? {
                Acquired::Held(lock) => Taken::Held(Box::new(lock)),
                Acquired::Busy(node) => Taken::Busy(node),
            },
        )
    }

    /// The name of a certificate's lock (outside its keys: archiving removes those).
    pub(super) fn cert_lock(&self, name: &crate::types::CertName) -> String {
        self.full(&format!("locks/cert/{name}"))
    }

    /// The key that a write about `name` (None: the store as a whole) is fenced on: its
    /// certificate's lock when this process holds it, else the store's lock when held.
    pub(super) fn fence(&self, name: Option<&crate::types::CertName>) -> Option<Vec<u8>> {
        let held = self.held.lock().ok()?;
        name.and_then(|n| held.get(&self.cert_lock(n)))
            .or_else(|| held.get(&self.full("lock")))
            .cloned()
    }
}

impl super::Etcd {
    pub(super) fn account_lock(&self, server: &crate::types::Server) -> String {
        self.full(&format!("locks/account/{}", super::url_hash(server)))
    }

    pub(super) fn held_key(&self, lock: &str) -> Option<Vec<u8>> {
        self.held.lock().ok()?.get(lock).cloned()
    }

    /// A transaction that commits only while the lock key `fence` (if any) exists.
    pub(super) fn fenced(&self, fence: Option<Vec<u8>>) -> Txn {
        match fence {
            Some(key) => Txn::new().when([Compare::create_revision(key, CompareOp::Greater, 0)]),
            None => Txn::new(),
        }
    }

    /// The error when a fenced write found its lock gone.
    pub(super) fn check_fenced(&self, succeeded: bool, what: &str) -> anyhow::Result<()> {
        if succeeded {
            return Ok(());
        }
        anyhow::bail!(
            "{what}: this node's lock expired before it was stored (etcd out of reach for \
             longer than {}s, or this node stopped for that long); nothing stored, the next \
             run does it again",
            self.spec.lease_ttl.as_secs()
        )
    }
}
