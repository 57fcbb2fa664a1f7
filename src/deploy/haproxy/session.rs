//! The admin connections of a run: one per socket, opened at its first command, kept open in
//! HAProxy's `prompt` mode and reused by every later command of the process (a `Haproxy`
//! takes it and gives it back when dropped), with what HAProxy listed on it (certificates,
//! crt-lists) so that a thousand pushes ask once. A socket that does not enter prompt mode
//! is asked one command per connection, as before. Sends nothing of its own but `prompt`.

use std::sync::Mutex;
use std::time::Duration;

use super::reply::CertList;
use super::socket::{self, Conn, Failure, State};
use crate::types::Socket;

/// How a socket is spoken to.
#[derive(Default)]
pub(super) enum Link {
    /// Not connected yet (or the last connection was dropped): the next command connects.
    #[default]
    Idle,
    /// One connection in prompt mode.
    Prompt(Conn),
    /// The socket answered `prompt` with something else: one connection per command.
    OneShot,
}

/// One socket's connection and what it listed, valid while the connection lasts.
#[derive(Default)]
pub(super) struct Session {
    link: Link,
    /// `show ssl cert` as first read on this connection, kept current by certctl's changes.
    pub certs: Option<CertList>,
    /// `show ssl crt-list`, as first read on this connection.
    pub crt_lists: Option<Vec<String>>,
}

/// The sessions not in use, by socket.
static IDLE: Mutex<Vec<(Socket, Session)>> = Mutex::new(Vec::new());

fn idle() -> std::sync::MutexGuard<'static, Vec<(Socket, Session)>> {
    // a panic elsewhere while holding the list leaves it usable: sessions are plain data
    IDLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Closes every kept-open connection not in use (the next command opens another). Before a
/// hook runs: a hook that reloads HAProxy would otherwise leave its old worker running, as
/// HAProxy keeps a worker alive while a CLI connection to it is open.
pub fn close_idle() {
    idle().clear();
}

/// The session of `socket` left by an earlier command, or a new one.
pub(super) fn take(socket: &Socket) -> Session {
    let mut sessions = idle();
    match sessions.iter().position(|(s, _)| s == socket) {
        Some(i) => sessions.swap_remove(i).1,
        None => Session::default(),
    }
}

/// Keeps `session` for the next command to `socket`.
pub(super) fn give_back(socket: &Socket, session: Session) {
    idle().push((socket.clone(), session));
}

impl Session {
    /// Whether commands share one connection (and the lists may be kept).
    pub fn is_kept_open(&self) -> bool {
        matches!(self.link, Link::Prompt(_))
    }

    /// One command and its own reply: over the kept-open connection when it is clean, else
    /// over a new one (HAProxy closed an idle connection, or sent bytes that answer nothing:
    /// they are dropped with the connection, never taken for the next reply).
    pub fn exchange(
        &mut self,
        socket: &Socket,
        command: &str,
        limit: Duration,
    ) -> Result<Vec<u8>, Failure> {
        self.connect(socket, limit)?;
        match &mut self.link {
            Link::Prompt(conn) => {
                let reply = conn.exchange(command);
                if reply.is_err() {
                    // the reply's end is unknown: the connection is out of step
                    self.reset();
                }
                reply
            }
            _ => socket::exchange(socket, command, limit),
        }
    }

    /// A clean kept-open connection (a new one when HAProxy closed the last one or sent
    /// bytes that answer nothing: they are dropped with it), or one-shot mode.
    fn connect(&mut self, socket: &Socket, limit: Duration) -> Result<(), Failure> {
        if let Link::Prompt(conn) = &self.link {
            match conn.state() {
                State::Clean => {}
                State::Closed => self.reset(),
                State::Stray => {
                    crate::log::warn(format_args!(
                        "HAProxy's admin socket {socket} sent an answer no command asked for; \
                         certctl drops that connection and opens another"
                    ));
                    self.reset();
                }
            }
        }
        if matches!(self.link, Link::Idle) {
            match Conn::open(socket, limit) {
                Ok(conn) => self.link = Link::Prompt(conn),
                Err(Failure::NoPrompt(_)) => self.link = Link::OneShot,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Several commands in one write over the kept-open connection, each reply read up to
    /// its own prompt (one command per connection, in turn, for a socket without prompt
    /// mode). The first failure ends the list and drops the connection.
    pub fn exchange_all(
        &mut self,
        socket: &Socket,
        commands: &[&str],
        limit: Duration,
    ) -> Vec<Result<Vec<u8>, Failure>> {
        if let Err(e) = self.connect(socket, limit) {
            return vec![Err(e)];
        }
        let mut replies = Vec::with_capacity(commands.len());
        match &mut self.link {
            Link::Prompt(conn) => {
                replies = conn.exchange_all(commands);
                if replies.iter().any(Result::is_err) {
                    self.reset();
                }
            }
            _ => {
                for command in commands {
                    let reply = socket::exchange(socket, command, limit);
                    let failed = reply.is_err();
                    replies.push(reply);
                    if failed {
                        break;
                    }
                }
            }
        }
        replies
    }

    /// The kept-open connection, clean (opened when needed), for commands sent ahead of
    /// their answers; None for a socket without prompt mode.
    pub fn conn(&mut self, socket: &Socket, limit: Duration) -> Result<Option<&mut Conn>, Failure> {
        self.connect(socket, limit)?;
        Ok(match &mut self.link {
            Link::Prompt(conn) => Some(conn),
            _ => None,
        })
    }

    /// Drops the connection and what was listed on it.
    pub fn reset(&mut self) {
        *self = Session::default();
    }
}
