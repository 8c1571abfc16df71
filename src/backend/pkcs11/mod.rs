//! Keys inside a PKCS#11 token: `CKM_SHA256_HMAC` runs in the token and the
//! key bytes never enter this process.
//!
//! - [`module`]: one initialized context per module per process, token lookup, login;
//! - `pool`: bounded sessions with recovery from session loss;
//! - [`provision`]: import, generate, list, delete (off the hot path);
//! - [`uri`]: RFC 7512 URIs.

use std::fmt;
use std::path::PathBuf;

use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use secrecy::SecretString;

use super::{BackendKind, KeyBackend, KeyInfo, VerifyError};
use crate::tag::Tag;

pub mod error;
pub mod module;
mod pool;
pub mod provision;
pub mod uri;

pub use error::Error;
pub use module::TokenSelector;
pub use pool::PoolOptions;

/// Where the token is and how to log in.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// Path of the PKCS#11 module.
    pub module: PathBuf,
    /// Which token.
    pub token: TokenSelector,
    /// The user PIN (redacted `Debug`, zeroized on drop).
    pub pin: Option<SecretString>,
}

/// Which secret key: by label, id, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySelector {
    /// `CKA_LABEL`.
    pub label: Option<String>,
    /// `CKA_ID`.
    pub id: Option<Vec<u8>>,
}

impl fmt::Display for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.label, &self.id) {
            (Some(l), Some(id)) => write!(f, "label {l:?} and id {}", hex(id)),
            (Some(l), None) => write!(f, "label {l:?}"),
            (None, Some(id)) => write!(f, "id {}", hex(id)),
            (None, None) => f.write_str("no label or id"),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (an optional `0x` prefix and `:` separators are allowed).
///
/// # Errors
/// [`Error::BadId`] for anything else, or an empty id.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, Error> {
    let clean: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if clean.is_empty() || clean.len() % 2 != 0 {
        return Err(Error::BadId(text.to_owned()));
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| {
            clean
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::BadId(text.to_owned()))
        })
        .collect()
}

impl KeySelector {
    /// The search template: secret keys with this label and/or id.
    fn template(&self) -> Vec<Attribute> {
        let mut t = vec![Attribute::Class(ObjectClass::SECRET_KEY)];
        if let Some(label) = &self.label {
            t.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &self.id {
            t.push(Attribute::Id(id.clone()));
        }
        t
    }

    /// Exactly one matching secret key.
    ///
    /// # Errors
    /// [`Error::KeyNotNamed`], [`Error::KeyNotFound`], [`Error::AmbiguousKey`].
    pub fn find_one(&self, session: &Session, token: &str) -> Result<ObjectHandle, Error> {
        if self.label.is_none() && self.id.is_none() {
            return Err(Error::KeyNotNamed);
        }
        // A key another process has just written can be briefly invisible in
        // SoftHSM's file store: look again a few times before "not found".
        let found = module::retry_transient(
            || {
                let found = session
                    .find_objects(&self.template())
                    .map_err(Error::op("finding the key"))?;
                if found.is_empty() {
                    return Err(Error::KeyNotFound {
                        selector: self.to_string(),
                        token: token.to_owned(),
                    });
                }
                Ok(found)
            },
            |e| matches!(e, Error::KeyNotFound { .. }),
        )?;
        match found.as_slice() {
            [one] => Ok(*one),
            many => Err(Error::AmbiguousKey {
                selector: self.to_string(),
                token: token.to_owned(),
                count: many.len(),
            }),
        }
    }
}

/// An HMAC key inside a PKCS#11 token.
///
/// Safe to share between threads: each call leases its own session from a
/// bounded pool.
pub struct Pkcs11Backend {
    pool: pool::Pool,
    info: KeyInfo,
    /// The token's smallest `CKM_SHA256_HMAC` key, in bytes.
    min_key_len: usize,
}

impl fmt::Debug for Pkcs11Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Backend")
            .field("token", &self.pool.token())
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The range of key sizes the token accepts for `CKM_SHA256_HMAC`, in bytes.
///
/// # Errors
/// [`Error::MechanismUnsupported`] when the token does not offer it.
pub fn hmac_key_range(
    ctx: &cryptoki::context::Pkcs11,
    slot: cryptoki::slot::Slot,
    token: &str,
) -> Result<(usize, usize), Error> {
    match ctx.get_mechanism_info(slot, MechanismType::SHA256_HMAC) {
        Ok(info) if info.sign() && info.verify() => Ok((info.min_key_size(), info.max_key_size())),
        Ok(_) => Err(Error::MechanismUnsupported {
            token: token.to_owned(),
        }),
        Err(e) if error::rv_of(&e) == Some(RvError::MechanismInvalid) => {
            Err(Error::MechanismUnsupported {
                token: token.to_owned(),
            })
        }
        Err(e) => Err(Error::op("reading CKM_SHA256_HMAC limits")(e)),
    }
}

impl Pkcs11Backend {
    /// Loads the module, finds the token, logs in, and resolves the key
    /// once (exactly one secret key must match). Checks that the key may
    /// sign and is long enough for the token's `CKM_SHA256_HMAC`.
    ///
    /// # Errors
    /// Any [`Error`]: module, token, PIN, key not found or ambiguous, key
    /// not allowed to sign, key too short.
    pub fn open(spec: &TokenSpec, key: &KeySelector, options: PoolOptions) -> Result<Self, Error> {
        let ctx = module::context(&spec.module)?;
        let found = module::find_token(&ctx, &spec.token)?;
        let pin = spec.pin.clone().ok_or_else(|| Error::PinMissing {
            token: found.label.clone(),
        })?;
        let (min, _) = hmac_key_range(&ctx, found.slot, &found.label)?;
        let pool = pool::Pool::new(
            ctx,
            found.slot,
            found.label.clone(),
            pin,
            key.clone(),
            options,
        )?;
        let attrs = pool
            .run(
                "reading key attributes",
                |_| false,
                |s, h| {
                    s.get_attributes(
                        h,
                        &[
                            AttributeType::Label,
                            AttributeType::Id,
                            AttributeType::ValueLen,
                            AttributeType::Sign,
                            AttributeType::Verify,
                        ],
                    )
                },
            )?
            .map_err(Error::op("reading key attributes"))?;
        let mut info = KeyInfo {
            kind: BackendKind::Pkcs11,
            label: None,
            id: None,
            length: None,
            can_sign: false,
            can_verify: false,
        };
        for attr in attrs {
            match attr {
                Attribute::Label(l) => info.label = Some(String::from_utf8_lossy(&l).into_owned()),
                Attribute::Id(id) => info.id = Some(id),
                Attribute::ValueLen(n) => info.length = Some(usize::from(n)),
                Attribute::Sign(b) => info.can_sign = b,
                Attribute::Verify(b) => info.can_verify = b,
                _ => {}
            }
        }
        if !info.can_sign {
            return Err(Error::KeyCannotSign {
                selector: key.to_string(),
            });
        }
        if let Some(length) = info.length.filter(|n| *n < min) {
            return Err(Error::KeyTooShort {
                selector: key.to_string(),
                length,
                min,
            });
        }
        Ok(Self {
            pool,
            info,
            min_key_len: min,
        })
    }

