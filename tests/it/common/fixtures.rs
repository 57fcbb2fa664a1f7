//! Helpers the integration tests share: `certctl request` with the lab's responder, byte-for-
//! byte snapshots of the state and ssl directories, and certificate serials.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Lab, Output, run_command};

/// `certctl request` with the lab's responder address and the terms agreed to.
pub fn request(lab: &Lab, args: &[&str]) -> Output {
    let http_addr = lab.http_addr();
    let mut all = vec!["request", "--http-addr", http_addr.as_str(), "--agree-tos"];
    all.extend_from_slice(args);
    lab.run(&all)
}

/// `certctl` with the lab's global flags, except that each flag in `overrides` takes the
/// given value instead (an empty value drops the flag).
pub fn certctl_with(lab: &Lab, overrides: &[(&str, &OsStr)]) -> Command {
    let defaults = [
        ("--state-dir", lab.state_dir().into_os_string()),
        ("--ssl-dir", lab.ssl_dir().into_os_string()),
        ("--server", OsString::from(lab.directory_url())),
        ("--ca-bundle", lab.ca_bundle().into_os_string()),
    ];
    let mut cmd = super::hermetic::certctl_in(lab.root());
    for (flag, value) in defaults {
        let value = overrides
            .iter()
            .find(|(f, _)| *f == flag)
            .map_or(value.as_os_str(), |(_, v)| *v)
            .to_owned();
        if !value.is_empty() {
            cmd.arg(flag).arg(value);
        }
    }
    cmd
}

/// Every file under a directory with its bytes (or link target) and mode, except a
/// certificate's `status.json`: the record of renewal attempts, which a failed run writes
/// by design (`certctl check` reads it), so "nothing changed" means nothing else did.
pub type Snapshot = BTreeMap<PathBuf, (Vec<u8>, u32)>;

/// Every file under a directory, except each certificate's `status.json`: the record of
/// renewal attempts, which a failed attempt is meant to write (for `check` and metrics);
/// and `renew-index`, the cache of next-attention times any `renew` may bring up to date.
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path
                .file_name()
                .is_some_and(|n| n == "status.json" || n == "renew-index")
            {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(path, (target.as_os_str().as_encoded_bytes().to_vec(), mode));
            } else if meta.is_dir() {
                out.insert(path.clone(), (Vec::new(), mode));
                stack.push(path);
            } else {
                out.insert(path.clone(), (fs::read(&path).unwrap(), mode));
            }
        }
    }
    out
}

/// Snapshots of the lab's state and ssl directories.
pub fn both_snapshots(lab: &Lab) -> (Snapshot, Snapshot) {
    (snapshot(&lab.state_dir()), snapshot(&lab.ssl_dir()))
}

/// A certificate's serial as lowercase hex, as certctl and Pebble's management API write it.
pub fn serial_hex(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    cert.tbs_certificate
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The DNS names of a certificate's subjectAltName.
pub fn san_dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{GeneralName, ParsedExtension};
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let mut names = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                if let GeneralName::DNSName(d) = name {
                    names.push(d.to_string());
                }
            }
        }
    }
    names
}

/// Drives a command on a pseudo-terminal: waits for each `[y/N]` prompt, types the next of
/// the answers (separated by \x1e), echoes everything the terminal showed on stdout and
/// exits with the command's code.
/// Bounded: kills the command after 150 s (less than run_command's bound, so that what the
/// terminal showed is reported). Needs no stdin of its own.
const PTY_DRIVER: &str = r#"
import os, pty, select, signal, sys, time
answers = [a.encode() for a in sys.argv[1].split("\x1e")]
argv = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
deadline = time.monotonic() + 150
shown = b""
sent = 0
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.stdout.write(shown.decode(errors="replace"))
        sys.stderr.write("pty driver: no exit within 150 s; killed\n")
        sys.exit(124)
    ready, _, _ = select.select([fd], [], [], min(left, 0.5))
    if not ready:
        continue
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        chunk = b""
    if not chunk:
        break
    shown += chunk
    while sent < len(answers) and shown.count(b"[y/N]") > sent:
        os.write(fd, answers[sent])
        sent += 1
_, status = os.waitpid(pid, 0)
sys.stdout.write(shown.decode(errors="replace"))
if not sent:
    sys.stderr.write("pty driver: no [y/N] prompt was shown\n")
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// `certctl <lab flags> <args>` on a terminal, answering the prompt with `answer`.
pub fn on_terminal(lab: &Lab, answer: &str, args: &[&str]) -> Output {
    on_terminal_answering(lab, &[answer], args)
}

/// `certctl <lab flags> <args>` on a terminal, answering its prompts in turn.
pub fn on_terminal_answering(lab: &Lab, answers: &[&str], args: &[&str]) -> Output {
    let answer = answers.join("\x1e");
    let driver = lab.root().join("pty-driver.py");
    std::fs::write(&driver, PTY_DRIVER).unwrap();
    let mut driver_cmd = Command::new("python3");
    driver_cmd.arg(&driver).arg(answer).stdin(Stdio::null());
    // the same environment as lab.certctl(): nothing of the host's
    let mut cmd = super::hermetic::through(driver_cmd, &lab.certctl());
    cmd.args(args);
    run_command(cmd)
}
