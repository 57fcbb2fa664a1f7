//! The integration-test lab: Pebble (ACME CA), pebble-challtestsrv (DNS answering 127.0.0.1)
//! and HAProxy (HTTP-01 forwarding, TLS with a crt directory), each on fresh loopback ports
//! in its own temp dir, plus helpers to drive the `certctl` binary against them.
//! Every process lives in a guard that stops it on drop; labs share nothing, so tests may
//! run in parallel. Set CERTCTL_LAB_KEEP=1 to keep a lab's directory (kept anyway on panic).
#![allow(dead_code)]

pub mod ari_shim;
pub mod bind;
pub mod bounded;
pub mod ca_front;
pub mod certbot;
pub mod cluster_lab;
pub mod etcd;
pub mod fake_admin;
pub mod fixtures;
pub mod fresh_authz;
pub mod haproxy;
pub mod hermetic;
pub mod host;
pub mod pki;
pub mod process;
pub mod proxy;
pub mod tls;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

use fresh_authz::FreshAuthz;

#[allow(unused_imports)]
pub use process::process_alive;
use process::{ProcessGuard, accepts, descendants_of, free_port, log_tail};
pub use tls::HttpReply;

/// Bound on every startup wait and on a reload becoming effective. A bound on a hang, not
/// an expectation of speed: Pebble listens within 2 s on an idle machine, but took over 15 s
/// (the bound before) on 2 cores with a load average of 11.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on one `certctl` run through `Lab::run`.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// What to vary between labs. `Default` gives the common lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Pebble's `certificateValidityPeriod` in seconds; None keeps Pebble's 5 years.
    pub validity_secs: Option<u64>,
    /// PEBBLE_WFE_NONCEREJECT; None leaves Pebble's default (5 %).
    pub nonce_reject_percent: Option<u32>,
    /// PEBBLE_AUTHZREUSE; None sets 0. Pebble 2.4 still reuses 1 % of authorizations at 0:
    /// `fresh_validation` is what makes every order validated again.
    pub authz_reuse_percent: Option<u32>,
    /// Put the `FreshAuthz` front on the ACME port (default true): a new order that reuses
    /// an authorization is answered with badNonce, so the client sends it again.
    pub fresh_validation: bool,
    /// Start HAProxy in front of certctl's responder (default true). Without it Pebble
    /// validates HTTP-01 directly against `http_addr`.
    pub haproxy: bool,
    /// More environment for Pebble, e.g. ("PEBBLE_CHAIN_LENGTH", "3").
    pub pebble_env: Vec<(String, String)>,
    /// A DNS server for Pebble's validations (BIND, for DNS-01) instead of challtestsrv,
    /// which is then not started.
    pub dns_server: Option<SocketAddr>,
    /// HAProxy also listens on a TCP frontend (Pebble's tlsPort) that sends ClientHellos
    /// offering ALPN acme-tls/1 to certctl's tls-alpn-01 listener (`tls_alpn_addr`) and
    /// every other one to its HTTPS frontend, as the README's port-443 setup does.
    pub tls_alpn_front: bool,
    /// External Account Binding keys (kid, base64url HMAC key): when any, Pebble requires
    /// EAB for new accounts (`externalAccountBindingRequired`, `externalAccountMACKeys`).
    pub eab_keys: Vec<(String, String)>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            validity_secs: None,
            nonce_reject_percent: None,
            authz_reuse_percent: None,
            fresh_validation: true,
            haproxy: true,
            pebble_env: Vec::new(),
            dns_server: None,
            tls_alpn_front: false,
            eab_keys: Vec::new(),
        }
    }
}

/// The result of one `certctl` run, with output decoded lossily as UTF-8.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics (showing both streams) unless the run exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "certctl failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Loopback ports of one lab.
#[derive(Debug, Clone, Copy)]
struct Ports {
    dns: u16,
    challtestsrv_management: u16,
    /// The ACME directory's port: the `FreshAuthz` front, or Pebble itself when the lab
    /// lets Pebble reuse authorizations.
    acme: u16,
    /// Pebble's own ACME listener.
    pebble: u16,
    management: u16,
    /// Pebble's tlsPort for TLS-ALPN-01: HAProxy's TCP frontend with `tls_alpn_front`,
    /// certctl's listener without HAProxy, else nothing.
    tls_alpn: u16,
    /// certctl's tls-alpn-01 listener.
    alpn_responder: u16,
    /// Where Pebble sends HTTP-01 requests: HAProxy's HTTP frontend, or the responder itself.
    http_validation: u16,
    /// HAProxy's HTTPS frontend, when there is HAProxy.
    https: Option<u16>,
    /// certctl's HTTP-01 responder.
    responder: u16,
}

