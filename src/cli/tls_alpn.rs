//! The tls-alpn-01 flag of `request` and `reconfigure`: clap definitions only, the doc
//! comment being the help text.

use clap::Args;

/// tls-alpn-01 (RFC 8737): where certctl answers `acme-tls/1` while an order runs.
#[derive(Debug, Args, Clone, Default)]
pub struct TlsAlpnArgs {
    /// The address certctl answers tls-alpn-01 on while an order runs (--challenge
    /// tls-alpn-01) [default: 127.0.0.1:2032]; HAProxy's TCP frontend on 443 sends the
    /// ClientHellos that offer ALPN acme-tls/1 there. Stored for renew.
    #[arg(long, value_name = "ADDR")]
    pub tls_alpn_addr: Option<String>,
}
