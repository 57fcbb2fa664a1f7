//! Runs user hook commands with `/bin/sh -c`, values passed as environment variables and
//! never spliced into the command, bounded by a timeout that kills the whole process group.
//! A hook stopped before it ends (certctl interrupted by SIGINT or SIGTERM) has its process
//! group killed too: by its guard when the run is dropped, or by `kill_running` on the way
//! out, so no hook outlives certctl.
//! Hook output (stdout and stderr) is read through pipes and forwarded to certctl's stderr
//! (stdout carries certctl's results), at most `OUTPUT_LIMIT` bytes per hook, line by line
//! through `redact` (a hook that prints a key shows `[private key redacted]`).

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Output of one hook (stdout and stderr together) forwarded to the log; the rest is read,
/// counted and dropped, so a hook that floods fills neither a cron mail nor the journal.
pub const OUTPUT_LIMIT: usize = 64 * 1024;
/// How long the output is still read once the hook has exited (or was killed): a daemon
/// the hook started may hold the pipes open for good.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Process groups of the hooks running now.
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kills the process group of every hook still running (certctl is exiting).
pub fn kill_running() {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    for pgid in running.iter() {
        // SAFETY: kill(2) on a process group this process started (process_group(0)).
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// A running hook's process group: registered while the hook runs, killed when the guard is
/// dropped before the hook ended (the run was stopped), left alone once it has (a daemon a
/// hook started on purpose stays).
struct Group {
    pgid: i32,
    ended: bool,
}

impl Group {
    fn new(pgid: i32) -> Self {
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push(pgid);
        Self { pgid, ended: false }
    }

    fn kill(&self) {
        // SAFETY: kill(2) on the process group the hook leads (process_group(0)).
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.ended {
            self.kill();
        }
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != self.pgid);
    }
}

/// One hook run: which hook, its command and its environment.
pub struct Hook<'a> {
    pub kind: &'static str,
    pub command: &'a str,
    pub env: Vec<(&'static str, String)>,
}

impl Hook<'_> {
    /// Runs the hook to completion; an error when it fails, is killed or times out.
    pub async fn run(&self, timeout: Duration) -> anyhow::Result<()> {
        let log = CappedLog::new(Box::new(std::io::stderr()), OUTPUT_LIMIT);
        self.run_logging(timeout, &log).await
    }

    /// `run`, with the hook's output going to `log`.
    async fn run_logging(&self, timeout: Duration, log: &CappedLog) -> anyhow::Result<()> {
        tracing_line(self.kind, self.command);
        // a hook may reload HAProxy: no admin connection of this run may keep its old worker
        crate::deploy::haproxy::close_idle_connections();
        crate::trust::check_hook(self.kind, self.command).map_err(|e| anyhow!("{e}"))?;
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(self.command)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {} hook {:?}", self.kind, self.command))?;
        let mut group = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .map(Group::new);
        let mut readers = tokio::task::JoinSet::new();
        if let Some(stdout) = child.stdout.take() {
            readers.spawn(pump(stdout, log.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.spawn(pump(stderr, log.clone()));
        }
        let result = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => {
                if let Some(group) = &mut group {
                    group.ended = true;
                }
                let status =
                    status.with_context(|| format!("waiting for the {} hook", self.kind))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(anyhow!(
                        "the {} hook {:?} failed ({status})",
                        self.kind,
                        self.command
                    ))
                }
            }
            Err(_) => {
                if let Some(group) = &group {
                    group.kill();
                }
                let _ = child.wait().await;
                Err(anyhow!(
                    "the {} hook {:?} did not finish within {}s and was killed (raise --hook-timeout if it needs longer)",
                    self.kind,
                    self.command,
                    timeout.as_secs()
                ))
            }
        };
        // what the hook wrote last, unless something it left running holds the pipes open
        let drained = tokio::time::timeout(DRAIN_GRACE, async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            readers.abort_all();
        }
        log.finish(self.kind);
        result
    }
}

/// Where hook output goes: the first `limit` bytes pass, the rest is counted.
#[derive(Clone)]
struct CappedLog(Arc<Mutex<Capped>>);

struct Capped {
    sink: Box<dyn Write + Send>,
    redact: crate::redact::Stream,
    left: usize,
    dropped: u64,
}

impl CappedLog {
    fn new(sink: Box<dyn Write + Send>, limit: usize) -> Self {
        Self(Arc::new(Mutex::new(Capped {
            sink,
            redact: crate::redact::Stream::default(),
            left: limit,
            dropped: 0,
        })))
    }

    fn write(&self, bytes: &[u8]) {
        let mut capped = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let shown = bytes.len().min(capped.left);
        capped.left -= shown;
        capped.dropped += (bytes.len() - shown) as u64;
        let out = capped.redact.push(&bytes[..shown]);
        // a log that cannot be written (stderr closed) must not fail the hook
        let _ = capped.sink.write_all(&out);
    }

    /// Writes what is left of the last line, then says how much was dropped, if anything,
    /// on a line of its own.
    fn finish(&self, kind: &str) {
        let mut capped = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let rest = capped.redact.finish();
        let _ = capped.sink.write_all(&rest);
        if capped.dropped > 0 {
            let line = format!(
                "\ncertctl: the {kind} hook wrote {} more bytes of output; not shown (the first {} are above)\n",
                capped.dropped, OUTPUT_LIMIT
            );
            let _ = capped.sink.write_all(line.as_bytes());
        }
        let _ = capped.sink.flush();
    }
}

