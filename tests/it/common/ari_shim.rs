//! `AriShim`: a test-only stand-in for a CA with ACME Renewal Information (RFC 9773), which
//! Debian's Pebble 2.4.0 lacks. An HTTPS reverse proxy in front of the lab's real Pebble
//! adding only `renewalInfo` in the directory, that endpoint (the window a test sets), the
//! echo of `replaces` on new orders, and two switches (ARI off, `alreadyReplaced`); also the
//! profiles extension (profiles in the directory's meta, the `profile` of each new order
//! recorded), which Pebble 2.4.0 lacks too. Every
//! other request reaches Pebble unchanged; the shim never signs, validates or issues.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ServerConfig, ServerConnection, StreamOwned};
use serde_json::{Value, json};

use super::{Lab, lock, tls};

/// Read and write timeout on every connection, both sides.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head the shim reads.
const MAX_HEAD: usize = 64 * 1024;
/// The path of the renewalInfo endpoint; a certificate's ARI id follows it.
const RENEWAL_INFO: &str = "/renewal-info";

/// The renewal window the shim announces for every certificate.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: SystemTime,
    end: SystemTime,
    retry_after_secs: u64,
}

/// What the shim knows and records, shared with its connection threads.
struct Shared {
    /// `https://127.0.0.1:<shim port>`
    origin: String,
    pebble: SocketAddr,
    to_pebble: Arc<ClientConfig>,
    /// The path of Pebble's newOrder URL, learned from its directory.
    new_order_path: Mutex<Option<String>>,
    window: Mutex<Option<Window>>,
    /// Whether the directory announces renewalInfo (as a CA that turned ARI off would not).
    offers_ari: AtomicBool,
    /// Whether new orders with `replaces` get 409 alreadyReplaced instead of reaching Pebble.
    refuses_replaces: AtomicBool,
    /// Whether the answer to a new order echoes its `replaces` (a CA that implements ARI
    /// partially takes the field and leaves it out).
    echoes_replaces: AtomicBool,
    /// The certificate id of every renewalInfo request, in order.
    renewal_info_ids: Mutex<Vec<String>>,
    /// The `replaces` of every new order that carried one and was taken (see `replaces_seen`).
    replaces: Mutex<Vec<String>>,
    /// The profiles the directory announces (name, description); none at start.
    profiles: Mutex<Vec<(String, String)>>,
    /// The `profile` of every new order Pebble took (None: the order named none).
    profiles_seen: Mutex<Vec<Option<String>>>,
}

