//! TSIG keys (RFC 8945) as BIND writes them (`tsig-keygen`: `key "name" { algorithm
//! hmac-sha256; secret "base64"; };`) or as certbot's rfc2136 credentials hold them, turned
//! into hickory's signer. Every parse error names the file, the line and the field; the
//! secret never appears in a message or in `Debug`.

use std::fmt;

use base64::Engine;
use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::rr::Name;

use crate::error::BadInput;
use crate::settings::Tsig;

/// Allowed difference between our clock and the server's, in seconds (BIND's default).
const FUDGE: u16 = 300;

/// A TSIG key: its name, its algorithm and the secret.
#[derive(Clone)]
pub struct TsigKey {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TsigKey({} {})", self.name, self.algorithm)
    }
}

impl TsigKey {
    /// The key a stored setting names: its key file read now, or the key kept inline. A key
    /// that cannot be used is bad input (exit 2), naming where it came from.
    pub fn load(tsig: &Tsig) -> anyhow::Result<Self> {
        match tsig {
            Tsig::File { key_file } => {
                let bytes = crate::durable::read_small_file(key_file).map_err(|e| {
                    BadInput::new(format!(
                        "--tsig-key {}: {e}; give a key file as `tsig-keygen -a hmac-sha256 NAME` prints it",
                        key_file.display()
                    ))
                })?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    BadInput::new(format!(
                        "--tsig-key {}: not a text file",
                        key_file.display()
                    ))
                })?;
                Self::parse_bind(&text).map_err(|e| {
                    BadInput::new(format!("--tsig-key {}: {e}", key_file.display())).into()
                })
            }
            Tsig::Inline {
                name,
                algorithm,
                secret,
            } => Self::from_parts(name, algorithm, secret.expose())
                .map_err(|e| BadInput::new(format!("the stored TSIG key: {e}")).into()),
        }
    }

    /// A key from its three parts (certbot's dns_rfc2136_name, _algorithm, _secret).
    pub fn from_parts(name: &str, algorithm: &str, secret: &str) -> Result<Self, String> {
        let mut name = Name::from_ascii(name.trim_end_matches('.'))
            .ok()
            .filter(|n| !n.is_root())
            .ok_or_else(|| format!("the key name {name:?} is not a DNS name"))?;
        name.set_fqdn(true);
        let algorithm = parse_algorithm(algorithm)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or("the secret is not base64 (as tsig-keygen prints it)")?;
        Ok(Self {
            name,
            algorithm,
            secret,
        })
    }

    /// Parses a BIND key file: one `key NAME { algorithm ALG; secret "BASE64"; };` clause,
    /// comments (`#`, `//`, `/* */`) allowed. Errors name the line and the field.
    pub fn parse_bind(text: &str) -> Result<Self, String> {
        let tokens = tokenize(text)?;
        let mut it = tokens.iter().peekable();
        let mut keys = Vec::new();
        while let Some(tok) = it.next() {
            let at = |t: &Token| format!("line {}", t.line);
            if tok.text != "key" {
                return Err(format!(
                    "{}: expected `key \"NAME\" {{ ... }};`, found {:?}",
                    at(tok),
                    tok.text
                ));
            }
            let name = it
                .next()
                .ok_or(format!("{}: the key has no name", at(tok)))?;
            let open = it
                .next()
                .filter(|t| t.text == "{" && !t.quoted)
                .ok_or(format!("{}: expected `{{` after the key name", at(name)))?;
            let (mut algorithm, mut secret) = (None, None);
            loop {
                let field = it.next().ok_or(format!(
                    "{}: the key clause is not closed with `}};`",
                    at(open)
                ))?;
                if field.text == "}" && !field.quoted {
                    break;
                }
                let value =
                    it.next()
                        .ok_or(format!("{}: {} has no value", at(field), field.text))?;
                match it.next() {
                    Some(t) if t.text == ";" && !t.quoted => {}
                    _ => {
                        return Err(format!(
                            "{}, field {}: expected `;` after the value",
                            at(value),
                            field.text
                        ));
                    }
                }
                match field.text.as_str() {
                    "algorithm" => {
                        parse_algorithm(&value.text)
                            .map_err(|e| format!("{}, field algorithm: {e}", at(value)))?;
                        algorithm = Some(value);
                    }
                    "secret" => {
                        base64::engine::general_purpose::STANDARD
                            .decode(&value.text)
                            .ok()
                            .filter(|s| !s.is_empty())
                            .ok_or(format!(
                                "{}, field secret: not base64 (as tsig-keygen prints it)",
                                at(value)
                            ))?;
                        secret = Some(value);
                    }
                    other => {
                        return Err(format!(
                            "{}: unknown field {other:?} in the key clause (expected algorithm and secret)",
                            at(field)
                        ));
                    }
                }
            }
            if let Some(t) = it.peek().filter(|t| t.text == ";" && !t.quoted) {
                let _ = t;
                it.next();
            }
            let algorithm = algorithm.ok_or(format!(
                "{}, key {:?}: no algorithm field",
                at(tok),
                name.text
            ))?;
            let secret =
                secret.ok_or(format!("{}, key {:?}: no secret field", at(tok), name.text))?;
            keys.push(
                Self::from_parts(&name.text, &algorithm.text, &secret.text)
                    .map_err(|e| format!("{}, field name: {e}", at(name)))?,
            );
        }
        match keys.len() {
            1 => Ok(keys.remove(0)),
            0 => Err("holds no `key \"NAME\" { algorithm ...; secret \"...\"; };` clause".into()),
            n => Err(format!(
                "holds {n} keys; give a file with the one key to use"
            )),
        }
    }

    /// The key's name as people write it (no trailing dot).
    pub fn label(&self) -> String {
        self.name.to_ascii().trim_end_matches('.').to_owned()
    }

    /// The signer for UPDATE messages.
    pub fn signer(&self) -> anyhow::Result<TSigner> {
        TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.name.clone(),
            FUDGE,
        )
        .map_err(|e| anyhow::anyhow!("the TSIG key {}: {e}", self.name))
    }
}

