//! What is written for this host: bundles in the ssl directory and certificates pushed into
//! running HAProxy processes through their runtime API. Reads the stored certificate, never
//! writes state other than this host's deploy record; knows nothing of ACME.

pub mod bundle;
pub mod haproxy;
pub mod haproxy_cfg;
pub mod outputs;
pub mod probe;

use crate::types::{CertName, Socket};

pub use bundle::Bundles;

/// A certificate to hot-swap: its bundle (leaf, chain, key), written at `path`, and the
/// serial HAProxy must then serve.
pub struct Swap {
    pub name: CertName,
    pub path: std::path::PathBuf,
    pub bundle: String,
    pub serial: String,
}

/// Hot-swaps each of `swaps` into the HAProxy at `socket`, the commands of many
/// certificates in flight at once over its kept-open connection; one result per swap, in
/// order, each failure naming its certificate and the proxy.
pub fn push_many_to_haproxy(
    socket: &Socket,
    swaps: &[&Swap],
    timeout: std::time::Duration,
) -> Vec<anyhow::Result<()>> {
    let pushes: Vec<haproxy::Push> = swaps
        .iter()
        .map(|s| haproxy::Push {
            path: &s.path,
            bundle: &s.bundle,
            serial: &s.serial,
        })
        .collect();
    let haproxy = haproxy::Haproxy::new(socket.clone(), timeout);
    let results = haproxy.deploy_many(&pushes);
    results
        .into_iter()
        .zip(swaps)
        .map(|(result, swap)| {
            let name = &swap.name;
            match result {
                Ok(haproxy::Deployed::Replaced(n)) => crate::log::info(format_args!(
                    "{name}: HAProxy at {socket} now serves it ({n} replaced, no reload)"
                )),
                Ok(haproxy::Deployed::Added(n)) => crate::log::info(format_args!(
                    "{name}: HAProxy at {socket} now serves it ({n} added, no reload)"
                )),
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("{name}: HAProxy at {socket}"))
                    );
                }
            }
            Ok(())
        })
        .collect()
}

/// Takes `path`'s certificate out of every HAProxy listed (revoke, delete), each
/// independently; returns one error per proxy that still serves it.
pub fn remove_from_haproxy(
    name: &CertName,
    path: &std::path::Path,
    sockets: &[Socket],
    timeout: std::time::Duration,
) -> Vec<anyhow::Error> {
    let mut failures = Vec::new();
    for socket in sockets {
        match unload(&haproxy::Haproxy::new(socket.clone(), timeout), path) {
            Ok(Some(n)) => crate::log::info(format_args!(
                "{name}: HAProxy at {socket} no longer serves it ({n} deleted, no reload)"
            )),
            Ok(None) => crate::log::verbose(format_args!(
                "{name}: HAProxy at {socket} did not have it loaded"
            )),
            Err(e) => failures.push(anyhow::Error::new(e).context(format!(
                "{name}: HAProxy at {socket} still serves it until its next reload"
            ))),
        }
    }
    failures
}

/// Stops serving the certificate HAProxy loaded from `path`: `del ssl crt-list` (from the
/// directory's list) then `del ssl cert`. None when HAProxy does not have it. A certificate
/// the configuration names itself (`crt FILE`) cannot be deleted at run time: HAProxy
/// refuses, and that refusal is the error.
fn unload(
    proxy: &haproxy::Haproxy,
    path: &std::path::Path,
) -> Result<Option<String>, haproxy::Error> {
    let Some(name) = proxy.with_cert_list(|l| haproxy::find_cert(&l.certificates, path))?? else {
        return Ok(None);
    };
    if let Ok(list) = proxy.crt_list_for(path) {
        // fails for a certificate outside the list; `del ssl cert` then says why
        let _ = proxy.command(&format!("del ssl crt-list {list} {name}"));
    }
    let command = format!("del ssl cert {name}");
    let reply = proxy.command(&command)?;
    if reply.to_lowercase().contains("deleted") {
        proxy.listed(|l| l.certificates.retain(|c| *c != name));
        Ok(Some(name))
    } else {
        Err(haproxy::Error::Refused {
            command,
            reply: reply.trim().to_owned(),
        })
    }
}

/// What became of a re-signed CRL in the running proxies.
#[derive(Default)]
pub struct CrlPush {
    /// Proxies that took it through their runtime API and need nothing more.
    pub taken: usize,
    /// Proxies that took it but check backends (`server ... crl-file`) with it: HAProxy 2.6
    /// keeps the old CRL there until it reloads. Socket, and where its configuration says so.
    pub need_reload: Vec<(Socket, String)>,
    pub failures: Vec<anyhow::Error>,
}

/// Hands a re-signed CRL to every HAProxy listed that loaded `path` as a `crl-file`
/// (`set ssl crl-file` + `commit ssl crl-file`, HAProxy 2.6). Checked on HAProxy 2.6.12:
/// the commit reaches bind lines (client certificates) but not server lines, which keep
/// verifying backends with the CRL loaded at start; so a proxy on this host whose
/// configuration names the CRL on a `server` line is reported as needing a reload.
pub fn push_crl(
    path: &std::path::Path,
    crl_pem: &str,
    sockets: &[Socket],
    timeout: std::time::Duration,
) -> CrlPush {
    let mut result = CrlPush::default();
    for socket in sockets {
        let proxy = haproxy::Haproxy::new(socket.clone(), timeout);
        let pushed = (|| -> Result<bool, haproxy::Error> {
            let listed = haproxy::parse_cert_list(&proxy.command("show ssl crl-file")?);
            let Some(name) = haproxy::find_cert(&listed.certificates, path)? else {
                return Ok(false);
            };
            let set = format!("set ssl crl-file {name} <<\n{}\n", crl_pem.trim_end());
            proxy.command(&set)?;
            let command = format!("commit ssl crl-file {name}");
            let reply = proxy.command(&command)?;
            if reply.contains("Success") {
                Ok(true)
            } else {
                let _ = proxy.command(&format!("abort ssl crl-file {name}"));
                Err(haproxy::Error::Refused {
                    command,
                    reply: reply.trim().to_owned(),
                })
            }
        })();
        let server_line = || {
            let pid = proxy.local_pid().ok().flatten()?;
            haproxy_cfg::server_line_using_crl(pid, path)
        };
        match pushed {
            Ok(true) => match server_line() {
                Some((file, line, text)) => {
                    crate::log::info(format_args!(
                        "HAProxy at {socket} took the new CRL for its bind lines; its server \
                         lines ({}, line {line}: `{text}`) use it after a reload",
                        file.display()
                    ));
                    let at = format!("{}, line {line}", file.display());
                    result.need_reload.push((socket.clone(), at));
                }
                None => {
                    result.taken += 1;
                    crate::log::info(format_args!(
                        "HAProxy at {socket} now uses the new CRL (no reload)"
                    ));
                }
            },
            Ok(false) => {}
            Err(e) => result
                .failures
                .push(anyhow::Error::new(e).context(format!("the new CRL: HAProxy at {socket}"))),
        }
    }
    result
}
