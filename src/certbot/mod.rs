//! certbot's files as certctl reads them: renewal/NAME.conf (configobj, the subset certbot
//! writes), account keys (JWK) and private keys in their PEM forms. Pure functions over
//! text and bytes: `cmd::import` does the reading and decides what to take over.

mod challenge;
mod hooks;
pub mod lineage;

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::types::Server;

/// A value: a string, or a comma-separated list (certbot writes `webroot_path = /a,`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    One(String),
    List(Vec<String>),
}

impl Value {
    pub fn first(&self) -> &str {
        match self {
            Value::One(s) => s,
            Value::List(items) => items.first().map_or("", String::as_str),
        }
    }
}

/// The sections of a renewal file: "" (top), "renewalparams", "renewalparams/webroot_map".
#[derive(Debug, Default)]
pub struct RenewalConf {
    sections: BTreeMap<String, BTreeMap<String, Value>>,
}

impl RenewalConf {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut conf = RenewalConf::default();
        let mut path: Vec<String> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let n = n + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                let depth = line.bytes().take_while(|b| *b == b'[').count();
                let name = line
                    .get(depth..)
                    .and_then(|rest| rest.split_once(&"]".repeat(depth)))
                    .map(|(name, _)| name.trim())
                    .filter(|name| !name.is_empty())
                    .ok_or_else(|| format!("line {n}: a section header {line:?} is malformed"))?;
                if depth > path.len() + 1 {
                    return Err(format!("line {n}: section {name:?} has no parent section"));
                }
                path.truncate(depth - 1);
                path.push(name.to_owned());
                conf.sections.entry(path.join("/")).or_default();
                continue;
            }
            let (key, raw) = line
                .split_once('=')
                .ok_or_else(|| format!("line {n}: expected `key = value`, found {line:?}"))?;
            let value = parse_value(raw).map_err(|e| format!("line {n}: {e}"))?;
            conf.sections
                .entry(path.join("/"))
                .or_default()
                .insert(key.trim().to_owned(), value);
        }
        Ok(conf)
    }

    pub fn section(&self, name: &str) -> Option<&BTreeMap<String, Value>> {
        self.sections.get(name)
    }

    /// A single value (the first item of a list).
    pub fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section)?.get(key).map(Value::first)
    }

    pub fn list(&self, section: &str, key: &str) -> Vec<&str> {
        match self.section(section).and_then(|s| s.get(key)) {
            Some(Value::One(s)) => vec![s.as_str()],
            Some(Value::List(items)) => items.iter().map(String::as_str).collect(),
            None => Vec::new(),
        }
    }
}

/// A configobj value: quoted ('…', "…", '''…''', """…""") or bare items, separated by
/// commas into a list, with an optional `# comment` after it.
fn parse_value(raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    for quote in ["\"\"\"", "'''"] {
        if let Some(rest) = raw.strip_prefix(quote) {
            let (inner, after) = rest
                .split_once(quote)
                .ok_or("a multi-line value, which certctl does not read")?;
            let after = after.trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(format!("unexpected {after:?} after a quoted value"));
            }
            return Ok(Value::One(inner.to_owned()));
        }
    }
    let mut items = Vec::new();
    let mut list = false;
    let mut chars = raw.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let item = match chars.peek() {
            Some(&q @ ('"' | '\'')) => {
                chars.next();
                let mut item = String::new();
                loop {
                    match chars.next() {
                        Some(c) if c == q => break,
                        Some(c) => item.push(c),
                        None => return Err(format!("an unclosed {q} quote")),
                    }
                }
                Some(item)
            }
            Some('#') | None => None,
            Some(_) => {
                let mut item = String::new();
                while let Some(c) = chars.next_if(|c| *c != ',' && *c != '#') {
                    item.push(c);
                }
                Some(item.trim_end().to_owned())
            }
        };
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            Some(',') => {
                list = true;
                items.extend(item);
            }
            Some('#') | None => {
                items.extend(item);
                break;
            }
            Some(c) => return Err(format!("unexpected {c:?} after a quoted value")),
        }
    }
    Ok(match (list, items.len()) {
        (false, 0) => Value::One(String::new()),
        (false, _) => Value::One(items.remove(0)),
        (true, _) => Value::List(items),
    })
}

