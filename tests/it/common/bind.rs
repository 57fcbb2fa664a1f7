//! BIND 9 for the DNS-01 tests: `named -g` on a free loopback port with zones written by the
//! test, dynamic updates allowed for a key made by `tsig-keygen`, no rndc port, recursion
//! for loopback clients over a local root zone (nothing is ever asked off this machine).
//! Also the misbehaving helpers that stand for a broken world: a counting relay in front of
//! BIND (which UPDATE messages went to which zone) and a server that never answers.
//! Every process and thread stops when its guard is dropped.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::STARTUP_TIMEOUT;
use super::process::{ProcessGuard, accepts, free_port};

/// The name of the key the zones accept updates with.
pub const KEY_NAME: &str = "certctl-key";

/// One zone: its name, extra records (zone-file lines), and whether the key may update it.
pub struct Zone<'a> {
    pub name: &'a str,
    pub records: &'a str,
    pub updatable: bool,
}

impl<'a> Zone<'a> {
    pub fn new(name: &'a str) -> Self {
        Zone {
            name,
            records: "",
            updatable: true,
        }
    }
}

/// A running `named`.
pub struct Bind {
    process: Option<ProcessGuard>,
    port: u16,
    dir: Option<TempDir>,
}

impl Bind {
    /// Starts BIND serving `zones`: each with SOA, NS ns1 (127.0.0.1), A records for the
    /// apex and every name below it (127.0.0.1, so HTTP-01 names resolve too), and its
    /// extra records.
    pub fn start(zones: &[Zone]) -> Bind {
        for tool in ["/usr/sbin/named", "/usr/sbin/tsig-keygen", "/usr/bin/dig"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test.sh installs bind9, or apt-get install bind9 bind9-utils bind9-dnsutils"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("certctl-bind-")
            .tempdir()
            .expect("creating BIND's temp dir");
        let root = dir.path().to_path_buf();
        let port = free_port();
        let key = Command::new("/usr/sbin/tsig-keygen")
            .args(["-a", "hmac-sha256", KEY_NAME])
            .output()
            .expect("running tsig-keygen");
        assert!(key.status.success(), "tsig-keygen failed: {key:?}");
        fs::write(root.join("key.conf"), &key.stdout).unwrap();
        let mut conf = format!(
            "include \"{root}/key.conf\";\n\
             options {{ directory \"{root}\"; listen-on port {port} {{ 127.0.0.1; }};\n\
             listen-on-v6 {{ none; }}; recursion yes; allow-recursion {{ 127.0.0.1; }};\n\
             pid-file none; dnssec-validation no; notify no;\n\
             session-keyfile \"{root}/session.key\"; managed-keys-directory \"{root}\"; }};\n\
             controls {{ }};\nzone \".\" {{ type primary; file \"{root}/root.zone\"; }};\n",
            root = root.display()
        );
        // recursive, as a CA's resolver is, so Pebble's lookups follow CNAMEs from one zone
        // into another; authoritative for the root, so no lookup ever leaves this machine
        fs::write(
            root.join("root.zone"),
            "$TTL 60\n@ IN SOA ns1.root. hostmaster.root. 1 60 60 600 60\n@ IN NS ns1.root.\n\
             ns1.root. IN A 127.0.0.1\n",
        )
        .unwrap();
        for zone in zones {
            let file = root.join(format!("{}.zone", zone.name));
            fs::write(
                &file,
                format!(
                    "$TTL 60\n@ IN SOA ns1.{0}. hostmaster.{0}. 1 60 60 600 60\n\
                     @ IN NS ns1.{0}.\nns1 IN A 127.0.0.1\n@ IN A 127.0.0.1\n* IN A 127.0.0.1\n{1}\n",
                    zone.name, zone.records
                ),
            )
            .unwrap();
            let policy = if zone.updatable {
                format!(
                    "update-policy {{ grant {KEY_NAME} subdomain {}. TXT; }};",
                    zone.name
                )
            } else {
                String::new()
            };
            conf.push_str(&format!(
                "zone \"{}\" {{ type primary; file \"{}\"; {policy} }};\n",
                zone.name,
                file.display()
            ));
        }
        let conf_path = root.join("named.conf");
        fs::write(&conf_path, conf).unwrap();
        let mut command = Command::new("/usr/sbin/named");
        command.args(["-g", "-u", "root", "-c"]).arg(&conf_path);
        let mut process = ProcessGuard::spawn("named", command, root.join("named.log"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = root.join("named.log");
        process.wait_until("TCP port and `running`", STARTUP_TIMEOUT, || {
            accepts(addr) && fs::read_to_string(&log).is_ok_and(|l| l.contains("running"))
        });
        Bind {
            process: Some(process),
            port,
            dir: Some(dir),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// "127.0.0.1:PORT", for --dns-server and --dns-resolver.
    pub fn addr_arg(&self) -> String {
        self.addr().to_string()
    }

    pub fn root(&self) -> &Path {
        self.dir.as_ref().expect("BIND's dir").path()
    }

    /// The key file `tsig-keygen` wrote (BIND's format).
    pub fn key_file(&self) -> PathBuf {
        self.root().join("key.conf")
    }

    /// The secret of the key, as base64 text.
    pub fn key_secret(&self) -> String {
        let text = fs::read_to_string(self.key_file()).unwrap();
        let start = text.find("secret \"").expect("a secret") + 8;
        text[start..].split('"').next().unwrap().to_owned()
    }

    /// The TXT values BIND serves at `name`, sorted.
    pub fn txt(&self, name: &str) -> Vec<String> {
        let out = Command::new("/usr/bin/dig")
            .args(["+short", "+norecurse", "+time=5", "+tries=3", "-p"])
            .arg(self.port.to_string())
            .arg("@127.0.0.1")
            .args([name, "TXT"])
            .stdin(Stdio::null())
            .output()
            .expect("running dig");
        assert!(out.status.success(), "dig failed: {out:?}");
        let mut values: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().trim_matches('"').to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        values.sort();
        values
    }

    /// Polls until `ready(txt(name))`, at most `STARTUP_TIMEOUT`; panics with what was seen.
    pub fn wait_for_txt(
        &self,
        name: &str,
        mut ready: impl FnMut(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let values = self.txt(name);
            if ready(&values) {
                return values;
            }
            assert!(
                Instant::now() < deadline,
                "{name} TXT never became as expected: {values:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Adds a TXT record with `nsupdate` and the key (as another program would).
    pub fn nsupdate_add(&self, zone: &str, name: &str, value: &str) {
        let script = format!(
            "server 127.0.0.1 {}\nzone {zone}\nupdate add {name} 60 TXT \"{value}\"\nsend\n",
            self.port
        );
        let mut child = Command::new("/usr/bin/nsupdate")
            .arg("-k")
            .arg(self.key_file())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("running nsupdate");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nsupdate failed");
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        drop(self.process.take());
        if let Some(dir) = self.dir.take() {
            if thread::panicking() || std::env::var_os("CERTCTL_LAB_KEEP").is_some() {
                eprintln!("BIND: keeping {}", dir.keep().display());
            }
        }
    }
}

/// One UPDATE message seen by the relay: its zone and how many records it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub zone: String,
    pub records: u16,
}

/// A TCP relay in front of BIND that writes down every UPDATE message (DNS over TCP:
/// 2-byte length, then the message), to count them per zone.
pub struct UpdateCounter {
    port: u16,
    seen: Arc<Mutex<Vec<Update>>>,
    stop: Arc<AtomicBool>,
}

impl UpdateCounter {
    pub fn start(upstream: SocketAddr) -> UpdateCounter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the relay");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let seen = seen2.clone();
                        thread::spawn(move || relay(client, upstream, &seen));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        UpdateCounter { port, seen, stop }
    }

    pub fn addr_arg(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The UPDATE messages so far, in order.
    pub fn updates(&self) -> Vec<Update> {
        self.seen.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

impl Drop for UpdateCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn relay(mut client: TcpStream, upstream: SocketAddr, seen: &Mutex<Vec<Update>>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = server.set_read_timeout(Some(Duration::from_secs(60)));
    loop {
        let Some(message) = read_framed(&mut client) else {
            return;
        };
        if let Some(update) = update_of(&message) {
            seen.lock().unwrap().push(update);
        }
        let Some(answer) = forward(&mut server, &message) else {
            return;
        };
        if write_framed(&mut client, &answer).is_err() {
            return;
        }
    }
}

fn forward(server: &mut TcpStream, message: &[u8]) -> Option<Vec<u8>> {
    write_framed(server, message).ok()?;
    read_framed(server)
}

fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut message = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut message).ok()?;
    Some(message)
}

fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed)
}

/// The zone and update count of an UPDATE message (opcode 5); None for anything else.
fn update_of(message: &[u8]) -> Option<Update> {
    if message.len() < 12 || (message[2] >> 3) & 0x0f != 5 {
        return None;
    }
    let records = u16::from_be_bytes([message[8], message[9]]);
    // the zone section's name: uncompressed labels from offset 12
    let mut labels = Vec::new();
    let mut at = 12;
    while let Some(&len) = message.get(at) {
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        let label = message.get(at + 1..at + 1 + len as usize)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len as usize;
    }
    Some(Update {
        zone: labels.join("."),
        records,
    })
}

/// A DNS server that takes queries and connections and never answers (UDP and TCP on one
/// port), for the deadline tests.
pub struct SilentServer {
    port: u16,
    stop: Arc<AtomicBool>,
    _udp: UdpSocket,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let port = free_port();
        let udp = UdpSocket::bind(("127.0.0.1", port)).expect("binding UDP");
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("binding TCP");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => held.push(conn),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentServer {
            port,
            stop,
            _udp: udp,
        }
    }

    pub fn addr_arg(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
