//! One DNS exchange with one server: a query over UDP (again over TCP when the answer is
//! truncated), or any message over TCP (UPDATE). Every exchange has a deadline, reads at most
//! one 64 KiB message, checks that the answer is for the question, and fails naming the
//! server and what it did (no answer within N s, connection refused, a malformed answer).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// First wait for a UDP answer before sending again; doubled at each try.
const UDP_RETRY: Duration = Duration::from_millis(500);

/// A random message id (a fresh one per exchange, so an old answer is never taken).
pub fn message_id() -> u16 {
    let mut id = [0u8; 2];
    // SystemRandom only fails where the OS has no entropy source; 0 is then still valid
    let _ = aws_lc_rs::rand::fill(&mut id);
    u16::from_be_bytes(id)
}

/// A query for `name`/`rtype`; `recurse` for a resolver, not for an authoritative server.
pub fn query_message(name: &Name, rtype: RecordType, recurse: bool) -> Message {
    let mut query = Query::query(name.clone(), rtype);
    query.set_query_class(DNSClass::IN);
    let mut message = Message::new();
    message
        .set_id(message_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(recurse)
        .add_query(query);
    let mut edns = Edns::new();
    edns.set_max_payload(1232).set_version(0);
    message.set_edns(edns);
    message
}

/// Asks `server` for `name`/`rtype` before `deadline`.
pub async fn query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    recurse: bool,
    deadline: Instant,
) -> anyhow::Result<Message> {
    let request = query_message(name, rtype, recurse);
    let bytes = request.to_vec().context("encoding a DNS query")?;
    let answer = udp(server, &bytes, request.id(), deadline).await?;
    let answer = match answer.truncated() {
        false => answer,
        true => parse(server, &tcp(server, &bytes, deadline).await?)?,
    };
    if answer.id() != request.id() || answer.queries() != request.queries() {
        bail!("{server} answered another question than {name} {rtype}");
    }
    Ok(answer)
}

/// Sends `bytes` (one message) over UDP and waits for the answer with `id`, sending again
/// after 0.5 s, 1 s, 2 s... until `deadline`.
async fn udp(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    deadline: Instant,
) -> anyhow::Result<Message> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .context("opening a UDP socket")?;
    socket
        .connect(server)
        .await
        .with_context(|| format!("reaching the DNS server {server}"))?;
    let mut wait = UDP_RETRY;
    let mut buf = vec![0u8; 4096];
    loop {
        socket
            .send(bytes)
            .await
            .with_context(|| format!("sending to the DNS server {server}"))?;
        let retry_at = (Instant::now() + wait).min(deadline);
        loop {
            match tokio::time::timeout_at(retry_at, socket.recv(&mut buf)).await {
                Err(_) => break,
                // an ICMP port unreachable: nothing listens there
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    bail!("the DNS server {server} refused the connection (nothing listens there)")
                }
                Ok(Err(e)) => return Err(e).with_context(|| format!("reading from {server}")),
                Ok(Ok(n)) => {
                    // a stray or late datagram is not the answer: keep waiting
                    if let Ok(message) = Message::from_vec(&buf[..n]) {
                        if message.id() == id && message.message_type() == MessageType::Response {
                            return Ok(message);
                        }
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            bail!("the DNS server {server} did not answer (deadline reached)");
        }
        wait *= 2;
    }
}

/// Sends one message over TCP and returns the raw answer, before `deadline`.
pub async fn tcp(server: SocketAddr, bytes: &[u8], deadline: Instant) -> anyhow::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    anyhow!(
                        "the DNS server {server} refused the connection (nothing listens there)"
                    )
                }
                _ => anyhow!("connecting to the DNS server {server}: {e}"),
            })?;
        let len = u16::try_from(bytes.len()).context("a DNS message over 64 KiB")?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        stream
            .write_all(&framed)
            .await
            .with_context(|| format!("sending to the DNS server {server}"))?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.with_context(|| {
            format!("the DNS server {server} closed the connection without an answer")
        })?;
        let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
        stream
            .read_exact(&mut answer)
            .await
            .with_context(|| format!("reading the answer of the DNS server {server}"))?;
        Ok(answer)
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(result) => result,
        Err(_) => bail!("the DNS server {server} did not answer (deadline reached)"),
    }
}

/// Parses an answer from `server`.
pub fn parse(server: SocketAddr, bytes: &[u8]) -> anyhow::Result<Message> {
    Message::from_vec(bytes)
        .map_err(|e| anyhow!("the DNS server {server} sent a malformed answer: {e}"))
}

/// The deadline of one exchange: `within` from now, but never past `overall`.
pub fn exchange_deadline(overall: Instant, within: Duration) -> Instant {
    (Instant::now() + within).min(overall)
}
