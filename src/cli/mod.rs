//! The command line, as clap definitions only: doc comments are the help text.
//! This file feeds `--help`, completions/ and man/; it holds no behaviour and no defaults
//! that settings.rs does not also document (defaults are resolved there, after env and config).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::types::KeyType;

mod ca_choices;
mod dns;
mod origins;
mod removal;
pub mod store;
mod tls_alpn;

pub use ca_choices::{CaChoiceArgs, EabArgs};
use dns::ChallengeChoiceParser;
pub use dns::{ChallengeChoice, DnsArgs};
pub use origins::Origins;
pub use removal::{DeleteArgs, RevokeArgs};
pub use tls_alpn::TlsAlpnArgs;

/// Gets, renews, revokes and installs TLS certificates for HAProxy and other proxies.
///
/// certctl speaks ACME (RFC 8555) to Let's Encrypt and other CAs, answers HTTP-01
/// challenges on 127.0.0.1:2031 while an order runs, and writes leaf + chain + key bundles
/// into the proxy's ssl directory (/etc/haproxy/ssl by default).
///
/// Exit codes: 0 success, 1 a failure (CA, network, disk, hook), 2 bad input.
///
/// Examples: certctl request mon-app.fr --email ops@mon-app.fr --agree-tos; certctl renew -q;
/// certctl list; certctl import certbot. Each command's --help (or man certctl-COMMAND)
/// says more.
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
    /// The directory where certctl keeps accounts, certificates, settings and its lock
    /// [default: /var/lib/certctl].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "CERTCTL_STATE_DIR",
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,

    /// The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf,
    /// intermediates, key) [default: /etc/haproxy/ssl].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "CERTCTL_SSL_DIR",
        value_name = "DIR"
    )]
    pub ssl_dir: Option<PathBuf>,

    /// The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl,
    /// google, buypass, or `local` for certctl's own CA (no network) [default: letsencrypt].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "CERTCTL_SERVER",
        value_name = "URL|NAME"
    )]
    pub server: Option<String>,

    /// A PEM file of extra CA certificates to trust for the ACME server's HTTPS, for private
    /// or test CAs; the system's roots are always trusted.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "CERTCTL_CA_BUNDLE",
        value_name = "PEM"
    )]
    pub ca_bundle: Option<PathBuf>,

    /// A TOML file of defaults for any option; flags and environment win over it
    /// [default: /etc/certctl/config.toml when it exists].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "CERTCTL_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Say more on stderr; -vv also lists every ACME request.
    ///
    /// Without -v or -q, the environment variable CERTCTL_LOG sets the level: quiet (or
    /// error), info (the default), verbose (or debug), trace (like -vv).
    #[arg(short, long, global = true, help_heading = "Global options", action = ArgAction::Count)]
    pub verbose: u8,

    /// Print errors only, on stderr; results still go to stdout.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,

    /// Which of these values came from the environment (filled in after parsing).
    #[arg(skip)]
    pub origins: Origins,
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
    Request(Box<RequestArgs>),

    /// Change a certificate's stored settings (hooks, sockets, challenge, key type, ssl
    /// dir, output files) without a new order; shows the change.
    ///
    /// Options not given keep their stored values; '' clears one. A new key type or CA
    /// makes it due at the next renew; a new --ssl-dir gets the bundle written there now.
    ///
    /// Example: certctl reconfigure mon-app.fr --post-hook "systemctl reload haproxy" --dry-run
    Reconfigure(Box<ReconfigureArgs>),

    /// Push the stored certificates to their HAProxy sockets now (a failed push stays
    /// pending, shown by list and retried by renew, until one succeeds).
    ///
    /// Example: certctl deploy mon-app.fr
    Deploy {
        /// Certificates to push (default: all)
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },

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
    ///
    /// Example: certctl account thumbprint --agree-tos --email ops@mon-app.fr
    #[command(subcommand)]
    Account(AccountCommand),

    /// Take over certificates issued by another ACME client, without issuing new ones.
    ///
    /// The other client's files are only read, never changed; `certctl renew` renews the
    /// certificates from then on.
    ///
    /// Example: certctl import certbot --dry-run
    #[command(subcommand)]
    Import(ImportCommand),

    /// The local CA (`--server local`): show its certificate, print its CRL, or trust it.
    ///
    /// Example: certctl ca show > /etc/haproxy/certctl-ca.pem
    #[command(subcommand)]
    Ca(CaCommand),

    /// List the managed certificates: names, key type, expiry, next renewal, CA, bundle.
    ///
    /// Example: certctl list --json
    List(ListArgs),

    /// Check the certificates for monitoring (Nagios/Icinga plugin): exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN, one status line with performance data.
    ///
    /// CRITICAL: a certificate expires within --critical days, its stored files are damaged,
    /// its bundle is not the stored certificate (a deploy is pending), or a --probe serves
    /// another certificate. WARNING: expiry within --warning days, or its last renewal failed.
    /// Both thresholds shrink for short-lived certificates (at most a sixth and a twelfth of
    /// the lifetime, so a 6-day certificate warns with a day left).
    ///
    /// Example: certctl check --probe 127.0.0.1:443 --metrics-file /var/lib/prometheus/node-exporter/certctl.prom
    Check(CheckArgs),

    /// A store shared by several nodes: make its key, copy state into it or out of it.
    ///
    /// Example: certctl store copy --from /var/lib/certctl --to etcd://10.0.0.1:2379/certctl
    #[command(subcommand)]
    Store(store::StoreCommand),

    /// Install on this node what the shared store holds, newer than its bundles.
    ///
    /// Example (a service): certctl sync --watch
    Sync(store::SyncArgs),
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

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the local CA's certificate (creating the CA when there is none yet), for
    /// HAProxy's `ca-file` and for clients.
    ///
    /// Example: certctl ca show > /etc/haproxy/certctl-ca.pem
    Show,

    /// Print a fresh CRL of the certificates revoked by the local CA, for HAProxy's
    /// `crl-file`; <state-dir>/ca/crl.pem is kept up to date too.
    ///
    /// Example: certctl ca crl > /etc/haproxy/certctl-crl.pem
    Crl,

    /// Add the local CA to the system's trust store (Debian: /usr/local/share/ca-certificates
    /// and update-ca-certificates), after asking like revoke does.
    ///
    /// Example: certctl ca install --yes
    Install {
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Take over certbot's certificates, without issuing new ones.
    ///
    /// For each renewal/NAME.conf in DIR, certctl takes the certificate, chain and key, the
    /// domains, CA, key type, hooks and challenge settings, and the account when it can use
    /// its key. Each certificate is stored under certbot's name and its bundle written to
    /// the ssl directory; nothing is sent to any CA. certctl says per certificate what it took over
    /// and what it could not, and why. The CA comes from each renewal file (--server is not
    /// used); --ca-bundle is stored with each certificate for its renewals. A certificate
    /// certctl already manages is skipped unless --force. Afterwards stop certbot's own
    /// renewal (its cron job or systemd timer), or both clients renew the same names.
    ///
    /// Example: certctl import certbot --dry-run && certctl import certbot /etc/letsencrypt
    Certbot(ImportCertbotArgs),
}

