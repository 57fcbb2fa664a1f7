//! The HAProxy runtime-API client: swaps a certificate in a running HAProxy through its
//! admin socket (`set ssl cert` + `commit ssl cert`, `abort ssl cert` on any failure), adds
//! a new one to a `crt <dir>` bind, and checks the serial HAProxy then serves. HAProxy's
//! replies are plain text; they are parsed (`reply`) into typed errors, and every name sent
//! is escaped by the CLI's rules. Runtime changes live in HAProxy's memory only: the caller
//! writes the bundle file first, for the next reload. `socket` bounds each exchange;
//! `session` keeps one connection per socket open for the whole run.

mod pipeline;
mod reply;
mod session;
mod socket;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use crate::types::Socket;
pub use pipeline::{Push, WINDOW};
pub use reply::{CertList, cli_arg, find_cert, is_cert_list, parse_cert_list, parse_serial};
use reply::{first_line, tidy};
pub use session::close_idle as close_idle_connections;

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
    #[error("HAProxy's admin socket {socket} broke off its reply to {command:?}: {source}")]
    Broken {
        socket: String,
        command: String,
        source: std::io::Error,
    },
    #[error(
        "HAProxy's admin socket {socket} sent more than {} MiB in reply to {command:?}; \
         certctl stopped reading", socket::MAX_REPLY >> 20
    )]
    TooLong { socket: String, command: String },
    #[error(
        "HAProxy's admin socket {socket} answered {command:?} more than once (a prompt inside \
         the reply: another program writing to it?); certctl dropped that connection"
    )]
    OutOfStep { socket: String, command: String },
    #[error(
        "{socket} does not answer as HAProxy's admin socket (its reply to \"show ssl cert\": \
         {reply:?}); give the `stats socket PATH level admin` of HAProxy's global section"
    )]
    NotHaproxy { socket: String, reply: String },
    #[error(
        "{name:?} holds a control character (a line break?): it cannot be sent to HAProxy's \
         runtime API; choose an ssl directory with a plain path"
    )]
    UnsafeName { name: String },
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

/// HAProxy's answer while another client commits a certificate: the command did nothing.
const LOCKED: &str = "Operations on certificates are currently locked";

/// How many times a command refused as locked is sent again, the first after `LOCKED_WAIT`,
/// each later one after twice the wait before (about 1.3 s in all).
const LOCKED_TRIES: u32 = 9;
const LOCKED_WAIT: Duration = Duration::from_millis(5);