    /// How many times the pool recovered from session loss.
    pub fn recoveries(&self) -> u64 {
        self.pool.recoveries()
    }

    fn map_sign_error(&self, e: cryptoki::error::Error) -> Error {
        let selector = || KeySelector {
            label: self.info.label.clone(),
            id: self.info.id.clone(),
        };
        match error::rv_of(&e) {
            Some(RvError::KeySizeRange) => Error::KeyTooShort {
                selector: selector().to_string(),
                length: self.info.length.unwrap_or(0),
                min: self.min_key_len,
            },
            Some(RvError::KeyFunctionNotPermitted) => Error::KeyCannotSign {
                selector: selector().to_string(),
            },
            _ => Error::op("C_Sign with CKM_SHA256_HMAC")(e),
        }
    }
}

impl KeyBackend for Pkcs11Backend {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    fn sign(&self, msg: &[u8]) -> Result<Tag, super::Error> {
        let tag = self
            .pool
            .run(
                "signing",
                |_| false,
                |s, key| s.sign(&Mechanism::Sha256Hmac, key, msg),
            )?
            .map_err(|e| self.map_sign_error(e))?;
        Ok(Tag::from_slice(&tag).map_err(|_| {
            Error::op("C_Sign returned a tag that is not 32 bytes")(
                cryptoki::error::Error::InvalidValue,
            )
        })?)
    }

    fn verify(&self, msg: &[u8], tag: &Tag) -> Result<(), VerifyError> {
        let mismatch = |e: &cryptoki::error::Error| {
            matches!(
                error::rv_of(e),
                Some(RvError::SignatureInvalid | RvError::SignatureLenRange)
            )
        };
        match self.pool.run("verifying", mismatch, |s, key| {
            s.verify(&Mechanism::Sha256Hmac, key, msg, tag.as_bytes())
        }) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if mismatch(&e) => Err(VerifyError::Mismatch),
            Ok(Err(e)) => Err(VerifyError::Backend(
                Error::op("C_Verify with CKM_SHA256_HMAC")(e).into(),
            )),
            Err(e) => Err(VerifyError::Backend(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(parse_hex("0a1B").unwrap(), vec![0x0a, 0x1b]);
        assert_eq!(parse_hex("0x01:02").unwrap(), vec![1, 2]);
        assert_eq!(hex(&[0, 255]), "00ff");
        for bad in ["", "abc", "zz", "0x"] {
            assert!(parse_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selector_display() {
        let s = KeySelector {
            label: Some("k".into()),
            id: Some(vec![1]),
        };
        assert_eq!(s.to_string(), "label \"k\" and id 01");
    }
}