#[derive(Debug, Args)]
pub struct ImportCertbotArgs {
    /// certbot's configuration directory (its --config-dir).
    #[arg(value_name = "DIR", default_value = "/etc/letsencrypt")]
    pub dir: PathBuf,

    /// Take over only this certificate (as `certbot certificates` names it); repeat for more.
    #[arg(long = "cert-name", value_name = "NAME")]
    pub names: Vec<String>,

    /// Replace a certificate certctl already manages under the same name.
    #[arg(long)]
    pub force: bool,

    /// Say what would be taken over, and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print a JSON array on stdout, one object per certificate.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ThumbprintArgs {
    /// Contact address, used when the account is created
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// Agree to the CA's terms of service when the account is created
    #[arg(long)]
    pub agree_tos: bool,

    #[command(flatten)]
    pub eab: EabArgs,
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

    /// Write the metrics in node_exporter's textfile format to this file (atomically) at the
    /// end of the run, for Prometheus.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
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
pub struct CheckArgs {
    /// Only these certificates (default: every managed one).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// WARNING when a certificate has fewer days left than this.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub warning: u32,

    /// CRITICAL when a certificate has fewer days left than this.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub critical: u32,

    /// Also connect to this TLS endpoint with each certificate's first name as SNI, and
    /// compare what it serves with the stored certificate (CRITICAL when it differs:
    /// renewed but never reloaded). Repeatable, one per proxy.
    #[arg(long = "probe", value_name = "HOST:PORT")]
    pub probes: Vec<String>,

    /// Print the result as JSON on stdout instead of the status line.
    #[arg(long)]
    pub json: bool,

    /// Also write the metrics in node_exporter's textfile format to this file (atomically).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
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
    /// The names the certificate covers; they are lowercased, and IDNs become punycode. IP
    /// addresses too (RFC 8738; IPv6 without brackets), proved by HTTP-01 or tls-alpn-01.
    ///
    /// Example: certctl request mon-app.fr www.mon-app.fr
    #[arg(value_name = "DOMAIN", required = true)]
    pub domains: Vec<String>,

