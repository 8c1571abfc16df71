//! The 32-byte HMAC-SHA256 tag, compared in constant time.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Length in bytes of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// An HMAC-SHA256 tag.
///
/// Equality is constant-time, and `Debug` does not print the bytes: a tag
/// that a verifier computed must never end up in a log next to the one a
/// client sent.
#[derive(Clone, Copy)]
pub struct Tag([u8; TAG_LEN]);

/// Why bytes or text could not be turned into a [`Tag`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagError {
    /// The text is not standard base64.
    #[error("signature is not valid base64")]
    Base64,
    /// The decoded value does not have the 32 bytes of an HMAC-SHA256 tag.
    #[error("signature is {0} bytes long, an HMAC-SHA256 tag has 32")]
    Length(usize),
}

impl Tag {
    /// Wraps 32 raw bytes.
    pub const fn new(bytes: [u8; TAG_LEN]) -> Self {
        Self(bytes)
    }

    /// Takes a tag from a byte slice.
    ///
    /// # Errors
    /// [`TagError::Length`] when the slice is not exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, TagError> {
        <[u8; TAG_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| TagError::Length(bytes.len()))
    }

    /// Parses standard (padded) base64, as it appears in a `Signature=` parameter.
    ///
    /// # Errors
    /// [`TagError::Base64`] for text that is not base64, [`TagError::Length`]
    /// when it decodes to anything but 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, TagError> {
        let text = text.trim_ascii();
        // 44 base64 characters decode to 32 bytes; anything longer than 64
        // is refused before decoding, so the stack buffer always suffices.
        if text.len() > 64 {
            return Err(match STANDARD.decode(text) {
                Ok(bytes) => TagError::Length(bytes.len()),
                Err(_) => TagError::Base64,
            });
        }
        let mut buf = [0u8; 48];
        let n = STANDARD
            .decode_slice(text, &mut buf)
            .map_err(|_| TagError::Base64)?;
        Self::from_slice(&buf[..n])
    }

    /// The standard base64 form (44 characters, padded).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; TAG_LEN] {
        &self.0
    }
}

impl PartialEq for Tag {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Tag {}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tag(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        let tag = Tag::new([7; 32]);
        assert_eq!(Tag::from_base64(&tag.to_base64()), Ok(tag));
        assert_eq!(tag.to_base64().len(), 44);
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        assert_eq!(Tag::from_slice(&[0; 31]), Err(TagError::Length(31)));
        assert_eq!(Tag::from_slice(&[0; 33]), Err(TagError::Length(33)));
        assert_eq!(Tag::from_base64("YXNk"), Err(TagError::Length(3)));
        assert_eq!(Tag::from_base64("not base64!"), Err(TagError::Base64));
        let long = STANDARD.encode([0u8; 60]);
        assert_eq!(Tag::from_base64(&long), Err(TagError::Length(60)));
    }

    #[test]
    fn equality_sees_every_byte() {
        let a = Tag::new([1; 32]);
        let mut bytes = [1; 32];
        bytes[31] ^= 0x80;
        assert_ne!(a, Tag::new(bytes));
        assert_eq!(a, Tag::new([1; 32]));
    }

    #[test]
    fn debug_is_redacted() {
        let tag = Tag::new([0xab; 32]);
        let shown = format!("{tag:?}");
        assert_eq!(shown, "Tag(<redacted>)");
        assert!(!shown.contains(&tag.to_base64()));
    }
}
