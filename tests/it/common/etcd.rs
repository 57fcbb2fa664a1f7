//! A three-member etcd cluster (Debian's etcd 3.4) on free loopback ports, each member in
//! a guard, with members stopped and started again by the tests; and cluster nodes: a
//! certctl configuration (state and ssl dirs, config file naming the shared store) with
//! its own HAProxy answering HTTP-01 statelessly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{ProcessGuard, free_port};
use super::proxy::Proxy;
use super::{Lab, Output, STARTUP_TIMEOUT, hermetic, run_command};

struct Member {
    name: String,
    client: u16,
    peer: u16,
    data: PathBuf,
    guard: Option<ProcessGuard>,
}

pub struct EtcdCluster {
    members: Vec<Member>,
    root: PathBuf,
    initial: String,
}

impl EtcdCluster {
    /// Three members under `root`/etcd, started and healthy.
    pub fn start(root: &Path) -> EtcdCluster {
        let root = root.join("etcd");
        std::fs::create_dir_all(&root).unwrap();
        let members: Vec<Member> = (1..=3)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                data: root.join(format!("m{i}.data")),
                guard: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            root,
            initial,
        };
        for i in 0..3 {
            cluster.spawn(i);
        }
        cluster.wait_healthy(&[0, 1, 2]);
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let mut command = Command::new("etcd");
        command
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-token", "certctl-it"])
            .args(["--initial-cluster-state", "new"]);
        let log = self.root.join(format!("{}.log", m.name));
        let guard = ProcessGuard::spawn(&m.name, command, log);
        self.members[i].guard = Some(guard);
    }

    /// Polls `etcdctl endpoint health` on `members` until each answers (bounded).
    fn wait_healthy(&mut self, members: &[usize]) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        for &i in members {
            let endpoint = self.endpoint(i);
            loop {
                let ok = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .args([
                        "--endpoints",
                        &endpoint,
                        "--command-timeout=2s",
                        "endpoint",
                        "health",
                    ])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ok {
                    break;
                }
                if let Some(g) = self.members[i].guard.as_mut() {
                    g.assert_running();
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {i} never became healthy"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client)
    }

    /// `etcd://m1,m2,m3/prefix`.
    pub fn store_url(&self, prefix: &str) -> String {
        let all: Vec<String> = (0..3).map(|i| self.endpoint(i)).collect();
        format!("etcd://{}/{prefix}", all.join(","))
    }

    pub fn stop(&mut self, i: usize) {
        drop(self.members[i].guard.take());
    }

    /// Starts a stopped member again with its data; waits until the cluster has a quorum.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }

    pub fn wait_members(&mut self, members: &[usize]) {
        self.wait_healthy(members);
    }

    /// Every member's data directory.
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.data.clone()).collect()
    }

    /// `etcdctl get --prefix PREFIX -w json` through a live member, as text (the whole store).
    pub fn dump(&self, prefix: &str) -> String {
        let endpoints: Vec<String> = (0..3).map(|i| self.endpoint(i)).collect();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &endpoints.join(","),
                "get",
                "--prefix",
                prefix,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// One node of the cluster: its own state dir, ssl dir, config file and HAProxy.
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub proxy: Proxy,
    /// The CA's directory URL this node is given (None: the lab's Pebble).
    pub server: Option<String>,
}

/// Writes a 0600 store key into `path` (raw 32 bytes of `fill`, base64).
pub fn store_key(path: &Path, fill: u8) {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode([fill; 32]);
    std::fs::write(path, format!("{key}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Node {
    /// Node `name` in the lab: config naming `store` and `key`, a lease of `ttl` seconds,
    /// its HAProxy (admin socket in the config) answering HTTP-01 from `thumbprint`,
    /// on `http` when given (where Pebble validates) or a free port.
    pub fn start(
        lab: &Lab,
        name: &str,
        store: &str,
        key: &Path,
        thumbprint: &str,
        http: Option<&str>,
        extra: &str,
    ) -> Node {
        let dir = lab.root().join(format!("node-{name}"));
        for sub in ["state", "ssl"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let http = http.map_or_else(|| format!("127.0.0.1:{}", free_port()), str::to_owned);
        let proxy = Proxy::start_serving(
            lab,
            &format!("haproxy-{name}"),
            &dir.join("ssl"),
            &format!("    setenv ACCOUNT_THUMBPRINT '{thumbprint}'"),
            &format!(
                "frontend http\n    bind {http}\n    http-request return status 200 content-type text/plain lf-string \
                 \"%[path,field(-1,/)].${{ACCOUNT_THUMBPRINT}}\\n\" if {{ path_beg '/.well-known/acme-challenge/' }}\n"
            ),
        );
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "store = \"{store}\"\nstore_key_file = \"{}\"\nnode_name = \"{name}\"\n\
                 etcd_lease_ttl = 3\nhaproxy_sockets = [\"{}\"]\n{extra}",
                key.display(),
                proxy.admin_socket.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        Node {
            name: name.to_owned(),
            dir,
            config,
            proxy,
            server: None,
        }
    }

    pub fn ssl_dir(&self) -> PathBuf {
        self.dir.join("ssl")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// `certctl` as this node: its config, dirs, the lab's CA and trust.
    pub fn certctl(&self, lab: &Lab) -> Command {
        self.certctl_config(lab, &self.config)
    }

    /// As `certctl`, with another config file.
    pub fn certctl_config(&self, lab: &Lab, config: &Path) -> Command {
        let mut command = hermetic::certctl_in(&self.dir);
        command
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--ssl-dir")
            .arg(self.ssl_dir())
            .arg("--server")
            .arg(self.server.clone().unwrap_or_else(|| lab.directory_url()))
            .arg("--ca-bundle")
            .arg(lab.ca_bundle());
        command
    }

    pub fn run(&self, lab: &Lab, args: &[&str]) -> Output {
        let mut command = self.certctl(lab);
        command.args(args);
        run_command(command)
    }
}
