//! HAProxy's side of the lab: the configuration text, the reload script and a client for
//! the admin socket. Starting and stopping the process is `Lab`'s job; this file only
//! renders and talks. Findings on HAProxy 2.6.12 are in `config` and haproxy_reload.sh.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Where the listeners of one lab's HAProxy go.
pub struct Layout<'a> {
    pub admin_socket: &'a Path,
    pub http_port: u16,
    pub https_port: u16,
    pub responder_addr: &'a str,
    pub placeholder: &'a Path,
    pub ssl_dir: &'a Path,
    /// A TCP frontend on this port routing ALPN acme-tls/1 to this address (certctl's
    /// tls-alpn-01 listener), everything else to the HTTPS frontend.
    pub tls_front: Option<(u16, &'a str)>,
}

/// The configuration for one lab.
///
/// Placeholder: HAProxy refuses a bind whose only `crt` is an empty directory ("no SSL
/// certificate specified for bind"). A placeholder bundle OUTSIDE the ssl dir, named first,
/// is enough: the empty directory is then accepted, and the placeholder is the default
/// certificate for unknown SNI. So the ssl dir holds only what certctl writes.
/// In the ssl dir HAProxy skips dotfiles (and *.key, *.ocsp, *.issuer, *.sctl) but fails
/// startup and reload on any other file that is not a certificate, e.g. `x.pem.tmp`.
pub fn config(layout: &Layout<'_>) -> String {
    let Layout {
        admin_socket,
        http_port,
        https_port,
        responder_addr,
        placeholder,
        ssl_dir,
        tls_front,
    } = layout;
    let admin_socket = admin_socket.display();
    let placeholder = placeholder.display();
    let ssl_dir = ssl_dir.display();
    let front = tls_front.map_or_else(String::new, |(port, alpn_responder)| {
        tls_front_config(port, alpn_responder, *https_port, &placeholder, &ssl_dir)
    });
    let config = format!(
        "\
global
    stats socket {admin_socket} level admin
    nbthread 1
    # old workers keep serving open connections after a reload; do not let them linger
    hard-stop-after 5s

defaults
    mode http
    timeout connect 5s
    # longer than any certctl run may take (RUN_TIMEOUT): a connection a test holds open
    # across a run is never closed for idleness, however slow the machine
    timeout client 3m
    timeout server 30s

frontend http
    bind 127.0.0.1:{http_port}
    acl acme path_beg /.well-known/acme-challenge/
    http-request redirect scheme https unless acme
    use_backend certctl if acme

backend certctl
    server certctl {responder_addr}

frontend https
    bind 127.0.0.1:{https_port} ssl crt {placeholder} crt {ssl_dir}/
    http-request return status 200 content-type text/plain string \"certctl lab\\n\"
"
    );
    config + &front
}

/// Port 443 shared by tls-alpn-01 and the sites, as the README shows it: a TCP frontend
/// that looks at the ClientHello, acme-tls/1 to certctl, the rest (with a PROXY header, so
/// the client's address is kept) to a second bind of the HTTPS frontend. The abstract
/// socket's name carries the HTTPS port, which no other running lab has.
fn tls_front_config(
    port: u16,
    alpn_responder: &str,
    https_port: u16,
    placeholder: &impl std::fmt::Display,
    ssl_dir: &impl std::fmt::Display,
) -> String {
    format!(
        "
frontend tls
    mode tcp
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend acme_tls_alpn if {{ req.ssl_alpn acme-tls/1 }}
    default_backend tls_sites

backend acme_tls_alpn
    mode tcp
    server certctl {alpn_responder}

backend tls_sites
    mode tcp
    server https abns@certctl-lab-{https_port} send-proxy-v2

frontend https_behind_tls
    bind abns@certctl-lab-{https_port} accept-proxy ssl crt {placeholder} crt {ssl_dir}/ alpn h2,http/1.1
    http-request return status 200 content-type text/plain string \"certctl lab\\n\"
"
    )
}

/// The lab's reload script (see haproxy_reload.sh), for the master `master_pid` whose
/// output goes to `log`; `lock` serialises concurrent reloads.
pub fn reload_script(master_pid: u32, log: &Path, lock: &Path) -> String {
    include_str!("haproxy_reload.sh")
        .replace("@MASTER@", &master_pid.to_string())
        .replace("@LOG@", &log.display().to_string())
        .replace("@LOCK@", &lock.display().to_string())
}

/// Sends one command to the admin socket and returns the whole reply.
pub fn admin_command(socket: &Path, command: &str) -> Result<String, String> {
    let timeout = Some(Duration::from_secs(10));
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("setting timeouts on {}: {e}", socket.display()))?;
    let mut line = command.to_owned();
    if !line.ends_with('\n') {
        line.push('\n');
    }
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("writing to {}: {e}", socket.display()))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("reading from {}: {e}", socket.display()))?;
    Ok(reply)
}

/// The pid of the worker answering on the admin socket (`show info` line `Pid:`).
pub fn worker_pid(socket: &Path) -> Result<u32, String> {
    let info = admin_command(socket, "show info")?;
    info.lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| format!("no Pid in `show info` reply: {info:?}"))
}
