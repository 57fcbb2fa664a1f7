//! One exchange on a HAProxy admin socket (unix or TCP): send a command, read the whole
//! reply, bounded in time (the deadline covers connect to last byte, so a proxy that answers
//! one byte at a time cannot stretch it) and in size (an endless reply is cut and reported).
//! `Conn` keeps one connection open in HAProxy's interactive `prompt` mode, where each reply
//! ends with the prompt "\n> ". Knows nothing of what the commands mean.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
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
    /// The socket did not enter prompt mode (its reply to `prompt`, which may be empty).
    NoPrompt(Vec<u8>),
    /// In prompt mode, a prompt inside the reply: more than one answer to one command.
    OutOfStep,
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

/// What ends each reply in prompt mode.
const PROMPT: &[u8] = b"\n> ";

/// One admin connection kept open in prompt mode: commands go one at a time, and each reply
/// is read up to its prompt, so every command gets its own answer.
pub struct Conn {
    stream: Box<dyn AdminStream + Send>,
    limit: Duration,
    /// Bytes read past the last reply's prompt: the next reply's start, or (when no command
    /// waits for one) an answer no command asked for.
    pending: Vec<u8>,
}

impl Conn {
    /// Connects and enters prompt mode; `Failure::NoPrompt` when the socket answers
    /// `prompt` with anything but a bare prompt (or closes).
    pub fn open(socket: &Socket, limit: Duration) -> Result<Conn, Failure> {
        let stream: Box<dyn AdminStream + Send> = match socket {
            Socket::Unix(path) => Box::new(UnixStream::connect(path).map_err(Failure::Send)?),
            Socket::Tcp(addr) => {
                let stream = TcpStream::connect_timeout(addr, limit).map_err(Failure::Send)?;
                let _ = stream.set_nodelay(true);
                Box::new(stream)
            }
        };
        stream
            .set_write_timeout(Some(limit))
            .map_err(Failure::Send)?;
        let mut conn = Conn {
            stream,
            limit,
            pending: Vec::new(),
        };
        match conn.send_and_read_prompt("prompt")? {
            (reply, true) if reply.iter().all(u8::is_ascii_whitespace) => Ok(conn),
            (reply, _) => Err(Failure::NoPrompt(reply)),
        }
    }

