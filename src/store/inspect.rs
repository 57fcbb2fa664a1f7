//! What `list` and the confirmation prompts read of one stored certificate: every part that
//! could be read, and every problem found on the way (a damaged entry is reported, never
//! fatal). Reads only, through the backend.

use anyhow::Context;

use super::{Key, Store, leaf_of, same_names};
use crate::pem::CertInfo;
use crate::settings::CertSettings;
use crate::types::CertName;

/// What `list` and the confirmation prompts know of one stored certificate: whatever could
/// be read, and every problem found on the way (a damaged entry is reported, never fatal).
#[derive(Debug, Clone)]
pub struct Inspection {
    pub name: CertName,
    pub settings: Option<CertSettings>,
    /// The facts of the live leaf (meta, checked against the certificate).
    pub info: Option<CertInfo>,
    /// Why the entry is damaged; empty when it is whole.
    pub problems: Vec<String>,
}

impl Store {
    /// Reads what `list` shows of `name` and notes every missing or unreadable part, and a
    /// meta that does not describe the certificate.
    pub fn inspect(&self, name: &CertName) -> Inspection {
        let mut problems = Vec::new();
        let settings = match self.settings(name) {
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                let label = self.backend.label(&Key::Settings(name.clone()));
                problems.push(format!("{label} is missing"));
                None
            }
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        };
        let live = self.backend.live(name);
        let info = live
            .meta
            .and_then(|m| {
                serde_json::from_slice::<CertInfo>(&m)
                    .with_context(|| format!("{} is damaged", live.meta_label))
            })
            .map_err(|e| problems.push(format!("{e:#}")))
            .ok();
        match live
            .cert_pem
            .and_then(|pem| leaf_of(&pem, &live.cert_label))
            .and_then(|leaf| crate::pem::cert_info(&leaf))
        {
            Ok(actual) => {
                if let Some(meta) = info.as_ref().filter(|m| m.serial != actual.serial) {
                    problems.push(format!(
                        "{} names serial {} but {} holds serial {}",
                        live.meta_label, meta.serial, live.cert_label, actual.serial
                    ));
                }
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
        match (&live.key_pem, self.live_files(name)) {
            (Err(_), _) => problems.push(format!("{} is missing", live.key_label)),
            (Ok(_), Ok(files)) => {
                // what would be installed: the key fits, the chain links up, and the leaf
                // names what the settings ask for
                let expected = crate::pem::Expected {
                    issuer_in_chain: settings.as_ref().is_some_and(|s| !s.cert.server.is_local()),
                    ..Default::default()
                };
                if let Err(e) = crate::pem::check_chain(&files.chain, &files.key_pem, expected) {
                    problems.push(format!(
                        "{} with {}: {e:#}",
                        files.cert_label, files.key_label
                    ));
                }
                if let (Some(s), Ok(actual)) = (&settings, crate::pem::cert_info(&files.chain.leaf))
                {
                    if !same_names(&s.cert.domains, &actual.names) {
                        problems.push(format!(
                            "{} names {} but the settings ask for {} (an interrupted request; \
                             `certctl renew {name}` completes it)",
                            files.cert_label,
                            actual.names.join(" "),
                            crate::types::join(&s.cert.domains)
                        ));
                    }
                }
            }
            (Ok(_), Err(e)) => {
                // cert.pem was reported above; chain.pem not yet
                let text = format!("{e:#}");
                if !problems.contains(&text) {
                    problems.push(text);
                }
            }
        }
        Inspection {
            name: name.clone(),
            settings,
            info,
            problems,
        }
    }
}
