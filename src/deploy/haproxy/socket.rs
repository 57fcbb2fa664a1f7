//! One exchange on a HAProxy admin socket (unix or TCP): send a command, read the whole
//! reply, bounded in time (the deadline covers connect to last byte, so a proxy that answers
//! one byte at a time cannot stretch it) and in size (an endless reply is cut and reported).
//! Knows nothing of what the commands mean.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::types::Socket;

/// The longest reply read: `show ssl cert` of a proxy with thousands of certificates is a
/// few hundred kilobytes; anything past this is not HAProxy answering a command.
pub const MAX_REPLY: usize = 4 << 20;

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// No connection, or the command could not be sent.
    Send(std::io::Error),
    /// The reply did not end before the deadline (or reading it failed).
    Read(std::io::Error),
    /// The reply went on past `MAX_REPLY` bytes.
    TooLong,
}

/// Connects to `socket`, sends `command` and a line end, and reads the reply to its end,
/// all within `limit`.
pub fn exchange(socket: &Socket, command: &str, limit: Duration) -> Result<Vec<u8>, Failure> {
    let deadline = Instant::now() + limit;
    match socket {
        Socket::Unix(path) => {
            let stream = UnixStream::connect(path).map_err(Failure::Send)?;
            send_and_read(stream, command, limit, deadline)
        }
        Socket::Tcp(addr) => {
            let stream = TcpStream::connect_timeout(addr, limit).map_err(Failure::Send)?;
            send_and_read(stream, command, limit, deadline)
        }
    }
}

/// A connected admin socket: unix or TCP, the same exchange over either.
trait AdminStream: Read + Write {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
    fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl AdminStream for UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_write_timeout(self, t)
    }
}

impl AdminStream for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }
}

fn send_and_read<S: AdminStream>(
    mut stream: S,
    command: &str,
    limit: Duration,
    deadline: Instant,
) -> Result<Vec<u8>, Failure> {
    stream
        .set_read_timeout(Some(limit))
        .map_err(Failure::Send)?;
    stream
        .set_write_timeout(Some(limit))
        .map_err(Failure::Send)?;
    stream
        .write_all(command.as_bytes())
        .and_then(|()| stream.write_all(b"\n"))
        .map_err(Failure::Send)?;
    read_until(&mut stream, deadline, MAX_REPLY, |s, t| {
        s.set_read_timeout(Some(t))
    })
}

/// Reads to the end of the reply, but never past `deadline` nor past `max` bytes.
fn read_until<S: Read>(
    stream: &mut S,
    deadline: Instant,
    max: usize,
    set_timeout: impl Fn(&S, Duration) -> std::io::Result<()>,
) -> Result<Vec<u8>, Failure> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Read(std::io::ErrorKind::TimedOut.into()));
        }
        set_timeout(stream, left).map_err(Failure::Read)?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(reply),
            Ok(n) if reply.len() + n > max => return Err(Failure::TooLong),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Read(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A socket that answers with `chunk` every `every`, forever.
    fn endless(chunk: &'static [u8], every: Duration) -> (tempfile::TempDir, UnixStream) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("endless.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            while stream.write_all(chunk).is_ok() {
                std::thread::sleep(every);
            }
        });
        let stream = UnixStream::connect(&path).unwrap();
        (dir, stream)
    }

    #[test]
    fn a_socket_that_trickles_is_cut_at_the_deadline() {
        let (_dir, mut stream) = endless(b".", Duration::from_millis(100));
        let started = Instant::now();
        let err = read_until(
            &mut stream,
            started + Duration::from_millis(700),
            MAX_REPLY,
            |s, t| s.set_read_timeout(Some(t)),
        )
        .unwrap_err();
        match err {
            Failure::Read(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
    }

    #[test]
    fn an_endless_reply_is_cut_at_the_bound() {
        let (_dir, mut stream) = endless(&[b'x'; 4096], Duration::ZERO);
        let far = Instant::now() + Duration::from_secs(60);
        let err = read_until(&mut stream, far, 64 * 1024, |s, t| {
            s.set_read_timeout(Some(t))
        })
        .unwrap_err();
        assert!(matches!(err, Failure::TooLong), "{err:?}");
    }
}
