//! Errors of the PKCS#11 layer, in words a user can act on.

use std::fmt;
use std::path::PathBuf;

use cryptoki::error::{Error as CkError, RvError};

/// A raw cryptoki failure shown as `C_Function: CKR_NAME`.
#[derive(Debug)]
pub struct Ck(pub CkError);

impl fmt::Display for Ck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            CkError::Pkcs11(rv, function) => {
                write!(f, "C_{function:?}: {}", rv_name(*rv))
            }
            other => write!(f, "{other}"),
        }
    }
}

impl std::error::Error for Ck {}

/// `CKR_PIN_INCORRECT` from `RvError::PinIncorrect`.
pub fn rv_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The return value of a cryptoki error, if it came from the module.
pub fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// A failure of the PKCS#11 backend or of provisioning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No module path was given.
    #[error(
        "no PKCS#11 module: use --module PATH, HSM_SIGNER_MODULE or module-path in --pkcs11-uri"
    )]
    NoModule,
    /// The module file does not exist.
    #[error("PKCS#11 module {0} does not exist (for SoftHSM2: apt-get install softhsm2, module /usr/lib/softhsm/libsofthsm2.so)")]
    ModuleMissing(PathBuf),
    /// The file is not a loadable PKCS#11 library.
    #[error("{path} is not a loadable PKCS#11 library")]
    NotPkcs11Library {
        /// The file.
        path: PathBuf,
        /// The loader's error.
        #[source]
        source: Ck,
    },
    /// `C_Initialize` failed.
    #[error("cannot initialize PKCS#11 module {path}")]
    Initialize {
        /// The module.
        path: PathBuf,
        /// The module's error.
        #[source]
        source: Ck,
    },
    /// No token has the label.
    #[error("no token labelled {label:?} (tokens present: {available})")]
    TokenNotFound {
        /// Label asked for.
        label: String,
        /// Labels present, comma-separated, or `none`.
        available: String,
    },
    /// No token in the slot.
    #[error("no token in slot {slot} (tokens present: {available})")]
    SlotNotFound {
        /// Slot asked for.
        slot: u64,
        /// Labels and slots present.
        available: String,
    },
    /// No token was named and there is not exactly one.
    #[error("name the token with --token-label (tokens present: {available})")]
    TokenNotNamed {
        /// Labels present.
        available: String,
    },
    /// No PIN source was given.
    #[error("no PIN for token {token:?}: use --pin-env VAR, --pin-file PATH or HSM_SIGNER_PIN")]
    PinMissing {
        /// Token label.
        token: String,
    },
    /// `CKR_PIN_INCORRECT`.
    #[error("wrong PIN for token {token:?} (CKR_PIN_INCORRECT)")]
    PinIncorrect {
        /// Token label.
        token: String,
    },
    /// `CKR_PIN_LOCKED`.
    #[error("the PIN of token {token:?} is locked (CKR_PIN_LOCKED): unlock it with the SO PIN")]
    PinLocked {
        /// Token label.
        token: String,
    },
    /// Login failed for another reason.
    #[error("cannot log in to token {token:?}")]
    Login {
        /// Token label.
        token: String,
        /// The module's error.
        #[source]
        source: Ck,
    },
    /// No secret key matches.
    #[error("key not found: no secret key with {selector} in token {token:?}")]
    KeyNotFound {
        /// What was looked for.
        selector: String,
        /// Token label.
        token: String,
    },
    /// Several secret keys match.
    #[error(
        "ambiguous key ({count} matches for {selector} in token {token:?}): select by --key-id too"
    )]
    AmbiguousKey {
        /// What was looked for.
        selector: String,
        /// Token label.
        token: String,
        /// How many matched.
        count: usize,
    },
    /// No key selector was given.
    #[error("no key selected: use --key-label LABEL or --key-id HEX")]
    KeyNotNamed,
    /// The key has `CKA_SIGN` false.
    #[error("key {selector} does not allow signing (CKA_SIGN is false)")]
    KeyCannotSign {
        /// The key.
        selector: String,
    },
    /// The key is shorter than the token accepts for HMAC.
    #[error("key {selector} is {length} bytes; this token's CKM_SHA256_HMAC needs at least {min} bytes (CKR_KEY_SIZE_RANGE)")]
    KeyTooShort {
        /// The key.
        selector: String,
        /// Its length.
        length: usize,
        /// The token's minimum.
        min: usize,
    },
    /// The token does not offer `CKM_SHA256_HMAC`.
    #[error("token {token:?} does not support CKM_SHA256_HMAC")]
    MechanismUnsupported {
        /// Token label.
        token: String,
    },
    /// A key with the label already exists.
    #[error("a key labelled {0:?} already exists; choose another label")]
    LabelExists(String),
    /// The key was created non-destroyable.
    #[error("key {0:?} is not destroyable (CKA_DESTROYABLE is false; it was created without --allow-delete and goes only with its token)")]
    NotDestroyable(String),
    /// A key length outside what the token accepts.
    #[error("a {requested}-byte key is outside this token's CKM_SHA256_HMAC range of {min}..={max} bytes")]
    KeyLength {
        /// Length asked for.
        requested: usize,
        /// Token minimum.
        min: usize,
        /// Token maximum.
        max: usize,
    },
    /// Invalid `--key-id` / `--id` hex.
    #[error("invalid key id {0:?}: expected hex digits, e.g. 0a1b")]
    BadId(String),
    /// An invalid PKCS#11 URI.
    #[error("invalid PKCS#11 URI: {0}")]
    Uri(String),
    /// No session became free in time.
    #[error("no PKCS#11 session became free within {0:?}")]
    PoolTimeout(std::time::Duration),
    /// Any other module failure, with the operation.
    #[error("PKCS#11 operation failed: {op}")]
    Op {
        /// What was being done.
        op: &'static str,
        /// The module's error.
        #[source]
        source: Ck,
    },
}

impl Error {
    /// Wraps a cryptoki error from operation `op`.
    pub fn op(op: &'static str) -> impl FnOnce(CkError) -> Self {
        move |e| Self::Op { op, source: Ck(e) }
    }

    /// The module's return value behind this error, if there is one.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Self::NotPkcs11Library { source, .. }
            | Self::Initialize { source, .. }
            | Self::Login { source, .. }
            | Self::Op { source, .. } => rv_of(&source.0),
            _ => None,
        }
    }
}
