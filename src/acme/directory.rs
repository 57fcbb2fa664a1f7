//! What a CA's directory says about itself (`meta`, RFC 8555 §7.1.1): its terms of service,
//! whether it requires External Account Binding, and the profiles it offers (the ACME
//! profiles extension). Also the checks made against it before an order: a profile the CA
//! does not offer, EAB a CA requires. It reads the directory; it never creates or orders.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;

use super::problem::explain;
use super::transport::AcmeHttp;
use crate::error::BadInput;
use crate::types::Server;

/// The `meta` of a CA's directory, as far as certctl uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryMeta {
    pub terms_of_service: Option<String>,
    pub external_account_required: bool,
    /// Profile name -> description.
    pub profiles: BTreeMap<String, String>,
}

impl DirectoryMeta {
    /// Reads `meta` from a directory document.
    pub fn from_directory(dir: &serde_json::Value) -> Self {
        let meta = &dir["meta"];
        let profiles = meta["profiles"]
            .as_object()
            .map(|p| {
                p.iter()
                    .map(|(name, description)| {
                        let description = description.as_str().unwrap_or_default();
                        (name.clone(), description.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            terms_of_service: meta["termsOfService"].as_str().map(str::to_owned),
            external_account_required: meta["externalAccountRequired"].as_bool() == Some(true),
            profiles,
        }
    }
}

/// Fetches the CA's directory and reads its `meta`.
pub async fn directory_meta(http: &AcmeHttp, server: &Server) -> anyhow::Result<DirectoryMeta> {
    let body = http
        .get(server.url())
        .await
        .map_err(|e| explain(e, server, None))?;
    let dir: serde_json::Value =
        serde_json::from_slice(&body).context("the ACME directory is not JSON")?;
    Ok(DirectoryMeta::from_directory(&dir))
}

/// Whether `profile` is one the CA offers (`offered`: name -> description); bad input
/// listing what it offers when not. `stored`: the profile comes from the certificate's
/// settings (a renewal), not from the command line.
pub fn check_profile(
    server: &Server,
    profile: &str,
    offered: &BTreeMap<String, String>,
    stored: bool,
) -> Result<(), BadInput> {
    if offered.contains_key(profile) {
        return Ok(());
    }
    let fix = if stored {
        "; choose one with `certctl reconfigure NAME --profile PROFILE` (or --profile '' for the CA's default)"
    } else {
        ""
    };
    if offered.is_empty() {
        let what = if stored {
            format!(
                "the CA ({server}) no longer offers profiles, and the certificate's stored profile is {profile:?}"
            )
        } else {
            format!(
                "--profile {profile}: the CA ({server}) offers no profiles; leave --profile out"
            )
        };
        return Err(BadInput::new(format!("{what}{fix}")));
    }
    let list: Vec<String> = offered
        .iter()
        .map(|(name, description)| match description.as_str() {
            "" => format!("  {name}"),
            d => format!("  {name}: {d}"),
        })
        .collect();
    let what = if stored {
        format!("the CA ({server}) no longer offers the certificate's stored profile {profile:?}")
    } else {
        format!("--profile {profile}: the CA ({server}) offers no such profile")
    };
    Err(BadInput::new(format!(
        "{what}{fix}; its profiles:\n{}",
        list.join("\n")
    )))
}

/// An External Account Binding (RFC 8555 §7.3.4): the key id and HMAC key a CA hands out
/// (ZeroSSL, Google, SSL.com), used once when the account is created and never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Eab {
    pub kid: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Eab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Eab {{ kid: {:?}, key: (hidden) }}", self.kid)
    }
}

impl Eab {
    /// `--eab-kid` and `--eab-hmac-key`: both or neither; the key is base64url (padding
    /// tolerated), as CAs show it.
    pub fn parse(kid: Option<&str>, key: Option<&str>) -> Result<Option<Self>, BadInput> {
        let (kid, key) = match (kid, key) {
            (None, None) => return Ok(None),
            (Some(kid), Some(key)) => (kid, key),
            (Some(_), None) => {
                return Err(BadInput::new(
                    "--eab-kid needs --eab-hmac-key KEY (both come from the CA's dashboard)",
                ));
            }
            (None, Some(_)) => {
                return Err(BadInput::new(
                    "--eab-hmac-key needs --eab-kid ID (both come from the CA's dashboard)",
                ));
            }
        };
        if kid.trim().is_empty() || kid.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(BadInput::new(format!(
                "--eab-kid {kid:?} is not a key id (the CA's dashboard shows it)"
            )));
        }
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key.trim_end_matches('='))
            .ok()
            .filter(|k| !k.is_empty());
        let Some(key) = decoded else {
            return Err(BadInput::new(
                "--eab-hmac-key is not base64url (letters, digits, '-' and '_'); copy the HMAC \
                 key from the CA's dashboard as it is shown",
            ));
        };
        Ok(Some(Self {
            kid: kid.to_owned(),
            key,
        }))
    }

