//! HMAC computed in this process, for development and for verifiers that are
//! handed a secret by their platform.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{BackendKind, Error, KeyBackend, KeyInfo, VerifyError};
use crate::secret::{SecretBytes, SecretSource};
use crate::tag::Tag;

type HmacSha256 = Hmac<Sha256>;

/// A key held in process memory (zeroized on drop, redacted `Debug`).
///
/// The HMAC key schedule (the inner and outer padded-key states) is
/// computed once; each call clones it. Those states are as secret as the
/// key, and are zeroized on drop too (`sha2`/`hmac` built with `zeroize`).
pub struct SoftwareKey {
    keyed: Option<HmacSha256>,
    info: KeyInfo,
}

// The cached HMAC state must wipe itself: fail the build if the digest
// loses its `ZeroizeOnDrop` (the `zeroize` features of sha2/hmac).
const _: () = {
    const fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroized_on_drop::<Sha256>();
};

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("key", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

impl SoftwareKey {
    /// Wraps raw key bytes. Any length is accepted (RFC 2104).
    pub fn new(key: SecretBytes) -> Self {
        // HMAC takes keys of any length (RFC 2104), so this is always `Some`.
        let keyed = HmacSha256::new_from_slice(key.expose()).ok();
        let info = KeyInfo {
            kind: BackendKind::Software,
            label: None,
            id: None,
            length: Some(key.len()),
            can_sign: true,
            can_verify: true,
        };
        Self { keyed, info }
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
        let mut mac = self.keyed.clone().ok_or(Error::KeyRejected)?;
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