/// One running lab. Dropping it stops every process and removes the directory.
pub struct Lab {
    haproxy: Mutex<Option<ProcessGuard>>,
    pebble: Mutex<Option<ProcessGuard>>,
    /// The front that keeps Pebble from reusing authorizations (None when the lab sets
    /// `authz_reuse_percent`, or once Pebble is stopped).
    fresh_authz: Mutex<Option<FreshAuthz>>,
    fresh_authz_rejections: Arc<AtomicUsize>,
    challtestsrv: Mutex<Option<ProcessGuard>>,
    ports: Ports,
    ca_der: Vec<u8>,
    root: PathBuf,
    options: LabOptions,
    dir: Option<TempDir>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock leaves the guard usable for cleanup.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

impl Lab {
    pub fn start() -> Lab {
        Lab::start_with(LabOptions::default())
    }

    pub fn start_with(opts: LabOptions) -> Lab {
        // A port handed out by `free_port` is free when chosen, but any process on the
        // machine may take it (an outgoing connection's ephemeral port, too) before the
        // component binds it: a start that lost that race is tried again on other ports.
        const TRIES: usize = 3;
        for attempt in 1..=TRIES {
            let opts = opts.clone();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Lab::start_once(opts))) {
                Ok(lab) => return lab,
                Err(panic) => {
                    let text = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    if attempt == TRIES || !text.to_lowercase().contains("address already in use") {
                        std::panic::resume_unwind(panic);
                    }
                    eprintln!(
                        "certctl lab: a port was taken meanwhile; starting again on other ports"
                    );
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn start_once(opts: LabOptions) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("certctl-lab-")
            .tempdir()
            .expect("creating lab temp dir");
        let root = dir.path().to_path_buf();
        for sub in ["state", "ssl"] {
            fs::create_dir(root.join(sub)).expect("creating lab subdirectory");
        }
        hermetic::empty_config(&root);

        let responder = free_port();
        let alpn_responder = free_port();
        let acme = free_port();
        let ports = Ports {
            dns: opts.dns_server.map_or_else(free_port, |addr| addr.port()),
            challtestsrv_management: free_port(),
            acme,
            pebble: if opts.fresh_validation {
                free_port()
            } else {
                acme
            },
            management: free_port(),
            tls_alpn: if opts.haproxy {
                free_port()
            } else {
                alpn_responder
            },
            alpn_responder,
            http_validation: if opts.haproxy { free_port() } else { responder },
            https: opts.haproxy.then(free_port),
            responder,
        };

        let pki = pki::listener_pki();
        write(&root.join("ca.pem"), &pki.ca_pem);
        write(&root.join("pebble-listener.pem"), &pki.leaf.cert_pem);
        write(&root.join("pebble-listener.key"), &pki.leaf.key_pem);

        let challtestsrv = match opts.dns_server {
            Some(_) => None,
            None => Some(start_challtestsrv(&root, &ports)),
        };
        let pebble = start_pebble(&root, &ports, &opts, &pki.ca_der);
        let fresh_authz_rejections = Arc::new(AtomicUsize::new(0));
        let fresh_authz = start_fresh_authz(&root, &ports, &pki.ca_der, &fresh_authz_rejections);
        let haproxy = opts
            .haproxy
            .then(|| start_haproxy(&root, &ports, opts.tls_alpn_front));

        Lab {
            haproxy: Mutex::new(haproxy),
            pebble: Mutex::new(Some(pebble)),
            fresh_authz: Mutex::new(fresh_authz),
            fresh_authz_rejections,
            challtestsrv: Mutex::new(challtestsrv),
            ports,
            ca_der: pki.ca_der,
            root,
            options: opts,
            dir: Some(dir),
        }
    }

    /// The lab's temp dir: configs, logs (`*.log`), sockets, state/ and ssl/.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Where certctl writes bundles and HAProxy loads them from; empty at start.
    pub fn ssl_dir(&self) -> PathBuf {
        self.root.join("ssl")
    }

    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.ports.acme)
    }

