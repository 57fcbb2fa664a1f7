//! certbot for the import tests: the real one (Debian's package) issuing from the lab's
//! Pebble, and hand-made lineages laid out as certbot lays them out (renewal/NAME.conf,
//! archive/NAME/*1.pem, live/NAME/*.pem links) for cases a real certbot cannot produce here.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Lab, Output, run_command};

/// certbot's three directories in one folder: config (the one certctl imports), work, logs.
pub struct CertbotDirs {
    pub config: PathBuf,
    pub work: PathBuf,
    pub logs: PathBuf,
}

impl CertbotDirs {
    pub fn new(root: &Path) -> CertbotDirs {
        CertbotDirs {
            config: root.join("letsencrypt"),
            work: root.join("certbot-work"),
            logs: root.join("certbot-logs"),
        }
    }
}

/// `certbot certonly --standalone` against the lab's Pebble, answering HTTP-01 on the lab's
/// responder address (where HAProxy forwards challenges), trusting Pebble through
/// REQUESTS_CA_BUNDLE and nothing else of the host's environment; `args` adds -d names,
/// hooks, key type...
pub fn certonly(lab: &Lab, dirs: &CertbotDirs, args: &[&str]) -> Output {
    let http_addr = lab.http_addr();
    let (address, port) = http_addr.rsplit_once(':').expect("host:port");
    let standalone = [
        "--standalone",
        "--http-01-address",
        address,
        "--http-01-port",
        port,
    ];
    certbot(lab, dirs, &standalone, args)
}

/// `certbot certonly --dns-rfc2136` with Debian's plugin against the lab's Pebble (which
/// validates against the same DNS server), `credentials` its ini file (0600).
pub fn certonly_rfc2136(
    lab: &Lab,
    dirs: &CertbotDirs,
    credentials: &Path,
    args: &[&str],
) -> Output {
    let credentials = credentials.to_str().expect("a UTF-8 path");
    let plugin = [
        "--dns-rfc2136",
        "--dns-rfc2136-credentials",
        credentials,
        "--dns-rfc2136-propagation-seconds",
        "1",
    ];
    certbot(lab, dirs, &plugin, args)
}

fn certbot(lab: &Lab, dirs: &CertbotDirs, authenticator: &[&str], args: &[&str]) -> Output {
    let installed = Command::new("certbot")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed,
        "certbot is not installed: scripts/test.sh installs it, or apt-get install certbot"
    );
    let mut command = Command::new("certbot");
    // none of the host's CA bundles or proxies (`hermetic::scrub`); Pebble's CA only
    super::hermetic::scrub(&mut command)
        .env("REQUESTS_CA_BUNDLE", lab.ca_bundle())
        .args(["certonly", "--non-interactive", "--agree-tos"])
        .args(authenticator)
        .args(["-m", "ops@name.test", "--no-eff-email"])
        .arg("--server")
        .arg(lab.directory_url())
        .arg("--config-dir")
        .arg(&dirs.config)
        .arg("--work-dir")
        .arg(&dirs.work)
        .arg("--logs-dir")
        .arg(&dirs.logs)
        .args(args)
        .stdin(Stdio::null());
    // certbot 2.1 sends a step again after one badNonce but gives up on a second in a row
    // ("AttributeError: can't set attribute"); at Pebble's 5 % rejection that happens now
    // and then. What is tested is certctl taking certbot's files over, so a run that failed
    // that way is run again, as scripts/bench does.
    let log = dirs.logs.join("letsencrypt.log");
    let mut tries = 1;
    loop {
        let out = run_command(clone(&command));
        let bad_nonce =
            !out.success() && fs::read_to_string(&log).is_ok_and(|l| l.contains("error:badNonce"));
        if !bad_nonce || tries == 5 {
            return out;
        }
        eprintln!("certbot gave up after two badNonce in a row; running it again");
        tries += 1;
    }
}

/// The same program, arguments, environment and standard input (`Command` is not `Clone`).
fn clone(command: &Command) -> Command {
    let mut copy = Command::new(command.get_program());
    copy.args(command.get_args()).stdin(Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => copy.env(key, value),
            None => copy.env_remove(key),
        };
    }
    copy
}

/// The CRL distribution point of every `FakeLineage` leaf.
pub const FAKE_CRL: &str = "http://crl.fake-certbot.test/1.crl";

/// A hand-made lineage: a leaf for `names` signed by a throwaway CA (the chain), its key,
/// and renewal/NAME.conf with `params` under [renewalparams] (plus `extra` verbatim).
pub struct FakeLineage<'a> {
    pub name: &'a str,
    pub names: &'a [&'a str],
    pub params: &'a [(&'a str, &'a str)],
    pub extra: &'a str,
    /// Write a key that does not belong to the certificate.
    pub wrong_key: bool,
}

impl FakeLineage<'_> {
    pub fn write(&self, config_dir: &Path) -> (String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fake certbot CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = self.names.iter().map(|n| n.to_string()).collect();
        // a CRL distribution point, as every public CA's certificates now carry
        let mut leaf_params = rcgen::CertificateParams::new(names).unwrap();
        leaf_params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![FAKE_CRL.to_owned()],
        }];
        let leaf = leaf_params.signed_by(&key, &ca).unwrap();
        let key_pem = if self.wrong_key {
            rcgen::KeyPair::generate().unwrap().serialize_pem()
        } else {
            key.serialize_pem()
        };

        let archive = config_dir.join("archive").join(self.name);
        let live = config_dir.join("live").join(self.name);
        let renewal = config_dir.join("renewal");
        for dir in [&archive, &live, &renewal] {
            fs::create_dir_all(dir).unwrap();
        }
        let files = [
            ("cert", leaf.pem()),
            ("chain", ca.pem()),
            ("fullchain", format!("{}{}", leaf.pem(), ca.pem())),
            ("privkey", key_pem.clone()),
        ];
        let mut conf = format!("version = 2.1.0\narchive_dir = {}\n", archive.display());
        for (file, content) in &files {
            fs::write(archive.join(format!("{file}1.pem")), content).unwrap();
            symlink(
                format!("../../archive/{}/{file}1.pem", self.name),
                live.join(format!("{file}.pem")),
            )
            .unwrap();
            conf.push_str(&format!(
                "{file} = {}\n",
                live.join(format!("{file}.pem")).display()
            ));
        }
        conf.push_str("\n# Options used in the renewal process\n[renewalparams]\n");
        for (key, value) in self.params {
            conf.push_str(&format!("{key} = {value}\n"));
        }
        conf.push_str(self.extra);
        fs::write(renewal.join(format!("{}.conf", self.name)), conf).unwrap();
        (leaf.pem(), key_pem)
    }
}
