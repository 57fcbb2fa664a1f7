//! The private key as HAProxy reads it fastest: an EC key in PKCS#8 (`BEGIN PRIVATE KEY`,
//! how certctl stores it) is sent over the runtime API as SEC1 (`BEGIN EC PRIVATE KEY`, the
//! curve named in it), the same key: HAProxy 2.6 with OpenSSL 3.0 spends 1.3-1.5 ms of CPU
//! on a `set ssl cert` then instead of 1.8-2.0 (BENCHMARKS.md). Any other key, or anything
//! not understood, is sent as it is. Pure functions over bytes; the bundle file is untouched.

use std::borrow::Cow;

const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const END: &str = "-----END PRIVATE KEY-----";

/// `bundle` with its PKCS#8 EC key, if it has one, rewritten as SEC1.
pub fn for_cli(bundle: &str) -> Cow<'_, str> {
    let Some(start) = bundle.find(BEGIN) else {
        return Cow::Borrowed(bundle);
    };
    let Some(end) = bundle[start..].find(END).map(|i| start + i + END.len()) else {
        return Cow::Borrowed(bundle);
    };
    let Some(sec1) = pem::parse(&bundle[start..end])
        .ok()
        .and_then(|block| pkcs8_ec_to_sec1(block.contents()))
    else {
        return Cow::Borrowed(bundle);
    };
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let text = pem::encode_config(&pem::Pem::new("EC PRIVATE KEY", sec1), config);
    Cow::Owned(format!(
        "{}{}{}",
        &bundle[..start],
        text.trim_end(),
        &bundle[end..]
    ))
}

/// id-ecPublicKey (1.2.840.10045.2.1), the algorithm of every PKCS#8 EC key.
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// The SEC1 `ECPrivateKey` inside a PKCS#8 EC key, with the curve's OID as its
/// `parameters` ([0]) when it has none; None for anything else.
fn pkcs8_ec_to_sec1(der: &[u8]) -> Option<Vec<u8>> {
    let (0x30, info, []) = tlv(der)? else {
        return None;
    };
    let (0x02, [0], info) = tlv(info)? else {
        return None;
    };
    let (0x30, algorithm, info) = tlv(info)? else {
        return None;
    };
    let (0x06, EC_PUBLIC_KEY, curve) = tlv(algorithm)? else {
        return None;
    };
    let (0x06, curve, []) = tlv(curve)? else {
        return None;
    };
    let (0x04, inner, _attributes) = tlv(info)? else {
        return None;
    };
    let (0x30, key, []) = tlv(inner)? else {
        return None;
    };
    let (0x02, [1], key) = tlv(key)? else {
        return None;
    };
    let (0x04, secret, rest) = tlv(key)? else {
        return None;
    };
    let mut body = encode(0x02, &[1]);
    body.extend(encode(0x04, secret));
    if rest.first() != Some(&0xa0) {
        body.extend(encode(0xa0, &encode(0x06, curve)));
    }
    body.extend_from_slice(rest);
    Some(encode(0x30, &body))
}

/// The first DER element of `input`: its tag, its contents, what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 2 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // a P-256 key from `openssl genpkey`, and what `openssl ec` makes of it
    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgH5d7xS6YsLzG0nry
bf4xCQHwPtxHCunii5jppnKZL5WhRANCAARt80sdfHbebxFT9skx8OurCDtkuWnn
t6stizSM4YFlF2IZ9EAMQ/+Pa7BnJekC4Df0kefnWhmUuJQJCGh7sR7y
-----END PRIVATE KEY-----";
    const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIB+Xe8UumLC8xtJ68m3+MQkB8D7cRwrp4ouY6aZymS+VoAoGCCqGSM49
AwEHoUQDQgAEbfNLHXx23m8RU/bJMfDrqwg7ZLlp57erLYs0jOGBZRdiGfRADEP/
j2uwZyXpAuA39JHn51oZlLiUCQhoe7Ee8g==
-----END EC PRIVATE KEY-----";

    #[test]
    fn an_ec_key_is_sent_as_openssl_ec_writes_it() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let bundle = format!("{cert}{PKCS8}\n");
        assert_eq!(for_cli(&bundle), format!("{cert}{SEC1}\n"));
    }

    #[test]
    fn anything_else_is_sent_as_it_is() {
        let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let rsa = rsa.serialize_pem();
        assert!(matches!(for_cli(&rsa), Cow::Borrowed(_)));
        let damaged = PKCS8.replace("MIGHAgEA", "MIGHAgEB");
        assert!(matches!(for_cli(&damaged), Cow::Borrowed(_)));
        assert!(matches!(for_cli("no key here"), Cow::Borrowed(_)));
        assert!(matches!(for_cli(SEC1), Cow::Borrowed(_)));
        let cut = &PKCS8[..PKCS8.len() - 10];
        assert!(matches!(for_cli(cut), Cow::Borrowed(_)));
    }

    #[test]
    fn der_lengths_round_trip() {
        for len in [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x1234] {
            let contents = vec![7u8; len];
            let der = encode(0x04, &contents);
            assert_eq!(tlv(&der), Some((0x04, &contents[..], &[][..])));
        }
        assert_eq!(tlv(&[0x04, 0x05, 1, 2]), None);
        assert_eq!(tlv(&[0x04, 0x80]), None);
    }
}
