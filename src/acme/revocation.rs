//! Revocation (RFC 8555 §7.6): the certificate revoked at the CA that issued it, signed by
//! the account, with its RFC 5280 reason. A certificate revoked already is not an error, so
//! an interrupted `revoke` can finish. It never touches the stored files: the caller does.

use instant_acme::Account;

use super::retry;
use crate::types::Server;

const ALREADY_REVOKED: &str = "urn:ietf:params:acme:error:alreadyRevoked";

/// Revokes the certificate `leaf_der` at `server` (RFC 8555 §7.6), signed by the account that
/// issued it. Ok(true) when the CA revoked it now, Ok(false) when the CA answers that it was
/// revoked already, so that a run interrupted after revoking can still finish.
pub async fn revoke(
    account: &Account,
    server: &Server,
    leaf_der: &[u8],
    reason: crate::types::RevocationReason,
) -> anyhow::Result<bool> {
    let certificate = rustls_pki_types::CertificateDer::from(leaf_der);
    let request = instant_acme::RevocationRequest {
        certificate: &certificate,
        reason: Some(revocation_reason(reason)),
    };
    retry::step(server, "revoking the certificate", async || {
        match account.revoke(&request).await {
            Ok(()) => Ok(true),
            Err(instant_acme::Error::Api(p)) if p.r#type.as_deref() == Some(ALREADY_REVOKED) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    })
    .await
}

/// The RFC 5280 reason code for a `--reason`.
fn revocation_reason(reason: crate::types::RevocationReason) -> instant_acme::RevocationReason {
    use crate::types::RevocationReason as Cli;
    use instant_acme::RevocationReason as Acme;
    match reason {
        Cli::Unspecified => Acme::Unspecified,
        Cli::Keycompromise => Acme::KeyCompromise,
        Cli::Superseded => Acme::Superseded,
        Cli::Cessationofoperation => Acme::CessationOfOperation,
        Cli::Affiliationchanged => Acme::AffiliationChanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RevocationReason as Cli;

    #[test]
    fn revocation_reasons_carry_their_rfc_5280_codes() {
        for (reason, code) in [
            (Cli::Unspecified, "0"),
            (Cli::Keycompromise, "1"),
            (Cli::Affiliationchanged, "3"),
            (Cli::Superseded, "4"),
            (Cli::Cessationofoperation, "5"),
        ] {
            let json = serde_json::to_string(&revocation_reason(reason)).unwrap();
            assert_eq!(json, code, "{reason:?}");
        }
    }
}
