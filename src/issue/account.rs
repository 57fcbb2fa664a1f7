//! The ACME account a run uses for each CA: the stored one, or a new one when there is none
//! (after the terms were agreed to, on a terminal or with --agree-tos). A dry run keeps a
//! new account in memory only.

use anyhow::anyhow;

use super::Run;
use crate::acme::{self, AcmeHttp};
use crate::error::BadInput;
use crate::settings::CertSettings;
use crate::store::Store;
use crate::types::Server;

/// What to do when a CA has no stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingAccount {
    /// `request`: the terms are agreed to (--agree-tos) or asked on the terminal; a new
    /// account is bound to `eab` when given (checked against the directory by the caller).
    AgreeOrAsk {
        agree_tos: bool,
        eab: Option<acme::Eab>,
    },
    /// `renew`: the terms were agreed to when the certificate was requested.
    Create,
}

/// The account for `server` in this run.
pub(super) async fn for_run(
    run: &Run<'_>,
    server: &Server,
    settings: &CertSettings,
) -> anyhow::Result<instant_acme::Account> {
    let http = AcmeHttp::new(settings.host.ca_bundle.as_deref(), run.http_timeout)?;
    let (agree_tos, eab) = match &run.missing_account {
        MissingAccount::AgreeOrAsk { agree_tos, eab } => (*agree_tos, eab.as_ref()),
        MissingAccount::Create => (true, None),
    };
    let save = !run.dry_run;
    open_account(
        run.store,
        &http,
        server,
        settings.cert.email.as_deref(),
        agree_tos,
        save,
        eab,
    )
    .await
}

/// A new account for `server` in place of the stored one the CA no longer knows: the terms
/// were agreed to when the first was made. Saved unless this is a dry run; said either way.
pub(super) async fn replace_gone(
    run: &Run<'_>,
    server: &Server,
    settings: &CertSettings,
) -> anyhow::Result<instant_acme::Account> {
    let http = AcmeHttp::new(settings.host.ca_bundle.as_deref(), run.http_timeout)?;
    let (account, credentials) =
        acme::create_account(&http, server, settings.cert.email.as_deref(), None).await?;
    if !run.dry_run {
        run.store.save_account(server, credentials)?;
    }
    crate::log::info(format_args!(
        "the CA ({server}) no longer knows certctl's stored account (deactivated, or the CA \
         was reset): registered a new one, the terms having been agreed to for the first"
    ));
    Ok(account)
}

/// The stored account for `server`, or a new one (asking for the terms unless `agree_tos`).
pub async fn open_account(
    store: &Store,
    http: &AcmeHttp,
    server: &Server,
    email: Option<&str>,
    agree_tos: bool,
    save: bool,
    eab: Option<&acme::Eab>,
) -> anyhow::Result<instant_acme::Account> {
    if let Some(credentials) = store.account(server)? {
        crate::log::verbose(format_args!("using the stored account for {server}"));
        return acme::restore_account(http, server, credentials).await;
    }
    if !agree_tos {
        ask_terms(http, server).await?;
    }
    // a shared store: one node creates it, the others wait for it and use it
    let account_lock = match save {
        true => store.lock_account(server, crate::settings::DEFAULT_LOCK_WAIT)?,
        false => None,
    };
    if account_lock.is_some() {
        if let Some(credentials) = store.account(server)? {
            crate::log::verbose(format_args!(
                "using the account another node created for {server}"
            ));
            return acme::restore_account(http, server, credentials).await;
        }
    }
    let (account, credentials) = acme::create_account(http, server, email, eab).await?;
    if save {
        store.save_account(server, credentials)?;
        crate::log::info(format_args!("created an ACME account at {server}"));
    }
    Ok(account)
}

/// Asks on the terminal whether the CA's terms of service are agreed to (showing their
/// URL from the directory); a "no" is bad input and nothing is done.
pub async fn ask_terms(http: &AcmeHttp, server: &Server) -> anyhow::Result<()> {
    let tos = acme::terms_of_service(http, server).await?;
    let question = match &tos {
        Some(url) => format!("Do you agree to the terms of service at {url}?"),
        None => format!("Do you agree to the terms of service of {server}?"),
    };
    let agreed =
        crate::prompt::yes_no(&question).map_err(|e| anyhow!("reading the answer: {e}"))?;
    if !agreed {
        return Err(
            BadInput::new("the terms of service were not agreed to; nothing was done").into(),
        );
    }
    Ok(())
}
