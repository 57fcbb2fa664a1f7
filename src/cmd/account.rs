//! `certctl account thumbprint`: the account key's JWK thumbprint (RFC 7638) and the HAProxy
//! lines that answer HTTP-01 from it (stateless mode). The thumbprint is computed from the
//! stored key, offline; the account is created first only when there is none.

use std::io::IsTerminal;

use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::acme::{self, AcmeHttp};
use crate::cli::ThumbprintArgs;
use crate::error::BadInput;
use crate::settings::{ConfigFile, Global, Verbosity};

pub async fn thumbprint(
    global: &Global,
    config: &ConfigFile,
    args: ThumbprintArgs,
) -> anyhow::Result<()> {
    let (store, _) = super::open(global)?;
    let server = &global.server;
    let credentials = match store.account(server)? {
        Some(credentials) => credentials,
        None => {
            let can_ask = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
            if !args.agree_tos && !can_ask {
                return Err(BadInput::new(format!(
                    "no account yet for {server}: creating one means agreeing to the CA's terms of service; \
                     pass --agree-tos (there is no terminal to ask on)"
                ))
                .into());
            }
            let eab = acme::Eab::parse(
                args.eab.eab_kid.as_deref(),
                args.eab.eab_hmac_key.as_deref(),
            )?;
            let http = AcmeHttp::new(global.ca_bundle.as_deref(), global.http_timeout)?;
            let meta = acme::directory_meta(&http, server).await?;
            let eab = acme::check_eab(server, &meta, eab)?;
            if !args.agree_tos {
                crate::issue::ask_terms(&http, server).await?;
            }
            store.check_writable()?;
            // a shared store's lock for this CA's account, else the store's lock; then
            // read again: another node or run may have made it meanwhile
            let _lock = match store.lock_account(server, global.lock_wait)? {
                Some(lock) => lock,
                None => store.lock(global.lock_wait)?,
            };
            match store.account(server)? {
                Some(credentials) => credentials,
                None => {
                    let email = crate::settings::email(args.email.as_deref(), config)?;
                    let (_, credentials) =
                        acme::create_account(&http, server, email.as_deref(), eab.as_ref()).await?;
                    store.save_account(server, credentials)?;
                    crate::log::info(format_args!("created an ACME account at {server}"));
                    store
                        .account(server)?
                        .context("reading the account just created")?
                }
            }
        }
    };
    let thumbprint = thumbprint_of(&credentials)?;
    if global.verbosity == Verbosity::Quiet {
        super::print_stdout(&format!("{thumbprint}\n"))?;
    } else {
        super::print_stdout(&format!("{}\n", haproxy_lines(&thumbprint)))?;
    }
    Ok(())
}

/// The RFC 7638 thumbprint of the account's P-256 key (instant-acme's only key type).
pub fn thumbprint_of(credentials: &instant_acme::AccountCredentials) -> anyhow::Result<String> {
    let json = serde_json::to_value(credentials)?;
    let pkcs8 = json["key_pkcs8"]
        .as_str()
        .context("the stored account has no key")?;
    let der = URL_SAFE_NO_PAD
        .decode(pkcs8)
        .context("the stored account key is not base64url")?;
    let key = rcgen::KeyPair::try_from(der.as_slice())
        .map_err(|e| anyhow!("the stored account key is not usable: {e}"))?;
    let point = key.public_key_raw();
    if point.len() != 65 || point[0] != 4 {
        return Err(anyhow!(
            "the stored account key is not an uncompressed P-256 point"
        ));
    }
    let jwk = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65])
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jwk.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// The thumbprint, then the HAProxy configuration that answers every challenge from it.
pub fn haproxy_lines(thumbprint: &str) -> String {
    format!(
        "{thumbprint}\n\
         \n\
         # HAProxy answers every HTTP-01 challenge of this account itself (certctl request --challenge stateless):\n\
         # in the global section:\n\
         #     setenv ACCOUNT_THUMBPRINT '{thumbprint}'\n\
         # in the HTTP frontend (port 80), before any redirect:\n\
         #     http-request return status 200 content-type text/plain lf-string \"%[path,field(-1,/)].${{ACCOUNT_THUMBPRINT}}\\n\" if {{ path_beg '/.well-known/acme-challenge/' }}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_a_base64url_sha256() {
        // credentials from instant-acme's own test suite; the value is proven right end to
        // end by the stateless test (tests/it/haproxy.rs): Pebble validates with it
        const CREDENTIALS: &str = r#"{"id":"id","key_pkcs8":"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJVWC_QzOTCS5vtsJp2IG-UDc8cdDfeoKtxSZxaznM-mhRANCAAQenCPoGgPFTdPJ7VLLKt56RxPlYT1wNXnHc54PEyBg3LxKaH0-sJkX0mL8LyPEdsfL_Oz4TxHkWLJGrXVtNhfH","directory":"https://acme.test/directory"}"#;
        let credentials: instant_acme::AccountCredentials =
            serde_json::from_str(CREDENTIALS).unwrap();
        let thumbprint = thumbprint_of(&credentials).unwrap();
        assert_eq!(thumbprint.len(), 43);
        assert!(
            thumbprint
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(thumbprint, thumbprint_of(&credentials).unwrap());
    }

    #[test]
    fn haproxy_lines_carry_the_thumbprint() {
        let text = haproxy_lines("abc");
        assert!(text.starts_with("abc\n"));
        assert!(text.contains("setenv ACCOUNT_THUMBPRINT 'abc'"));
        assert!(text.contains(r#"lf-string "%[path,field(-1,/)].${ACCOUNT_THUMBPRINT}\n""#));
    }
}
