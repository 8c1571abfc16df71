//! Where the key lives: the [`KeyBackend`] trait and its implementations.
//!
//! A backend computes and checks HMAC-SHA256 tags over short messages (a
//! string-to-sign or a payload). The PKCS#11 backend does both inside the
//! token, so the raw key never enters this process.

use std::fmt;

use crate::secret::SecretError;
use crate::tag::Tag;

#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod software;

/// Which implementation holds a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendKind {
    /// The key is in this process ([`software::SoftwareKey`]).
    Software,
    /// The key is inside a PKCS#11 token.
    Pkcs11,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Software => "software",
            Self::Pkcs11 => "pkcs11",
        })
    }
}

/// What is known about a key without touching its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Implementation holding the key.
    pub kind: BackendKind,
    /// Label (`CKA_LABEL`), when the key has one.
    pub label: Option<String>,
    /// Identifier (`CKA_ID`), when the key has one.
    pub id: Option<Vec<u8>>,
    /// Key length in bytes, when the backend can tell.
    pub length: Option<usize>,
    /// Whether the key may compute tags.
    pub can_sign: bool,
    /// Whether the key may check tags.
    pub can_verify: bool,
}

/// A failure of the backend itself (not a tag mismatch).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The software key could not be loaded.
    #[error("cannot load the software key")]
    Secret(#[from] SecretError),
    /// The HMAC implementation refused the key bytes.
    #[error("the HMAC implementation refused the key")]
    KeyRejected,
    /// The PKCS#11 layer failed.
    #[cfg(feature = "pkcs11")]
    #[error(transparent)]
    Pkcs11(#[from] pkcs11::Error),
}

/// Result of [`KeyBackend::verify`] when the tag is not accepted.
///
/// A mismatch carries nothing: the verifier must not be an oracle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The tag does not match the message.
    #[error("signature does not match")]
    Mismatch,
    /// The backend failed before it could decide.
    #[error(transparent)]
    Backend(#[from] Error),
}

/// A key that computes and checks HMAC-SHA256 tags.
///
/// Implementations are shared between threads; each call is independent.
pub trait KeyBackend: Send + Sync + fmt::Debug {
    /// Describes the key.
    fn info(&self) -> &KeyInfo;

    /// Computes HMAC-SHA256 over `msg`.
    ///
    /// # Errors
    /// A backend [`Error`] (token gone, key unusable, ...).
    fn sign(&self, msg: &[u8]) -> Result<Tag, Error>;

    /// Checks `tag` against HMAC-SHA256 over `msg`, in constant time.
    ///
    /// # Errors
    /// [`VerifyError::Mismatch`] when the tag is wrong, [`VerifyError::Backend`]
    /// when the backend could not decide.
    fn verify(&self, msg: &[u8], tag: &Tag) -> Result<(), VerifyError>;
}

/// References and smart pointers to a backend are backends.
macro_rules! forward_key_backend {
    ($($ptr:ty),*) => {$(
        impl<T: KeyBackend + ?Sized> KeyBackend for $ptr {
            fn info(&self) -> &KeyInfo {
                (**self).info()
            }
            fn sign(&self, msg: &[u8]) -> Result<Tag, Error> {
                (**self).sign(msg)
            }
            fn verify(&self, msg: &[u8], tag: &Tag) -> Result<(), VerifyError> {
                (**self).verify(msg, tag)
            }
        }
    )*};
}

forward_key_backend!(&T, Box<T>, std::sync::Arc<T>);