/// A running shim; dropping it stops accepting connections.
pub struct AriShim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl AriShim {
    /// Listens on a free 127.0.0.1 port with Pebble's listener certificate, so the lab's
    /// `ca_bundle()` trusts the shim as it trusts Pebble.
    pub fn start(lab: &Lab) -> AriShim {
        let server = listener_server_config(lab);

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the ARI shim");
        let addr = listener.local_addr().expect("the ARI shim's address");
        let pebble = lab.acme_addr();
        let shared = Arc::new(Shared {
            origin: format!("https://{addr}"),
            pebble,
            to_pebble: tls::config_trusting(&[lab.ca_der().to_vec()]),
            new_order_path: Mutex::new(None),
            window: Mutex::new(None),
            offers_ari: AtomicBool::new(true),
            refuses_replaces: AtomicBool::new(false),
            echoes_replaces: AtomicBool::new(true),
            renewal_info_ids: Mutex::new(Vec::new()),
            replaces: Mutex::new(Vec::new()),
            profiles: Mutex::new(Vec::new()),
            profiles_seen: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (shared, stop) = (shared.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = conn else { continue };
                    let (shared, server) = (shared.clone(), server.clone());
                    thread::spawn(move || {
                        if let Err(e) = serve(&shared, server, tcp) {
                            eprintln!("ari shim: {e}");
                        }
                    });
                }
            })
        };
        AriShim {
            addr,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The directory URL to give certctl as `--server`.
    pub fn directory_url(&self) -> String {
        format!("{}/dir", self.shared.origin)
    }

    /// From now on, renewalInfo answers this window for every certificate, with
    /// `Retry-After: retry_after_secs`.
    pub fn set_window(&self, start: SystemTime, end: SystemTime, retry_after_secs: u64) {
        *lock(&self.shared.window) = Some(Window {
            start,
            end,
            retry_after_secs,
        });
    }

    /// Whether the directory announces renewalInfo from now on (true at start).
    pub fn set_offers_ari(&self, offers: bool) {
        self.shared.offers_ari.store(offers, Ordering::SeqCst);
    }

    /// From now on, refuse every new order that carries `replaces` with the RFC 9773
    /// problem `alreadyReplaced` (409), as a CA does when the certificate was replaced.
    pub fn set_refuses_replaces(&self, refuses: bool) {
        self.shared
            .refuses_replaces
            .store(refuses, Ordering::SeqCst);
    }

    /// Whether new orders' answers echo their `replaces` from now on (true at start).
    pub fn set_echoes_replaces(&self, echoes: bool) {
        self.shared.echoes_replaces.store(echoes, Ordering::SeqCst);
    }

    /// How many renewalInfo requests the shim answered (or refused), for any certificate.
    pub fn renewal_info_requests(&self) -> usize {
        lock(&self.shared.renewal_info_ids).len()
    }

    /// The certificate id of each renewalInfo request, in order.
    pub fn renewal_info_ids(&self) -> Vec<String> {
        lock(&self.shared.renewal_info_ids).clone()
    }

    /// From now on, the directory's meta announces these profiles (name, description);
    /// none leaves `profiles` out, as a CA without the extension does.
    pub fn set_profiles(&self, profiles: &[(&str, &str)]) {
        *lock(&self.shared.profiles) = profiles
            .iter()
            .map(|(n, d)| ((*n).to_owned(), (*d).to_owned()))
            .collect();
    }

    /// The `profile` field of each new order Pebble took, in order (None: no profile).
    pub fn profiles_seen(&self) -> Vec<Option<String>> {
        lock(&self.shared.profiles_seen).clone()
    }

    /// The `replaces` of each new order that had one, in order: orders Pebble accepted, and
    /// orders the shim refused itself (`set_refuses_replaces`); not those Pebble refused
    /// (a rejected nonce makes the client send the same order again).
    pub fn replaces_seen(&self) -> Vec<String> {
        lock(&self.shared.replaces).clone()
    }
}

/// A TLS server configuration with Pebble's listener certificate, so the lab's `ca_bundle()`
/// trusts a front as it trusts Pebble.
pub(super) fn listener_server_config(lab: &Lab) -> Arc<ServerConfig> {
    let (cert_pem, key_pem) = lab.listener_identity();
    server_config_from_pem(&cert_pem, &key_pem)
}

/// A TLS server configuration with this certificate and PKCS#8 key (PEM).
pub(super) fn server_config_from_pem(cert_pem: &str, key_pem: &str) -> Arc<ServerConfig> {
    let cert = CertificateDer::from(
        pem::parse(cert_pem)
            .expect("listener certificate PEM")
            .into_contents(),
    );
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        pem::parse(key_pem)
            .expect("listener key PEM")
            .into_contents(),
    ));
    let server = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("default protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("listener certificate and key");
    Arc::new(server)
}

impl Drop for AriShim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the blocking accept; it sees the flag and returns
        let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// One request as the client sent it.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    /// Header lines, without the request line, each without its CRLF.
    pub(super) headers: Vec<String>,
    pub(super) body: Vec<u8>,
}

/// One answer, sent with `Connection: close` and its own Content-Length.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("json"),
        }
    }

    fn not_found(what: &str) -> Reply {
        Reply {
            status: 404,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("the ARI shim does not serve {what}\n").into_bytes(),
        }
    }
}

fn serve(shared: &Shared, server: Arc<ServerConfig>, tcp: TcpStream) -> Result<(), String> {
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    let conn = ServerConnection::new(server).map_err(|e| format!("tls server: {e}"))?;
    let mut stream = StreamOwned::new(conn, tcp);
    let Some(request) = read_request(&mut stream)? else {
        return Ok(()); // the wake-up connection of Drop, or a client that gave up
    };
    let reply = route(shared, &request).unwrap_or_else(|e| {
        eprintln!("ari shim: {} {}: {e}", request.method, request.path);
        Reply {
            status: 502,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("the ARI shim could not reach Pebble: {e}\n").into_bytes(),
        }
    });
    send_reply(&mut stream, &reply)
}