    /// PEM of the CA that signed Pebble's HTTPS listener (ACME and management).
    pub fn ca_bundle(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// DER of the CA in `ca_bundle`.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The lab's ACME listener (Pebble, through the `FreshAuthz` front by default).
    pub fn acme_addr(&self) -> SocketAddr {
        loopback(self.ports.acme)
    }

    /// How many new orders the `FreshAuthz` front answered with badNonce because Pebble
    /// reused an authorization: each is one more `POST /order-plz` in Pebble's log.
    pub fn fresh_authz_rejections(&self) -> usize {
        self.fresh_authz_rejections.load(Ordering::SeqCst)
    }

    /// Certificate and key PEM of Pebble's HTTPS listener (for `localhost` and 127.0.0.1,
    /// signed by `ca_bundle`), for test servers that certctl must trust like Pebble.
    pub fn listener_identity(&self) -> (String, String) {
        let read = |file: &str| {
            let path = self.root.join(file);
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        };
        (read("pebble-listener.pem"), read("pebble-listener.key"))
    }

    /// Where certctl's HTTP-01 responder must listen ("127.0.0.1:<port>").
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.responder)
    }

    /// Where certctl's tls-alpn-01 listener must listen ("127.0.0.1:<port>").
    pub fn tls_alpn_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.alpn_responder)
    }

    /// Where Pebble validates tls-alpn-01: HAProxy's TCP frontend with `tls_alpn_front`
    /// (the "port 443" that also serves ordinary TLS), certctl's listener without HAProxy.
    pub fn tls_front_addr(&self) -> SocketAddr {
        loopback(self.ports.tls_alpn)
    }

    /// Where Pebble sends HTTP-01 requests: HAProxy's HTTP frontend (or `http_addr`
    /// without HAProxy).
    pub fn http_validation_addr(&self) -> SocketAddr {
        loopback(self.ports.http_validation)
    }

    /// HAProxy's HTTPS frontend.
    pub fn https_addr(&self) -> SocketAddr {
        loopback(
            self.ports
                .https
                .expect("this lab was started without HAProxy"),
        )
    }

    /// HAProxy's admin socket (`stats socket ... level admin`).
    pub fn admin_socket(&self) -> PathBuf {
        self.root.join("haproxy.sock")
    }

    /// pebble-challtestsrv's DNS server (answers every A query with 127.0.0.1).
    pub fn dns_addr(&self) -> SocketAddr {
        loopback(self.ports.dns)
    }

    /// pebble-challtestsrv's management API, e.g. for `/add-a`.
    pub fn challtestsrv_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.challtestsrv_management)
    }

    /// `certctl` with the lab's global flags, stdin closed, the lab's empty config file and
    /// nothing of the host's environment (`hermetic::certctl_in`).
    pub fn certctl(&self) -> Command {
        self.certctl_with_server(&self.directory_url())
    }

    /// `certctl` as `certctl()` does, but with `--server server` (another directory URL).
    pub fn certctl_with_server(&self, server: &str) -> Command {
        let mut command = hermetic::certctl_in(&self.root);
        command
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--ssl-dir")
            .arg(self.ssl_dir())
            .arg("--server")
            .arg(server)
            .arg("--ca-bundle")
            .arg(self.ca_bundle());
        command
    }

    /// Runs `certctl <lab flags> <args>` and echoes command and output to stderr.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = self.certctl();
        command.args(args);
        run_command(command)
    }

    /// GET on Pebble's ACME listener, trusting `ca_bundle`.
    pub fn acme_get(&self, path: &str) -> HttpReply {
        let config = tls::config_trusting(std::slice::from_ref(&self.ca_der));
        tls::https_get(loopback(self.ports.acme), "127.0.0.1", path, config)
            .unwrap_or_else(|e| panic!("GET {path} on Pebble: {e}"))
    }

    /// GET on Pebble's management API, trusting `ca_bundle`.
    pub fn management_get(&self, path: &str) -> HttpReply {
        let config = tls::config_trusting(std::slice::from_ref(&self.ca_der));
        tls::https_get(loopback(self.ports.management), "127.0.0.1", path, config)
            .unwrap_or_else(|e| panic!("GET {path} on Pebble's management API: {e}"))
    }

    /// DER of Pebble's issuing root(s) from `/roots/0`; new at every Pebble start.
    pub fn pebble_roots(&self) -> Vec<Vec<u8>> {
        let reply = self.management_get("/roots/0");
        assert_eq!(reply.status, 200, "GET /roots/0: {reply:?}");
        let roots: Vec<Vec<u8>> = pem::parse_many(reply.body.as_bytes())
            .expect("parsing /roots/0 as PEM")
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(|p| p.into_contents())
            .collect();
        assert!(!roots.is_empty(), "no certificate in /roots/0: {reply:?}");
        roots
    }

    /// Body of `/cert-status-by-serial/<serial_hex>` (JSON with "Status": "Valid"/"Revoked").
    /// Panics unless Pebble answers 200 (it answers 404 for serials it never issued).
    pub fn cert_status(&self, serial_hex: &str) -> String {
        let path = format!("/cert-status-by-serial/{serial_hex}");
        let reply = self.management_get(&path);
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        reply.body
    }

    fn haproxy_master_pid(&self) -> u32 {
        lock(&self.haproxy)
            .as_ref()
            .expect("this lab has no HAProxy running")
            .pid()
    }

    /// A /bin/sh command that reloads HAProxy gracefully and returns once the outcome is
    /// known: exit 0 when the new worker serves and the old ones are gone, exit 1 (log tail
    /// on stderr) when HAProxy refuses the new configuration. It runs <root>/haproxy-reload.sh,
    /// which sends SIGUSR2 to the master (-W mode) only once the master catches it again:
    /// a SIGUSR2 sent while the master re-executes for the previous reload is lost.
    pub fn reload_command(&self) -> String {
        assert!(
            lock(&self.haproxy).is_some(),
            "this lab has no HAProxy running"
        );
        format!(
            "/bin/sh '{}'",
            self.root.join("haproxy-reload.sh").display()
        )
    }

    /// The pid of the HAProxy worker answering on the admin socket.
    pub fn haproxy_worker_pid(&self) -> u32 {
        haproxy::worker_pid(&self.admin_socket())
            .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&self.haproxy_log(), 40)))
    }

    pub fn haproxy_log(&self) -> PathBuf {
        self.root.join("haproxy.log")
    }

    pub fn pebble_log(&self) -> PathBuf {
        self.root.join("pebble.log")
    }

    /// Runs `reload_command` and checks that a new worker answers on the admin socket;
    /// Err (with the log tail) when HAProxy rejects the new configuration.
    pub fn try_reload_haproxy(&self) -> Result<(), String> {
        let socket = self.admin_socket();
        let old_worker = haproxy::worker_pid(&socket)?;
        let command = self.reload_command();
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {command:?}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{command:?} exited with {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match haproxy::worker_pid(&socket) {
                Ok(pid) if pid != old_worker => return Ok(()),
                _ if Instant::now() >= deadline => {
                    return Err(format!(
                        "reload succeeded but worker {old_worker} still answers\n{}",
                        log_tail(&self.haproxy_log(), 20)
                    ));
                }
                _ => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Reloads HAProxy and waits until the new worker serves; panics when it does not.
    pub fn reload_haproxy(&self) {
        if let Err(err) = self.try_reload_haproxy() {
            panic!("{err}");
        }
    }

    /// The chain HAProxy serves for `sni`, leaf first, without any verification.
    pub fn served_chain(&self, sni: &str) -> Vec<Vec<u8>> {
        let stream = tls::handshake(self.https_addr(), sni, tls::config_accepting_anything())
            .unwrap_or_else(|e| panic!("{e}"));
        tls::peer_chain(&stream)
    }

    /// The chain HAProxy serves for `sni`, verified against Pebble's current root for
    /// the DNS name `sni` (intermediates must come from the served chain).
    pub fn verify_served(&self, sni: &str) -> Result<Vec<Vec<u8>>, String> {
        let config = tls::config_trusting(&self.pebble_roots());
        let stream = tls::handshake(self.https_addr(), sni, config)?;
        Ok(tls::peer_chain(&stream))
    }

    /// GET `path` on HAProxy's HTTP frontend (or the responder without HAProxy).
    pub fn http_get(&self, host: &str, path: &str) -> HttpReply {
        tls::http_get(self.http_validation_addr(), host, path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stops Pebble for good (to prove a command needs no CA).
    pub fn stop_pebble(&self) {
        drop(lock(&self.fresh_authz).take());
        drop(lock(&self.pebble).take());
    }

    /// Kills Pebble with SIGKILL, as a crash would: no shutdown, connections cut.
    pub fn kill_pebble(&self) {
        drop(lock(&self.fresh_authz).take());
        if let Some(guard) = lock(&self.pebble).take() {
            // SAFETY: kill(2) has no memory-safety preconditions; the guard reaps the pid.
            unsafe { libc::kill(guard.pid() as libc::pid_t, libc::SIGKILL) };
            drop(guard);
        }
    }

    /// Starts Pebble again on the same ports and listener certificate. Pebble keeps its
    /// state in memory: the new one knows no account, order or certificate of the old one.
    pub fn restart_pebble(&self) {
        let mut front = lock(&self.fresh_authz);
        drop(front.take());
        let mut slot = lock(&self.pebble);
        drop(slot.take());
        *slot = Some(start_pebble(
            &self.root,
            &self.ports,
            &self.options,
            &self.ca_der,
        ));
        *front = start_fresh_authz(
            &self.root,
            &self.ports,
            &self.ca_der,
            &self.fresh_authz_rejections,
        );
    }

    /// Pids of every lab process still running: Pebble, challtestsrv, HAProxy's master and
    /// its workers.
    pub fn process_ids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for guard in [&self.haproxy, &self.pebble, &self.challtestsrv] {
            if let Some(process) = lock(guard).as_ref() {
                pids.push(process.pid());
                pids.extend(descendants_of(process.pid()));
            }
        }
        pids
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        drop(lock(&self.haproxy).take());
        drop(lock(&self.fresh_authz).take());
        drop(lock(&self.pebble).take());
        drop(lock(&self.challtestsrv).take());
        let keep = thread::panicking() || std::env::var_os("CERTCTL_LAB_KEEP").is_some();
        if let Some(dir) = self.dir.take() {
            if keep {
                eprintln!("certctl lab: keeping {}", dir.keep().display());
            }
        }
    }
}

fn log_contains(path: &Path, needle: &str) -> bool {
    fs::read(path).is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
}

fn start_challtestsrv(root: &Path, ports: &Ports) -> ProcessGuard {
    let mut command = Command::new("pebble-challtestsrv");
    // Every listener is either on a lab port or disabled: the defaults are fixed ports.
    command
        .arg("-dns01")
        .arg(format!("127.0.0.1:{}", ports.dns))
        .arg("-management")
        .arg(format!("127.0.0.1:{}", ports.challtestsrv_management))
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""]);
    let mut guard = ProcessGuard::spawn(
        "pebble-challtestsrv",
        command,
        root.join("challtestsrv.log"),
    );
    let dns = loopback(ports.dns);
    let management = loopback(ports.challtestsrv_management);
    guard.wait_until("DNS and management ports", STARTUP_TIMEOUT, || {
        accepts(dns) && accepts(management)
    });
    guard
}

fn start_pebble(root: &Path, ports: &Ports, opts: &LabOptions, ca_der: &[u8]) -> ProcessGuard {
    let mut settings = json!({
        "listenAddress": format!("127.0.0.1:{}", ports.pebble),
        "managementListenAddress": format!("127.0.0.1:{}", ports.management),
        "certificate": root.join("pebble-listener.pem"),
        "privateKey": root.join("pebble-listener.key"),
        "httpPort": ports.http_validation,
        "tlsPort": ports.tls_alpn,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    });
    if let Some(secs) = opts.validity_secs {
        settings["certificateValidityPeriod"] = json!(secs);
    }
    if !opts.eab_keys.is_empty() {
        settings["externalAccountBindingRequired"] = json!(true);
        let keys: serde_json::Map<String, serde_json::Value> = opts
            .eab_keys
            .iter()
            .map(|(kid, key)| (kid.clone(), json!(key)))
            .collect();
        settings["externalAccountMACKeys"] = json!(keys);
    }
    let config_path = root.join("pebble.json");
    let config = serde_json::to_string_pretty(&json!({ "pebble": settings })).expect("json");
    write(&config_path, config);

    let mut command = Command::new("pebble");
    command
        .arg("-config")
        .arg(&config_path)
        .arg("-dnsserver")
        .arg(format!("127.0.0.1:{}", ports.dns));
    // Pebble reads PEBBLE_* from the environment: start from none, then set the lab's
    // (ProcessGuard::spawn clears the host's proxy and CA variables).
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PEBBLE_") {
            command.env_remove(key);
        }
    }
    command.env("PEBBLE_VA_NOSLEEP", "1");
    command.env(
        "PEBBLE_AUTHZREUSE",
        opts.authz_reuse_percent.unwrap_or(0).to_string(),
    );
    if let Some(percent) = opts.nonce_reject_percent {
        command.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
    }
    for (key, value) in &opts.pebble_env {
        command.env(key, value);
    }

    let mut guard = ProcessGuard::spawn("pebble", command, root.join("pebble.log"));
    let acme = loopback(ports.pebble);
    let management = loopback(ports.management);
    let trust = tls::config_trusting(&[ca_der.to_vec()]);
    guard.wait_until(
        "ACME and management ports, GET /dir",
        STARTUP_TIMEOUT,
        || {
            accepts(acme)
                && accepts(management)
                && tls::https_get(acme, "127.0.0.1", "/dir", trust.clone())
                    .is_ok_and(|reply| reply.status == 200 && reply.body.contains("newOrder"))
        },
    );
    guard
}

