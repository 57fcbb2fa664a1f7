//! The command line, as clap definitions only: doc comments are the help text.
//! This file feeds `--help`, completions/ and man/; it holds no behaviour and no defaults
//! that settings.rs does not also document (defaults are resolved there, after env and config).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Gets, renews, revokes and installs TLS certificates for HAProxy and other proxies.
///
/// certctl speaks ACME (RFC 8555) to Let's Encrypt and other CAs, answers HTTP-01
/// challenges on 127.0.0.1:2031 while an order runs, and writes leaf + chain + key bundles
/// into the proxy's ssl directory (/etc/haproxy/ssl by default).
///
/// Exit codes: 0 success, 1 a failure (CA, network, disk, hook), 2 bad input.
#[derive(Debug, Parser)]
#[command(
    name = "certctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after any subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]
    #[arg(long, global = true, env = "CERTCTL_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Where bundles (leaf, intermediates, key) are written for the proxy [default: /etc/haproxy/ssl]
    #[arg(long, global = true, env = "CERTCTL_SSL_DIR", value_name = "DIR")]
    pub ssl_dir: Option<PathBuf>,

    /// ACME directory URL, or one of: letsencrypt, letsencrypt-staging, zerossl, google, buypass
    /// [default: letsencrypt]
    #[arg(long, global = true, env = "CERTCTL_SERVER", value_name = "URL|NAME")]
    pub server: Option<String>,

    /// PEM file of extra CA certificates to trust for the ACME server's HTTPS (private ACME CAs, test CAs)
    #[arg(long, global = true, env = "CERTCTL_CA_BUNDLE", value_name = "PEM")]
    pub ca_bundle: Option<PathBuf>,

    /// Configuration file [default: /etc/certctl/config.toml when it exists]
    #[arg(long, global = true, env = "CERTCTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Say more on stderr (repeat for more detail)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Print errors only
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get a certificate for one or more names and install its bundle.
    ///
    /// All names go into one certificate (SANs); the first one names it unless --name is
    /// given. The settings used are stored, so `certctl renew` needs no flags later.
    ///
    /// Example: certctl request mon-app.fr www.mon-app.fr --email ops@mon-app.fr --agree-tos
    ///          --post-hook "systemctl reload haproxy"
    Request(RequestArgs),
}

/// Hook commands, run with /bin/sh -c; values reach them as CERTCTL_* environment variables.
#[derive(Debug, Args, Clone, Default)]
pub struct HookArgs {
    /// Command run once before the first order
    #[arg(long, value_name = "CMD")]
    pub pre_hook: Option<String>,

    /// Command run once per issued certificate
    #[arg(long, value_name = "CMD")]
    pub deploy_hook: Option<String>,

    /// Command run once at the end when anything was issued, e.g. "systemctl reload haproxy"
    #[arg(long, value_name = "CMD")]
    pub post_hook: Option<String>,

    /// Seconds a hook may run before it is killed [default: 300]
    #[arg(long, value_name = "SECS")]
    pub hook_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Names the certificate covers (lowercased; IDNs become punycode)
    #[arg(value_name = "DOMAIN", required = true)]
    pub domains: Vec<String>,

    /// Name of the certificate and of its bundle file (<ssl-dir>/<name>.pem) [default: the first domain]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Contact address for the ACME account (used when the account is created)
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// Agree to the CA's terms of service without asking (needed when no terminal is attached)
    #[arg(long)]
    pub agree_tos: bool,

    /// Key type of the certificate [default: ec256]
    #[arg(long, value_enum, value_name = "TYPE")]
    pub key_type: Option<KeyType>,

    /// How HTTP-01 challenges are answered [default: standalone]
    #[arg(long, value_enum, value_name = "HOW")]
    pub challenge: Option<ChallengeKind>,

    /// Address the standalone responder listens on while an order runs [default: 127.0.0.1:2031]
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,

    /// Web server document root for --challenge webroot
    #[arg(long, value_name = "DIR")]
    pub webroot: Option<PathBuf>,

    #[command(flatten)]
    pub hooks: HookArgs,

    /// Request a new certificate even when the current one is valid and not due
    #[arg(long)]
    pub force: bool,

    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Ec256,
    Ec384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    /// certctl's own responder on --http-addr, only while an order runs
    Standalone,
    /// token files under --webroot/.well-known/acme-challenge/
    Webroot,
    /// the proxy answers from the account thumbprint (see `certctl account thumbprint`)
    Stateless,
}
