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

    /// Renew the certificates that are due, with the settings stored when they were requested.
    ///
    /// A certificate is due inside the CA's ARI window (RFC 9773) when the CA offers one,
    /// otherwise when less than a third of its lifetime is left (half, under ten days).
    /// Silent when nothing is due; one failure does not stop the others (exit 1 at the end).
    ///
    /// Example (cron): 17 */12 * * * root certctl renew -q --post-hook "systemctl reload haproxy"
    Renew(RenewArgs),

    /// Revoke a certificate at its CA, stop managing it and remove its bundle.
    ///
    /// Asks for confirmation on a terminal; --yes skips the question. The certificate's files
    /// are moved to <state-dir>/archive/, not destroyed.
    ///
    /// Example: certctl revoke mon-app.fr --reason superseded
    Revoke(RevokeArgs),

    /// Stop managing a certificate and remove its bundle, without revoking it.
    ///
    /// Same confirmation rules and archive as revoke.
    ///
    /// Example: certctl delete old.mon-app.fr --yes
    Delete(DeleteArgs),

    /// Rebuild bundles in the ssl directory from the stored files, only where they differ.
    ///
    /// Example: certctl concat && systemctl reload haproxy
    Concat(ConcatArgs),

    /// The ACME account: its key's thumbprint, for stateless HTTP-01 in HAProxy.
    #[command(subcommand)]
    Account(AccountCommand),

    /// List the managed certificates: names, key type, expiry, next renewal, CA, bundle.
    ///
    /// Example: certctl list --json
    List(ListArgs),
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Print the account key's thumbprint and the HAProxy lines that answer every HTTP-01
    /// challenge from it, so no responder is needed (`request --challenge stateless`).
    ///
    /// Creates the account first when there is none for --server (needs --agree-tos when
    /// no terminal is attached). With -q only the thumbprint is printed.
    ///
    /// Example: certctl account thumbprint --agree-tos --email ops@mon-app.fr
    Thumbprint(ThumbprintArgs),
}

#[derive(Debug, Args)]
pub struct ThumbprintArgs {
    /// Contact address, used when the account is created
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// Agree to the CA's terms of service when the account is created
    #[arg(long)]
    pub agree_tos: bool,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Certificates to consider (default: all)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Renew even when not due
    #[arg(long)]
    pub force: bool,

    /// How many orders run at once [default: 4]
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Run the whole flow against the CA (Let's Encrypt staging instead of production) but
    /// write nothing and run no hook
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub hooks: HookArgs,

    /// HAProxy admin socket (PATH or IP:PORT, `level admin`) to hot-swap the certificate
    /// into with no reload; repeat for several proxies; in addition to the stored ones
    #[arg(long = "haproxy-socket", value_name = "SOCKET")]
    pub haproxy_sockets: Vec<String>,

    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The certificate to revoke (as `certctl list` names it)
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Reason given to the CA
    #[arg(long, value_enum, default_value = "unspecified")]
    pub reason: RevocationReason,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Leave the bundle in the ssl directory (for a proxy that cannot start without it)
    #[arg(long)]
    pub keep_bundle: bool,

    /// Command run after the certificate was revoked, e.g. "systemctl reload haproxy"
    #[arg(long, value_name = "CMD")]
    pub post_hook: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RevocationReason {
    Unspecified,
    Keycompromise,
    Superseded,
    Cessationofoperation,
    Affiliationchanged,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The certificate to stop managing
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ConcatArgs {
    /// Certificates whose bundles to rebuild (default: all)
    #[arg(value_name = "NAME", conflicts_with = "stdout")]
    pub names: Vec<String>,

    /// Print the bundle of NAME on stdout instead of writing files
    #[arg(long, value_name = "NAME")]
    pub stdout: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array instead of a table
    #[arg(long)]
    pub json: bool,
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

    /// HAProxy admin socket (PATH or IP:PORT, `level admin`) to hot-swap the certificate
    /// into with no reload; repeat for several proxies; stored for renew
    #[arg(long = "haproxy-socket", value_name = "SOCKET")]
    pub haproxy_sockets: Vec<String>,

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