/// The `FreshAuthz` front on the lab's ACME port, unless Pebble listens there itself.
fn start_fresh_authz(
    root: &Path,
    ports: &Ports,
    ca_der: &[u8],
    rejections: &Arc<AtomicUsize>,
) -> Option<FreshAuthz> {
    if ports.pebble == ports.acme {
        return None;
    }
    let read = |file: &str| {
        let path = root.join(file);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    };
    let server = ari_shim::server_config_from_pem(
        &read("pebble-listener.pem"),
        &read("pebble-listener.key"),
    );
    Some(FreshAuthz::start(
        loopback(ports.acme),
        loopback(ports.pebble),
        server,
        tls::config_trusting(&[ca_der.to_vec()]),
        rejections.clone(),
    ))
}

fn start_haproxy(root: &Path, ports: &Ports, tls_alpn_front: bool) -> ProcessGuard {
    let https = ports.https.expect("HTTPS port for HAProxy");
    let placeholder = root.join("placeholder.pem");
    write(
        &placeholder,
        pki::self_signed(&["placeholder.invalid"]).haproxy_pem(),
    );
    let admin_socket = root.join("haproxy.sock");
    let ssl_dir = root.join("ssl");
    let responder = format!("127.0.0.1:{}", ports.responder);
    let alpn_responder = format!("127.0.0.1:{}", ports.alpn_responder);
    let config = haproxy::config(&haproxy::Layout {
        tls_front: tls_alpn_front.then_some((ports.tls_alpn, alpn_responder.as_str())),
        admin_socket: &admin_socket,
        http_port: ports.http_validation,
        https_port: https,
        responder_addr: &responder,
        placeholder: &placeholder,
        ssl_dir: &ssl_dir,
    });
    let config_path = root.join("haproxy.cfg");
    write(&config_path, config);

    // -W: master-worker, so SIGUSR2 to the master reloads gracefully; -db: foreground.
    let mut command = Command::new("haproxy");
    command.args(["-W", "-db", "-f"]).arg(&config_path);
    let log = root.join("haproxy.log");
    let mut guard = ProcessGuard::spawn("haproxy", command, log.clone());
    let script = haproxy::reload_script(guard.pid(), &log, &root.join("haproxy-reload.lock"));
    write(&root.join("haproxy-reload.sh"), script);
    let http = loopback(ports.http_validation);
    let https = loopback(https);
    guard.wait_until(
        "admin socket, HTTP and HTTPS ports",
        STARTUP_TIMEOUT,
        || {
            log_contains(&log, "Loading success.")
                && haproxy::worker_pid(&admin_socket).is_ok()
                && accepts(http)
                && accepts(https)
                && (!tls_alpn_front || accepts(loopback(ports.tls_alpn)))
        },
    );
    guard
}

/// Spawns `command` with piped output, waits at most RUN_TIMEOUT (then kills it), and
/// echoes the command line and both streams to stderr.
pub fn run_command(mut command: Command) -> Output {
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("$ {line}");
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {line}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for certctl") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{line} still running after {RUN_TIMEOUT:?}; killed\n--- stdout\n{}\n--- stderr\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    eprintln!(
        "--- stdout\n{}--- stderr\n{}--- {}",
        output.stdout, output.stderr, output.status
    );
    assert_no_key_material(&line, &output);
    output
}

/// No run of the test suite may show key material: not in a log line, an error or a
/// result; only `concat --stdout`, whose job is to print a bundle, has it on stdout.
pub fn assert_no_key_material(line: &str, output: &Output) {
    const MARK: &str = "PRIVATE KEY";
    assert!(
        !output.stderr.contains(MARK),
        "{line}: key material on stderr:\n{}",
        output.stderr
    );
    let prints_bundle = line.contains(" concat ") && line.contains("--stdout");
    assert!(
        prints_bundle || !output.stdout.contains(MARK),
        "{line}: key material on stdout:\n{}",
        output.stdout
    );
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
