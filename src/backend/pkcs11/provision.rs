//! Putting keys into a token and managing them: import, generate, list,
//! delete. Admin operations, kept off the signing path. Every key template
//! is built in [`key_template`].

use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use serde::Serialize;
use zeroize::Zeroize;

use super::error::{rv_of, Error};
use super::module::{context, find_token, login, retry_transient};
use super::{hex, hmac_key_range, KeySelector, TokenSpec};
use crate::secret::SecretBytes;

static TOKEN_WRITES: Mutex<()> = Mutex::new(());

/// Serializes writes of token objects (create, generate, destroy) within
/// this process. SoftHSM 2.6's file object store fails such writes made
/// from several threads at once with `CKR_GENERAL_ERROR` (seen when tests
/// import keys in parallel). Every write in this module holds it; hold it
/// too when writing token objects through your own sessions. Signing does
/// not take it.
pub fn token_write_lock() -> MutexGuard<'static, ()> {
    TOKEN_WRITES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The attributes of every key this tool creates: a token object, private,
/// sensitive, usable only to sign and verify, not extractable, not
/// modifiable, destroyable only when asked.
pub fn key_template(label: &str, id: &[u8], allow_delete: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Destroyable(allow_delete),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

/// A secret key as `key list` shows it. Never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDescription {
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID`, hex.
    pub id: String,
    /// `CKA_KEY_TYPE`, e.g. `CKK_GENERIC_SECRET`.
    pub key_type: String,
    /// `CKA_VALUE_LEN` in bytes, when the token tells.
    pub length: Option<usize>,
    /// `CKA_SIGN`.
    pub sign: bool,
    /// `CKA_VERIFY`.
    pub verify: bool,
    /// `CKA_SENSITIVE`.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`.
    pub extractable: bool,
    /// `CKA_MODIFIABLE`.
    pub modifiable: bool,
    /// `CKA_DESTROYABLE` (true when the token does not report it).
    pub destroyable: bool,
}

