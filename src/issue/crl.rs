//! The local CA's CRL kept valid: `renew` signs it again once half of its 30 days have
//! passed, writes it atomically, and gets it to the running HAProxy (runtime API) or, where
//! no proxy took it or one checks backends with it (server lines take a new CRL only on a
//! reload in HAProxy 2.6), runs the post-hooks (a reload). Without this, HAProxy's
//! `crl-file` expires and every backend is refused.

use std::path::PathBuf;

use crate::deploy;
use crate::hooks::Hook;
use crate::local_ca;
use crate::store::{Key, Store};
use crate::types::Socket;

/// Whether the stored CRL is past half of its validity at `now`.
pub fn crl_is_due(store: &Store, now: i64) -> bool {
    local_ca::crl_validity(store).is_some_and(|(this, next)| local_ca::crl_due(now, this, next))
}

/// Signs the CRL again if due, and hands it over; one error per failure (the lock is held).
pub async fn refresh_crl(
    store: &Store,
    now: i64,
    sockets: &[Socket],
    post_hooks: &[&str],
    hook_timeout: std::time::Duration,
    haproxy_timeout: std::time::Duration,
) -> Vec<anyhow::Error> {
    let crl = match local_ca::refresh_crl(store, now) {
        Ok(Some(crl)) => crl,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![e.context("signing the local CA's CRL again")],
    };
    let path = PathBuf::from(store.label(&Key::Crl));
    let until = local_ca::crl_validity(store).map_or_else(String::new, |(_, next)| {
        format!(", valid until {}", crate::output::date(next))
    });
    crate::log::info(format_args!(
        "signed the local CA's CRL again ({}{until})",
        path.display()
    ));
    let deploy::CrlPush {
        taken,
        need_reload,
        mut failures,
    } = deploy::push_crl(&path, &crl, sockets, haproxy_timeout);
    if !need_reload.is_empty() && post_hooks.is_empty() {
        for (socket, at) in &need_reload {
            failures.push(anyhow::anyhow!(
                "HAProxy at {socket} checks backends with the local CA's CRL ({at}) and keeps \
                 the old one there until it reloads, and the old one expires: reload it, and \
                 give renew a --post-hook that does (\"systemctl reload haproxy\")"
            ));
        }
    }
    if taken == 0 || !need_reload.is_empty() {
        for command in post_hooks {
            let hook = Hook {
                kind: "post",
                command,
                env: vec![("CERTCTL_CRL", path.display().to_string())],
            };
            if let Err(e) = hook.run(hook_timeout).await {
                failures.push(e);
            }
        }
    }
    failures
}
