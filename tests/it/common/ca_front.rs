//! `CaFront`: a test-only HTTPS front before the lab's Pebble that misbehaves on purpose,
//! standing for a broken or hostile CA. Each fault applies to the requests whose path starts
//! with a given prefix (Pebble's: `/dir`, `/nonce-plz`, `/order-plz`, `/my-order/`,
//! `/certZ/`...): a body that stalls halfway, trickles a byte a second or never ends; an HTML
//! page, a redirect or a bare status; a huge Retry-After; or, for the certificate download, a
//! chain that is not the one asked for (another name, expired, without its intermediate, a
//! broken link), signed by a CA of the front's own. Every other request reaches Pebble
//! unchanged, as through the ARI shim (`ari_shim::forward_to`), so Pebble never notices.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SubjectPublicKeyInfo};
use rustls::{ClientConfig, ServerConfig, ServerConnection, StreamOwned};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use super::ari_shim::{
    Reply, Request, forward_to, listener_server_config, read_request, reply_head, send_reply,
};
use super::{Lab, lock, tls};

/// Read and write timeout of the front's own sockets.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stalled answer is held before the front gives up on it (a hang guard).
const STALL_LIMIT: Duration = Duration::from_secs(600);
/// The Retry-After that overflows any clock.
pub const HUGE_RETRY_AFTER: &str = "18446744073709551615";

/// What the front does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pebble's answer with its full Content-Length, but only half the body, then silence.
    StallBody,
    /// Pebble's answer, one byte a second.
    Trickle,
    /// A 200 JSON answer whose body never ends.
    Endless,
    /// A 200 HTML page (a web server's, not a CA's).
    Html,
    /// A 302 to another URL.
    Redirect,
    /// A bare status with a text body (404, 500...).
    Status(u16),
    /// Pebble's answer with `Retry-After: 18446744073709551615` added.
    HugeRetryAfter,
    /// A 503 problem document with `Retry-After: 18446744073709551615`, never Pebble's.
    Overloaded,
    /// A 429 rateLimited problem document with `Retry-After: <secs>`, never Pebble's.
    RateLimited(u64),
    /// The same about the order's names ("this exact set of identifiers").
    NamesRateLimited(u64),
    /// Pebble's certificate swapped for one that is not the one asked for.
    Cert(WrongCert),
    /// Pebble's answer, held until `release`: a moment in the middle of an order for the
    /// test to act in, with no clock involved. `clear_faults` leaves held requests held;
    /// dropping the front without `release` drops them, never reaching Pebble.
    Hold,
}

/// How the certificate download is falsified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongCert {
    /// Our key, a valid chain, but for `other.test`.
    OtherName,
    /// Our key and names, a valid chain, expired yesterday.
    Expired,
    /// Pebble's leaf without its intermediate.
    NoIntermediate,
    /// Pebble's leaf followed by a CA that did not sign it.
    BrokenLink,
}

struct Shared {
    origin: String,
    pebble: SocketAddr,
    to_pebble: Arc<ClientConfig>,
    faults: Mutex<Vec<(String, Fault)>>,
    /// "METHOD path" of every request, in order.
    seen: Mutex<Vec<String>>,
    /// Bytes sent in endless bodies.
    endless_bytes: AtomicU64,
    stop: AtomicBool,
    /// Set by `release`: held requests go on.
    released: AtomicBool,
    wrong_ca: (KeyPair, CertificateParams),
}

/// A running front; dropping it stops it (a stalled answer is let go).
pub struct CaFront {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl CaFront {
    /// Listens on a free 127.0.0.1 port with Pebble's listener certificate: the lab's
    /// `ca_bundle()` trusts the front as it trusts Pebble.
    pub fn start(lab: &Lab) -> CaFront {
        let server = listener_server_config(lab);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the CA front");
        let addr = listener.local_addr().expect("the CA front's address");
        let wrong_key = KeyPair::generate().expect("a key for the front's CA");
        let mut wrong = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        wrong
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Not Pebble CA");
        wrong.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let shared = Arc::new(Shared {
            origin: format!("https://{addr}"),
            pebble: lab.acme_addr(),
            to_pebble: tls::config_trusting(&[lab.ca_der().to_vec()]),
            faults: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            endless_bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            released: AtomicBool::new(false),
            wrong_ca: (wrong_key, wrong),
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
                    thread::spawn(move || {
                        if let Err(e) = serve(&shared, server, tcp) {
                            eprintln!("ca front: {e}");
                        }
                    });
                }
            })
        };
        CaFront {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The directory URL to give certctl as `--server`.
    pub fn directory_url(&self) -> String {
        format!("{}/dir", self.shared.origin)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// From now on, `fault` for every request whose path starts with `prefix` (replacing a
    /// fault set for the same prefix).
    pub fn set_fault(&self, prefix: &str, fault: Fault) {
        let mut faults = lock(&self.shared.faults);
        faults.retain(|(p, _)| p != prefix);
        faults.push((prefix.to_owned(), fault));
    }

    /// From now on, every request reaches Pebble unchanged.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Lets every request held by `Fault::Hold` go on, and those to come pass at once.
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
    }

    /// "METHOD path" of every request so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.seen).clone()
    }

