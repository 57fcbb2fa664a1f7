//! The flags of `request` and `reconfigure` that choose among what an ACME CA offers (its
//! profiles, its chains) and bind a new account to an external one (EAB): clap definitions
//! only, the doc comments being the help text.

use clap::Args;

/// What to ask of the CA for this certificate; stored, and used at every renewal.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "CA choices")]
pub struct CaChoiceArgs {
    /// The CA's certificate profile (as its directory lists them, e.g. Let's Encrypt's
    /// classic, tlsserver, shortlived); sent with every order, renewals included; a change
    /// makes the certificate due. '' goes back to the CA's default.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Among the chains the CA offers, the one whose top certificate is issued by (or is)
    /// this common name, e.g. "ISRG Root X1"; when none matches, the CA's default chain.
    #[arg(long, value_name = "CN")]
    pub preferred_chain: Option<String>,
}

/// External Account Binding: ZeroSSL, Google Trust Services and SSL.com want a key id and
/// HMAC key from their dashboard when the account is created. Used once, never stored.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "CA choices")]
pub struct EabArgs {
    /// The key id of the CA's External Account Binding (with --eab-hmac-key)
    #[arg(long, value_name = "ID")]
    pub eab_kid: Option<String>,

    /// The HMAC key of the CA's External Account Binding, base64url as the CA shows it;
    /// used to create the account, then forgotten
    #[arg(long, value_name = "KEY")]
    pub eab_hmac_key: Option<String>,
}
