//! The HAProxy runtime-API client: swaps a certificate in a running HAProxy through its
//! admin socket (`set ssl cert` + `commit ssl cert`, `abort ssl cert` on any failure), adds
//! a new one to a `crt <dir>` bind, and checks the serial HAProxy then serves. HAProxy's
//! replies are plain text; they are parsed here into typed errors. Runtime changes live in
//! HAProxy's memory only: the caller writes the bundle file first, for the next reload.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub use crate::types::Socket;

/// HAProxy's default `tune.bufsize`: a command with its payload must fit in it.
pub const DEFAULT_BUFSIZE: usize = 16_384;

/// What went wrong talking to one HAProxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach HAProxy's admin socket {socket}: {source}")]
    Unreachable {
        socket: String,
        source: std::io::Error,
    },
    #[error("HAProxy's admin socket {socket} did not answer {command:?} in time")]
    Timeout { socket: String, command: String },
    #[error(
        "the bundle for {name} is {size} bytes with the command; HAProxy takes at most {limit} per \
         command (tune.bufsize): raise tune.bufsize in HAProxy's global section, or reload HAProxy instead"
    )]
    TooLarge {
        name: String,
        size: usize,
        limit: usize,
    },
    #[error(
        "HAProxy has an open transaction for {other} (another tool at work?); certctl leaves it alone"
    )]
    Busy { other: String },
    #[error(
        "HAProxy does not load {dir} (its crt-lists: {known}); a new certificate there needs a reload"
    )]
    NoCrtList { dir: String, known: String },
    #[error("HAProxy lists more than one certificate that could be {name}: {candidates}")]
    Ambiguous { name: String, candidates: String },
    #[error("HAProxy refused {command:?}: {reply}")]
    Refused { command: String, reply: String },
    #[error("HAProxy serves serial {served} for {name} after the commit, not {expected}")]
    SerialMismatch {
        name: String,
        served: String,
        expected: String,
    },
}

/// One HAProxy behind an admin socket (level admin).
pub struct Haproxy {
    pub socket: Socket,
    timeout: Duration,
}

/// What a deploy did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deployed {
    Replaced(String),
    Added(String),
}

impl Haproxy {
    /// The HAProxy behind `socket`; each command may take `timeout`, connect to last byte.
    pub fn new(socket: Socket, timeout: Duration) -> Self {
        Self { socket, timeout }
    }

