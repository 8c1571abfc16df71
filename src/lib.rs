//! Sign and verify HTTP requests with HMAC-SHA256 in the two Azure dialects
//! (Communication Services `acs`, App Configuration `appconfig`), with the key
//! either in process ([`backend::software`]) or inside a PKCS#11 token
//! (`backend::pkcs11`, feature `pkcs11`), where `CKM_SHA256_HMAC` runs in the
//! token and this process never sees the key bytes.
//!
//! - [`request::canonical`]: string-to-sign, host, path-and-query, content hash (pure);
//! - [`request::sign`]: [`RequestSigner`] returns the headers to add;
//! - [`request::verify`]: [`verify_request`] names the App Configuration 401 reason;
//! - [`backend`]: the [`KeyBackend`] trait;
//! - [`config`]: TOML profiles.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use hsm_signer::{ContentHash, RequestSigner, SecretBytes, SoftwareKey};
//!
//! let key = SoftwareKey::new(SecretBytes::from_base64("c2VjcmV0", &hsm_signer::SecretSource::Stdin)?);
//! let signer = RequestSigner::acs(key);
//! let at = UNIX_EPOCH + Duration::from_secs(1_526_064_516);
//! let body = ContentHash::of_bytes(b"");
//! let headers = signer.sign("get", "https://contoso.example.com/kv?fields=*", &body, at)?;
//! assert_eq!(headers.date, "Fri, 11 May 2018 18:48:36 GMT");
//! assert_eq!(
//!     headers.string_to_sign.as_str(),
//!     "GET\n/kv?fields=*\nFri, 11 May 2018 18:48:36 GMT;contoso.example.com;47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod backend;
pub mod config;
pub mod error;
pub mod request;
pub mod secret;
pub mod tag;

pub use backend::software::SoftwareKey;
pub use backend::{BackendKind, KeyBackend, KeyInfo, VerifyError};
pub use error::Error;
pub use request::canonical::{ContentHash, StringToSign, Target};
pub use request::sign::{Dialect, RequestSigner, SignedHeaders};
pub use request::verify::{verify_request, ReceivedRequest, Rejection, VerifyPolicy};
pub use secret::{SecretBytes, SecretSource};
pub use tag::Tag;

/// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
