//! tls-alpn-01 (RFC 8737, and RFC 8738 §6 for IP addresses) answered by certctl itself: a
//! TLS listener that completes a handshake only for ClientHellos offering ALPN `acme-tls/1`
//! and naming (by SNI) an identifier being validated, with a self-signed certificate that
//! carries the identifier and the critical acmeIdentifier extension. HAProxy's TCP frontend
//! on 443 routes those ClientHellos here and every other one to its TLS frontends. Binds only
//! where told, caps handshake time and open connections, never reads a file, stops when
//! dropped.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::listening::Serving;
use anyhow::anyhow;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{ChallengeType, Identifier, Pending, Solver, Task};
use crate::error::BadInput;

/// The ALPN protocol of tls-alpn-01 (RFC 8737 §6.2).
pub const ACME_TLS_1: &[u8] = b"acme-tls/1";
/// How long one validation connection may take, handshake included.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 256;

/// SNI name -> (the token answered, the challenge certificate).
type ByName = HashMap<String, (String, Arc<CertifiedKey>)>;

/// The challenge certificates currently served, by SNI name, with the token each answers.
#[derive(Debug, Clone, Default)]
struct Certificates(Arc<RwLock<ByName>>);

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // only a validation: a ClientHello without acme-tls/1 gets no certificate at all
        let acme = hello.alpn().is_some_and(|mut p| p.any(|p| p == ACME_TLS_1));
        let name = hello.server_name()?.to_ascii_lowercase();
        let found = match acme {
            true => self.read().get(&name).map(|(_, key)| key.clone()),
            false => None,
        };
        crate::log::debug(format_args!(
            "tls-alpn-01: ClientHello for {name:?}, acme-tls/1 {}: {}",
            if acme { "offered" } else { "not offered" },
            if found.is_some() {
                "answered"
            } else {
                "refused"
            }
        ));
        found
    }
}

impl Certificates {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, (String, Arc<CertifiedKey>)>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ByName> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running tls-alpn-01 listener; stops serving when dropped.
pub struct AlpnResponder {
    certificates: Certificates,
    pub addr: SocketAddr,
    _serving: Serving,
}

impl AlpnResponder {
    /// Listens on `addr`. A taken address is bad input (exit 2): the message names it and,
    /// when the system says, the process that holds it.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| bind_error(addr, &e))?;
        let addr = listener.local_addr()?;
        let certificates = Certificates::default();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("setting up TLS for tls-alpn-01: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(certificates.clone()));
        config.alpn_protocols = vec![ACME_TLS_1.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let serving = Serving::spawn(listener, |listener| serve(listener, acceptor))?;
        crate::log::verbose(format_args!("tls-alpn-01 listening on {addr}"));
        Ok(Self {
            certificates,
            addr,
            _serving: serving,
        })
    }
}

/// Whether `addr` can be listened on now (it is let go at once): `request` asks before it
/// takes the lock or writes anything, so that a taken address changes nothing. Another
/// certctl holding it is no error here: that run holds the lock, which this one waits for.
pub fn check(addr: SocketAddr) -> anyhow::Result<()> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && held_by_certctl(addr) => Ok(()),
        Err(e) => Err(bind_error(addr, &e)),
    }
}

fn held_by_certctl(addr: SocketAddr) -> bool {
    super::holder::holder(addr).is_some_and(|who| who.starts_with("certctl (pid "))
}

/// A taken address is bad input (exit 2): the message names it and, when the system says,
/// the process that holds it.
fn bind_error(addr: SocketAddr, e: &std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        let who = super::holder::holder(addr).unwrap_or_else(|| "another program".to_owned());
        anyhow::Error::new(BadInput::new(format!(
            "cannot listen on {addr} for tls-alpn-01: the address is already in use by {who}; \
             stop it, or choose another address with --tls-alpn-addr (and point HAProxy's \
             acme-tls/1 backend there)"
        )))
    } else {
        anyhow!("cannot listen on {addr} for tls-alpn-01: {e}")
    }
}

async fn serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // the semaphore is never closed, so acquiring only waits
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let handshake = async {
                use tokio::io::AsyncWriteExt;
                // the validator closes once it has the certificate; nothing is read
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.shutdown().await;
                }
            };
            let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
            drop(slot);
        });
    }
}

/// The listeners of one run, one per address, shared by all its certificates. An address
/// that cannot be bound is tried once; each certificate that needs it gets the error.
#[derive(Default)]
pub struct AlpnResponders(HashMap<SocketAddr, Result<Arc<AlpnResponder>, Arc<anyhow::Error>>>);

impl AlpnResponders {
    pub async fn bind(&mut self, addr: SocketAddr) -> anyhow::Result<Arc<AlpnResponder>> {
        let bound = match self.0.entry(addr) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                let bound = AlpnResponder::bind(addr).await;
                slot.insert(bound.map(Arc::new).map_err(Arc::new))
            }
        };
        match bound {
            Ok(responder) => Ok(responder.clone()),
            // bad input stays bad input for every certificate that needs the address
            Err(e) => match e.downcast_ref::<BadInput>() {
                Some(bad) => Err(BadInput::new(bad.0.clone()).into()),
                None => Err(anyhow!("{e:#}")),
            },
        }
    }
}