/// The status line and headers of `reply`, with `Connection: close` and, unless
/// `length` is None, a Content-Length.
pub(super) fn reply_head(reply: &Reply, length: Option<usize>) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = length {
        out.push_str(&format!("Content-Length: {length}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Sends `reply` whole and closes the TLS session.
pub(super) fn send_reply(
    stream: &mut StreamOwned<ServerConnection, TcpStream>,
    reply: &Reply,
) -> Result<(), String> {
    let mut bytes = reply_head(reply, Some(reply.body.len()));
    bytes.extend_from_slice(&reply.body);
    stream
        .write_all(&bytes)
        .map_err(|e| format!("reply: {e}"))?;
    stream.conn.send_close_notify();
    stream.flush().map_err(|e| format!("reply: {e}"))
}

fn route(shared: &Shared, request: &Request) -> Result<Reply, String> {
    let new_order = lock(&shared.new_order_path).clone();
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/dir") => directory(shared, request),
        ("POST", path) if new_order.as_deref() == Some(path) => forward_new_order(shared, request),
        ("GET", path) if path.starts_with(RENEWAL_INFO) => Ok(renewal_info(shared, path)),
        _ => forward(shared, request),
    }
}

/// Pebble's directory (its URLs name the shim, see `forward`) plus `renewalInfo`.
fn directory(shared: &Shared, request: &Request) -> Result<Reply, String> {
    let mut reply = forward(shared, request)?;
    if reply.status != 200 {
        return Ok(reply);
    }
    let mut dir: Value =
        serde_json::from_slice(&reply.body).map_err(|e| format!("Pebble's /dir: {e}"))?;
    let new_order = dir["newOrder"]
        .as_str()
        .ok_or("Pebble's /dir has no newOrder")?;
    let path = new_order
        .strip_prefix(&shared.origin)
        .ok_or_else(|| format!("newOrder {new_order} is not on {}", shared.origin))?
        .to_owned();
    *lock(&shared.new_order_path) = Some(path);
    if shared.offers_ari.load(Ordering::SeqCst) {
        dir["renewalInfo"] = json!(format!("{}{RENEWAL_INFO}", shared.origin));
    }
    let profiles = lock(&shared.profiles).clone();
    if !profiles.is_empty() {
        let map: serde_json::Map<String, Value> =
            profiles.into_iter().map(|(n, d)| (n, json!(d))).collect();
        dir["meta"]["profiles"] = Value::Object(map);
    }
    reply.body = serde_json::to_vec(&dir).expect("json");
    Ok(reply)
}

/// The new order goes to Pebble unchanged; a `replaces` in its payload is recorded and
/// echoed in Pebble's answer, as RFC 9773 asks of the CA (instant-acme checks the echo).
fn forward_new_order(shared: &Shared, request: &Request) -> Result<Reply, String> {
    let payload = jws_payload(&request.body)?;
    let replaces = payload
        .get("replaces")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let profile = payload
        .get("profile")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let (Some(id), true) = (&replaces, shared.refuses_replaces.load(Ordering::SeqCst)) {
        lock(&shared.replaces).push(id.clone());
        let mut reply = Reply::json(
            409,
            &json!({
                "type": "urn:ietf:params:acme:error:alreadyReplaced",
                "detail": format!("certificate {id} already has a replacement order (ARI shim)"),
                "status": 409,
            }),
        );
        reply.headers[0].1 = "application/problem+json".into();
        return Ok(reply);
    }
    let mut reply = forward(shared, request)?;
    // only orders Pebble took count: it refuses some nonces on purpose, and the client
    // then sends the same order again
    if (200..300).contains(&reply.status) {
        lock(&shared.profiles_seen).push(profile);
    }
    if let (Some(id), true) = (replaces, (200..300).contains(&reply.status)) {
        lock(&shared.replaces).push(id.clone());
        let mut order: Value =
            serde_json::from_slice(&reply.body).map_err(|e| format!("Pebble's new order: {e}"))?;
        if shared.echoes_replaces.load(Ordering::SeqCst) {
            order["replaces"] = json!(id);
        }
        reply.body = serde_json::to_vec(&order).expect("json");
    }
    Ok(reply)
}

/// Sends the request to Pebble as it came, Host header included, and returns Pebble's
/// answer. The Host matters: Pebble checks a JWS `url` against `https://{Host}{RequestURI}`
/// and an account `kid` against URLs it builds from Host, and it builds every URL it hands
/// out from Host as well. So every URL certctl sees names the shim, and every ACME request
/// passes through it unchanged: Pebble cannot tell the shim from its own listener.
fn forward(shared: &Shared, request: &Request) -> Result<Reply, String> {
    forward_to(shared.pebble, shared.to_pebble.clone(), request)
}

/// `forward` to the Pebble at `pebble`, trusted by `to_pebble`.
pub(super) fn forward_to(
    pebble: SocketAddr,
    to_pebble: Arc<ClientConfig>,
    request: &Request,
) -> Result<Reply, String> {
    // HTTP/1.0: Pebble closes after its reply and never sends it chunked
    let mut raw = format!("{} {} HTTP/1.0\r\n", request.method, request.path);
    for line in &request.headers {
        let name = line.split(':').next().unwrap_or("").trim();
        if !is_hop_by_hop(name) {
            raw.push_str(line);
            raw.push_str("\r\n");
        }
    }
    if !request.body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(&request.body);
    let reply = tls::https_request(pebble, "127.0.0.1", &raw, to_pebble)?;
    let headers = reply
        .head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| !is_hop_by_hop(name.trim()))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Reply {
        status: reply.status,
        headers,
        body: reply.body.into_bytes(),
    })
}