    /// Sends one command (non-interactive mode: HAProxy answers and closes).
    pub fn command(&self, command: &str) -> Result<String, Error> {
        let unreachable = |source| Error::Unreachable {
            socket: self.socket.to_string(),
            source,
        };
        let timed_out = |_| Error::Timeout {
            socket: self.socket.to_string(),
            command: first_line(command),
        };
        let limit = self.timeout;
        let deadline = Instant::now() + limit;
        let reply = match &self.socket {
            Socket::Unix(path) => {
                let stream = UnixStream::connect(path).map_err(unreachable)?;
                exchange(stream, command, limit, deadline, unreachable, timed_out)?
            }
            Socket::Tcp(addr) => {
                let stream = TcpStream::connect_timeout(addr, limit).map_err(unreachable)?;
                exchange(stream, command, limit, deadline, unreachable, timed_out)?
            }
        };
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// Puts `bundle` (leaf, chain, key; no blank line) in place of the certificate HAProxy
    /// loaded from `path`, or adds it to the crt-list of `path`'s directory when HAProxy does
    /// not have it yet; then checks that HAProxy serves `serial` (hex).
    pub fn deploy(&self, path: &Path, bundle: &str, serial: &str) -> Result<Deployed, Error> {
        let listed = parse_cert_list(&self.command("show ssl cert")?);
        if let Some(other) = listed.transactions.first() {
            if !is_same_cert(other, path) {
                return Err(Error::Busy {
                    other: other.clone(),
                });
            }
            // a transaction of ours left by a killed run
            self.command(&format!("abort ssl cert {other}"))?;
        }
        let deployed = match find_cert(&listed.certificates, path)? {
            Some(name) => {
                self.replace(&name, bundle)?;
                Deployed::Replaced(name)
            }
            None => {
                let name = path.display().to_string();
                let dir = self.crt_list_for(path)?;
                self.add(&name, &dir, bundle)?;
                Deployed::Added(name)
            }
        };
        let name = match &deployed {
            Deployed::Replaced(n) | Deployed::Added(n) => n,
        };
        let served =
            parse_serial(&self.command(&format!("show ssl cert {name}"))?).unwrap_or_default();
        if !same_serial(&served, serial) {
            return Err(Error::SerialMismatch {
                name: name.clone(),
                served,
                expected: serial.to_owned(),
            });
        }
        Ok(deployed)
    }

    fn set_payload(&self, name: &str, bundle: &str) -> Result<(), Error> {
        let command = format!("set ssl cert {name} <<\n{}\n", bundle.trim_end());
        if command.len() + 1 > DEFAULT_BUFSIZE {
            return Err(Error::TooLarge {
                name: name.to_owned(),
                size: command.len() + 1,
                limit: DEFAULT_BUFSIZE,
            });
        }
        expect(&command, &self.command(&command)?, SetReply::parse)
    }

    /// set + commit, and abort when either fails, so no transaction stays open.
    fn replace(&self, name: &str, bundle: &str) -> Result<(), Error> {
        let result = self
            .set_payload(name, bundle)
            .and_then(|()| self.commit(name));
        if result.is_err() {
            let _ = self.command(&format!("abort ssl cert {name}"));
        }
        result
    }

    fn commit(&self, name: &str) -> Result<(), Error> {
        let command = format!("commit ssl cert {name}");
        let reply = self.command(&command)?;
        if reply.lines().any(|l| l.trim() == "Success!") {
            Ok(())
        } else {
            Err(Error::Refused {
                command,
                reply: tidy(&reply),
            })
        }
    }

    /// new + set + commit + add to the crt-list; a failure after `new` aborts.
    fn add(&self, name: &str, crt_list: &str, bundle: &str) -> Result<(), Error> {
        let command = format!("new ssl cert {name}");
        let reply = self.command(&command)?;
        if !reply.starts_with("New empty certificate store") {
            return Err(Error::Refused {
                command,
                reply: tidy(&reply),
            });
        }
        self.replace(name, bundle)?;
        let command = format!("add ssl crt-list {crt_list} {name}");
        let reply = self.command(&command)?;
        if reply.lines().any(|l| l.trim() == "Success!") {
            Ok(())
        } else {
            let _ = self.command(&format!("del ssl cert {name}"));
            Err(Error::Refused {
                command,
                reply: tidy(&reply),
            })
        }
    }

    /// The crt-list (a `crt <dir>` bind shows as its directory) that holds `path`'s directory.
    pub(super) fn crt_list_for(&self, path: &Path) -> Result<String, Error> {
        let dir = path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let dir = dir.trim_end_matches('/').to_owned();
        let lists: Vec<String> = self
            .command("show ssl crt-list")?
            .lines()
            .map(|l| l.trim().trim_end_matches('/').to_owned())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if lists.contains(&dir) {
            return Ok(dir);
        }
        // under a chroot HAProxy sees the directory by another path: match its last components
        let tail = |p: &str| p.rsplit('/').next().map(str::to_owned);
        let matching: Vec<&String> = lists
            .iter()
            .filter(|l| l.ends_with(&format!("/{}", tail(&dir).unwrap_or_default())))
            .collect();
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(Error::NoCrtList {
                dir,
                known: if lists.is_empty() {
                    "none".into()
                } else {
                    lists.join(", ")
                },
            }),
        }
    }
}

/// Reads to the end of the reply, but never past `deadline`: a proxy that answers one byte
/// at a time cannot stretch a command beyond its timeout.
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

/// Sends `command` and reads the whole reply before `deadline`; sending errors are
/// `unreachable`, reading errors `timed_out`.
fn exchange<S: AdminStream>(
    mut stream: S,
    command: &str,
    limit: Duration,
    deadline: Instant,
    unreachable: impl Fn(std::io::Error) -> Error,
    timed_out: impl Fn(std::io::Error) -> Error,
) -> Result<Vec<u8>, Error> {
    stream.set_read_timeout(Some(limit)).map_err(&unreachable)?;
    stream
        .set_write_timeout(Some(limit))
        .map_err(&unreachable)?;
    stream.write_all(command.as_bytes()).map_err(&unreachable)?;
    stream.write_all(b"\n").map_err(&unreachable)?;
    read_until(&mut stream, deadline, |s, t| s.set_read_timeout(Some(t))).map_err(timed_out)
}