/// Reads a pipe to its end, passing what it reads to `log`; it keeps reading past the
/// limit, so a hook never blocks on a full pipe.
async fn pump(mut pipe: impl AsyncRead + Unpin, log: CappedLog) {
    let mut buf = vec![0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => log.write(&buf[..n]),
        }
    }
}

fn tracing_line(kind: &str, command: &str) {
    crate::log::verbose(format_args!("running {kind} hook: {command}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log that keeps what it is given, for inspection.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Kept {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    async fn run_kept(command: &str, timeout: Duration) -> (anyhow::Result<()>, String) {
        let kept = Kept::default();
        let log = CappedLog::new(Box::new(kept.clone()), OUTPUT_LIMIT);
        let hook = Hook {
            kind: "deploy",
            command,
            env: vec![],
        };
        let result = hook.run_logging(timeout, &log).await;
        (result, kept.text())
    }

    #[tokio::test]
    async fn hook_sees_env_and_reports_failure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = format!("printf '%s' \"$CERTCTL_NAME\" > {}", out.display());
        let hook = Hook {
            kind: "deploy",
            command: &cmd,
            env: vec![("CERTCTL_NAME", "a.fr; rm -rf /".into())],
        };
        hook.run(Duration::from_secs(5)).await.unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "a.fr; rm -rf /");
        let failing = Hook {
            kind: "post",
            command: "exit 3",
            env: vec![],
        };
        let err = failing
            .run(Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("post hook") && err.contains("exit status: 3"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn hanging_hook_is_killed_at_its_timeout() {
        let started = std::time::Instant::now();
        let hook = Hook {
            kind: "post",
            command: "sleep 3600 & sleep 3600",
            env: vec![],
        };
        let err = hook
            .run(Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not finish"), "{err}");
        // returning at all proves it: the hook would take an hour (the bound only guards
        // against a hang, however loaded the machine)
        assert!(started.elapsed() < Duration::from_secs(600));
    }

    #[tokio::test]
    async fn both_streams_reach_the_log() {
        let (result, text) =
            run_kept("echo to-stdout; echo to-stderr >&2", Duration::from_secs(5)).await;
        result.unwrap();
        assert!(
            text.contains("to-stdout\n") && text.contains("to-stderr\n"),
            "{text}"
        );
        assert!(!text.contains("not shown"), "{text}");
    }

    #[tokio::test]
    async fn flooding_hook_output_is_capped_and_the_drop_counted() {
        // 1 MB on stdout and 300 kB on stderr: the hook is not slowed down, it finishes
        let (result, text) = run_kept(
            "head -c 1000000 /dev/zero | tr '\\0' o; head -c 300000 /dev/zero | tr '\\0' e >&2",
            Duration::from_secs(20),
        )
        .await;
        result.unwrap();
        let (shown, note) = text.split_once("\ncertctl: ").unwrap();
        assert!(shown.bytes().all(|b| b == b'o' || b == b'e'));
        let shown = shown.len();
        assert_eq!(shown, OUTPUT_LIMIT, "exactly the limit is shown");
        let dropped = 1_300_000 - OUTPUT_LIMIT;
        assert!(
            note.contains(&format!("wrote {dropped} more bytes of output; not shown")),
            "{note}"
        );
        assert!(text.len() < OUTPUT_LIMIT + 200);
    }

    #[tokio::test]
    async fn endless_output_is_capped_and_the_hook_killed_at_its_timeout() {
        let started = std::time::Instant::now();
        let (result, text) = run_kept("yes flood", Duration::from_millis(500)).await;
        let err = result.unwrap_err().to_string();
        assert!(err.contains("did not finish"), "{err}");
        // `yes` never ends: returning proves the kill (the bound only guards against a hang)
        assert!(started.elapsed() < Duration::from_secs(600));
        assert!(
            text.len() < OUTPUT_LIMIT + 200,
            "{} bytes logged",
            text.len()
        );
        assert!(text.contains("more bytes of output; not shown"));
    }

    #[tokio::test]
    async fn a_hook_stopped_midway_has_its_whole_group_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let command = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let hook = Hook {
            kind: "deploy",
            command: &command,
            env: vec![],
        };
        let run = hook.run(Duration::from_secs(600));
        let stopped = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::select! {
                _ = run => panic!("the hook ended"),
                _ = async {
                    while std::fs::read_to_string(&pid_file).map_or(true, |t| t.trim().is_empty()) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                } => {}
            }
        })
        .await;
        assert!(stopped.is_ok(), "the hook never started its child");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..250).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: kill with signal 0 only checks that the process exists.
            let exists = unsafe { libc::kill(pid, 0) } == 0;
            !exists
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
        assert!(gone, "the hook's child {pid} outlived the stopped hook");
    }

    #[tokio::test]
    async fn a_daemon_holding_the_pipes_does_not_hold_certctl() {
        // the hook exits at once, its background child keeps stdout open for 10 minutes;
        // certctl returns after its drain grace, long before (the child is then killed)
        let started = std::time::Instant::now();
        let (result, text) = run_kept(
            "echo started; (sleep 601; echo late) &",
            Duration::from_secs(1200),
        )
        .await;
        result.unwrap();
        assert!(text.contains("started"), "{text}");
        assert!(!text.contains("late"), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{:?}",
            started.elapsed()
        );
        let _ = std::process::Command::new("pkill")
            .args(["-f", "sleep 601"])
            .status();
    }
}
