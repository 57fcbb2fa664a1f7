//! The ACME account (RFC 8555 §7.3): restoring stored credentials, registering a new
//! account once its terms are agreed to, and reading the terms-of-service URL. It never asks
//! a person anything and never stores credentials: the caller does both.

use anyhow::Context;
use instant_acme::{Account, AccountCredentials, NewAccount};

use super::problem::explain;
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

/// Registers a new account (the caller has made sure the terms were agreed to).
pub async fn create_account(
    http: &AcmeHttp,
    server: &Server,
    email: Option<&str>,
) -> anyhow::Result<(Account, AccountCredentials)> {
    let contact = email.map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    retry::step(server, "creating the ACME account", async || {
        let builder = Account::builder_with_http(Box::new(http.clone()));
        builder.create(&new, server.url().to_owned(), None).await
    })
    .await
}

/// The terms-of-service URL the directory announces, if any.
pub async fn terms_of_service(http: &AcmeHttp, server: &Server) -> anyhow::Result<Option<String>> {
    let body = http
        .get(server.url())
        .await
        .map_err(|e| explain(e, server, None))?;
    let dir: serde_json::Value =
        serde_json::from_slice(&body).context("the ACME directory is not JSON")?;
    Ok(dir["meta"]["termsOfService"].as_str().map(str::to_owned))
}