    pub(super) fn key(&self) -> instant_acme::ExternalAccountKey {
        instant_acme::ExternalAccountKey::new(self.kid.clone(), &self.key)
    }
}

/// Before a new account: bad input when the CA requires EAB and none is given; EAB given
/// to a CA that does not want it is noted and dropped.
pub fn check_eab(
    server: &Server,
    meta: &DirectoryMeta,
    eab: Option<Eab>,
) -> Result<Option<Eab>, BadInput> {
    match (meta.external_account_required, eab) {
        (true, None) => Err(BadInput::new(format!(
            "the CA ({server}) requires External Account Binding for a new account: give \
             --eab-kid ID --eab-hmac-key KEY (both from the CA's dashboard)"
        ))),
        (false, Some(_)) => {
            crate::log::info(format_args!(
                "note: the CA ({server}) does not ask for External Account Binding; \
                 --eab-kid and --eab-hmac-key are ignored"
            ));
            Ok(None)
        }
        (_, eab) => Ok(eab),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server::parse("https://ca.test/dir").unwrap()
    }

    #[test]
    fn meta_reads_profiles_and_eab() {
        let dir = serde_json::json!({"meta": {
            "termsOfService": "https://ca.test/tos",
            "externalAccountRequired": true,
            "profiles": {"classic": "the usual", "shortlived": "160 hours"},
        }});
        let meta = DirectoryMeta::from_directory(&dir);
        assert!(meta.external_account_required);
        assert_eq!(meta.profiles.len(), 2);
        assert_eq!(
            meta.terms_of_service.as_deref(),
            Some("https://ca.test/tos")
        );
        assert_eq!(
            DirectoryMeta::from_directory(&serde_json::json!({})),
            DirectoryMeta::default()
        );
    }

    #[test]
    fn an_unknown_profile_lists_the_cas_profiles() {
        let offered: BTreeMap<String, String> = [("classic".into(), "the usual".into())]
            .into_iter()
            .collect();
        assert!(check_profile(&server(), "classic", &offered, false).is_ok());
        let err = check_profile(&server(), "tlsserver", &offered, false).unwrap_err();
        assert!(err.0.contains("no such profile") && err.0.contains("classic: the usual"));
        let err = check_profile(&server(), "classic", &BTreeMap::new(), false).unwrap_err();
        assert!(err.0.contains("offers no profiles"), "{err}");
        let err = check_profile(&server(), "gone", &offered, true).unwrap_err();
        assert!(err.0.contains("no longer offers") && err.0.contains("reconfigure"));
    }

    #[test]
    fn eab_needs_both_flags_and_a_base64url_key() {
        assert_eq!(Eab::parse(None, None).unwrap(), None);
        assert!(Eab::parse(Some("kid-1"), None).is_err());
        assert!(Eab::parse(None, Some("a2V5")).is_err());
        assert!(Eab::parse(Some("kid-1"), Some("not base64!")).is_err());
        assert!(Eab::parse(Some("kid-1"), Some("")).is_err());
        let eab = Eab::parse(
            Some("kid-1"),
            Some("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"),
        )
        .unwrap();
        assert_eq!(eab.unwrap().kid, "kid-1");
        assert!(!format!("{:?}", Eab::parse(Some("k"), Some("a2V5")).unwrap()).contains("a2V5"));
    }
}