/// A TSIG algorithm name as BIND and certbot write it (any case, e.g. HMAC-SHA512).
fn parse_algorithm(raw: &str) -> Result<TsigAlgorithm, String> {
    const SUPPORTED: &str = "hmac-sha256, hmac-sha384 or hmac-sha512";
    let lower = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let algorithm = match lower.as_str() {
        "hmac-sha256" => TsigAlgorithm::HmacSha256,
        "hmac-sha384" => TsigAlgorithm::HmacSha384,
        "hmac-sha512" => TsigAlgorithm::HmacSha512,
        "hmac-md5" | "hmac-md5.sig-alg.reg.int" | "hmac-sha1" | "hmac-sha224" => {
            return Err(format!(
                "the TSIG algorithm {raw:?} is too weak for certctl; make a key with {SUPPORTED} \
                 (tsig-keygen -a hmac-sha256 NAME)"
            ));
        }
        _ => return Err(format!("unknown TSIG algorithm {raw:?}; use {SUPPORTED}")),
    };
    Ok(algorithm)
}

struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

/// Words, quoted strings and `{ } ;`, with their line; comments dropped.
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|c| *c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'/') => while chars.next_if(|c| *c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'*') => {
                let start = line;
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        None => return Err(format!("line {start}: a /* comment is not closed")),
                        Some('/') if last == '*' => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            last = c;
                        }
                    }
                }
            }
            '{' | '}' | ';' => tokens.push(Token {
                text: c.to_string(),
                quoted: false,
                line,
            }),
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => {
                            return Err(format!("line {start}: a quoted string is not closed"));
                        }
                        Some('"') => break,
                        Some(c) => s.push(c),
                    }
                }
                tokens.push(Token {
                    text: s,
                    quoted: true,
                    line: start,
                });
            }
            c => {
                let mut s = c.to_string();
                while let Some(c) =
                    chars.next_if(|c| !c.is_whitespace() && !matches!(c, '{' | '}' | ';' | '"'))
                {
                    s.push(c);
                }
                tokens.push(Token {
                    text: s,
                    quoted: false,
                    line,
                });
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "key \"certctl-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"PMf4Hk7CxDM1wm/jDZvAsZJkaUwg9GGCy4R2mmoWhyU=\";\n};\n";

    #[test]
    fn tsig_keygen_output_parses() {
        let key = TsigKey::parse_bind(KEY).unwrap();
        assert_eq!(key.name.to_string(), "certctl-key.");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(key.secret.len(), 32);
        assert!(!format!("{key:?}").contains("PMf4"));
        let commented = format!(
            "# made by tsig-keygen\n/* a\n comment */ {}// end\n",
            KEY.replace("hmac-sha256", "HMAC-SHA512")
        );
        let key = TsigKey::parse_bind(&commented).unwrap();
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
        assert!(TsigKey::parse_bind(&KEY.replace("\"certctl-key\"", "certctl-key")).is_ok());
    }

    #[test]
    fn bad_key_files_name_the_line_and_the_field() {
        let cases = [
            (
                KEY.replace("hmac-sha256", "hmac-sha999"),
                "line 2, field algorithm: unknown TSIG algorithm \"hmac-sha999\"",
            ),
            (
                KEY.replace("hmac-sha256", "hmac-md5"),
                "line 2, field algorithm: the TSIG algorithm \"hmac-md5\" is too weak",
            ),
            (
                KEY.replace("PMf4Hk7", "not base64!"),
                "line 3, field secret: not base64",
            ),
            (
                KEY.replace(
                    "\tsecret \"PMf4Hk7CxDM1wm/jDZvAsZJkaUwg9GGCy4R2mmoWhyU=\";\n",
                    "",
                ),
                "line 1, key \"certctl-key\": no secret field",
            ),
            (
                KEY.replace("hmac-sha256;", "hmac-sha256"),
                "line 2, field algorithm: expected `;`",
            ),
            (KEY.replace("};", ""), "not closed"),
            ("".to_owned(), "holds no `key"),
            (format!("{KEY}{KEY}"), "holds 2 keys"),
            ("options { };".to_owned(), "line 1: expected `key"),
            (
                KEY.replace("algorithm", "algo"),
                "line 2: unknown field \"algo\"",
            ),
        ];
        for (text, expected) in cases {
            let err = TsigKey::parse_bind(&text).err().unwrap_or_default();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("PMf4"), "the secret in an error: {err}");
        }
    }

    #[test]
    fn certbot_credentials_parts_make_a_key() {
        let key = TsigKey::from_parts("keyname.", "HMAC-SHA512", "c2VjcmV0").unwrap();
        assert_eq!(key.name.to_string(), "keyname.");
        assert!(key.signer().is_ok());
        assert!(TsigKey::from_parts("k", "hmac-sha256", "").is_err());
        assert!(
            TsigKey::from_parts("k", "gss-tsig", "c2VjcmV0")
                .unwrap_err()
                .contains("unknown TSIG algorithm")
        );
    }
}
