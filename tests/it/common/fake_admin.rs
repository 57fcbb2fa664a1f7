//! `FakeAdmin`: a test-only unix socket that stands where HAProxy's admin socket should be
//! and misbehaves on purpose: it echoes what it is sent (as a confused proxy might, key
//! included), answers garbage, answers without end, or never answers. `Behaviour::Mimic`
//! answers just enough like HAProxy for certctl to go on to `set ssl cert`, then echoes.
//! `Behaviour::Prompt` speaks HAProxy's interactive mode on a kept-open connection (one
//! command, one answer ending "\n> "), honestly or with a chosen `Lie`.
//! Every command received is recorded, so a test can see exactly what certctl sent.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::lock;

/// What the fake socket answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Sends back what it was sent.
    Echo,
    /// Answers binary bytes, whatever the command.
    Garbage,
    /// Answers without end.
    Endless,
    /// Reads the command and never answers.
    Silent,
    /// `show ssl cert` lists `path` (so certctl replaces it), `show ssl crt-list` lists its
    /// directory; any other command is echoed back, `set ssl cert` and its payload included.
    Mimic { path: PathBuf },
    /// HAProxy's prompt mode for a `crt DIR` bind: certificates added, replaced and shown
    /// (the serial read from the bundle file in `dir`), each answer followed by "\n> ".
    Prompt { dir: PathBuf, lie: Lie },
}

/// How a `Behaviour::Prompt` socket departs from HAProxy.
#[derive(Debug, Clone)]
pub enum Lie {
    Honest,
    /// Answers `set ssl cert` twice in one write: its answer, then a "Success!" as if for
    /// the commit that follows it.
    AnswersAhead,
    /// Answers this many `commit ssl cert` (in all) with HAProxy's "currently locked".
    Locked(Arc<AtomicUsize>),
    /// For a pipelining client: answers the first commit of the certificate whose name
    /// holds `locked` with "currently locked", every commit of the one whose name holds
    /// `refused` with a refusal that names it, and holds back its first answer to a
    /// `show ssl cert NAME` until the `set ssl cert` of another certificate has come (at
    /// most 10 s); `ahead` then says whether one came.
    Pipelined {
        locked: String,
        refused: String,
        ahead: Arc<AtomicBool>,
    },
}

pub struct FakeAdmin {
    path: PathBuf,
    received: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeAdmin {
    /// Listens on `path` (a new unix socket).
    pub fn start(path: &Path, behaviour: Behaviour) -> FakeAdmin {
        let listener =
            UnixListener::bind(path).unwrap_or_else(|e| panic!("binding {}: {e}", path.display()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (received, stop, connections) =
                (received.clone(), stop.clone(), connections.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (received, stop, behaviour) =
                        (received.clone(), stop.clone(), behaviour.clone());
                    thread::spawn(move || answer(stream, &behaviour, &received, &stop));
                }
            })
        };
        FakeAdmin {
            path: path.to_path_buf(),
            received,
            connections,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many connections were made to it.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every command received, in order, as sent (payloads included).
    pub fn received(&self) -> Vec<String> {
        lock(&self.received).clone()
    }
}

impl Drop for FakeAdmin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one command: a line, or, after `<<`, everything up to a blank line.
fn read_command(stream: &mut UnixStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes);
        let first_line_done = text.contains('\n');
        let payload = text
            .lines()
            .next()
            .is_some_and(|l| l.trim_end().ends_with("<<"));
        if first_line_done && (!payload || text.contains("\n\n")) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The next command of a prompt-mode connection, as HAProxy splits them: one line, or with
/// a payload (`<<`) up to its blank line; several may come in one write (certctl sends a
/// certificate's commands together), the rest kept in `carry`.
fn next_command(stream: &mut UnixStream, carry: &mut Vec<u8>) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = [0u8; 4096];
    loop {
        if let Some(line_end) = carry.iter().position(|b| *b == b'\n') {
            let payload = carry[..line_end].trim_ascii_end().ends_with(b"<<");
            let end = if payload {
                carry.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
            } else {
                Some(line_end + 1)
            };
            if let Some(end) = end {
                let rest = carry.split_off(end);
                let command = std::mem::replace(carry, rest);
                return String::from_utf8_lossy(&command).into_owned();
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&std::mem::take(carry)).into_owned(),
            Ok(n) => carry.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads on (into `carry`) until a `set ssl cert` of a certificate other than `name` has
/// come, or 10 s have passed; whether one came.
fn wait_for_another_set(stream: &mut UnixStream, carry: &mut Vec<u8>, name: &str) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(carry);
        let other = text
            .lines()
            .filter_map(|l| l.strip_prefix("set ssl cert "))
            .any(|l| !l.starts_with(&format!("{name} ")));
        if other {
            return true;
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => carry.extend_from_slice(&buf[..n]),
        }
    }
}

fn answer(
    mut stream: UnixStream,
    behaviour: &Behaviour,
    received: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    if let Behaviour::Prompt { dir, lie } = behaviour {
        return converse(stream, dir, lie, received, stop);
    }
    let command = read_command(&mut stream);
    if command.is_empty() {
        return;
    }
    lock(received).push(command.clone());
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    match behaviour {
        Behaviour::Echo => {
            let _ = stream.write_all(command.as_bytes());
        }
        Behaviour::Garbage => {
            let _ = stream
                .write_all(b"\x00\x01\xff\xfe\x1b[31mHTTP/1.0 400 \xc3\x28 not haproxy\x07\n");
        }
        Behaviour::Endless => {
            let chunk = vec![b'#'; 64 * 1024];
            while !stop.load(Ordering::SeqCst) && stream.write_all(&chunk).is_ok() {}
        }
        Behaviour::Silent => {
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(100));
            }
        }
        Behaviour::Prompt { .. } => {}
        Behaviour::Mimic { path } => {
            let first = command.lines().next().unwrap_or("").trim();
            let reply = if first == "show ssl cert" {
                format!("# transaction\n# filename\n{}\n\n", path.display())
            } else if first == "show ssl crt-list" {
                format!(
                    "{}\n\n",
                    path.parent()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                )
            } else {
                command.clone()
            };
            let _ = stream.write_all(reply.as_bytes());
        }
    }
}

