//! One initialized PKCS#11 context per module per process, and token lookup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::error::{rv_of, Ck, Error};

/// Attempts at a read-only step that can fail while another process writes
/// to the token (SoftHSM's file object store).
const TRANSIENT_ATTEMPTS: u32 = 6;

/// Runs `op` until it succeeds, fails with an error `transient` rejects, or
/// has been tried [`TRANSIENT_ATTEMPTS`] times; pauses 10 ms after the first
/// failure, doubling (about 310 ms in all), so only failures pay.
pub(crate) fn retry_transient<T>(
    mut op: impl FnMut() -> Result<T, Error>,
    transient: impl Fn(&Error) -> bool,
) -> Result<T, Error> {
    let mut attempt = 1;
    loop {
        match op() {
            Err(e) if attempt < TRANSIENT_ATTEMPTS && transient(&e) => {
                std::thread::sleep(std::time::Duration::from_millis(10u64 << (attempt - 1)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// The process-wide context for the module at `path`, loaded and
/// initialized on first use with `CKF_OS_LOCKING_OK` (NULL init args make
/// SoftHSM crash under threads). It is never finalized while the process runs.
///
/// # Errors
/// [`Error::ModuleMissing`], [`Error::NotPkcs11Library`] or [`Error::Initialize`].
pub fn context(path: &Path) -> Result<Pkcs11, Error> {
    if !path.exists() {
        return Err(Error::ModuleMissing(path.to_owned()));
    }
    let key = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let map = CONTEXTS.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = map.get(&key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| Error::NotPkcs11Library {
        path: path.to_owned(),
        source: Ck(e),
    })?;
    initialize(&ctx).map_err(|e| Error::Initialize {
        path: path.to_owned(),
        source: Ck(e),
    })?;
    map.insert(key, ctx.clone());
    Ok(ctx)
}

/// `C_Initialize` again on a context that was finalized (for example to make
/// the module rescan its tokens). Only call it when no other thread uses
/// the module, and after closing every session opened before.
///
/// # Errors
/// [`Error::Op`] when the module refuses.
pub fn reinitialize(ctx: &Pkcs11) -> Result<(), Error> {
    initialize(ctx).map_err(Error::op("re-initializing the module"))
}

/// `C_Initialize`; "already initialized" counts as success.
pub(crate) fn initialize(ctx: &Pkcs11) -> Result<(), cryptoki::error::Error> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Err(e) if rv_of(&e) == Some(RvError::CryptokiAlreadyInitialized) => Ok(()),
        other => other,
    }
}

/// How to pick the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// By label (preferred: SoftHSM slot ids change on every init).
    Label(String),
    /// By slot id.
    Slot(u64),
    /// The only token present.
    Only,
}

/// A token found in a slot.
#[derive(Debug, Clone)]
pub struct FoundToken {
    /// Its slot.
    pub slot: Slot,
    /// Its label, trimmed.
    pub label: String,
}

/// Finds the token `selector` names.
///
/// # Errors
/// [`Error::TokenNotFound`], [`Error::SlotNotFound`] or
/// [`Error::TokenNotNamed`], each listing the tokens present.
pub fn find_token(ctx: &Pkcs11, selector: &TokenSelector) -> Result<FoundToken, Error> {
    // SoftHSM's file store can fail to read a token for a moment while
    // another process rewrites it: scan again a few times before concluding
    // that the token is not there.
    retry_transient(|| scan_tokens(ctx, selector), |_| true)
}

fn scan_tokens(ctx: &Pkcs11, selector: &TokenSelector) -> Result<FoundToken, Error> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(Error::op("listing slots"))?;
    let mut tokens = Vec::new();
    for slot in slots {
        // A token that cannot be read now is left out of this scan.
        if let Ok(info) = ctx.get_token_info(slot) {
            if info.token_initialized() {
                tokens.push(FoundToken {
                    slot,
                    label: info.label().trim_end().to_owned(),
                });
            }
        }
    }
    let available = || {
        if tokens.is_empty() {
            "none".to_owned()
        } else {
            tokens
                .iter()
                .map(|t| format!("{:?} (slot {})", t.label, t.slot.id()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let found = match selector {
        TokenSelector::Label(label) => tokens.iter().find(|t| &t.label == label),
        TokenSelector::Slot(id) => tokens.iter().find(|t| t.slot.id() == *id),
        TokenSelector::Only if tokens.len() == 1 => tokens.first(),
        TokenSelector::Only => None,
    };
    match (found, selector) {
        (Some(t), _) => Ok(t.clone()),
        (None, TokenSelector::Label(label)) => Err(Error::TokenNotFound {
            label: label.clone(),
            available: available(),
        }),
        (None, TokenSelector::Slot(slot)) => Err(Error::SlotNotFound {
            slot: *slot,
            available: available(),
        }),
        (None, TokenSelector::Only) => Err(Error::TokenNotNamed {
            available: available(),
        }),
    }
}

/// Logs the user in on `session`; "already logged in" counts as success.
///
/// # Errors
/// [`Error::PinIncorrect`], [`Error::PinLocked`] or [`Error::Login`].
pub fn login(session: &Session, pin: &SecretString, token: &str) -> Result<(), Error> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => Ok(()),
        Err(e) => match rv_of(&e) {
            Some(RvError::UserAlreadyLoggedIn) => Ok(()),
            Some(RvError::PinIncorrect) => Err(Error::PinIncorrect {
                token: token.to_owned(),
            }),
            Some(RvError::PinLocked) => Err(Error::PinLocked {
                token: token.to_owned(),
            }),
            _ => Err(Error::Login {
                token: token.to_owned(),
                source: Ck(e),
            }),
        },
    }
}
