//! Running certctl where it may misbehave, and counting cases. `run` returns an error
//! instead of panicking when a run hangs past its bound (then killed) or shows key material,
//! so a table of cases reports every failure, and it gives the run's peak RSS (wait4's
//! ru_maxrss). `Cases` collects the outcome of each case and prints how many failed.

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::Output;

/// What one bounded run gave.
pub struct Run {
    pub output: Output,
    /// Peak resident set size of the process, in KiB.
    pub max_rss_kib: i64,
    pub elapsed: Duration,
}

/// Runs `command` to its end (stdin closed unless set, stdout and stderr piped unless
/// set), killing it after `bound`; an error when it had to be killed, when it panicked (exit
/// 101) or when its output shows key material.
pub fn run(mut command: Command, bound: Duration) -> Result<Run, String> {
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("$ {line}");
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    run_spawned(&line, command, bound)
}

/// `run`, with stdout and stderr as `command` already has them (a closed pipe, say); what
/// was not piped reads as empty.
pub fn run_as_set(command: Command, bound: Duration) -> Result<Run, String> {
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("$ {line}");
    run_spawned(&line, command, bound)
}

fn run_spawned(line: &str, mut command: Command, bound: Duration) -> Result<Run, String> {
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("spawning {line}: {e}"))?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let pid = child.id() as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (done, killed) = (done.clone(), killed.clone());
        thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if started.elapsed() >= bound {
                    killed.store(true, Ordering::SeqCst);
                    // SAFETY: kill(2) on our own child, not yet reaped (wait4 below reaps it).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value to be filled in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with live pointers; it reaps the child.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    std::mem::forget(child); // reaped by wait4
    if rc != pid {
        return Err(format!(
            "{line}: wait4 failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let elapsed = started.elapsed();
    use std::os::unix::process::ExitStatusExt;
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    eprintln!(
        "--- stdout\n{}--- stderr\n{}--- {} in {elapsed:?}, peak RSS {} KiB",
        output.stdout, output.stderr, output.status, usage.ru_maxrss
    );
    if killed.load(Ordering::SeqCst) {
        return Err(format!("{line}: still running after {bound:?}; killed"));
    }
    if output.status.code() == Some(101) || output.stderr.contains("panicked at") {
        return Err(format!("{line}: panicked: {}", output.stderr.trim()));
    }
    for (stream, text) in [("stderr", &output.stderr), ("stdout", &output.stdout)] {
        if text.contains("PRIVATE KEY") {
            return Err(format!("{line}: key material on {stream}"));
        }
    }
    Ok(Run {
        output,
        max_rss_kib: usage.ru_maxrss,
        elapsed,
    })
}

/// Checks a run's exit code and that its stderr says each of `needles`.
pub fn expect(run: &Result<Run, String>, code: i32, needles: &[&str]) -> Result<(), String> {
    let run = run.as_ref().map_err(Clone::clone)?;
    let out = &run.output;
    if out.code() != Some(code) {
        return Err(format!(
            "exit {:?}, want {code}: {}",
            out.code(),
            out.stderr.trim()
        ));
    }
    for needle in needles {
        if !out.stderr.contains(needle) {
            return Err(format!(
                "stderr does not say {needle:?}: {}",
                out.stderr.trim()
            ));
        }
    }
    Ok(())
}

/// The outcome of every case of a test; `finish` prints the count and fails the test if
/// any case failed.
pub struct Cases {
    what: &'static str,
    run: usize,
    failed: Vec<String>,
}

impl Cases {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            run: 0,
            failed: Vec::new(),
        }
    }

    pub fn check(&mut self, case: &str, outcome: Result<(), String>) {
        self.run += 1;
        match outcome {
            Ok(()) => eprintln!("case ok: {case}"),
            Err(e) => {
                eprintln!("case FAILED: {case}: {e}");
                self.failed.push(format!("{case}: {e}"));
            }
        }
    }

    pub fn finish(self) {
        eprintln!(
            "{}: {} cases, {} failed",
            self.what,
            self.run,
            self.failed.len()
        );
        assert!(
            self.failed.is_empty(),
            "{}: {} of {} cases failed:\n{}",
            self.what,
            self.failed.len(),
            self.run,
            self.failed.join("\n")
        );
    }
}
