//! Runs user hook commands with `/bin/sh -c`, values passed as environment variables and
//! never spliced into the command, bounded by a timeout that kills the whole process group.
//! Hook output goes to stderr (stdout carries certctl's results).

use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

/// One hook run: which hook, its command and its environment.
pub struct Hook<'a> {
    pub kind: &'static str,
    pub command: &'a str,
    pub env: Vec<(&'static str, String)>,
}

impl Hook<'_> {
    /// Runs the hook to completion; an error when it fails, is killed or times out.
    pub async fn run(&self, timeout: Duration) -> anyhow::Result<()> {
        tracing_line(self.kind, self.command);
        let stderr_for_stdout = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stderr")?;
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(self.command)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stderr_for_stdout))
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {} hook {:?}", self.kind, self.command))?;
        let pid = child.id();
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => {
                let status =
                    status.with_context(|| format!("waiting for the {} hook", self.kind))?;
                if !status.success() {
                    bail!(
                        "the {} hook {:?} failed ({status})",
                        self.kind,
                        self.command
                    );
                }
                Ok(())
            }
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: signals the process group the hook leads (process_group(0) above).
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
                let _ = child.wait().await;
                bail!(
                    "the {} hook {:?} did not finish within {}s and was killed (raise --hook-timeout if it needs longer)",
                    self.kind,
                    self.command,
                    timeout.as_secs()
                )
            }
        }
    }
}

fn tracing_line(kind: &str, command: &str) {
    crate::log::verbose(format_args!("running {kind} hook: {command}"));
}

#[cfg(test)]
mod tests {
    use super::*;

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
            command: "sleep 30 & sleep 30",
            env: vec![],
        };
        let err = hook
            .run(Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