fn read_until<S: Read>(
    stream: &mut S,
    deadline: Instant,
    set_timeout: impl Fn(&S, Duration) -> std::io::Result<()>,
) -> std::io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        set_timeout(stream, left)?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(reply),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `show ssl cert`: names with an open transaction (`*name`) and loaded certificates.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CertList {
    pub transactions: Vec<String>,
    pub certificates: Vec<String>,
}

pub fn parse_cert_list(reply: &str) -> CertList {
    let mut list = CertList::default();
    for line in reply
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        // a bare `*` (or `* name`) is no name: skipped, or trimmed (found by fuzzing)
        match line.strip_prefix('*').map(str::trim) {
            Some("") => {}
            Some(name) => list.transactions.push(name.to_owned()),
            None => list.certificates.push(line.to_owned()),
        }
    }
    list
}

/// The name HAProxy uses for the bundle at `path`: the same path, or (under a chroot, or a
/// relative `crt`) the one entry that ends with the same file name.
pub fn find_cert(certificates: &[String], path: &Path) -> Result<Option<String>, Error> {
    if let Some(exact) = certificates.iter().find(|c| is_same_cert(c, path)) {
        return Ok(Some(exact.clone()));
    }
    let Some(file) = path.file_name().map(|f| f.to_string_lossy().into_owned()) else {
        return Ok(None);
    };
    let candidates: Vec<&String> = certificates
        .iter()
        .filter(|c| c.rsplit('/').next() == Some(file.as_str()))
        .collect();
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(Error::Ambiguous {
            name: path.display().to_string(),
            candidates: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn is_same_cert(name: &str, path: &Path) -> bool {
    Path::new(name) == path
}

/// The `Serial:` line of `show ssl cert NAME`.
pub fn parse_serial(reply: &str) -> Option<String> {
    reply
        .lines()
        .find_map(|l| l.strip_prefix("Serial:"))
        .map(|s| s.trim().to_owned())
}

fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches('0').to_ascii_lowercase();
    !a.trim().is_empty() && norm(a) == norm(b)
}

/// The reply to `set ssl cert`.
#[derive(Debug, PartialEq, Eq)]
enum SetReply {
    Ok,
    NotReferenced,
    Other,
}

impl SetReply {
    fn parse(reply: &str) -> Self {
        if reply.starts_with("Transaction created for certificate")
            || reply.starts_with("Transaction updated for certificate")
        {
            Self::Ok
        } else if reply.starts_with("Can't replace a certificate which is not referenced") {
            Self::NotReferenced
        } else {
            Self::Other
        }
    }
}

fn expect(command: &str, reply: &str, parse: fn(&str) -> SetReply) -> Result<(), Error> {
    match parse(reply) {
        SetReply::Ok => Ok(()),
        _ if reply.trim().is_empty() => Err(Error::Refused {
            command: first_line(command),
            reply: "no answer (a payload larger than tune.bufsize is dropped silently)".into(),
        }),
        _ => Err(Error::Refused {
            command: first_line(command),
            reply: tidy(reply),
        }),
    }
}

fn first_line(command: &str) -> String {
    command.lines().next().unwrap_or_default().to_owned()
}

fn tidy(reply: &str) -> String {
    reply.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Replies captured from HAProxy 2.6.12.
    const SHOW_WITH_TRANSACTION: &str = "# transaction\n*/etc/haproxy/ssl/a.pem\n# filename\n/etc/haproxy/ph.pem\n/etc/haproxy/ssl/a.pem\n\n";
    const SHOW_CERT: &str = "Filename: /tmp/h/ssl/mon-app.test.pem\nStatus: Used\nSerial: 5874009307FBCABC\n\
        notBefore: Nov 26 06:25:10 2026 GMT\nnotAfter: Nov 26 06:25:09 2031 GMT\n";

    #[test]
    fn show_ssl_cert_lists_transactions_and_certificates() {
        let list = parse_cert_list(SHOW_WITH_TRANSACTION);
        assert_eq!(list.transactions, vec!["/etc/haproxy/ssl/a.pem"]);
        assert_eq!(
            list.certificates,
            vec!["/etc/haproxy/ph.pem", "/etc/haproxy/ssl/a.pem"]
        );
        assert_eq!(
            parse_cert_list("# filename\n/x.pem\n\n").transactions,
            Vec::<String>::new()
        );
        // regression (fuzzing): a line of a lone `*` is not a transaction named ""
        assert_eq!(
            parse_cert_list("*\n* /y.pem\n/x.pem\n"),
            CertList {
                transactions: vec!["/y.pem".into()],
                certificates: vec!["/x.pem".into()],
            }
        );
    }

    #[test]
    fn set_replies_are_typed() {
        assert_eq!(
            SetReply::parse("Transaction created for certificate /x.pem!\n\n"),
            SetReply::Ok
        );
        assert_eq!(
            SetReply::parse("Transaction updated for certificate /x.pem!\n\n"),
            SetReply::Ok
        );
        assert_eq!(
            SetReply::parse(
                "Can't replace a certificate which is not referenced by the configuration!\nCan't update /x.pem!\n\n"
            ),
            SetReply::NotReferenced
        );
        let err = expect("set ssl cert /x.pem <<\n...", "", SetReply::parse)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tune.bufsize"), "{err}");
    }

    #[test]
    fn serial_is_read_and_compared_without_case_or_leading_zeros() {
        assert_eq!(parse_serial(SHOW_CERT).as_deref(), Some("5874009307FBCABC"));
        assert!(same_serial("05874009307FBCABC", "5874009307fbcabc"));
        assert!(!same_serial("", ""));
        assert_eq!(
            parse_serial(
                "Can't display the certificate: Not found or the certificate is a bundle!\n"
            ),
            None
        );
    }

    #[test]
    fn the_name_haproxy_uses_is_matched_not_assumed() {
        let certs = vec![
            "/etc/haproxy/ph.pem".to_owned(),
            "ssl/a.pem".to_owned(),
            "/etc/haproxy/ssl/b.pem".to_owned(),
        ];
        assert_eq!(
            find_cert(&certs, Path::new("/etc/haproxy/ssl/b.pem"))
                .unwrap()
                .as_deref(),
            Some("/etc/haproxy/ssl/b.pem")
        );
        // chroot or relative crt path: the same file name
        assert_eq!(
            find_cert(&certs, Path::new("/chroot/etc/haproxy/ssl/a.pem"))
                .unwrap()
                .as_deref(),
            Some("ssl/a.pem")
        );
        assert_eq!(
            find_cert(&certs, Path::new("/etc/haproxy/ssl/new.pem")).unwrap(),
            None
        );
        let twice = vec!["/a/x.pem".to_owned(), "/b/x.pem".to_owned()];
        assert!(matches!(
            find_cert(&twice, Path::new("/c/x.pem")),
            Err(Error::Ambiguous { .. })
        ));
    }

    #[test]
    fn socket_addresses_parse() {
        assert_eq!(
            Socket::parse("/run/haproxy/admin.sock").unwrap(),
            Socket::Unix("/run/haproxy/admin.sock".into())
        );
        assert_eq!(
            Socket::parse("127.0.0.1:9999").unwrap(),
            Socket::Tcp("127.0.0.1:9999".parse().unwrap())
        );
        assert!(Socket::parse("nowhere").is_err());
        assert!(Socket::parse("").is_err());
    }

    #[test]
    fn a_socket_that_trickles_is_cut_at_the_deadline() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // answers one byte every 100 ms, forever
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            while stream.write_all(b".").is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut stream = UnixStream::connect(&path).unwrap();
        let started = Instant::now();
        let err = read_until(&mut stream, started + Duration::from_millis(700), |s, t| {
            s.set_read_timeout(Some(t))
        })
        .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            "{err}"
        );
        // the trickle never ends: returning at all proves the deadline cut it (the upper
        // bound only guards against a hang, however loaded the machine)
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(600),
            "{elapsed:?}"
        );
    }

    #[test]
    fn an_oversized_bundle_is_refused_before_sending() {
        let haproxy = Haproxy::new(
            Socket::Unix("/nonexistent/sock".into()),
            Duration::from_secs(10),
        );
        let big = "A".repeat(DEFAULT_BUFSIZE);
        assert!(matches!(
            haproxy.set_payload("/x.pem", &big),
            Err(Error::TooLarge { .. })
        ));
    }
}