/// certbot's folder for a CA's accounts: accounts/<host[:port]><path>/.
pub fn account_dir(server: &Server) -> PathBuf {
    let url = server.url();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    PathBuf::from(rest.trim_end_matches('/'))
}

/// The account key as PKCS#8 DER: certctl's ACME library (instant-acme) signs with ES256,
/// so only a P-256 key can be used; certbot makes RSA account keys.
pub fn account_key_pkcs8(jwk: &serde_json::Value) -> Result<Vec<u8>, String> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let unusable = |what: &str| {
        format!(
            "certbot's account key is {what}, and certctl signs ACME requests with P-256 keys only"
        )
    };
    match (jwk["kty"].as_str(), jwk["crv"].as_str()) {
        (Some("EC"), Some("P-256")) => {
            let field = |name: &str| {
                jwk[name]
                    .as_str()
                    .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                    .ok_or_else(|| format!("certbot's account key lacks its {name:?}"))
            };
            let mut public = vec![4u8];
            public.extend(field("x")?);
            public.extend(field("y")?);
            let pair = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &field("d")?,
                &public,
            )
            .map_err(|e| format!("certbot's account key is not usable: {e}"))?;
            let der = pair
                .to_pkcs8v1()
                .map_err(|_| "certbot's account key could not be encoded".to_owned())?;
            Ok(der.as_ref().to_vec())
        }
        (Some("EC"), curve) => Err(unusable(&format!("EC on {}", curve.unwrap_or("?")))),
        (Some("RSA"), _) => Err(unusable("RSA")),
        (kty, _) => Err(unusable(&format!("of type {}", kty.unwrap_or("?")))),
    }
}

