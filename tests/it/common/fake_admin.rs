//! `FakeAdmin`: a test-only unix socket that stands where HAProxy's admin socket should be
//! and misbehaves on purpose: it echoes what it is sent (as a confused proxy might, key
//! included), answers garbage, answers without end, or never answers. `Behaviour::Mimic`
//! answers just enough like HAProxy for certctl to go on to `set ssl cert`, then echoes.
//! Every command received is recorded, so a test can see exactly what certctl sent.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
}

pub struct FakeAdmin {
    path: PathBuf,
    received: Arc<Mutex<Vec<String>>>,
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
        let acceptor = {
            let (received, stop) = (received.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let (received, stop, behaviour) =
                        (received.clone(), stop.clone(), behaviour.clone());
                    thread::spawn(move || answer(stream, &behaviour, &received, &stop));
                }
            })
        };
        FakeAdmin {
            path: path.to_path_buf(),
            received,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
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

fn answer(
    mut stream: UnixStream,
    behaviour: &Behaviour,
    received: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
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
