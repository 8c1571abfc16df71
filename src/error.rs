//! The crate-level error: one enum over the errors of each layer.

use crate::backend;
use crate::config::ConfigError;
use crate::request::sign::SignError;
use crate::request::verify::VerifyRequestError;
use crate::secret::SecretError;

/// Any failure of the library, by layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a secret (key or PIN).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The key backend.
    #[error(transparent)]
    Backend(#[from] backend::Error),
    /// Signing a request.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Verifying a request.
    #[error(transparent)]
    Verify(#[from] VerifyRequestError),
    /// Configuration and key selection.
    #[error(transparent)]
    Config(#[from] ConfigError),
}
