//! Asks a running proxy which certificate it serves for a name: a TLS handshake with SNI to
//! HOST:PORT, whose leaf is compared with the stored one. Trusts nothing and checks nothing
//! of the chain (the point is to see what is served, valid or not); bounded in time.

use std::io;
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Where to probe: HOST:PORT as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(Self(raw.to_owned()))
            }
            _ => Err(format!(
                "--probe {raw:?} is not HOST:PORT (like 127.0.0.1:443 or proxy1.lan:443)"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The leaf (DER) that `endpoint` serves for `name`; `name` goes out as SNI (an IP address
/// sends none; a wildcard's `*` becomes a label).
pub fn served_leaf(endpoint: &Endpoint, name: &str, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let sni = name.replace('*', "certctl-probe");
    let server_name = match sni.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(sni.clone())
            .map_err(|e| anyhow!("{name:?} cannot be sent as SNI: {e}"))?,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ShowAnything(provider)))
        .with_no_client_auth();
    let mut conn = ClientConnection::new(Arc::new(config), server_name)
        .context("setting up the TLS connection")?;
    let addr = endpoint
        .0
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", endpoint.0))?
        .next()
        .with_context(|| format!("{} has no address", endpoint.0))?;
    let mut socket = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {}", endpoint.0))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                anyhow!("{} did not finish the TLS handshake in time", endpoint.0)
            }
            _ => anyhow!("TLS handshake with {} for {name}: {e}", endpoint.0),
        })?;
    }
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .map(|leaf| leaf.as_ref().to_vec())
        .with_context(|| format!("{} sent no certificate for {name}", endpoint.0))
}

/// Accepts whatever the server shows (signatures of the handshake are still checked).
#[derive(Debug)]
struct ShowAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for ShowAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
