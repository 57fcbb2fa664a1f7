//! The nonces of the CA's answers, kept for the next request of any order of the run, so
//! that a run asks newNonce once (RFC 8555 §7.2); each is handed out once, and a nonce on
//! its way back with an answer is waited for briefly instead of asking for another. Knows
//! nothing of HTTP beyond the header value.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use instant_acme::BytesResponse;

/// Nonces kept per CA for later requests; the newest is used first.
const NONCES_KEPT: usize = 16;
pub(super) const REPLAY_NONCE: &str = "replay-nonce";

/// Every answer of the CA carries a fresh nonce (RFC 8555 §7.2). instant-acme keeps one per
/// order and asks newNonce for each new order; kept here instead, shared by every order of
/// the run, a run asks newNonce once. Each nonce is taken out of the answer it came with
/// and handed out once, so it is never used twice. Keyed by the CA's host and port.
///
/// Orders running side by side (`renew --jobs`) would each ask newNonce at the start, when
/// no answer has brought one yet. So a nonce handed out is counted until the POST that spends
/// it is answered: while one is on its way back, the next order waits for it (at most
/// [`NONCE_WAIT`]) instead of asking newNonce. Waiting for an answer already on its way
/// takes at most one round trip, which is what newNonce takes; past the bound, against a
/// slow or distant CA, a fresh nonce is asked for, and more nonces go round from then on.
#[derive(Clone, Default)]
pub(super) struct Nonces {
    pools: Arc<std::sync::Mutex<HashMap<String, NoncePool>>>,
    changed: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct NoncePool {
    kept: Vec<http::HeaderValue>,
    /// Nonces handed out (or being fetched) whose POST has not been answered yet.
    on_their_way: usize,
}

/// How long an order waits for a nonce from another order's answer before asking newNonce.
pub(super) const NONCE_WAIT: Duration = Duration::from_millis(50);

impl Nonces {
    fn pool<T>(&self, authority: &str, f: impl FnOnce(&mut NoncePool) -> T) -> T {
        let mut map = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(authority.to_owned()).or_default())
    }

    pub(super) fn put(&self, authority: &str, nonce: http::HeaderValue) {
        self.pool(authority, |pool| {
            if pool.kept.len() >= NONCES_KEPT {
                pool.kept.remove(0);
            }
            pool.kept.push(nonce);
        });
        self.changed.notify_waiters();
    }

    /// A kept nonce, or one another request brings back within `wait`. When none is on its
    /// way, or it did not come in time, the caller is to ask newNonce: it gets a
    /// [`NonceReturn`] to hold meanwhile, so that other orders wait for that nonce.
    pub(super) async fn take_or_wait(
        &self,
        authority: &str,
        wait: Duration,
    ) -> Result<http::HeaderValue, NonceReturn> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let coming = self.pool(authority, |pool| {
                if let Some(nonce) = pool.kept.pop() {
                    pool.on_their_way += 1;
                    return Ok(nonce);
                }
                Err(pool.on_their_way > 0)
            });
            match coming {
                Ok(nonce) => return Ok(nonce),
                Err(true) if tokio::time::timeout_at(deadline, changed).await.is_ok() => {}
                Err(_) => return Err(self.on_its_way(authority)),
            }
        }
    }

    /// Counts a nonce as on its way until the returned guard is dropped: the answer to the
    /// POST that spent it (or the failure of newNonce) ends it.
    pub(super) fn on_its_way(&self, authority: &str) -> NonceReturn {
        self.pool(authority, |pool| pool.on_their_way += 1);
        self.coming_back(authority)
    }

    /// For a POST: it spent a nonce counted as on its way, and its answer brings one back.
    pub(super) fn coming_back(&self, authority: &str) -> NonceReturn {
        NonceReturn {
            nonces: self.clone(),
            authority: authority.to_owned(),
            armed: true,
        }
    }

    /// The POST that spent a nonce handed out was answered (or failed): one fewer to wait for.
    fn returned(&self, authority: &str) {
        self.pool(authority, |pool| {
            pool.on_their_way = pool.on_their_way.saturating_sub(1)
        });
        self.changed.notify_waiters();
    }
}

/// A nonce on its way back: dropped when the request that brings it back ends, however it
/// ends (answer, error, timeout, cancelled).
pub(super) struct NonceReturn {
    nonces: Nonces,
    authority: String,
    armed: bool,
}

impl NonceReturn {
    /// newNonce answered: the nonce now travels with the POST that spends it, which
    /// accounts for it.
    pub(super) fn handed_on(mut self) {
        self.armed = false;
    }
}