/// The solver that answers tls-alpn-01 from certctl's own listener.
pub struct TlsAlpn {
    responder: Arc<AlpnResponder>,
}

impl TlsAlpn {
    pub fn new(responder: Arc<AlpnResponder>) -> Self {
        Self { responder }
    }
}

impl Solver for TlsAlpn {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::TlsAlpn01
    }

    fn present<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(async move {
            for task in tasks {
                let key = challenge_certificate(task)?;
                let entry = (task.token.as_str().to_owned(), Arc::new(key));
                self.responder
                    .certificates
                    .write()
                    .insert(sni_name(&task.identifier), entry);
            }
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(async move {
            let mut certificates = self.responder.certificates.write();
            for task in tasks {
                let name = sni_name(&task.identifier);
                // another order's answer for the same name stays
                if certificates
                    .get(&name)
                    .is_some_and(|(token, _)| token == task.token.as_str())
                {
                    certificates.remove(&name);
                }
            }
            Ok(())
        })
    }
}

/// The SNI a validator sends for an identifier: the name itself, or for an IP address its
/// reverse-DNS name (RFC 8738 §6): `4.3.2.1.in-addr.arpa`, nibbles for IPv6 `.ip6.arpa`.
pub fn sni_name(identifier: &Identifier) -> String {
    match identifier {
        Identifier::Dns(name) => name.as_str().to_owned(),
        Identifier::Ip(IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        Identifier::Ip(IpAddr::V6(v6)) => {
            let mut labels: Vec<String> = Vec::with_capacity(33);
            for byte in v6.octets().iter().rev() {
                labels.push(format!("{:x}", byte & 0x0f));
                labels.push(format!("{:x}", byte >> 4));
            }
            labels.push("ip6.arpa".into());
            labels.join(".")
        }
    }
}

/// The self-signed certificate of one task (RFC 8737 §3): the identifier as its only
/// subjectAltName (an iPAddress for an address), the critical acmeIdentifier extension
/// holding SHA-256 of the key authorization, a fresh P-256 key.
fn challenge_certificate(task: &Task) -> anyhow::Result<CertifiedKey> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| anyhow!("generating a tls-alpn-01 key: {e}"))?;
    let mut params = CertificateParams::new(vec![task.identifier.to_string()])
        .map_err(|e| anyhow!("the tls-alpn-01 certificate for {}: {e}", task.identifier))?;
    params.distinguished_name = DistinguishedName::new();
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(
        &task.key_authorization.digest(),
    )];
    let cert = params
        .self_signed(&key)
        .map_err(|e| anyhow!("signing the tls-alpn-01 certificate: {e}"))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der)
        .map_err(|e| anyhow!("loading the tls-alpn-01 key: {e}"))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::{KeyAuthorization, Token};
    use crate::types::DomainName;

    #[tokio::test]
    async fn stops_listening_the_moment_it_is_dropped() {
        let responder = AlpnResponder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = responder.addr;
        drop(responder);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "still listening"
        );
        drop(std::net::TcpListener::bind(addr).expect("the address is free again"));
    }

    #[test]
    fn ip_addresses_are_named_by_their_reverse_dns_name() {
        let ip = |s: &str| Identifier::Ip(s.parse().unwrap());
        assert_eq!(sni_name(&ip("203.0.113.7")), "7.113.0.203.in-addr.arpa");
        // RFC 8738 §6's own example
        assert_eq!(
            sni_name(&ip("2001:db8::1")),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
        let dns = Identifier::Dns(DomainName::parse("a.test").unwrap());
        assert_eq!(sni_name(&dns), "a.test");
    }

    #[test]
    fn the_challenge_certificate_carries_the_identifier_and_the_digest() {
        use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
        let task = Task {
            identifier: Identifier::Ip("203.0.113.7".parse().unwrap()),
            challenge: ChallengeType::TlsAlpn01,
            token: Token::parse("tok").unwrap(),
            key_authorization: KeyAuthorization::new("tok.thumb"),
        };
        let key = challenge_certificate(&task).unwrap();
        let (_, cert) = X509Certificate::from_der(key.cert[0].as_ref()).unwrap();
        let acme = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(acme.critical);
        // OCTET STRING (0x04), 32 bytes, the digest
        let mut expected = vec![0x04, 32];
        expected.extend_from_slice(&task.key_authorization.digest());
        assert_eq!(acme.value, expected.as_slice());
        let sans: Vec<String> = cert
            .extensions()
            .iter()
            .filter_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => Some(san),
                _ => None,
            })
            .flat_map(|san| san.general_names.iter())
            .map(|n| match n {
                GeneralName::IPAddress(ip) => format!("ip {ip:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(sans, ["ip [203, 0, 113, 7]"]);
        assert_eq!(cert.subject().iter_common_name().count(), 0);
    }
}
