//! The chains a CA offers for one certificate (RFC 8555 §7.4.2): the default one and those
//! its download names with `Link: rel="alternate"`, and the choice of `--preferred-chain`
//! among them. instant-acme hands back only the default chain's body, so the transport
//! records each certificate answer (body and alternate links) of the task that asked for it
//! (`capture`); choosing is a pure function of the chains' PEM.

use std::sync::{Arc, Mutex};

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::types::Server;

tokio::task_local! {
    /// The certificate answers seen by the transport while a download runs in this task.
    static SEEN: Arc<Mutex<Vec<Seen>>>;
}

/// One certificate answer: its body (a PEM chain) and the alternates its Link headers name.
#[derive(Debug, Clone)]
pub struct Seen {
    pub pem: String,
    pub alternates: Vec<String>,
}

/// Runs `fut` and returns its output with the certificate answers it received.
pub async fn capture<T>(fut: impl Future<Output = T>) -> (T, Vec<Seen>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = SEEN.scope(seen.clone(), fut).await;
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (out, seen)
}

/// Called by the transport for each answer: a PEM chain is recorded when a `capture` runs.
pub(super) fn record(headers: &http::HeaderMap, body: &[u8]) {
    let is_chain = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("pem-certificate-chain"));
    if !is_chain {
        return;
    }
    let alternates = headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(alternate_links)
        .collect();
    let seen = Seen {
        pem: String::from_utf8_lossy(body).into_owned(),
        alternates,
    };
    let _ = SEEN.try_with(|s| s.lock().unwrap_or_else(|e| e.into_inner()).push(seen));
}

/// The URLs of `rel="alternate"` in one Link header value (which may hold several links).
fn alternate_links(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|link| {
            let (target, params) = link.trim().split_once('>')?;
            let url = target.trim().strip_prefix('<')?;
            let alternate = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p.eq_ignore_ascii_case("rel=\"alternate\"")
                    || p.eq_ignore_ascii_case("rel=alternate")
            });
            alternate.then(|| url.to_owned())
        })
        .collect()
}

/// `--preferred-chain`: the default chain when its top names `preferred`, else the first
/// alternate (`Link: rel="alternate"` in `seen`) whose top does, else the default with a
/// note. An alternate that cannot be fetched is skipped with a note: the default chain is a
/// good certificate.
pub(super) async fn preferred(
    account: &instant_acme::Account,
    server: &Server,
    default: String,
    seen: &[Seen],
    preferred: &str,
) -> String {
    if choose(std::slice::from_ref(&default), preferred).is_some() {
        return default;
    }
    let alternates: Vec<&String> = seen.iter().flat_map(|s| &s.alternates).collect();
    for url in alternates {
        // instant-acme fetches a URL by POST-as-GET (signed by the account) only as an
        // order, whose JSON a chain is not: its parse error is expected, and the transport
        // has recorded the chain it received
        let (_, got) = capture(account.order(url.clone())).await;
        match got.into_iter().next() {
            Some(alternate)
                if choose(std::slice::from_ref(&alternate.pem), preferred).is_some() =>
            {
                crate::log::verbose(format_args!("using the alternate chain {url}"));
                return alternate.pem;
            }
            Some(_) => {}
            None => crate::log::info(format_args!(
                "note: could not fetch the alternate chain {url}; skipping it"
            )),
        }
    }
    crate::log::info(format_args!(
        "note: no chain the CA ({server}) offers ends at {preferred:?}; using its default chain"
    ));
    default
}

/// The index of the first chain whose top certificate is issued by, or is, `preferred`
/// (a common name, compared ignoring case); None when no chain matches.
pub fn choose(chains: &[String], preferred: &str) -> Option<usize> {
    chains.iter().position(|pem| {
        let Ok(certs) = crate::pem::certificates(pem.as_bytes()) else {
            return false;
        };
        let Some(top) = certs.last() else {
            return false;
        };
        let Ok((_, cert)) = X509Certificate::from_der(top) else {
            return false;
        };
        let cn = |name: &x509_parser::x509::X509Name<'_>| {
            name.iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .any(|cn| cn.trim().eq_ignore_ascii_case(preferred.trim()))
        };
        cn(cert.issuer()) || cn(cert.subject())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_links_are_read_from_link_headers() {
        assert_eq!(
            alternate_links(r#"<https://ca.test/cert/1/1>;rel="alternate""#),
            vec!["https://ca.test/cert/1/1"]
        );
        assert_eq!(
            alternate_links(
                r#"<https://ca.test/dir>;rel="index", <https://ca.test/c/2>; rel="alternate""#
            ),
            vec!["https://ca.test/c/2"]
        );
        assert!(alternate_links(r#"<https://ca.test/dir>;rel="index""#).is_empty());
        assert!(alternate_links("garbage").is_empty());
    }

    /// A CA certificate's parameters and key, named `cn`.
    fn ca_params(cn: &str) -> (rcgen::CertificateParams, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params, key)
    }

    /// A chain whose top is an intermediate `inter` issued by the root `root`.
    fn chain(inter: &str, root: &str) -> String {
        let (root_params, root_key) = ca_params(root);
        let root_cert = root_params.self_signed(&root_key).unwrap();
        let (params, key) = ca_params(inter);
        let issuer = rcgen::Issuer::from_ca_cert_der(root_cert.der(), root_key).unwrap();
        params.signed_by(&key, &issuer).unwrap().pem()
    }

    #[test]
    fn the_chain_whose_top_names_the_preferred_root_is_chosen() {
        let chains = vec![
            chain("R10", "Default Root"),
            chain("R11", "ISRG Root X1"),
            chain("ISRG Root X2", "Other"),
        ];
        assert_eq!(choose(&chains, "ISRG Root X1"), Some(1));
        assert_eq!(choose(&chains, "isrg root x1"), Some(1), "case ignored");
        assert_eq!(
            choose(&chains, "ISRG Root X2"),
            Some(2),
            "the top's subject"
        );
        assert_eq!(choose(&chains, "Default Root"), Some(0));
        assert_eq!(choose(&chains, "No Such Root"), None);
        assert_eq!(choose(&["not pem".to_owned()], "x"), None);
    }
}
