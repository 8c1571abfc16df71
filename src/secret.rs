//! Secret material read from the environment, a file or standard input.
//!
//! Secrets never come from the command line. Every type here zeroizes its
//! buffer on drop and prints as `<redacted>`.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::SecretString;
use zeroize::{Zeroize, Zeroizing};

/// Where a secret (access key or PIN) is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file; surrounding whitespace is ignored.
    File(PathBuf),
    /// Standard input, read to its end; surrounding whitespace is ignored.
    Stdin,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Stdin => f.write_str("standard input"),
        }
    }
}

/// Why a secret could not be read. Never carries the secret itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// The environment variable holds bytes that are not UTF-8.
    #[error("environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
    /// The file or stream could not be read.
    #[error("cannot read secret from {source_name}")]
    Read {
        /// Where it was read from.
        source_name: SecretSource,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The value is not valid UTF-8 text.
    #[error("secret from {0} is not valid UTF-8 text")]
    NotText(SecretSource),
    /// The value is not standard base64.
    #[error("secret from {0} is not valid base64 (expected the access key exactly as issued)")]
    Base64(SecretSource),
    /// The value is empty.
    #[error("secret from {0} is empty")]
    Empty(SecretSource),
}

/// Raw key bytes: zeroized on drop, `Debug` shows only the length.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of raw key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Decodes a base64 secret exactly as a service issues it (standard
    /// alphabet, padded), ignoring surrounding whitespace.
    ///
    /// # Errors
    /// [`SecretError::Empty`] or [`SecretError::Base64`], naming `origin`.
    pub fn from_base64(text: &str, origin: &SecretSource) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty(origin.clone()));
        }
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| SecretError::Base64(origin.clone()))?;
        if bytes.is_empty() {
            return Err(SecretError::Empty(origin.clone()));
        }
        Ok(Self(bytes))
    }

    /// Reads and decodes a base64 secret from `origin`.
    ///
    /// # Errors
    /// Any [`SecretError`]; the message names the origin, never the value.
    pub fn read_base64(origin: &SecretSource) -> Result<Self, SecretError> {
        let text = read_text(origin)?;
        Self::from_base64(&text, origin)
    }

    /// The raw bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

/// Reads a PIN from `origin`: the whole value with surrounding whitespace
/// (such as the file's trailing newline) removed.
///
/// # Errors
/// Any [`SecretError`]; an empty PIN is [`SecretError::Empty`].
pub fn read_pin(origin: &SecretSource) -> Result<SecretString, SecretError> {
    let text = read_text(origin)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(SecretError::Empty(origin.clone()));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// Reads the whole secret text from `origin` into a buffer that is zeroized on drop.
fn read_text(origin: &SecretSource) -> Result<Zeroizing<String>, SecretError> {
    match origin {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(value) => Ok(Zeroizing::new(value)),
            Err(std::env::VarError::NotPresent) => Err(SecretError::EnvMissing(name.clone())),
            Err(std::env::VarError::NotUnicode(raw)) => {
                let mut bytes = raw.into_encoded_bytes();
                bytes.zeroize();
                Err(SecretError::EnvNotUnicode(name.clone()))
            }
        },
        SecretSource::File(path) => {
            let file = std::fs::File::open(path).map_err(|source| SecretError::Read {
                source_name: origin.clone(),
                source,
            })?;
            read_stream(file, origin)
        }
        SecretSource::Stdin => read_stream(std::io::stdin().lock(), origin),
    }
}

fn read_stream(
    mut reader: impl Read,
    origin: &SecretSource,
) -> Result<Zeroizing<String>, SecretError> {
    // Secrets are short; a cap keeps a wrong path (say, a disk image) from
    // being read whole into memory.
    const LIMIT: u64 = 64 * 1024;
    let mut bytes = Zeroizing::new(Vec::new());
    (&mut reader)
        .take(LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SecretError::Read {
            source_name: origin.clone(),
            source,
        })?;
    if bytes.len() as u64 > LIMIT {
        return Err(SecretError::Read {
            source_name: origin.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "larger than 64 KiB"),
        });
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(SecretError::NotText(origin.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn debug_is_redacted() {
        let key = SecretBytes::new(b"supersecretvalue".to_vec());
        let shown = format!("{key:?}");
        assert_eq!(shown, "SecretBytes(<redacted 16 bytes>)");
        assert!(!shown.contains("supersecret"));
    }

    #[test]
    fn base64_errors_name_the_source_not_the_value() {
        let origin = SecretSource::Env("MY_KEY".into());
        let err = SecretBytes::from_base64("p@ssw0rd!", &origin).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("MY_KEY"), "{text}");
        assert!(!text.contains("p@ssw0rd"), "{text}");
        assert!(matches!(
            SecretBytes::from_base64("  \n", &origin),
            Err(SecretError::Empty(_))
        ));
    }

    #[test]
    fn whitespace_around_base64_is_ignored() {
        let origin = SecretSource::Stdin;
        let key = SecretBytes::from_base64("  YWJj\n", &origin).unwrap();
        assert_eq!(key.expose(), b"abc");
    }

    #[test]
    fn pin_file_is_trimmed_and_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "1234\n").unwrap();
        let pin = read_pin(&SecretSource::File(path.clone())).unwrap();
        assert_eq!(pin.expose_secret(), "1234");
        let missing = dir.path().join("nope");
        let err = read_pin(&SecretSource::File(missing.clone())).unwrap_err();
        assert!(err.to_string().contains(&missing.display().to_string()));
    }
}