    /// Whether the connection can take another command: still open, and nothing unread
    /// (bytes that came after a prompt belong to no command: the exchange is out of step).
    pub fn state(&self) -> State {
        if !self.pending.is_empty() {
            return State::Stray;
        }
        let mut byte = 0u8;
        // SAFETY: the descriptor is open as long as `self.stream`, and the buffer is one
        // valid byte; MSG_PEEK | MSG_DONTWAIT neither consumes nor blocks.
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                (&raw mut byte).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => State::Closed,
            n if n > 0 => State::Stray,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock => {
                State::Clean
            }
            _ => State::Closed,
        }
    }

    /// Sends `command` and returns its reply, without the prompt that ends it nor the `+ `
    /// prompts HAProxy echoes for each line of a payload. A connection closed before the
    /// prompt is a broken reply.
    pub fn exchange(&mut self, command: &str) -> Result<Vec<u8>, Failure> {
        let (reply, prompted) = self.send_and_read_prompt(command)?;
        if !prompted {
            return Err(Failure::Read(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let reply = strip_payload_prompts(&reply);
        if reply.windows(PROMPT.len()).any(|w| w == PROMPT) {
            return Err(Failure::OutOfStep);
        }
        Ok(reply.to_vec())
    }

    /// Sends `commands` in one write (HAProxy answers them in order) and returns each one's
    /// reply as `exchange` does; the first failure ends the list (the later replies are
    /// unknown, and the connection is out of step). Each reply ends at its own prompt, so a
    /// prompt inside a reply shows as bytes left after the last one: `State::Stray`.
    pub fn exchange_all(&mut self, commands: &[&str]) -> Vec<Result<Vec<u8>, Failure>> {
        if let Err(e) = self.send(commands) {
            return vec![Err(e)];
        }
        let mut out = Vec::with_capacity(commands.len());
        for _ in commands {
            let reply = self.receive();
            let failed = reply.is_err();
            out.push(reply);
            if failed {
                break;
            }
        }
        out
    }

    /// Writes `commands`, each ended by a line end, without waiting for any answer: their
    /// replies are read in order by `receive`, one each.
    pub fn send(&mut self, commands: &[&str]) -> Result<(), Failure> {
        let mut lines = Vec::new();
        for command in commands {
            lines.extend_from_slice(command.as_bytes());
            lines.push(b'\n');
        }
        self.stream.write_all(&lines).map_err(Failure::Send)
    }

    /// The reply to the oldest command sent and not yet answered, read up to its own prompt
    /// within the connection's time limit, without the `+ ` prompts of a payload. Bytes past
    /// that prompt are kept for the next call (the next command's reply, or, when no command
    /// is waiting, an answer nobody asked for: `State::Stray`).
    pub fn receive(&mut self) -> Result<Vec<u8>, Failure> {
        let deadline = Instant::now() + self.limit;
        loop {
            if let Some(end) = reply_end(&self.pending) {
                let rest = self.pending.split_off(end);
                let mut reply = std::mem::replace(&mut self.pending, rest);
                reply.truncate(reply.len() - 2);
                return Ok(strip_payload_prompts(&reply).to_vec());
            }
            let (more, open) = read_until(
                &mut self.stream,
                deadline,
                MAX_REPLY.saturating_sub(self.pending.len()),
                |s, t| s.set_read_timeout(Some(t)),
                |_| true,
            )?;
            if !open || more.is_empty() {
                return Err(Failure::Read(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.pending.extend_from_slice(&more);
        }
    }

    /// The reply up to the prompt (true), or up to the end of the connection (false).
    fn send_and_read_prompt(&mut self, command: &str) -> Result<(Vec<u8>, bool), Failure> {
        let deadline = Instant::now() + self.limit;
        let mut line = Vec::with_capacity(command.len() + 1);
        line.extend_from_slice(command.as_bytes());
        line.push(b'\n');
        self.stream.write_all(&line).map_err(Failure::Send)?;
        read_until(
            &mut self.stream,
            deadline,
            MAX_REPLY,
            |s, t| s.set_read_timeout(Some(t)),
            |reply| reply.ends_with(PROMPT) || reply == b"> ",
        )
        .map(|(mut reply, prompted)| {
            if prompted {
                reply.truncate(reply.len() - 2);
            }
            (reply, prompted)
        })
    }
}

/// A reply without the `+ ` prompts HAProxy echoes for each line of a payload.
fn strip_payload_prompts(reply: &[u8]) -> &[u8] {
    let mut start = 0;
    while reply[start..].starts_with(b"+ ") {
        start += 2;
    }
    &reply[start..]
}

/// Where the first reply in `bytes` ends (after its prompt "\n> ", or a bare "> " for an
/// empty reply), when it is all there.
fn reply_end(bytes: &[u8]) -> Option<usize> {
    let bare = bytes
        .iter()
        .position(|b| *b != b'+' && *b != b' ')
        .map_or(bytes.len(), |i| i);
    if bytes.len() >= bare + 2 && bytes[bare..].starts_with(b"> ") && bare % 2 == 0 {
        return Some(bare + 2);
    }
    bytes
        .windows(PROMPT.len())
        .position(|w| w == PROMPT)
        .map(|i| i + PROMPT.len())
}

/// What a kept-open connection holds before the next command.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    /// Open, nothing unread.
    Clean,
    /// Closed by the other end (HAProxy's `stats timeout` on an idle connection).
    Closed,
    /// Bytes that answer no command: the exchange is out of step.
    Stray,
}

/// A connected admin socket: unix or TCP, the same exchange over either.
trait AdminStream: Read + Write + AsRawFd {
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
    read_until(
        &mut stream,
        deadline,
        MAX_REPLY,
        |s, t| s.set_read_timeout(Some(t)),
        |_| false,
    )
    .map(|(reply, _)| reply)
}

/// Reads to the end of the reply (`done` says it is complete: true; or the connection
/// ends: false), but never past `deadline` nor past `max` bytes.
fn read_until<S: Read>(
    stream: &mut S,
    deadline: Instant,
    max: usize,
    set_timeout: impl Fn(&S, Duration) -> std::io::Result<()>,
    done: impl Fn(&[u8]) -> bool,
) -> Result<(Vec<u8>, bool), Failure> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Read(std::io::ErrorKind::TimedOut.into()));
        }
        set_timeout(stream, left).map_err(Failure::Read)?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok((reply, false)),
            Ok(n) if reply.len() + n > max => return Err(Failure::TooLong),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Read(e)),
        }
        if done(&reply) {
            return Ok((reply, true));
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
            |_| false,
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
        let err = read_until(
            &mut stream,
            far,
            64 * 1024,
            |s, t| s.set_read_timeout(Some(t)),
            |_| false,
        )
        .unwrap_err();
        assert!(matches!(err, Failure::TooLong), "{err:?}");
    }

    #[test]
    fn replies_end_at_their_own_prompt() {
        assert_eq!(reply_end(b"Success!\n> more"), Some(11));
        assert_eq!(reply_end(b"> "), Some(2));
        assert_eq!(reply_end(b"+ + > next"), Some(6));
        assert_eq!(reply_end(b"+ + Transaction created!\n> "), Some(27));
        assert_eq!(reply_end(b"Success!\n"), None);
        assert_eq!(reply_end(b""), None);
    }

    #[test]
    fn commands_sent_together_get_each_its_own_reply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            // `prompt`, then three commands: all answered in one write, then a stray byte
            let _ = stream.read(&mut buf).unwrap();
            stream.write_all(b"\n> ").unwrap();
            let mut got = Vec::new();
            while got.iter().filter(|b| **b == b'\n').count() < 4 {
                let n = stream.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"+ + Transaction created!\n> Committing\nSuccess!\n> Serial: 0A\n> !")
                .unwrap();
            std::thread::sleep(Duration::from_secs(5));
        });
        let socket = Socket::Unix(path);
        let mut conn = Conn::open(&socket, Duration::from_secs(10)).unwrap();
        let replies: Vec<Vec<u8>> = conn
            .exchange_all(&[
                "set ssl cert a <<\nx\n",
                "commit ssl cert a",
                "show ssl cert a",
            ])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            replies,
            [
                b"Transaction created!\n".to_vec(),
                b"Committing\nSuccess!\n".to_vec(),
                b"Serial: 0A\n".to_vec()
            ]
        );
        // bytes past the last prompt answer nothing: the connection is not used again
        assert_eq!(conn.state(), State::Stray);
    }
}