    /// The name of the certificate and of its bundle file, <ssl-dir>/<name>.pem [default: the
    /// first domain].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The contact address for the ACME account, used when the account is created.
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// Agree to the CA's terms of service without asking; needed when no terminal is attached.
    #[arg(long)]
    pub agree_tos: bool,

    /// The type of the certificate's key [default: ec256].
    #[arg(long, value_enum, value_name = "TYPE")]
    pub key_type: Option<KeyType>,

    /// How challenges are answered [default: standalone]; NAME=HOW for one name only.
    ///
    /// HTTP-01: standalone, webroot, stateless. DNS-01 (wildcards, hosts the CA cannot reach):
    /// dns-01 with --dns-server and --tsig-key, or with --dns-hook. tls-alpn-01 (only 443
    /// open): certctl answers on --tls-alpn-addr behind HAProxy. One certificate may mix
    /// them: --challenge standalone --challenge '*.mon-app.fr=dns-01'. Stored for renew.
    #[arg(long, value_name = "[NAME=]HOW", value_parser = ChallengeChoiceParser)]
    pub challenge: Vec<ChallengeChoice>,

    /// The address the standalone responder listens on while an order runs [default:
    /// 127.0.0.1:2031].
    ///
    /// The proxy forwards /.well-known/acme-challenge/ there. Example: --http-addr 127.0.0.1:8402
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,

    /// The web server's document root for --challenge webroot; token files go under
    /// DIR/.well-known/acme-challenge/.
    ///
    /// Example: --challenge webroot --webroot /var/www/html
    #[arg(long, value_name = "DIR")]
    pub webroot: Option<PathBuf>,

    #[command(flatten)]
    pub ca: CaChoiceArgs,
    #[command(flatten)]
    pub eab: EabArgs,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub tls_alpn: TlsAlpnArgs,

    #[command(flatten)]
    pub hooks: HookArgs,

    /// HAProxy admin socket (PATH or IP:PORT, `level admin`) to hot-swap the certificate
    /// into with no reload; repeat for several proxies; stored for renew
    #[arg(long = "haproxy-socket", value_name = "SOCKET")]
    pub haproxy_sockets: Vec<String>,

    /// Local CA only (--server local): how many days the certificate is valid [default: 90]
    #[arg(long, value_name = "DAYS")]
    pub days: Option<u32>,

    /// Local CA only: add the clientAuth usage, for mutual TLS
    #[arg(long)]
    pub client_auth: bool,

    /// Request a new certificate even when the current one is valid and not due.
    #[arg(long)]
    pub force: bool,

    /// Remove names from a certificate without asking (needed with no terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    #[command(flatten)]
    pub outputs: OutputArgs,

    /// Print the result as a JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReconfigureArgs {
    /// The certificate to change (as `certctl list` names it)
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The type of the certificate's key; a change makes it due at the next renew.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub key_type: Option<KeyType>,
    /// How challenges are answered; NAME=HOW for one name only (as for request).
    #[arg(long, value_name = "[NAME=]HOW", value_parser = ChallengeChoiceParser)]
    pub challenge: Vec<ChallengeChoice>,
    /// The address the standalone responder listens on.
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// The document root for --challenge webroot.
    #[arg(long, value_name = "DIR")]
    pub webroot: Option<PathBuf>,
    #[command(flatten)]
    pub ca: CaChoiceArgs,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub tls_alpn: TlsAlpnArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
    /// HAProxy admin socket to push to; replaces the stored ones (`none` for none).
    #[arg(long = "haproxy-socket", value_name = "SOCKET")]
    pub haproxy_sockets: Vec<String>,
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// Show what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Files for services that terminate TLS themselves, written at every issuance before the
/// deploy hook; stored ('' removes one).
#[derive(Debug, Args, Clone, Default)]
pub struct OutputArgs {
    /// Write the certificate (leaf) here
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub cert_file: Option<String>,
    /// Write the private key here
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub key_file: Option<String>,
    /// Write the intermediates here
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub chain_file: Option<String>,
    /// Write the leaf and intermediates here
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub fullchain_file: Option<String>,
    /// Owner of the output files, e.g. unbound:unbound
    #[arg(long, value_name = "USER:GROUP")]
    pub owner: Option<String>,
    /// Octal mode of the output files [default: 600 for the key, 644 for the others]
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
}
