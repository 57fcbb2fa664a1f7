//! Child processes of a lab: spawning with logs to a file, readiness polling, and
//! `ProcessGuard`, which stops a process and everything it forked when dropped.
//! Also hands out free loopback ports, never twice within one test process.
//! Knows nothing about Pebble or HAProxy.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Ports already handed out by `free_port` in this test process: parallel labs never share one.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port that is free for both TCP and UDP right now and was never handed out before.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("reading local address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
}

/// The last `lines` lines of a log file, or a note saying why there are none.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            format!(
                "--- last lines of {} ---\n{}",
                path.display(),
                all[start..].join("\n")
            )
        }
        Err(err) => format!("--- {} unreadable: {err} ---", path.display()),
    }
}

/// Whether `pid` names a live process (zombies count as dead).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(stat_state(&stat), Some('Z' | 'X') | None),
        Err(_) => false,
    }
}

/// Live processes whose parent is `pid`, found by scanning /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if stat_ppid(&stat) == Some(pid) && process_alive(child) {
            children.push(child);
        }
    }
    children
}

/// All live descendants of `pid` (children, grandchildren, ...).
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        for child in children_of(parent) {
            if !found.contains(&child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

/// `/proc/<pid>/stat` is "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rfind(')')
        .map(|end| stat[end + 1..].split_whitespace().collect())
        .unwrap_or_default()
}

fn stat_state(stat: &str) -> Option<char> {
    stat_fields(stat).first().and_then(|s| s.chars().next())
}

fn stat_ppid(stat: &str) -> Option<u32> {
    stat_fields(stat).get(1).and_then(|s| s.parse().ok())
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Waits until every pid in `pids` is dead or the deadline passes; returns the survivors.
fn wait_dead(pids: &[u32], deadline: Instant) -> Vec<u32> {
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| process_alive(p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A spawned process whose stdout and stderr go to one log file.
/// Dropping it sends SIGTERM to the process, waits, then SIGKILLs it and whatever it forked.
#[derive(Debug)]
pub struct ProcessGuard {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ProcessGuard {
    /// Spawns `command` with stdin closed, output appended to `log` and none of the host's
    /// variables that `hermetic::scrub` clears.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> ProcessGuard {
        super::hermetic::scrub(&mut command);
        let out = File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("duplicating log file handle");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} ({command:?}): {e}"));
        ProcessGuard {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Panics with the log tail when the process has already exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early with {status}\n{}",
                self.name,
                log_tail(&self.log, 40)
            );
        }
    }

    /// Polls `ready` every 50 ms until it returns true; panics with the log tail when the
    /// process exits or `timeout` passes first.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            self.assert_running();
            if ready() {
                eprintln!("{} ready after {:?}", self.name, started.elapsed());
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} not ready after {timeout:?}: {what}\n{}",
                    self.name,
                    log_tail(&self.log, 40)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let pid = self.pid();
        // Collected first: once the parent is gone its children are reparented and lost.
        let descendants = descendants_of(pid);
        if let Ok(None) = self.child.try_wait() {
            signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() >= deadline {
                    let _ = self.child.kill();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.wait();
        for survivor in wait_dead(&descendants, Instant::now() + STOP_GRACE) {
            signal(survivor, libc::SIGKILL);
        }
        wait_dead(&descendants, Instant::now() + STOP_GRACE);
    }
}

/// Whether something accepts TCP connections on `addr` within 200 ms.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}
