//! `FreshAuthz`: the lab's front before Pebble that makes "every order needs fresh
//! validation" true. Pebble 2.4 reuses an account's valid authorization when
//! `rand.Intn(100) > PEBBLE_AUTHZREUSE` is false (wfe.go, makeAuthorizations): with 0 that
//! still happens once in a hundred identifiers, so a test that expects an order to be
//! validated again (a wrong TSIG key must fail, a hook must run) failed now and then.
//!
//! The front listens on the lab's ACME port and passes every request to Pebble unchanged,
//! Host header included (Pebble builds every URL from it, so clients keep talking to the
//! front). It watches Pebble's answers to newOrder: an order that lists an authorization
//! URL already handed out by an earlier order reuses it, and the front answers that one
//! with a `badNonce` problem carrying Pebble's fresh nonce instead. The client sends the
//! order again, as it must for any badNonce (RFC 8555 §6.5), and Pebble rolls again. The
//! order left behind in Pebble is never used. `rejections` counts these answers for tests
//! that count Pebble's newOrder requests.
//!
//! When Pebble cannot be reached the front closes the client's connection without an
//! answer; `Lab::stop_pebble` and `kill_pebble` stop the front too, so a stopped CA refuses
//! connections as it did without the front.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig, ServerConnection, StreamOwned};
use serde_json::{Value, json};

use super::ari_shim::{Reply, forward_to, read_request, send_reply};
use super::lock;

/// Read and write timeout of the client side.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Pebble's newOrder path (its directory's `newOrder`, fixed in Pebble 2.4).
const NEW_ORDER: &str = "/order-plz";

struct Shared {
    pebble: SocketAddr,
    to_pebble: Arc<ClientConfig>,
    /// Every authorization URL an accepted new order listed.
    authorizations: Mutex<HashSet<String>>,
    rejections: Arc<AtomicUsize>,
    stop: AtomicBool,
}

/// A running front; dropping it closes its port (connections being served finish).
pub struct FreshAuthz {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FreshAuthz {
    /// Listens on `addr` with `server` (Pebble's listener identity) and forwards to the
    /// Pebble at `pebble`, trusted by `to_pebble`. `rejections` is shared across restarts.
    pub fn start(
        addr: SocketAddr,
        pebble: SocketAddr,
        server: Arc<ServerConfig>,
        to_pebble: Arc<ClientConfig>,
        rejections: Arc<AtomicUsize>,
    ) -> FreshAuthz {
        let listener = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("binding the lab's ACME front on {addr}: {e}"));
        let shared = Arc::new(Shared {
            pebble,
            to_pebble,
            authorizations: Mutex::new(HashSet::new()),
            rejections,
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = conn else { continue };
                    let (shared, server) = (shared.clone(), server.clone());
                    thread::spawn(move || serve(&shared, server, tcp));
                }
            })
        };
        FreshAuthz {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for FreshAuthz {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // wake the blocking accept; it sees the flag and returns, closing the port
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(shared: &Shared, server: Arc<ServerConfig>, tcp: TcpStream) {
    if tcp.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || tcp.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let Ok(conn) = ServerConnection::new(server) else {
        return;
    };
    let mut stream = StreamOwned::new(conn, tcp);
    let Ok(Some(request)) = read_request(&mut stream) else {
        return; // the wake-up connection of Drop, or a client that gave up
    };
    // Pebble unreachable: the connection closes with no answer, as Pebble's would
    let Ok(mut reply) = forward_to(shared.pebble, shared.to_pebble.clone(), &request) else {
        return;
    };
    if request.method == "POST" && request.path == NEW_ORDER && reply.status == 201 {
        if let Some(again) = reused(shared, &reply) {
            shared.rejections.fetch_add(1, Ordering::SeqCst);
            reply = again;
        }
    }
    let _ = send_reply(&mut stream, &reply);
}

/// The badNonce answer that replaces Pebble's new order when the order reuses an
/// authorization; None (the order's authorizations recorded) when it does not.
fn reused(shared: &Shared, reply: &Reply) -> Option<Reply> {
    let order: Value = serde_json::from_slice(&reply.body).ok()?;
    let urls: Vec<String> = order["authorizations"]
        .as_array()?
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    {
        let mut seen = lock(&shared.authorizations);
        if !urls.iter().any(|u| seen.contains(u)) {
            seen.extend(urls);
            return None;
        }
    }
    let nonce = reply
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("replay-nonce"))?;
    let problem = json!({
        "type": "urn:ietf:params:acme:error:badNonce",
        "detail": "test lab: Pebble reused a valid authorization although PEBBLE_AUTHZREUSE=0; \
                   send the order again",
        "status": 400,
    });
    Some(Reply {
        status: 400,
        headers: vec![
            ("Content-Type".into(), "application/problem+json".into()),
            nonce.clone(),
        ],
        body: serde_json::to_vec(&problem).expect("json"),
    })
}