/// Headers about one connection, which the shim sets itself on each side.
fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// The window set by the test, for any certificate id; counted.
fn renewal_info(shared: &Shared, path: &str) -> Reply {
    let id = path
        .strip_prefix(RENEWAL_INFO)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or("");
    lock(&shared.renewal_info_ids).push(id.to_owned());
    let Some(window) = *lock(&shared.window) else {
        return Reply::not_found("renewalInfo before set_window");
    };
    let mut reply = Reply::json(
        200,
        &json!({
            "suggestedWindow": { "start": rfc3339(window.start), "end": rfc3339(window.end) }
        }),
    );
    reply
        .headers
        .push(("Retry-After".into(), window.retry_after_secs.to_string()));
    reply
}

fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .expect("zero nanoseconds");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formatting RFC 3339")
}

/// The JSON payload of a flattened JWS (`{"protected", "payload", "signature"}`).
fn jws_payload(body: &[u8]) -> Result<Value, String> {
    let jws: Value = serde_json::from_slice(body).map_err(|e| format!("JWS body: {e}"))?;
    let payload = jws["payload"].as_str().ok_or("JWS without payload")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| format!("JWS payload: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("JWS payload: {e}"))
}

/// Reads one request (head, then a Content-Length body); None when the client sent nothing.
pub(super) fn read_request(stream: &mut impl Read) -> Result<Option<Request>, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) if buf.is_empty() => return Ok(None),
            Err(e) => return Err(format!("reading request: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let (method, path) = (
        request_line.next().unwrap_or("").to_owned(),
        request_line.next().unwrap_or("").to_owned(),
    );
    let headers: Vec<String> = lines.map(str::to_owned).collect();
    let header = |name: &str| {
        headers.iter().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if header("transfer-encoding").is_some() {
        return Err(format!(
            "{method} {path}: chunked request bodies are not supported"
        ));
    }
    let length: usize = header("content-length")
        .map(|v| v.parse().map_err(|e| format!("Content-Length {v:?}: {e}")))
        .transpose()?
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("{method} {path}: body cut short")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the body of {method} {path}: {e}")),
        }
    }
    body.truncate(length);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        302 => "Found",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
