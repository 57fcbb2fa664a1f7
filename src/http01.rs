//! The HTTP-01 challenge responder: answers GET/HEAD /.well-known/acme-challenge/<token>
//! for the tokens it was given, 404 for anything else, 405 for other methods.
//! It knows tokens and key authorizations, nothing of accounts or storage; it binds only
//! where told, caps header size and request time, and stops when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::anyhow;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BUF: usize = 8 * 1024;

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

/// True for a token the CA may legitimately send: base64url, 1 to 256 characters.
pub fn valid_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A running responder; stops serving when dropped.
pub struct Responder {
    pub tokens: Tokens,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Responder {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
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
        let task = tokio::spawn(serve(listener, tokens.clone()));
        crate::log::verbose(format_args!("HTTP-01 responder listening on {addr}"));
        Ok(Self { tokens, addr, task })
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, tokens: Tokens) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
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
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_BUF)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
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

    #[tokio::test]
    async fn stops_when_dropped() {
        let responder = Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = responder.addr;
        drop(responder);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
