//! What the pipeline's hooks are told: the environment of pre-, deploy- and post-hooks
//! (certctl's names and certbot's), never spliced into the command line.

use crate::deploy::Bundles;
use crate::hooks::Hook;
use crate::store::{Lineage, Store};
use crate::types::CertName;

pub(super) fn pre_hook(command: &str) -> Hook<'_> {
    Hook {
        kind: "pre",
        command,
        env: vec![],
    }
}

/// The post-hook of a run, once for all it issued: their names and bundles reach it as
/// space-separated lists.
pub fn post_hook<'a>(bundles: &Bundles, names: &[CertName], command: &'a str) -> Hook<'a> {
    let paths: Vec<String> = names
        .iter()
        .map(|n| bundles.path(n).display().to_string())
        .collect();
    let names: Vec<&str> = names.iter().map(CertName::as_str).collect();
    Hook {
        kind: "post",
        command,
        env: vec![
            ("CERTCTL_RENEWED_NAMES", names.join(" ")),
            ("CERTCTL_RENEWED_BUNDLES", paths.join(" ")),
        ],
    }
}

/// Environment for deploy hooks: paths and names, never spliced into the command.
pub fn hook_env(
    store: &Store,
    bundles: &Bundles,
    lineage: &Lineage,
) -> Vec<(&'static str, String)> {
    let domains = super::join(&lineage.settings.cert.domains);
    let mut env = vec![
        ("CERTCTL_NAME", lineage.name.to_string()),
        ("CERTCTL_DOMAINS", domains.clone()),
        (
            "CERTCTL_BUNDLE",
            bundles.path(&lineage.name).display().to_string(),
        ),
    ];
    if let Some(paths) = store.live_paths(&lineage.name) {
        env.extend([
            ("CERTCTL_CERT", paths.cert.display().to_string()),
            ("CERTCTL_KEY", paths.key.display().to_string()),
            ("CERTCTL_CHAIN", paths.chain.display().to_string()),
            ("CERTCTL_FULLCHAIN", paths.fullchain.display().to_string()),
            ("RENEWED_LINEAGE", paths.dir.display().to_string()),
        ]);
    }
    env.extend([
        ("CERTCTL_SERIAL", lineage.info.serial.clone()),
        ("RENEWED_DOMAINS", domains),
    ]);
    env
}