/// A private key as PKCS#8 PEM, whatever form certbot (PKCS#8) or older tools (PKCS#1 for
/// RSA, SEC1 for EC) wrote it in.
pub fn pkcs8_pem(text: &str) -> Result<String, String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair,
    };
    let blocks = ::pem::parse_many(text).map_err(|e| format!("not valid PEM: {e}"))?;
    let block = blocks
        .iter()
        .find(|b| b.tag().ends_with("PRIVATE KEY"))
        .ok_or("holds no private key")?;
    let der: Vec<u8> = match block.tag() {
        "PRIVATE KEY" => block.contents().to_vec(),
        "RSA PRIVATE KEY" => {
            let pair = RsaKeyPair::from_der(block.contents())
                .map_err(|e| format!("the RSA key is not usable: {e}"))?;
            let der: Pkcs8V1Der<'static> = pair
                .as_der()
                .map_err(|_| "the RSA key could not be encoded")?;
            der.as_ref().to_vec()
        }
        "EC PRIVATE KEY" => {
            let pair = EcdsaKeyPair::from_private_key_der(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                block.contents(),
            )
            .or_else(|_| {
                EcdsaKeyPair::from_private_key_der(
                    &ECDSA_P384_SHA384_FIXED_SIGNING,
                    block.contents(),
                )
            })
            .map_err(|e| format!("the EC key is not usable (P-256 and P-384 only): {e}"))?;
            let der = pair
                .to_pkcs8v1()
                .map_err(|_| "the EC key could not be encoded")?;
            der.as_ref().to_vec()
        }
        other => return Err(format!("holds an {other}, which certctl cannot use")),
    };
    Ok(::pem::encode_config(
        &::pem::Pem::new("PRIVATE KEY", der),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENEWAL: &str = "# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/name.test
cert = /etc/letsencrypt/live/name.test/cert.pem

# Options used in the renewal process
[renewalparams]
account = d713b17574582ae0a1978c17c2196d62
http01_port = 2031
http01_address = 127.0.0.1
pre_hook = echo pre
post_hook = \"echo post, with comma\"
renew_hook = 'echo \"deploy\" # x'
webroot_path = /var/www/html,
server = https://127.0.0.1:48069/dir # inline comment
authenticator = standalone
[[webroot_map]]
name.test = /var/www/html
";

    #[test]
    fn renewal_files_read_like_configobj() {
        let conf = RenewalConf::parse(RENEWAL).unwrap();
        assert_eq!(
            conf.value("", "cert"),
            Some("/etc/letsencrypt/live/name.test/cert.pem")
        );
        assert_eq!(conf.value("renewalparams", "http01_port"), Some("2031"));
        assert_eq!(
            conf.value("renewalparams", "post_hook"),
            Some("echo post, with comma")
        );
        assert_eq!(
            conf.value("renewalparams", "renew_hook"),
            Some("echo \"deploy\" # x")
        );
        assert_eq!(
            conf.value("renewalparams", "server"),
            Some("https://127.0.0.1:48069/dir")
        );
        assert_eq!(
            conf.list("renewalparams", "webroot_path"),
            vec!["/var/www/html"]
        );
        assert_eq!(
            conf.value("renewalparams/webroot_map", "name.test"),
            Some("/var/www/html")
        );
        assert_eq!(conf.value("renewalparams", "missing"), None);
    }

    #[test]
    fn configobj_values() {
        assert_eq!(parse_value(" "), Ok(Value::One(String::new())));
        assert_eq!(
            parse_value("/a, /b"),
            Ok(Value::List(vec!["/a".into(), "/b".into()]))
        );
        assert_eq!(
            parse_value("'''it's \"x\"'''"),
            Ok(Value::One("it's \"x\"".into()))
        );
        assert!(parse_value("\"open").is_err());
        assert!(parse_value("'''multi").is_err());
        assert!(RenewalConf::parse("[renewalparams\n").is_err());
        assert!(RenewalConf::parse("no equals sign\n").is_err());
    }

    #[test]
    fn a_p256_account_key_becomes_pkcs8_and_rsa_is_refused() {
        use aws_lc_rs::encoding::AsBigEndian;
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = pair.public_key().as_ref();
        let d = pair.private_key().as_be_bytes().unwrap();
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..]),
            "d": URL_SAFE_NO_PAD.encode(d.as_ref()),
        });
        let der = account_key_pkcs8(&jwk).unwrap();
        let back = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
        assert_eq!(back.public_key().as_ref(), public);
        // and instant-acme takes it as stored credentials
        let credentials: instant_acme::AccountCredentials = serde_json::from_value(
            serde_json::json!({"id": "https://ca/acct/1", "key_pkcs8": URL_SAFE_NO_PAD.encode(&der), "directory": "https://ca/dir"}),
        )
        .unwrap();
        assert_eq!(credentials.private_key().secret_pkcs8_der(), der.as_slice());

        let rsa = serde_json::json!({"kty": "RSA", "n": "x", "e": "AQAB"});
        let err = account_key_pkcs8(&rsa).unwrap_err();
        assert!(err.contains("RSA") && err.contains("P-256"), "{err}");
    }

    #[test]
    fn legacy_key_formats_become_pkcs8() {
        let key = rcgen::KeyPair::generate().unwrap();
        let pkcs8 = key.serialize_pem();
        assert_eq!(pkcs8_pem(&pkcs8).unwrap(), pkcs8.replace("\r\n", "\n"));
        // SEC1 ("EC PRIVATE KEY") through aws-lc-rs
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
        )
        .unwrap();
        use aws_lc_rs::encoding::{AsDer, EcPrivateKeyRfc5915Der};
        let sec1: EcPrivateKeyRfc5915Der<'static> = pair.private_key().as_der().unwrap();
        let sec1_pem = ::pem::encode(&::pem::Pem::new("EC PRIVATE KEY", sec1.as_ref().to_vec()));
        let converted = pkcs8_pem(&sec1_pem).unwrap();
        let again = rcgen::KeyPair::from_pem(&converted).unwrap();
        assert_eq!(again.public_key_pem(), key.public_key_pem());
        assert!(
            pkcs8_pem("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n").is_err()
        );
    }

    #[test]
    fn account_folders_follow_certbot() {
        let server = Server::parse("https://127.0.0.1:14000/dir").unwrap();
        assert_eq!(account_dir(&server), PathBuf::from("127.0.0.1:14000/dir"));
        let le = Server::parse("letsencrypt").unwrap();
        assert_eq!(
            account_dir(&le),
            PathBuf::from("acme-v02.api.letsencrypt.org/directory")
        );
    }
}
