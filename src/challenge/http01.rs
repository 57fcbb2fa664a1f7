//! HTTP-01 (RFC 8555 §8.3) answered by certctl itself: the responder answers GET/HEAD
//! /.well-known/acme-challenge/<token> for the tokens it was given, 404 for anything else,
//! 405 for other methods; `Standalone` is the solver that gives it tokens. It binds only where
//! told, caps header size, request time and open connections (`Limits`), never reads a
//! file, and stops when dropped.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::listening::Serving;
use anyhow::anyhow;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{ChallengeType, Pending, Solver, Task, valid_token};

pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What one client may cost the responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the connection's first wait for a request to the end of its headers: a client
    /// that sends its headers slowly (slowloris) is dropped then.
    pub header_timeout: Duration,
    /// The whole life of one connection, keep-alive included.
    pub connection_timeout: Duration,
    /// Request line and headers together; more is answered 431 and the connection closed.
    /// hyper takes no less than 8 KiB.
    pub max_header_bytes: usize,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(30),
            max_header_bytes: 8 * 1024,
            // a CA fetches each token several times at once, from several places
            max_connections: 512,
        }
    }
}

/// The tokens currently served, shared by every order of the run.
#[derive(Clone, Default)]
pub struct Tokens(Arc<RwLock<HashMap<String, String>>>);

impl Tokens {
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    pub fn remove(&self, token: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    fn lookup(&self, token: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }
}

/// A running responder; stops serving when dropped.
pub struct Responder {
    pub tokens: Tokens,
    pub addr: SocketAddr,
    /// Connections accepted so far (tests wait on it instead of on the clock).
    accepted: Arc<AtomicUsize>,
    _serving: Serving,
}

impl Responder {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::bind_with(addr, Limits::default()).await
    }

    /// `bind` with other limits (tests make the timeouts short).
    pub async fn bind_with(addr: SocketAddr, limits: Limits) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow!(
                    "cannot listen on {addr} for HTTP-01 challenges: the address is already in use \
                     (another certctl or certbot may hold it); stop it, or choose another with --http-addr"
                )
            } else {
                anyhow!("cannot listen on {addr} for HTTP-01 challenges: {e}")
            }
        })?;
        let addr = listener.local_addr()?;
        let tokens = Tokens::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let serving = Serving::spawn(listener, |listener| {
            serve(listener, tokens.clone(), limits, accepted.clone())
        })?;
        crate::log::verbose(format_args!("HTTP-01 responder listening on {addr}"));
        Ok(Self {
            tokens,
            addr,
            accepted,
            _serving: serving,
        })
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The responders of one run, one per address, shared by all its certificates. An address
/// that cannot be bound is tried once; each certificate that needs it gets the error.
#[derive(Default)]
pub struct Responders(HashMap<SocketAddr, Result<Arc<Responder>, String>>);

impl Responders {
    pub async fn bind(&mut self, addr: SocketAddr) -> anyhow::Result<Arc<Responder>> {
        let bound = match self.0.entry(addr) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                let bound = Responder::bind(addr).await.map(Arc::new);
                slot.insert(bound.map_err(|e| format!("{e:#}")))
            }
        };
        match bound {
            Ok(responder) => Ok(responder.clone()),
            Err(e) => Err(anyhow!("{e}")),
        }
    }
}

/// The solver that serves HTTP-01 tokens from certctl's own responder.
pub struct Standalone {
    responder: Arc<Responder>,
}

impl Standalone {
    pub fn new(responder: Arc<Responder>) -> Self {
        Self { responder }
    }
}

impl Solver for Standalone {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    fn present<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(async move {
            for task in tasks {
                let tokens = &self.responder.tokens;
                tokens.insert(task.token.as_str(), task.key_authorization.as_str());
            }
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(async move {
            for task in tasks {
                self.responder.tokens.remove(task.token.as_str());
            }
            Ok(())
        })
    }
}

async fn serve(listener: TcpListener, tokens: Tokens, limits: Limits, accepted: Arc<AtomicUsize>) {
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // the semaphore is never closed, so acquiring only waits
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let tokens = tokens.clone();
        // reap finished connection tasks so the set does not grow
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let tokens = tokens.clone();
                async move { Ok::<_, Infallible>(answer(&tokens, &req, peer)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.connection_timeout, conn).await;
            drop(slot);
        });
    }
}