    /// Bytes sent so far in endless bodies.
    pub fn endless_bytes(&self) -> u64 {
        self.shared.endless_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for CaFront {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

fn serve(shared: &Shared, server: Arc<ServerConfig>, tcp: TcpStream) -> Result<(), String> {
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    let conn = ServerConnection::new(server).map_err(|e| format!("tls server: {e}"))?;
    let mut stream = StreamOwned::new(conn, tcp);
    let Some(request) = read_request(&mut stream)? else {
        return Ok(());
    };
    lock(&shared.seen).push(format!("{} {}", request.method, request.path));
    let fault = lock(&shared.faults)
        .iter()
        .find(|(prefix, _)| request.path.starts_with(prefix.as_str()))
        .map(|(_, f)| *f);
    let forward = || forward_to(shared.pebble, shared.to_pebble.clone(), &request);
    match fault {
        None => send_reply(&mut stream, &forward()?),
        Some(Fault::Hold) => {
            let started = std::time::Instant::now();
            while !shared.released.load(Ordering::SeqCst)
                && !shared.stop.load(Ordering::SeqCst)
                && started.elapsed() < STALL_LIMIT
            {
                thread::sleep(Duration::from_millis(10));
            }
            // a front stopped with requests held (their client killed) lets them die
            if !shared.released.load(Ordering::SeqCst) {
                return Ok(());
            }
            send_reply(&mut stream, &forward()?)
        }
        Some(Fault::Html) => send_reply(
            &mut stream,
            &text(
                200,
                "text/html; charset=utf-8",
                "<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n",
            ),
        ),
        Some(Fault::Redirect) => {
            let mut reply = text(302, "text/plain", "moved\n");
            reply.headers.push((
                "Location".into(),
                format!("{}/moved{}", shared.origin, request.path),
            ));
            send_reply(&mut stream, &reply)
        }
        Some(Fault::Status(code)) => send_reply(
            &mut stream,
            &text(
                code,
                "text/plain",
                &format!("error {code} from the front\n"),
            ),
        ),
        Some(Fault::HugeRetryAfter) => {
            let mut reply = forward()?;
            reply
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("retry-after"));
            reply
                .headers
                .push(("Retry-After".into(), HUGE_RETRY_AFTER.into()));
            send_reply(&mut stream, &reply)
        }
        Some(Fault::Overloaded) => {
            let mut reply = text(
                503,
                "application/problem+json",
                r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"the front is overloaded","status":503}"#,
            );
            reply
                .headers
                .push(("Retry-After".into(), HUGE_RETRY_AFTER.into()));
            send_reply(&mut stream, &reply)
        }
        Some(Fault::RateLimited(secs) | Fault::NamesRateLimited(secs)) => {
            let detail = match fault {
                Some(Fault::NamesRateLimited(_)) => {
                    "too many certificates already issued for this exact set of identifiers"
                }
                _ => "too many new orders recently",
            };
            let body = format!(
                r#"{{"type":"urn:ietf:params:acme:error:rateLimited","detail":"{detail}","status":429}}"#
            );
            let mut reply = text(429, "application/problem+json", &body);
            reply.headers.push(("Retry-After".into(), secs.to_string()));
            send_reply(&mut stream, &reply)
        }
        Some(Fault::StallBody) => {
            let reply = forward()?;
            let mut head = reply_head(&reply, Some(reply.body.len()));
            head.extend_from_slice(&reply.body[..reply.body.len() / 2]);
            stream.write_all(&head).map_err(|e| format!("stall: {e}"))?;
            stream.flush().map_err(|e| format!("stall: {e}"))?;
            hold(shared, STALL_LIMIT);
            Ok(())
        }
        Some(Fault::Trickle) => {
            let reply = forward()?;
            let head = reply_head(&reply, Some(reply.body.len()));
            stream
                .write_all(&head)
                .map_err(|e| format!("trickle: {e}"))?;
            for byte in &reply.body {
                if shared.stop.load(Ordering::SeqCst)
                    || stream
                        .write_all(&[*byte])
                        .and_then(|()| stream.flush())
                        .is_err()
                {
                    break;
                }
                thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        }
        Some(Fault::Endless) => {
            let reply = text(200, "application/json", "");
            stream
                .write_all(&reply_head(&reply, None))
                .map_err(|e| format!("endless: {e}"))?;
            let chunk = vec![b' '; 64 * 1024];
            let _ = stream.write_all(b"{\"endless\": \"");
            while !shared.stop.load(Ordering::SeqCst) && stream.write_all(&chunk).is_ok() {
                shared
                    .endless_bytes
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            Ok(())
        }
        Some(Fault::Cert(kind)) => {
            let mut reply = forward()?;
            if reply.status == 200 {
                reply.body = wrong_chain(shared, &reply.body, kind)?.into_bytes();
            }
            send_reply(&mut stream, &reply)
        }
    }
}

/// Sleeps until the front stops or `limit` has passed.
fn hold(shared: &Shared, limit: Duration) {
    let started = std::time::Instant::now();
    while !shared.stop.load(Ordering::SeqCst) && started.elapsed() < limit {
        thread::sleep(Duration::from_millis(100));
    }
}

fn text(status: u16, content_type: &str, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), content_type.into())],
        body: body.as_bytes().to_vec(),
    }
}

