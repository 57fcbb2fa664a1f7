//! DNS-01 through user commands, the two ways existing scripts expect: certbot's manual
//! hooks (`--dns-hook` / `--dns-cleanup-hook` run with /bin/sh -c, once per record, values
//! in CERTBOT_* and CERTCTL_* variables, the auth hook's stdout handed to the cleanup hook as
//! CERTBOT_AUTH_OUTPUT) and lego's exec provider (`CMD present|cleanup FQDN VALUE`). Values
//! are never spliced into a command line; each run is bounded in time and output, and its
//! process group is killed when it overruns. A failing hook's stderr is in the error.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::AsyncReadExt;

use super::Record;
use crate::types::HookStyle;

/// Output of one hook run kept (stdout for CERTBOT_AUTH_OUTPUT, stderr for the error).
const OUTPUT_LIMIT: usize = 16 * 1024;

/// The hook commands of one DNS-01 setting.
pub struct Hooks {
    pub hook: String,
    pub cleanup_hook: Option<String>,
    pub style: HookStyle,
    /// What each auth hook printed, by (owner, value), for its cleanup hook.
    outputs: Mutex<HashMap<(String, String), String>>,
}

impl Hooks {
    pub fn new(hook: String, cleanup_hook: Option<String>, style: HookStyle) -> Self {
        Self {
            hook,
            cleanup_hook,
            style,
            outputs: Mutex::new(HashMap::new()),
        }
    }

    /// Runs the auth hook for each record in turn; stops at the first that fails.
    pub async fn present(&self, records: &[Record], timeout: Duration) -> anyhow::Result<()> {
        for (i, record) in records.iter().enumerate() {
            let remaining = records.len() - i - 1;
            let output = self
                .run("present", &self.hook, record, remaining, None, timeout)
                .await?;
            let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
            // as certbot does: the output without its surrounding blank space
            let output = output.trim().to_owned();
            outputs.insert((record.owner.clone(), record.value.clone()), output);
        }
        Ok(())
    }

    /// Runs the cleanup hook for every record, even when one fails.
    pub async fn cleanup(&self, records: &[Record], timeout: Duration) -> anyhow::Result<()> {
        let command = self.cleanup_hook.as_deref().unwrap_or(&self.hook);
        let mut failures = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let key = (record.owner.clone(), record.value.clone());
            let auth_output = self
                .outputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            let remaining = records.len() - i - 1;
            let run = self.run(
                "cleanup",
                command,
                record,
                remaining,
                Some(auth_output.unwrap_or_default()),
                timeout,
            );
            if let Err(e) = run.await {
                failures.push(format!("{e:#}"));
            }
        }
        match failures.is_empty() {
            true => Ok(()),
            false => bail!("{}", failures.join("; ")),
        }
    }

    /// One hook run for `record`; returns its stdout.
    async fn run(
        &self,
        action: &str,
        command: &str,
        record: &Record,
        remaining: usize,
        auth_output: Option<String>,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let (line, args): (String, Vec<String>) = match self.style {
            HookStyle::Certbot => (command.to_owned(), Vec::new()),
            // `CMD "$@"` with the arguments after the script name: values never in the text
            HookStyle::Lego => (
                format!("{command} \"$@\""),
                vec![
                    action.to_owned(),
                    format!("{}.", record.owner),
                    record.value.clone(),
                ],
            ),
        };
        let kind = match action {
            "present" => "--dns-hook",
            _ if self.cleanup_hook.is_some() => "--dns-cleanup-hook",
            _ => "--dns-hook (cleanup)",
        };
        crate::log::verbose(format_args!(
            "running {kind} for {}: {command}",
            record.owner
        ));
        let mut env = vec![
            ("CERTBOT_DOMAIN", record.domain.clone()),
            ("CERTBOT_VALIDATION", record.value.clone()),
            ("CERTBOT_TOKEN", record.token.clone()),
            ("CERTBOT_REMAINING_CHALLENGES", remaining.to_string()),
            ("CERTBOT_ALL_DOMAINS", record.all_domains.clone()),
            ("CERTCTL_DOMAIN", record.domain.clone()),
            ("CERTCTL_VALIDATION", record.value.clone()),
            ("CERTCTL_TOKEN", record.token.clone()),
            ("CERTCTL_REMAINING_CHALLENGES", remaining.to_string()),
            ("CERTCTL_ALL_DOMAINS", record.all_domains.clone()),
            ("CERTCTL_RECORD", record.owner.clone()),
            ("CERTCTL_ZONE", record.zone.clone()),
        ];
        if let Some(output) = auth_output {
            env.push(("CERTBOT_AUTH_OUTPUT", output.clone()));
            env.push(("CERTCTL_AUTH_OUTPUT", output));
        }
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .arg("certctl-dns-hook")
            .args(&args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {kind} {command:?}"))?;
        let pid = child.id();
        let stdout = read_capped(child.stdout.take());
        let stderr = read_capped(child.stderr.take());
        let waited = tokio::time::timeout(timeout, async {
            let (status, out, err) = tokio::join!(child.wait(), stdout, stderr);
            (status, out, err)
        })
        .await;
        let Ok((status, out, err)) = waited else {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: signals the process group the hook leads (process_group(0) above).
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.wait().await;
            bail!(
                "{kind} {command:?} for {} did not finish within {} s (--dns-timeout) and was killed",
                record.owner,
                timeout.as_secs()
            );
        };
        let status = status.with_context(|| format!("waiting for {kind}"))?;
        if !err.trim().is_empty() {
            crate::log::verbose(format_args!("{kind} said: {}", err.trim_end()));
        }
        if !status.success() {
            let said = match err.trim() {
                "" => String::new(),
                text => format!(": {text}"),
            };
            return Err(anyhow!(
                "{kind} {command:?} failed for {} ({status}){said}",
                record.owner
            ));
        }
        Ok(out)
    }
}

