//! The ACME account (RFC 8555 §7.3): restoring stored credentials, registering a new
//! account once its terms are agreed to, and reading the terms-of-service URL. It never asks
//! a person anything and never stores credentials: the caller does both.

use instant_acme::{Account, AccountCredentials, NewAccount};

use super::directory::{Eab, directory_meta};
use super::retry;
use super::transport::AcmeHttp;
use crate::types::Server;

/// Restores a stored account: only the directory is fetched, no new-account round trip.
pub async fn restore_account(
    http: &AcmeHttp,
    server: &Server,
    credentials: AccountCredentials,
) -> anyhow::Result<Account> {
    let builder = Account::builder_with_http(Box::new(http.clone()));
    retry::once(builder.from_credentials(credentials))
        .await
        .map_err(|failed| failed.explain(server))
}

/// Registers a new account (the caller has made sure the terms were agreed to), bound to
/// the external account `eab` when the CA gave one (the HMAC key is used here only).
pub async fn create_account(
    http: &AcmeHttp,
    server: &Server,
    email: Option<&str>,
    eab: Option<&Eab>,
) -> anyhow::Result<(Account, AccountCredentials)> {
    let external = eab.map(Eab::key);
    let contact = email.map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    retry::step(server, "creating the ACME account", async || {
        let builder = Account::builder_with_http(Box::new(http.clone()));
        builder
            .create(&new, server.url().to_owned(), external.as_ref())
            .await
    })
    .await
}

/// The terms-of-service URL the directory announces, if any.
pub async fn terms_of_service(http: &AcmeHttp, server: &Server) -> anyhow::Result<Option<String>> {
    Ok(directory_meta(http, server).await?.terms_of_service)
}
