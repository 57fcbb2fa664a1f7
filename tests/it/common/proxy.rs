//! Extra HAProxy instances for tests that need more than the lab's own: a second proxy
//! loading the same ssl directory, a stateless HTTP-01 frontend, a TCP (seed 004) frontend.
//! Each runs master-worker in the foreground inside a guard, with its own admin socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{ProcessGuard, free_port};
use super::{Lab, STARTUP_TIMEOUT, haproxy, pki};

pub struct Proxy {
    pub admin_socket: PathBuf,
    /// An HTTPS frontend loading `crt <placeholder> crt <lab ssl dir>/`.
    pub https: SocketAddr,
    guard: Option<ProcessGuard>,
}

impl Proxy {
    /// Starts HAProxy `name` in the lab's directory with the HTTPS frontend, `global_extra`
    /// lines in `global` and `body` (more frontends/backends) appended.
    pub fn start(lab: &Lab, name: &str, global_extra: &str, body: &str) -> Proxy {
        Proxy::start_serving(lab, name, &lab.ssl_dir(), global_extra, body)
    }

    /// As `start`, loading the bundles of `ssl_dir` (a cluster node's own).
    pub fn start_serving(
        lab: &Lab,
        name: &str,
        ssl_dir: &Path,
        global_extra: &str,
        body: &str,
    ) -> Proxy {
        let dir = lab.root().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let placeholder = dir.join("placeholder.pem");
        std::fs::write(
            &placeholder,
            pki::self_signed(&["placeholder.invalid"]).haproxy_pem(),
        )
        .unwrap();
        let admin_socket = dir.join("admin.sock");
        let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "global\n    stats socket {sock} level admin\n    nbthread 1\n    hard-stop-after 5s\n{global_extra}\n\
             defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
             frontend https\n    bind {https} ssl crt {ph} crt {ssl}/\n    \
             http-request return status 200 content-type text/plain string \"{name}\\n\"\n\n{body}\n",
            sock = admin_socket.display(),
            ph = placeholder.display(),
            ssl = ssl_dir.display(),
        );
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new("haproxy");
        command.arg("-W").arg("-db").arg("-f").arg(&config_path);
        let mut guard = ProcessGuard::spawn(name, command, dir.join("haproxy.log"));
        let socket = admin_socket.clone();
        guard.wait_until("admin socket answers", STARTUP_TIMEOUT, || {
            haproxy::worker_pid(&socket).is_ok()
        });
        Proxy {
            admin_socket,
            https,
            guard: Some(guard),
        }
    }

    pub fn worker_pid(&self) -> u32 {
        haproxy::worker_pid(&self.admin_socket).unwrap()
    }

    pub fn admin(&self, command: &str) -> String {
        haproxy::admin_command(&self.admin_socket, command).unwrap()
    }

    pub fn stop(&mut self) {
        drop(self.guard.take());
    }

    pub fn dir(&self) -> &Path {
        self.admin_socket.parent().unwrap()
    }
}