/// Pebble's chain (PEM) made into one that is not the certificate asked for.
fn wrong_chain(shared: &Shared, pebble_chain: &[u8], kind: WrongCert) -> Result<String, String> {
    let blocks: Vec<Vec<u8>> = pem::parse_many(pebble_chain)
        .map_err(|e| format!("Pebble's chain: {e}"))?
        .into_iter()
        .map(|b| b.into_contents())
        .collect();
    let leaf = blocks.first().ok_or("Pebble sent no certificate")?;
    let pem_of = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
    let (ca_key, ca_params) = &shared.wrong_ca;
    let ca_der = ca_params
        .clone()
        .self_signed(ca_key)
        .map_err(|e| format!("the front's CA: {e}"))?
        .der()
        .to_vec();
    Ok(match kind {
        WrongCert::NoIntermediate => pem_of(leaf),
        WrongCert::BrokenLink => pem_of(leaf) + &pem_of(&ca_der),
        WrongCert::OtherName | WrongCert::Expired => {
            let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| format!("leaf: {e}"))?;
            let names = if kind == WrongCert::OtherName {
                vec!["other.test".to_owned()]
            } else {
                san_names(&cert)
            };
            let mut params = CertificateParams::new(names).map_err(|e| e.to_string())?;
            let now = time::OffsetDateTime::now_utc();
            (params.not_before, params.not_after) = if kind == WrongCert::Expired {
                (
                    now - time::Duration::days(30),
                    now - time::Duration::days(1),
                )
            } else {
                (
                    now - time::Duration::hours(1),
                    now + time::Duration::days(30),
                )
            };
            let ours = SubjectPublicKeyInfo::from_der(cert.public_key().raw)
                .map_err(|e| format!("the leaf's key: {e}"))?;
            let issuer = Issuer::from_params(ca_params, ca_key);
            let fake = params
                .signed_by(&ours, &issuer)
                .map_err(|e| format!("signing: {e}"))?;
            pem_of(fake.der()) + &pem_of(&ca_der)
        }
    })
}

/// The DNS names and IP addresses of a certificate.
fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => names.push(d.to_string()),
                    GeneralName::IPAddress(ip) if ip.len() == 4 => {
                        let b: [u8; 4] = (*ip).try_into().unwrap_or_default();
                        names.push(std::net::Ipv4Addr::from(b).to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    names
}

/// Keeps the request type in use for the compiler when no test inspects it.
#[allow(dead_code)]
fn _request_type(_: &Request) {}
