//! The arguments of the two commands that stop managing a certificate: `revoke` (at its CA
//! first) and `delete`; both keep a bundle HAProxy names itself.

use std::path::PathBuf;

use clap::Args;

use crate::types::RevocationReason;

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
    /// HAProxy's configuration, to keep a bundle it names [default: /etc/haproxy/haproxy.cfg]
    #[arg(long, value_name = "FILE")]
    pub haproxy_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The certificate to stop managing
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Command run after the certificate was archived, e.g. "systemctl reload haproxy"
    #[arg(long, value_name = "CMD")]
    pub post_hook: Option<String>,
    /// As for revoke [default: /etc/haproxy/haproxy.cfg when it exists]
    #[arg(long, value_name = "FILE")]
    pub haproxy_config: Option<PathBuf>,
}
