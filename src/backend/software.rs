//! HMAC computed in this process, for development and for verifiers that are
//! handed a secret by their platform.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{BackendKind, Error, KeyBackend, KeyInfo, VerifyError};
use crate::secret::{SecretBytes, SecretSource};
use crate::tag::Tag;

type HmacSha256 = Hmac<Sha256>;

/// A key held in process memory (zeroized on drop, redacted `Debug`).
#[derive(Debug)]
pub struct SoftwareKey {
    key: SecretBytes,
    info: KeyInfo,
}

impl SoftwareKey {
    /// Wraps raw key bytes. Any length is accepted (RFC 2104).
    pub fn new(key: SecretBytes) -> Self {
        let info = KeyInfo {
            kind: BackendKind::Software,
            label: None,
            id: None,
            length: Some(key.len()),
            can_sign: true,
            can_verify: true,
        };
        Self { key, info }
    }

    /// Reads a base64 access key from the environment, a file or standard input.
    ///
    /// # Errors
    /// [`Error::Secret`] naming the source when it is missing, unreadable,
    /// empty or not base64. The value is never part of the message.
    pub fn from_source(source: &SecretSource) -> Result<Self, Error> {
        Ok(Self::new(SecretBytes::read_base64(source)?))
    }

    fn mac(&self, msg: &[u8]) -> Result<HmacSha256, Error> {
        // HMAC accepts keys of any length (RFC 2104), so this does not fail in
        // practice; the error keeps the library free of `unwrap`.
        let mut mac =
            HmacSha256::new_from_slice(self.key.expose()).map_err(|_| Error::KeyRejected)?;
        mac.update(msg);
        Ok(mac)
    }
}

impl KeyBackend for SoftwareKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    fn sign(&self, msg: &[u8]) -> Result<Tag, Error> {
        Ok(Tag::new(self.mac(msg)?.finalize().into_bytes().into()))
    }

    fn verify(&self, msg: &[u8], tag: &Tag) -> Result<(), VerifyError> {
        // `verify_slice` compares in constant time.
        self.mac(msg)?
            .verify_slice(tag.as_bytes())
            .map_err(|_| VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = SoftwareKey::new(SecretBytes::new(b"0123456789abcdef-secret".to_vec()));
        let shown = format!("{key:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn verify_accepts_own_tag_and_rejects_flipped_bit() {
        let key = SoftwareKey::new(SecretBytes::new(vec![0x0b; 20]));
        let tag = key.sign(b"Hi There").unwrap();
        key.verify(b"Hi There", &tag).unwrap();
        let mut bytes = *tag.as_bytes();
        bytes[0] ^= 1;
        assert!(matches!(
            key.verify(b"Hi There", &Tag::new(bytes)),
            Err(VerifyError::Mismatch)
        ));
    }
}