impl Drop for NonceReturn {
    fn drop(&mut self) {
        if self.armed {
            self.nonces.returned(&self.authority);
        }
    }
}

/// What newNonce would answer, made from a nonce already received.
pub(super) fn nonce_answer(nonce: http::HeaderValue) -> BytesResponse {
    let mut rsp = http::Response::new(http_body_util::Empty::<Bytes>::new());
    rsp.headers_mut().insert(REPLAY_NONCE, nonce);
    BytesResponse::from(rsp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(s).unwrap()
    }

    /// A kept nonce without waiting.
    fn take(nonces: &Nonces, authority: &str) -> Option<http::HeaderValue> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(nonces.take_or_wait(authority, Duration::ZERO))
            .ok()
    }

    #[test]
    fn nonces_are_handed_out_once_newest_first_per_ca() {
        let nonces = Nonces::default();
        nonces.put("ca.test:443", value("a"));
        nonces.put("ca.test:443", value("b"));
        nonces.put("other.test:443", value("c"));
        assert_eq!(take(&nonces, "ca.test:443"), Some(value("b")));
        assert_eq!(take(&nonces, "ca.test:443"), Some(value("a")));
        assert_eq!(
            take(&nonces, "ca.test:443"),
            None,
            "each nonce is used once"
        );
        assert_eq!(take(&nonces, "other.test:443"), Some(value("c")));
    }

    #[test]
    fn only_the_newest_nonces_are_kept() {
        let nonces = Nonces::default();
        for i in 0..NONCES_KEPT + 3 {
            nonces.put("ca.test:443", value(&i.to_string()));
        }
        let mut taken = Vec::new();
        while let Some(n) = take(&nonces, "ca.test:443") {
            taken.push(n.to_str().unwrap().to_owned());
        }
        assert_eq!(taken.len(), NONCES_KEPT);
        assert_eq!(taken.first().map(String::as_str), Some("18"));
        assert_eq!(taken.last().map(String::as_str), Some("3"));
    }

    #[tokio::test]
    async fn with_nothing_on_its_way_new_nonce_is_asked_at_once() {
        let nonces = Nonces::default();
        let started = std::time::Instant::now();
        let fetching = nonces
            .take_or_wait("ca.test:443", Duration::from_secs(30))
            .await;
        assert!(fetching.is_err(), "nothing kept: ask newNonce");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A first order asks newNonce (nothing is kept yet); 20 ms later a second order is
    /// asking for a nonce too, willing to wait 30 s.
    async fn two_orders(
        nonces: &Nonces,
    ) -> (
        NonceReturn,
        tokio::task::JoinHandle<Result<http::HeaderValue, NonceReturn>>,
    ) {
        let fetching = nonces
            .take_or_wait("ca.test:443", Duration::ZERO)
            .await
            .expect_err("nothing kept yet");
        let second = tokio::spawn({
            let nonces = nonces.clone();
            async move {
                nonces
                    .take_or_wait("ca.test:443", Duration::from_secs(30))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        (fetching, second)
    }

    #[tokio::test]
    async fn an_order_waits_for_the_nonce_another_order_brings_back() {
        let nonces = Nonces::default();
        // the first order asks newNonce; the second, meanwhile, waits instead of asking too
        let (fetching, second) = two_orders(&nonces).await;
        assert!(
            !second.is_finished(),
            "a nonce is on its way: the second order waits"
        );
        // newNonce answers the first order, whose POST then spends the nonce and is answered
        fetching.handed_on();
        let post = nonces.coming_back("ca.test:443");
        nonces.put("ca.test:443", value("from the answer"));
        drop(post);
        assert_eq!(second.await.unwrap().ok(), Some(value("from the answer")));
    }

    #[tokio::test]
    async fn a_failed_request_lets_the_waiting_order_ask_new_nonce_at_once() {
        let nonces = Nonces::default();
        let started = std::time::Instant::now();
        let (fetching, second) = two_orders(&nonces).await;
        drop(fetching); // newNonce failed: nothing is on its way any more
        assert!(
            second.await.unwrap().is_err(),
            "the second order asks newNonce"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "without waiting 30 s"
        );
    }

    #[tokio::test]
    async fn a_nonce_that_does_not_come_back_in_time_is_not_waited_for() {
        let nonces = Nonces::default();
        let _post = nonces.on_its_way("ca.test:443"); // a POST the CA never answers
        let started = std::time::Instant::now();
        let got = nonces
            .take_or_wait("ca.test:443", Duration::from_millis(50))
            .await;
        assert!(got.is_err(), "past the bound: ask newNonce");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