/// One HAProxy behind an admin socket (level admin).
pub struct Haproxy {
    pub socket: Socket,
    timeout: Duration,
    /// The run's connection to `socket`, taken at the first command, given back on drop.
    session: Mutex<Option<session::Session>>,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let session = self
            .session
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(session) = session {
            session::give_back(&self.socket, session);
        }
    }
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
        Self {
            socket,
            timeout,
            session: Mutex::new(None),
        }
    }

    fn session(&self) -> MutexGuard<'_, Option<session::Session>> {
        // a session is plain data: one left by a panic is still usable (or reconnects)
        let mut guard = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            *guard = Some(session::take(&self.socket));
        }
        guard
    }

    /// Sends one command and returns its own reply: over the run's kept-open connection in
    /// prompt mode, or one connection per command for a socket without it. A command
    /// refused because certificates are locked (another client committing) is sent again,
    /// a bounded number of times. The caller escapes the names in it (`cli_arg`).
    pub fn command(&self, command: &str) -> Result<String, Error> {
        let mut wait = LOCKED_WAIT;
        for _ in 1..LOCKED_TRIES {
            let reply = self.command_once(command)?;
            if !reply.contains(LOCKED) {
                return Ok(reply);
            }
            crate::log::verbose(format_args!(
                "HAProxy at {}: certificates are locked (another client at work); {:?} again in {} ms",
                self.socket,
                first_line(command),
                wait.as_millis()
            ));
            std::thread::sleep(wait);
            wait *= 2;
        }
        self.command_once(command)
    }

    fn command_once(&self, command: &str) -> Result<String, Error> {
        let mut guard = self.session();
        let session = guard.get_or_insert_with(Default::default);
        let reply = session
            .exchange(&self.socket, command, self.timeout)
            .map_err(|failure| self.error(command, failure))?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// Several commands sent together (one write on a kept-open connection; HAProxy answers
    /// them in order), each with its own reply. Each must be harmless when one before it
    /// failed (an abort follows). When one was refused as locked, it and the ones after it
    /// are sent again one at a time, each with `command`'s bounded retries; the first
    /// failure to get a reply ends the list.
    pub fn commands(&self, commands: &[&str]) -> Vec<Result<String, Error>> {
        let replies = {
            let mut guard = self.session();
            let session = guard.get_or_insert_with(Default::default);
            session.exchange_all(&self.socket, commands, self.timeout)
        };
        let mut out = Vec::with_capacity(commands.len());
        for (command, reply) in commands.iter().zip(replies) {
            match reply {
                Ok(reply) => {
                    let reply = String::from_utf8_lossy(&reply).into_owned();
                    if reply.contains(LOCKED) {
                        break;
                    }
                    out.push(Ok(reply));
                }
                Err(failure) => {
                    out.push(Err(self.error(command, failure)));
                    return out;
                }
            }
        }
        for command in &commands[out.len()..] {
            let reply = self.command(command);
            let failed = reply.is_err();
            out.push(reply);
            if failed {
                break;
            }
        }
        out
    }

    fn error(&self, command: &str, failure: socket::Failure) -> Error {
        let socket = self.socket.to_string();
        match failure {
            socket::Failure::Send(source) => Error::Unreachable { socket, source },
            socket::Failure::Read(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Error::Timeout {
                    socket,
                    command: first_line(command),
                }
            }
            socket::Failure::Read(source) => Error::Broken {
                socket,
                command: first_line(command),
                source,
            },
            socket::Failure::TooLong => Error::TooLong {
                socket,
                command: first_line(command),
            },
            socket::Failure::OutOfStep => Error::OutOfStep {
                socket,
                command: first_line(command),
            },
            socket::Failure::NoPrompt(reply) => Error::NotHaproxy {
                socket,
                reply: tidy(&String::from_utf8_lossy(&reply)),
            },
        }
    }

    /// `f` over `show ssl cert`, checked to come from HAProxy; asked once per kept-open
    /// connection, then kept current by `listed`.
    pub fn with_cert_list<T>(&self, f: impl FnOnce(&CertList) -> T) -> Result<T, Error> {
        if let Some(certs) = self.session().as_ref().and_then(|s| s.certs.as_ref()) {
            return Ok(f(certs));
        }
        let reply = self.command("show ssl cert")?;
        if !is_cert_list(&reply) {
            return Err(Error::NotHaproxy {
                socket: self.socket.to_string(),
                reply: tidy(&reply),
            });
        }
        let certs = parse_cert_list(&reply);
        let result = f(&certs);
        if let Some(session) = self.session().as_mut().filter(|s| s.is_kept_open()) {
            session.certs = Some(certs);
        }
        Ok(result)
    }

    /// Records in the kept list what certctl just changed in HAProxy.
    pub fn listed(&self, change: impl FnOnce(&mut CertList)) {
        if let Some(certs) = self.session().as_mut().and_then(|s| s.certs.as_mut()) {
            change(certs);
        }
    }

    /// Puts `bundle` (leaf, chain, key; no blank line) in place of the certificate HAProxy
    /// loaded from `path`, or adds it to the crt-list of `path`'s directory when HAProxy does
    /// not have it yet; then checks that HAProxy serves `serial` (hex).
    pub fn deploy(&self, path: &Path, bundle: &str, serial: &str) -> Result<Deployed, Error> {
        let push = Push {
            path,
            bundle,
            serial,
        };
        self.deploy_many(std::slice::from_ref(&push))
            .pop()
            .unwrap_or_else(|| {
                Err(Error::Refused {
                    command: "deploy".into(),
                    reply: "not sent".into(),
                })
            })
    }

    fn set_command(name: &str, bundle: &str) -> Result<String, Error> {
        let command = format!(
            "set ssl cert {} <<\n{}\n",
            cli_arg(name)?,
            bundle.trim_end()
        );
        if command.len() + 1 > DEFAULT_BUFSIZE {
            return Err(Error::TooLarge {
                name: name.to_owned(),
                size: command.len() + 1,
                limit: DEFAULT_BUFSIZE,
            });
        }
        Ok(command)
    }

    /// `show ssl crt-list` (a `crt <dir>` bind shows as its directory, without a trailing
    /// slash), asked once per kept-open connection.
    fn crt_lists(&self) -> Result<Vec<String>, Error> {
        if let Some(lists) = self.session().as_ref().and_then(|s| s.crt_lists.as_ref()) {
            return Ok(lists.clone());
        }
        let lists: Vec<String> = self
            .command("show ssl crt-list")?
            .lines()
            .map(|l| l.trim().trim_end_matches('/').to_owned())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if let Some(session) = self.session().as_mut().filter(|s| s.is_kept_open()) {
            session.crt_lists = Some(lists.clone());
        }
        Ok(lists)
    }

    /// The process id HAProxy reports (`show info`), when it is a process of this host:
    /// a UNIX socket, or TCP on a loopback address.
    pub fn local_pid(&self) -> Result<Option<u32>, Error> {
        let local = match &self.socket {
            Socket::Unix(_) => true,
            Socket::Tcp(addr) => addr.ip().is_loopback(),
        };
        if !local {
            return Ok(None);
        }
        Ok(self
            .command("show info")?
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|pid| pid.trim().parse().ok()))
    }

    /// Whether HAProxy loaded the certificate at `path` outside every crt-list and directory:
    /// then a `crt FILE` of its configuration names the file itself, and HAProxy would not
    /// start again without it. Returns the name HAProxy gives it when so.
    pub fn loaded_outside_lists(&self, path: &Path) -> Result<Option<String>, Error> {
        let Some(name) = self.with_cert_list(|l| find_cert(&l.certificates, path))?? else {
            return Ok(None);
        };
        for list in self.crt_lists()? {
            let reply = self.command(&format!("show ssl crt-list {}", cli_arg(&list)?))?;
            if entries_name(&reply, &name) {
                return Ok(None);
            }
        }
        Ok(Some(name))
    }

    /// The crt-list (a `crt <dir>` bind shows as its directory) that holds `path`'s directory.
    pub(super) fn crt_list_for(&self, path: &Path) -> Result<String, Error> {
        let dir = path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let dir = dir.trim_end_matches('/').to_owned();
        let lists = self.crt_lists()?;
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
                    tidy(&lists.join(", "))
                },
            }),
        }
    }
}

/// Whether a `show ssl crt-list LIST` reply has an entry for the certificate `name` (each
/// entry: the certificate's name, then its options and SNI filters).
fn entries_name(reply: &str, name: &str) -> bool {
    reply
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .any(|first| first == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crt_list_entries_are_matched_by_their_first_word() {
        let reply = "# /etc/haproxy/ssl\n/etc/haproxy/ssl/a.pem\n\
                     /etc/haproxy/ssl/b.pem [alpn h2] b.example\n";
        assert!(entries_name(reply, "/etc/haproxy/ssl/a.pem"));
        assert!(entries_name(reply, "/etc/haproxy/ssl/b.pem"));
        assert!(!entries_name(reply, "/etc/haproxy/ssl"));
        assert!(!entries_name(reply, "/etc/haproxy/ssl/a"));
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
    fn an_oversized_bundle_is_refused_before_sending() {
        let big = "A".repeat(DEFAULT_BUFSIZE);
        assert!(matches!(
            Haproxy::set_command("/x.pem", &big),
            Err(Error::TooLarge { .. })
        ));
    }
}