/// Prompt mode: commands one after another on one connection, each answer ending "\n> ".
fn converse(
    mut stream: UnixStream,
    dir: &Path,
    lie: &Lie,
    received: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let mut prompted = false;
    let mut carry = Vec::new();
    let mut shown = false;
    let mut locked_once = false;
    while !stop.load(Ordering::SeqCst) {
        let command = next_command(&mut stream, &mut carry);
        if command.is_empty() {
            return;
        }
        lock(received).push(command.clone());
        let first = command.lines().next().unwrap_or("").trim().to_owned();
        let name = |verb: &str| first.strip_prefix(verb).unwrap_or("").trim().to_owned();
        let mut reply = if first == "prompt" {
            prompted = true;
            String::new()
        } else if first == "show ssl cert" {
            let mut list = "# filename\n".to_owned();
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                list += &format!("{}\n", entry.path().display());
            }
            list
        } else if first == "show ssl crt-list" {
            format!("{}\n", dir.display())
        } else if first.starts_with("set ssl cert ") {
            let name = name("set ssl cert")
                .trim_end_matches("<<")
                .trim()
                .to_owned();
            let pluses = "+ ".repeat(command.lines().count().saturating_sub(1));
            let mut answer = format!("{pluses}Transaction created for certificate {name}!\n");
            if matches!(lie, Lie::AnswersAhead) {
                answer += &format!("\n> Committing {name}\nSuccess!\n");
            }
            answer
        } else if first.starts_with("commit ssl cert ") {
            let name = name("commit ssl cert");
            match lie {
                Lie::Pipelined { locked, .. } if name.contains(locked.as_str()) && !locked_once => {
                    locked_once = true;
                    "Can't commit the certificate!\nOperations on certificates are currently locked!\n".to_owned()
                }
                Lie::Pipelined { refused, .. } if name.contains(refused.as_str()) => {
                    format!("Committing {name}\nunable to load the private key of {name}\n")
                }
                Lie::Locked(left)
                    if left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok() =>
                {
                    "Can't commit the certificate!\nOperations on certificates are currently locked!\n".to_owned()
                }
                _ => format!("Committing {name}\nSuccess!\n"),
            }
        } else if first.starts_with("new ssl cert ") {
            format!("New empty certificate store '{}'!\n", name("new ssl cert"))
        } else if first.starts_with("add ssl crt-list ") {
            "Inserting certificate.\nSuccess!\n".to_owned()
        } else if first.starts_with("abort ssl cert ") {
            format!(
                "Transaction aborted for certificate '{}'!\n",
                name("abort ssl cert")
            )
        } else if first.starts_with("show ssl cert ") {
            let name = name("show ssl cert");
            if let Lie::Pipelined { ahead, .. } = lie {
                if !shown {
                    shown = true;
                    let other = wait_for_another_set(&mut stream, &mut carry, &name);
                    ahead.store(other, Ordering::SeqCst);
                }
            }
            let serial = std::fs::read(&name)
                .ok()
                .and_then(|b| pem::parse(b).ok())
                .map(|block| super::fixtures::serial_hex(block.contents()))
                .unwrap_or_default();
            format!("Filename: {name}\nSerial: {}\n", serial.to_uppercase())
        } else {
            "Unknown command.\n".to_owned()
        };
        if !prompted {
            // not in prompt mode: one answer, then the connection closes, as HAProxy does
            let _ = stream.write_all(reply.as_bytes());
            return;
        }
        reply += "\n> ";
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
