//! Blocking TLS and HTTP/1.0 clients for the lab: handshakes that return the peer chain
//! (verified or not) and one-shot GETs over TLS or plain TCP. rustls with aws-lc-rs only;
//! every socket operation has a timeout. Loopback addresses only, by the callers' contract.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};

/// Connect, read and write timeout for every lab socket.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Trusts exactly the given DER certificates as roots.
pub fn config_trusting(roots: &[Vec<u8>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for der in roots {
        store
            .add(CertificateDer::from(der.clone()))
            .expect("adding trust anchor");
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("default protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts any server certificate: for looking at what a server sends, never for trusting it.
pub fn config_accepting_anything() -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
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
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("setting timeouts on {addr}: {e}"))?;
    Ok(tcp)
}

/// Completes a TLS handshake with `addr`, sending `sni` (a DNS name or an IP address).
pub fn handshake(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> Result<TlsStream, String> {
    let name =
        ServerName::try_from(sni.to_owned()).map_err(|e| format!("server name {sni}: {e}"))?;
    let conn = ClientConnection::new(config, name).map_err(|e| format!("tls client: {e}"))?;
    let mut stream = StreamOwned::new(conn, connect(addr)?);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| format!("tls handshake with {addr} (sni {sni}): {e}"))?;
    }
    Ok(stream)
}

/// The chain the peer sent, leaf first, as DER.
pub fn peer_chain(stream: &TlsStream) -> Vec<Vec<u8>> {
    stream
        .conn
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.to_vec()).collect())
        .unwrap_or_default()
}

/// A parsed HTTP response: status code, header block (without the status line) and body.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpReply {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

fn request_bytes(host: &str, path: &str) -> Vec<u8> {
    // HTTP/1.0: the server closes after one response and never uses chunked encoding.
    format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: certctl-lab\r\n\r\n").into_bytes()
}

/// Reads until the peer closes; a TLS peer that closes without close_notify still counts.
fn read_all(reader: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && !buf.is_empty() => return Ok(buf),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading response: {e}")),
        }
    }
}

fn parse_reply(raw: &[u8]) -> Result<HttpReply, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in response: {text:?}"))?;
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    Ok(HttpReply {
        status,
        head: headers.replace("\r\n", "\n"),
        body: body.to_owned(),
    })
}

/// `GET path` over TLS to `addr` with SNI and Host `host`.
pub fn https_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    config: Arc<ClientConfig>,
) -> Result<HttpReply, String> {
    https_request(addr, host, &request_bytes(host, path), config)
}

/// Sends the raw `request` over TLS to `addr` with SNI `sni` and reads the reply until the
/// peer closes (so `request` should be HTTP/1.0 or say `Connection: close`).
pub fn https_request(
    addr: SocketAddr,
    sni: &str,
    request: &[u8],
    config: Arc<ClientConfig>,
) -> Result<HttpReply, String> {
    let mut stream = handshake(addr, sni, config)?;
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending request to {addr}: {e}"))?;
    parse_reply(&read_all(&mut stream)?)
}

/// `GET path` over plain TCP to `addr` with Host `host`.
pub fn http_get(addr: SocketAddr, host: &str, path: &str) -> Result<HttpReply, String> {
    let mut tcp = connect(addr)?;
    tcp.write_all(&request_bytes(host, path))
        .map_err(|e| format!("sending request to {addr}: {e}"))?;
    parse_reply(&read_all(&mut tcp)?)
}