/// A logged-in read-write session on one token, for provisioning.
pub struct Token {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    session: Session,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads the module, finds the token and logs in read-write.
    ///
    /// # Errors
    /// Module, token and PIN errors.
    pub fn open(spec: &TokenSpec) -> Result<Self, Error> {
        let ctx = context(&spec.module)?;
        let found = find_token(&ctx, &spec.token)?;
        let pin = spec.pin.as_ref().ok_or_else(|| Error::PinMissing {
            token: found.label.clone(),
        })?;
        let session = ctx
            .open_rw_session(found.slot)
            .map_err(Error::op("opening a read-write session"))?;
        login(&session, pin, &found.label)?;
        Ok(Self {
            ctx,
            slot: found.slot,
            label: found.label,
            session,
        })
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The logged-in session (for checks such as `doctor`).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// `CKM_SHA256_HMAC` key size range in bytes.
    ///
    /// # Errors
    /// [`Error::MechanismUnsupported`].
    pub fn hmac_key_range(&self) -> Result<(usize, usize), Error> {
        hmac_key_range(&self.ctx, self.slot, &self.label)
    }

    fn refuse_existing(&self, label: &str) -> Result<(), Error> {
        let found = self
            .session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(Error::op("looking for an existing key"))?;
        if found.is_empty() {
            Ok(())
        } else {
            Err(Error::LabelExists(label.to_owned()))
        }
    }

    fn check_length(&self, requested: usize) -> Result<(), Error> {
        let (min, max) = self.hmac_key_range()?;
        if requested < min || requested > max {
            return Err(Error::KeyLength {
                requested,
                min,
                max,
            });
        }
        Ok(())
    }

    fn new_id(&self, id: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        match id {
            Some(id) => Ok(id.to_vec()),
            None => self
                .session
                .generate_random_vec(8)
                .map_err(Error::op("generating a key id")),
        }
    }

    /// Imports `secret` as a new key. Refuses an existing label and a length
    /// the token cannot use for HMAC; the copy of the secret handed to the
    /// module is zeroized afterwards. `C_CreateObject` is atomic: on failure
    /// nothing is left in the token.
    ///
    /// # Errors
    /// [`Error::LabelExists`], [`Error::KeyLength`], or the module's error.
    pub fn import(
        &self,
        label: &str,
        id: Option<&[u8]>,
        secret: &SecretBytes,
        allow_delete: bool,
    ) -> Result<KeyDescription, Error> {
        let _write = token_write_lock();
        self.refuse_existing(label)?;
        self.check_length(secret.len())?;
        let id = self.new_id(id)?;
        let mut template = key_template(label, &id, allow_delete);
        template.push(Attribute::Value(secret.expose().to_vec()));
        let created = self.session.create_object(&template);
        for attr in &mut template {
            if let Attribute::Value(v) = attr {
                v.zeroize();
            }
        }
        let handle = created.map_err(Error::op("importing the key (C_CreateObject)"))?;
        self.describe(handle)
    }

    /// Generates a `bytes`-long key inside the token
    /// (`CKM_GENERIC_SECRET_KEY_GEN`).
    ///
    /// # Errors
    /// [`Error::LabelExists`], [`Error::KeyLength`], or the module's error.
    pub fn generate(
        &self,
        label: &str,
        id: Option<&[u8]>,
        bytes: usize,
        allow_delete: bool,
    ) -> Result<KeyDescription, Error> {
        let _write = token_write_lock();
        self.refuse_existing(label)?;
        self.check_length(bytes)?;
        let id = self.new_id(id)?;
        let mut template = key_template(label, &id, allow_delete);
        template.push(Attribute::ValueLen(
            u64::try_from(bytes)
                .map_err(|_| Error::KeyLength {
                    requested: bytes,
                    min: 0,
                    max: 0,
                })?
                .into(),
        ));
        let handle = self
            .session
            .generate_key(&Mechanism::GenericSecretKeyGen, &template)
            .map_err(Error::op("generating the key (C_GenerateKey)"))?;
        self.describe(handle)
    }

    /// Describes every secret key in the token.
    ///
    /// # Errors
    /// The module's error.
    pub fn list(&self) -> Result<Vec<KeyDescription>, Error> {
        // Another process writing to a SoftHSM token can make an object
        // unreadable for a moment: list again a few times before failing.
        retry_transient(
            || self.list_once(),
            |e| e.rv() != Some(RvError::UserNotLoggedIn),
        )
    }

    fn list_once(&self) -> Result<Vec<KeyDescription>, Error> {
        let handles = self
            .session
            .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
            .map_err(Error::op("listing keys"))?;
        let mut keys = Vec::with_capacity(handles.len());
        for handle in handles {
            match self.describe(handle) {
                Ok(d) => keys.push(d),
                // Deleted by another process since the search: not a key any more.
                Err(e) if e.rv() == Some(RvError::ObjectHandleInvalid) => {}
                Err(e) => return Err(e),
            }
        }
        keys.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    /// Finds exactly one key.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::AmbiguousKey`].
    pub fn find(&self, selector: &KeySelector) -> Result<ObjectHandle, Error> {
        selector.find_one(&self.session, &self.label)
    }

    /// Deletes the key labelled `label`, if it was created destroyable.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::NotDestroyable`], or the module's error.
    pub fn delete(&self, label: &str) -> Result<(), Error> {
        let selector = KeySelector {
            label: Some(label.to_owned()),
            id: None,
        };
        let handle = self.find(&selector)?;
        if !self.describe(handle)?.destroyable {
            return Err(Error::NotDestroyable(label.to_owned()));
        }
        let _write = token_write_lock();
        match self.session.destroy_object(handle) {
            Err(e) if rv_of(&e) == Some(RvError::ActionProhibited) => {
                Err(Error::NotDestroyable(label.to_owned()))
            }
            other => other.map_err(Error::op("deleting the key (C_DestroyObject)")),
        }
    }

    /// Reads a key's public attributes (never `CKA_VALUE`).
    ///
    /// # Errors
    /// The module's error.
    pub fn describe(&self, handle: ObjectHandle) -> Result<KeyDescription, Error> {
        let attrs = self
            .session
            .get_attributes(
                handle,
                &[
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::KeyType,
                    AttributeType::ValueLen,
                    AttributeType::Sign,
                    AttributeType::Verify,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Modifiable,
                    AttributeType::Destroyable,
                ],
            )
            .map_err(Error::op("reading key attributes"))?;
        let mut d = KeyDescription {
            label: String::new(),
            id: String::new(),
            key_type: "unknown".into(),
            length: None,
            sign: false,
            verify: false,
            sensitive: false,
            extractable: true,
            modifiable: true,
            destroyable: true,
        };
        for attr in attrs {
            match attr {
                Attribute::Label(l) => d.label = String::from_utf8_lossy(&l).into_owned(),
                Attribute::Id(id) => d.id = hex(&id),
                Attribute::KeyType(t) => d.key_type = key_type_name(t),
                Attribute::ValueLen(n) => d.length = Some(usize::from(n)),
                Attribute::Sign(b) => d.sign = b,
                Attribute::Verify(b) => d.verify = b,
                Attribute::Sensitive(b) => d.sensitive = b,
                Attribute::Extractable(b) => d.extractable = b,
                Attribute::Modifiable(b) => d.modifiable = b,
                Attribute::Destroyable(b) => d.destroyable = b,
                _ => {}
            }
        }
        Ok(d)
    }
}

fn key_type_name(t: KeyType) -> String {
    if t == KeyType::GENERIC_SECRET {
        "CKK_GENERIC_SECRET".into()
    } else if t == KeyType::SHA256_HMAC {
        "CKK_SHA256_HMAC".into()
    } else {
        format!("{t}")
    }
}
