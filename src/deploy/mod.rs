//! What is written for this host: bundles in the ssl directory and certificates pushed into
//! running HAProxy processes through their runtime API. Reads the stored certificate, never
//! writes state other than this host's deploy record; knows nothing of ACME.

pub mod bundle;
pub mod haproxy;
pub mod outputs;
pub mod probe;

use crate::pem::{self, CertInfo, Chain};
use crate::types::{CertName, Socket};

pub use bundle::Bundles;

/// Hot-swaps a certificate into every HAProxy listed, each independently; returns one error
/// per proxy that failed (the bundle on disk is right for its next reload).
pub fn push_to_haproxy(
    bundles: &Bundles,
    name: &CertName,
    sockets: &[Socket],
    chain: &Chain,
    key_pem: &str,
    info: &CertInfo,
    timeout: std::time::Duration,
) -> Vec<anyhow::Error> {
    let path = bundles.path(name);
    let bundle = pem::bundle(chain, key_pem);
    let mut failures = Vec::new();
    for socket in sockets {
        let haproxy = haproxy::Haproxy::new(socket.clone(), timeout);
        match haproxy.deploy(&path, &bundle, &info.serial) {
            Ok(haproxy::Deployed::Replaced(n)) => crate::log::info(format_args!(
                "{name}: HAProxy at {socket} now serves it ({n} replaced, no reload)"
            )),
            Ok(haproxy::Deployed::Added(n)) => crate::log::info(format_args!(
                "{name}: HAProxy at {socket} now serves it ({n} added, no reload)"
            )),
            Err(e) => {
                failures.push(anyhow::Error::new(e).context(format!("{name}: HAProxy at {socket}")))
            }
        }
    }
    failures
}
