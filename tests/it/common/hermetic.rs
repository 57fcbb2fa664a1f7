//! What the tests' child processes inherit from whoever runs the suite: nothing that could
//! change what they do. `certctl_in` is the one way a test builds a `certctl` command;
//! `scrub` clears the host's variables from any other child (certbot, Pebble, HAProxy).
//! Owns the list of those variables; of certctl's own settings it sets only the config file.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The config file every certctl run reads unless its test names another: empty, so
/// certctl's built-in defaults apply and the host's /etc/certctl/config.toml is never read.
const NO_SETTINGS: &str = "no-settings.toml";

/// Whether a variable of the test's own environment must not reach a child: certctl's
/// settings (CERTCTL_*); the trust stores read by rustls-native-certs (SSL_CERT_FILE,
/// SSL_CERT_DIR), by certbot's requests (REQUESTS_CA_BUNDLE) and by curl and others
/// (*_CA_BUNDLE); and proxies (*_proxy, any case), which would send loopback traffic away.
pub fn inherited_from_host(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    let upper = name.to_ascii_uppercase();
    upper.starts_with("CERTCTL_")
        || upper == "SSL_CERT_FILE"
        || upper == "SSL_CERT_DIR"
        || upper.ends_with("_CA_BUNDLE")
        || upper.ends_with("_PROXY")
}

/// Removes from `command`'s environment every variable `inherited_from_host` names.
pub fn scrub(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if inherited_from_host(&key) {
            command.env_remove(key);
        }
    }
    command
}

/// The empty config file in `dir` (created when missing), for `CERTCTL_CONFIG`.
pub fn empty_config(dir: &Path) -> PathBuf {
    let path = dir.join(NO_SETTINGS);
    if !path.exists() {
        fs::write(&path, "# no settings: certctl's built-in defaults\n")
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        // whatever the umask of the suite: certctl refuses a config file others can write
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }
    path
}

/// `certctl` with stdin closed, a scrubbed environment and `CERTCTL_CONFIG` naming an empty
/// config file in `dir` (a directory of the test's own). A test that wants a config file
/// sets CERTCTL_CONFIG again or passes --config: both win over this one.
/// CERTCTL_IT_BIN (read here, never passed on) runs the suite against another build, e.g.
/// an older one, to count what a fix changed.
pub fn certctl_in(dir: &Path) -> Command {
    let binary =
        std::env::var_os("CERTCTL_IT_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_certctl").into());
    let mut command = Command::new(binary);
    scrub(&mut command)
        .env("CERTCTL_CONFIG", empty_config(dir))
        .stdin(Stdio::null());
    command
}

/// `launcher` (a shell, a pty driver) with `inner`'s program and arguments appended and
/// `inner`'s environment changes applied, so that a certctl run through it stays hermetic.
pub fn through(mut launcher: Command, inner: &Command) -> Command {
    launcher.arg(inner.get_program()).args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => launcher.env(key, value),
            None => launcher.env_remove(key),
        };
    }
    launcher
}
