//! Secrets sealed before they leave the node: AES-256-GCM (aws-lc-rs) under the store key,
//! a 32-byte key kept base64 in `store_key_file` (0600, the same on every node). A sealed
//! value is `certctl-sealed:1:` + base64(nonce || ciphertext || tag). Never logs a key.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const MARK: &[u8] = b"certctl-sealed:1:";
/// What every sealed value is bound to (the additional data).
const AAD: &[u8] = b"certctl store";

/// The store key, read once.
pub struct Sealer {
    key: LessSafeKey,
    /// Names the key file in messages.
    pub file: String,
}

impl Sealer {
    /// Reads the key file; refuses one others may read, or that does not hold a key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let file = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| {
            anyhow::anyhow!(
                "reading the store key {file}: {e}; `certctl store init-key` makes one (copy the \
                 same file to every node)"
            )
        })?;
        if meta.mode() & 0o077 != 0 {
            anyhow::bail!(
                "the store key {file} may be read by others (mode {:o}); `chmod 600 {file}`",
                meta.mode() & 0o777
            );
        }
        let text = crate::durable::read_small_file(path)
            .map_err(|e| anyhow::anyhow!("reading the store key {file}: {e}"))?;
        let raw = STANDARD
            .decode(String::from_utf8_lossy(&text).trim())
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the store key {file} does not hold a key (32 bytes, base64); \
                     `certctl store init-key` makes one"
                )
            })?;
        Ok(Self::from_bytes(&raw, file))
    }

    fn from_bytes(raw: &[u8], file: String) -> Self {
        // the length is checked by the callers: 32 bytes is AES-256's key
        let key = UnboundKey::new(&AES_256_GCM, raw).expect("a 32-byte AES-256 key");
        Self {
            key: LessSafeKey::new(key),
            file,
        }
    }

    pub fn seal(&self, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut data,
            )
            .map_err(|_| anyhow::anyhow!("sealing a value failed"))?;
        let mut all = nonce.to_vec();
        all.extend(data);
        let mut out = MARK.to_vec();
        out.extend(STANDARD.encode(all).into_bytes());
        Ok(out)
    }

    /// Opens a sealed value; `label` names it in the error.
    pub fn open(&self, sealed: &[u8], label: &str) -> anyhow::Result<Vec<u8>> {
        let body = sealed.strip_prefix(MARK).ok_or_else(|| {
            anyhow::anyhow!("{label} is not sealed; it was not written by certctl")
        })?;
        let raw = STANDARD
            .decode(body)
            .ok()
            .filter(|r| r.len() > NONCE_LEN)
            .ok_or_else(|| anyhow::anyhow!("{label} is damaged"))?;
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("{label} is damaged"))?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut data)
            .map_err(|_| {
                anyhow::anyhow!(
                    "{label} does not open with the store key {}: this node's key is not the one \
                     the store was sealed with; copy store_key_file from a node that works",
                    self.file
                )
            })?;
        Ok(plain.to_vec())
    }
}

/// A new store key, base64, for `certctl store init-key`.
pub fn new_key() -> anyhow::Result<String> {
    let mut raw = [0u8; 32];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| anyhow::anyhow!("no randomness for a store key"))?;
    Ok(format!("{}\n", STANDARD.encode(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only() {
        let one = Sealer::from_bytes(&[1; 32], "one".into());
        let two = Sealer::from_bytes(&[2; 32], "two".into());
        let sealed = one.seal(b"-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
        assert_eq!(
            one.open(&sealed, "v").unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        let err = format!("{:#}", two.open(&sealed, "v").unwrap_err());
        assert!(
            err.contains("does not open with the store key two"),
            "{err}"
        );
        assert!(one.open(b"plain", "v").is_err());
    }
}