fn answer(tokens: &Tokens, req: &Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let len = body.len();
        let body = if req.method() == Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(body)
        };
        let mut rsp = Response::new(Full::new(body));
        *rsp.status_mut() = status;
        rsp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        rsp.headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
        rsp
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut rsp = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        rsp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return rsp;
    }
    let path = req.uri().path();
    let found = path
        .strip_prefix(CHALLENGE_PREFIX)
        .filter(|token| valid_token(token))
        .and_then(|token| tokens.lookup(token));
    crate::log::debug(format_args!(
        "responder: {} {path} from {peer}: {}",
        req.method(),
        if found.is_some() { 200 } else { 404 }
    ));
    match found {
        Some(key_authorization) => reply(StatusCode::OK, key_authorization),
        None => reply(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_known_tokens_only() {
        let responder = Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        responder.tokens.insert("tok_en-1", "tok_en-1.thumb");
        let addr = responder.addr;
        let ok = get(addr, "GET /.well-known/acme-challenge/tok_en-1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("tok_en-1.thumb"),
            "{ok}"
        );
        let head = get(addr, "HEAD /.well-known/acme-challenge/tok_en-1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert!(
            head.starts_with("HTTP/1.1 200") && !head.contains("thumb"),
            "{head}"
        );
        for path in [
            "/.well-known/acme-challenge/other",
            "/.well-known/acme-challenge/../etc/passwd",
            "/",
            "/.well-known/acme-challenge/a%2Fb",
        ] {
            let rsp = get(
                addr,
                &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
            )
            .await;
            assert!(rsp.starts_with("HTTP/1.1 404"), "{path}: {rsp}");
        }
        let post = get(addr, "POST /.well-known/acme-challenge/tok_en-1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        responder.tokens.remove("tok_en-1");
        let gone = get(addr, "GET /.well-known/acme-challenge/tok_en-1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
    }

    #[tokio::test]
    async fn address_in_use_names_the_address() {
        let first = Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let err = Responder::bind(first.addr).await.err().unwrap().to_string();
        assert!(
            err.contains(&first.addr.to_string()) && err.contains("already in use"),
            "{err}"
        );
    }

    fn short_limits() -> Limits {
        Limits {
            header_timeout: Duration::from_millis(600),
            connection_timeout: Duration::from_secs(5),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn never_serves_a_file_whatever_the_path() {
        let responder = Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        // tokens that look like file names must not help either
        responder.tokens.insert("passwd", "passwd.thumb");
        responder.tokens.insert("tok_en-1", "tok_en-1.thumb");
        let addr = responder.addr;
        for target in [
            "/.well-known/acme-challenge/../../etc/passwd",
            "/.well-known/acme-challenge/..%2F..%2Fetc%2Fpasswd",
            "/.well-known/acme-challenge/%2e%2e/%2e%2e/etc/passwd",
            "/.well-known/acme-challenge/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
            "/.well-known/acme-challenge/..%5c..%5cetc%5cpasswd",
            "/.well-known/acme-challenge/%252e%252e%252fetc%252fpasswd",
            "/.well-known/acme-challenge/tok_en-1/../../../etc/passwd",
            "/.well-known/acme-challenge/./passwd",
            "/.well-known/acme-challenge//etc/passwd",
            "/.well-known/acme-challenge/passwd%00",
            "/.well-known/acme-challenge/%70asswd",
            "/.well-known/acme-challenge/",
            "/etc/passwd",
            "//etc/passwd",
            "/../../../../etc/passwd",
            "/.well-known/acme-challenge/../../../../proc/self/environ",
            "http://a/etc/passwd",
            "*",
        ] {
            let rsp = get(
                addr,
                &format!("GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
            )
            .await;
            assert!(
                rsp.starts_with("HTTP/1.1 404") || rsp.starts_with("HTTP/1.1 400"),
                "{target}: {rsp}"
            );
            assert!(
                !rsp.contains("root:") && !rsp.contains("thumb") && !rsp.contains("PATH="),
                "{target}: {rsp}"
            );
        }
        // the plain token still answers, so the 404s above are the paths, not the server
        let ok = get(addr, "GET /.well-known/acme-challenge/passwd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("passwd.thumb"),
            "{ok}"
        );
    }

    #[tokio::test]
    async fn a_huge_header_is_refused() {
        let responder = Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        responder.tokens.insert("tok", "tok.thumb");
        let filler = "x".repeat(64 * 1024);
        for request in [
            format!(
                "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a\r\nX-Big: {filler}\r\n\r\n"
            ),
            format!("GET /.well-known/acme-challenge/tok?{filler} HTTP/1.1\r\nHost: a\r\n\r\n"),
            format!(
                "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a\r\n{}\r\n",
                "X-Many: y\r\n".repeat(2000)
            ),
        ] {
            let mut stream = tokio::net::TcpStream::connect(responder.addr)
                .await
                .unwrap();
            // the server may close before it has read everything: a failed write is fine
            let _ = stream.write_all(request.as_bytes()).await;
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
                .await
                .expect("the connection is closed, not left open");
            let out = String::from_utf8_lossy(&out);
            assert!(
                out.is_empty()
                    || out.starts_with("HTTP/1.1 431")
                    || out.starts_with("HTTP/1.1 414")
                    || out.starts_with("HTTP/1.1 400"),
                "{}",
                &out[..out.len().min(200)]
            );
            assert!(!out.contains("tok.thumb"));
        }
    }

    #[tokio::test]
    async fn a_slow_client_is_dropped_while_others_are_served() {
        // long enough that the ordinary clients are surely served before it ends, loaded
        // machine or not; what is asserted is the order of events, never a speed
        let limits = Limits {
            header_timeout: Duration::from_secs(3),
            connection_timeout: Duration::from_secs(20),
            ..Limits::default()
        };
        let responder = Responder::bind_with("127.0.0.1:0".parse().unwrap(), limits)
            .await
            .unwrap();
        responder.tokens.insert("tok", "tok.thumb");
        let addr = responder.addr;
        let started = std::time::Instant::now();

        // slowloris: headers one byte every 100 ms, never finished in time; and a client
        // that connects and sends nothing at all
        let slow = |pace: Duration| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
            let (mut reader, mut writer) = stream.split();
            let write = async {
                for byte in request {
                    if writer.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pace).await;
                }
                std::future::pending::<()>().await
            };
            let mut out = Vec::new();
            tokio::select! {
                _ = write => unreachable!(),
                _ = reader.read_to_end(&mut out) => {}
            }
            (
                started.elapsed(),
                String::from_utf8_lossy(&out).into_owned(),
            )
        };
        let idle = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut out = Vec::new();
            let _ = stream.read_to_end(&mut out).await;
            (
                started.elapsed(),
                String::from_utf8_lossy(&out).into_owned(),
            )
        };
        let served = async {
            // while those hang on, ordinary clients are answered, one after another
            for _ in 0..5 {
                let rsp = get(addr, "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
                assert!(rsp.ends_with("tok.thumb"), "{rsp}");
            }
            started.elapsed()
        };
        let (a, b, c, served_by) = tokio::join!(
            slow(Duration::from_millis(100)),
            slow(Duration::from_millis(300)),
            idle,
            served
        );
        for (elapsed, out) in [a, b, c] {
            assert!(!out.contains("tok.thumb"), "{out}");
            assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out}");
            assert!(
                elapsed >= limits.header_timeout,
                "dropped after {elapsed:?}, before the header timeout"
            );
            assert!(
                served_by < elapsed,
                "the ordinary clients ({served_by:?}) waited for a slow one ({elapsed:?})"
            );
        }
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_their_turn() {
        let limits = Limits {
            max_connections: 2,
            ..short_limits()
        };
        let responder = Responder::bind_with("127.0.0.1:0".parse().unwrap(), limits)
            .await
            .unwrap();
        responder.tokens.insert("tok", "tok.thumb");
        let addr = responder.addr;
        // two idle clients take both slots, and hold them until the header timeout drops them
        let hold = move || async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut out = Vec::new();
            let _ = stream.read_to_end(&mut out).await;
        };
        // measured from before the holders connect: their header timeout starts later
        let started = std::time::Instant::now();
        let holders = tokio::spawn(async move { tokio::join!(hold(), hold()) });
        while responder.accepted() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // both are in: a third is answered only once a slot frees, after the header timeout
        let rsp = get(
            addr,
            "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(rsp.ends_with("tok.thumb"), "{rsp}");
        assert!(
            started.elapsed() >= limits.header_timeout,
            "the third waited for a slot: {:?}",
            started.elapsed()
        );
        holders.await.unwrap();
    }

    #[tokio::test]
    async fn binds_only_the_address_it_is_given() {
        let responder = Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(responder.addr.ip().to_string(), "127.0.0.1");
        // another loopback address, same port: nothing listens there
        let other = SocketAddr::from(([127, 0, 0, 2], responder.addr.port()));
        assert!(tokio::net::TcpStream::connect(other).await.is_err());
    }

    #[tokio::test]
    async fn one_responder_per_address_for_the_whole_run() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let mut responders = Responders::default();
        let first = responders.bind(addr).await.unwrap();
        let second = responders.bind(addr).await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        // a taken address is tried once, and each certificate that needs it is told
        let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = squatter.local_addr().unwrap();
        for _ in 0..2 {
            let err = responders.bind(taken).await.err().unwrap().to_string();
            assert!(err.contains("already in use"), "{err}");
        }
    }

    #[tokio::test]
    async fn stops_when_dropped() {
        let responder = Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = responder.addr;
        drop(responder);
        // at once, before this single-threaded runtime has run the aborted task again: the
        // next certctl, let in by the lock this run releases next, listens there
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "still listening"
        );
        let again = std::net::TcpListener::bind(addr).expect("the address is free again");
        drop(again);
    }
}