/// Reads a pipe to its end, keeping the first `OUTPUT_LIMIT` bytes as text.
async fn read_capped(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(domain: &str, value: &str) -> Record {
        Record {
            domain: domain.into(),
            owner: format!("_acme-challenge.{domain}"),
            zone: "a.test".into(),
            value: value.into(),
            token: "tok".into(),
            all_domains: "a.test,*.a.test".into(),
        }
    }

    #[tokio::test]
    async fn certbot_hooks_see_the_manual_environment_and_the_auth_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let hook = format!(
            "echo \"auth $CERTBOT_DOMAIN $CERTBOT_VALIDATION $CERTBOT_REMAINING_CHALLENGES $CERTBOT_ALL_DOMAINS\" >> {0}; echo out-$CERTBOT_VALIDATION",
            log.display()
        );
        let cleanup = format!(
            "echo \"clean $CERTBOT_DOMAIN $CERTBOT_AUTH_OUTPUT\" >> {}",
            log.display()
        );
        let hooks = Hooks::new(hook, Some(cleanup), HookStyle::Certbot);
        let records = [record("a.test", "v1;$(rm -rf /)"), record("a.test", "v2")];
        hooks
            .present(&records, Duration::from_secs(30))
            .await
            .unwrap();
        hooks
            .cleanup(&records, Duration::from_secs(30))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text,
            "auth a.test v1;$(rm -rf /) 1 a.test,*.a.test\nauth a.test v2 0 a.test,*.a.test\n\
             clean a.test out-v1;$(rm -rf /)\nclean a.test out-v2\n"
        );
    }

    #[tokio::test]
    async fn lego_style_passes_action_fqdn_and_value_as_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = dir.path().join("lego.sh");
        std::fs::write(
            &script,
            format!("printf '%s|' \"$@\" >> {}\necho >> {0}\n", log.display()),
        )
        .unwrap();
        let hooks = Hooks::new(format!("sh {}", script.display()), None, HookStyle::Lego);
        let records = [record("a.test", "v 1")];
        hooks
            .present(&records, Duration::from_secs(30))
            .await
            .unwrap();
        hooks
            .cleanup(&records, Duration::from_secs(30))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text,
            "present|_acme-challenge.a.test.|v 1|\ncleanup|_acme-challenge.a.test.|v 1|\n"
        );
    }

    #[tokio::test]
    async fn a_failing_hook_shows_its_stderr_and_a_slow_one_is_killed() {
        let hooks = Hooks::new(
            "echo 'zone locked' >&2; exit 3".into(),
            Some("true".into()),
            HookStyle::Certbot,
        );
        let err = hooks
            .present(&[record("a.test", "v")], Duration::from_secs(30))
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("zone locked") && text.contains("--dns-hook"),
            "{text}"
        );
        let slow = Hooks::new("sleep 30".into(), Some("true".into()), HookStyle::Certbot);
        let started = std::time::Instant::now();
        let err = slow
            .present(&[record("a.test", "v")], Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("was killed"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
