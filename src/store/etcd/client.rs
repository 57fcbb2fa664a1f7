//! One connection to the etcd cluster, on a runtime of its own so that the synchronous
//! `Backend` methods can wait for it from anywhere (the command's runtime included). Every
//! call is bounded in time; errors name the store and say what to check. Counts round trips.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use etcd_client::{Client, ConnectOptions, GetOptions, KeyValue, Txn, TxnResponse};

use crate::settings::EtcdSpec;

/// How long one request to etcd may take (a cluster without quorum never answers).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One exchange with etcd, ready to run.
pub type Exchange<T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, etcd_client::Error>> + Send>>;

/// Whether an error says a member could not be reached (not what the cluster answered).
pub(super) fn unreachable(e: &etcd_client::Error) -> bool {
    match e {
        // gRPC's UNAVAILABLE (14): no connection to that member
        etcd_client::Error::GRpcStatus(status) => status.code() as i32 == 14,
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

pub struct Conn {
    runtime: Option<tokio::runtime::Runtime>,
    pub client: Client,
    /// Names the store in messages.
    pub describe: String,
    round_trips: AtomicU64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // dropping a runtime from inside another one would panic; this never blocks
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Conn {
    pub fn connect(spec: &EtcdSpec) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("certctl-etcd")
            .enable_all()
            .build()
            .context("starting the etcd client's runtime")?;
        let describe = spec.describe();
        // a runtime dropped from inside the command's runtime would panic: on any error it
        // is shut down without waiting
        let client = match Self::client(&runtime, spec, &describe) {
            Ok(client) => client,
            Err(e) => {
                runtime.shutdown_background();
                return Err(e);
            }
        };
        Ok(Self {
            runtime: Some(runtime),
            client,
            describe,
            round_trips: AtomicU64::new(0),
        })
    }

    fn client(
        runtime: &tokio::runtime::Runtime,
        spec: &EtcdSpec,
        describe: &str,
    ) -> anyhow::Result<Client> {
        // no per-request timeout in the client: every call is bounded here, and waiting for
        // the lock is bounded by the lock wait, which may be longer
        let mut options = ConnectOptions::new().with_connect_timeout(CALL_TIMEOUT);
        if let Some(user) = &spec.user {
            let password = match &spec.password_file {
                Some(path) => {
                    let bytes = crate::durable::read_small_file(path).with_context(|| {
                        format!("reading etcd_password_file {}", path.display())
                    })?;
                    String::from_utf8_lossy(&bytes).trim_end().to_owned()
                }
                None => anyhow::bail!(
                    "etcd_user is set but etcd_password_file is not; give the file that holds \
                     the password"
                ),
            };
            options = options.with_user(user.clone(), password);
        }
        if spec.ca_file.is_some() || spec.cert_file.is_some() {
            options = options.with_tls(tls(spec)?);
        }
        let urls = spec.urls();
        wait(runtime, describe, "connecting", async move {
            Client::connect(urls, Some(options)).await
        })
    }

    /// Runs one exchange with etcd to its end, or fails after the timeout. A member that
    /// cannot be reached is not the cluster: the exchange is tried again (on another member,
    /// by the channel's balancing) until the timeout; every exchange here may be repeated.
    pub fn call<T: Send + 'static>(
        &self,
        what: &str,
        f: impl Fn(Client) -> Exchange<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let runtime = self.runtime.as_ref().context("the etcd client is closed")?;
        let client = self.client.clone();
        wait(runtime, &self.describe, what, async move {
            let mut tries = 0;
            loop {
                tries += 1;
                match f(client.clone()).await {
                    Err(e) if tries < 50 && unreachable(&e) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => return other,
                }
            }
        })
    }

    /// Spawns `fut` on the client's runtime (the lock's keep-alive).
    pub fn spawn(
        &self,
        fut: impl Future<Output = ()> + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.runtime.as_ref().map(|r| r.spawn(fut))
    }

    /// Runs `fut` on the client's runtime and waits at most `limit` for it.
    pub fn block<T: Send + 'static>(
        &self,
        limit: Duration,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        // one exchange (a lock's wait, its release, the lease's revocation)
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let runtime = self.runtime.as_ref()?;
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(tokio::time::timeout(limit, fut).await);
        });
        rx.recv().ok().and_then(Result::ok)
    }

    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    pub fn get(&self, key: &str) -> anyhow::Result<Option<KeyValue>> {
        let k = key.to_owned();
        let mut kvs = self.call(&format!("reading {key}"), move |mut c| {
            let k = k.clone();
            Box::pin(async move { c.get(k, None).await.map(|mut r| r.take_kvs()) })
        })?;
        Ok((!kvs.is_empty()).then(|| kvs.remove(0)))
    }

    pub fn prefix(&self, prefix: &str, keys_only: bool) -> anyhow::Result<Vec<KeyValue>> {
        let k = prefix.to_owned();
        self.call(&format!("listing {prefix}"), move |mut c| {
            let k = k.clone();
            Box::pin(async move {
                let mut options = GetOptions::new().with_prefix();
                if keys_only {
                    options = options.with_keys_only();
                }
                c.get(k, Some(options)).await.map(|mut r| r.take_kvs())
            })
        })
    }

    pub fn txn(&self, what: &str, txn: Txn) -> anyhow::Result<TxnResponse> {
        self.call(what, move |mut c| {
            let txn = txn.clone();
            Box::pin(async move { c.txn(txn).await })
        })
    }

    pub fn put(&self, key: &str, value: Vec<u8>) -> anyhow::Result<()> {
        let k = key.to_owned();
        self.call(&format!("writing {key}"), move |mut c| {
            let (k, value) = (k.clone(), value.clone());
            Box::pin(async move { c.put(k, value, None).await.map(|_| ()) })
        })
    }
}

/// Waits for `fut` on `runtime`, bounded by the call timeout.
fn wait<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    describe: &str,
    what: &str,
    fut: impl Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(tokio::time::timeout(CALL_TIMEOUT, fut).await);
    });
    match rx.recv() {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(e))) => Err(anyhow::anyhow!(
            "{describe}: {what}: {e}; check that a majority of the etcd members is up and \
             reachable, and the TLS and user settings"
        )),
        Ok(Err(_)) | Err(_) => Err(anyhow::anyhow!(
            "{describe}: {what}: no answer within {}s; check that a majority of the etcd \
             members is up and reachable",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

fn tls(spec: &EtcdSpec) -> anyhow::Result<etcd_client::TlsOptions> {
    let read = |key: &str, path: &std::path::Path| {
        crate::durable::read_small_file(path)
            .with_context(|| format!("reading {key} {}", path.display()))
    };
    let mut options = etcd_client::TlsOptions::new();
    if let Some(ca) = &spec.ca_file {
        options = options.ca_certificate(etcd_client::Certificate::from_pem(read(
            "etcd_ca_file",
            ca,
        )?));
    }
    match (&spec.cert_file, &spec.key_file) {
        (Some(cert), Some(key)) => {
            options = options.identity(etcd_client::Identity::from_pem(
                read("etcd_cert_file", cert)?,
                read("etcd_key_file", key)?,
            ));
        }
        (None, None) => {}
        _ => anyhow::bail!("etcd_cert_file and etcd_key_file go together; give both or neither"),
    }
    Ok(options)
}
