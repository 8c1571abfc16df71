//! Signing: turn a method, URL, body hash and time into the headers to add.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use super::auth_header::format_authorization;
use super::canonical::{canonical_method, CanonicalError, ContentHash, StringToSign, Target};
use super::date::format_http_date;
use crate::backend::{self, KeyBackend};

/// The two Azure HMAC-SHA256 dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Azure Communication Services: no `Credential` parameter.
    #[default]
    Acs,
    /// Azure App Configuration: `Credential=<access key id>` first.
    AppConfig,
}

impl FromStr for Dialect {
    type Err = UnknownDialect;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "acs" => Ok(Self::Acs),
            "appconfig" => Ok(Self::AppConfig),
            _ => Err(UnknownDialect(s.to_owned())),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Acs => "acs",
            Self::AppConfig => "appconfig",
        })
    }
}

/// A dialect name that is neither `acs` nor `appconfig`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown dialect {0:?} (expected acs or appconfig)")]
pub struct UnknownDialect(pub String);

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The method or URL is not signable.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// `appconfig` needs an access key id.
    #[error("the appconfig dialect needs a credential (access key id)")]
    MissingCredential,
    /// The credential would break the Authorization header.
    #[error("credential {0:?} contains characters not allowed in an Authorization parameter")]
    InvalidCredential(String),
    /// The backend failed to compute the HMAC.
    #[error("the key backend failed to sign")]
    Backend(#[from] backend::Error),
}

/// The headers to add to a request, and what was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `x-ms-date` value.
    pub date: String,
    /// `x-ms-content-sha256` value.
    pub content_sha256: String,
    /// `Authorization` value.
    pub authorization: String,
    /// Host the signature covers: send exactly this as `Host`.
    pub host: String,
    /// The exact string that was signed.
    pub string_to_sign: StringToSign,
}

impl SignedHeaders {
    /// `(name, value)` pairs in the order `x-ms-date`, `x-ms-content-sha256`,
    /// `Authorization`.
    pub fn headers(&self) -> [(&'static str, &str); 3] {
        [
            ("x-ms-date", &self.date),
            ("x-ms-content-sha256", &self.content_sha256),
            ("Authorization", &self.authorization),
        ]
    }
}

/// Checks the credential `dialect` needs and returns the one to put in the
/// header (empty for `acs`, which has none).
///
/// # Errors
/// [`SignError::MissingCredential`] for `appconfig` without a credential,
/// [`SignError::InvalidCredential`] for one with `&`, `,`, `=`, `;`, spaces
/// or control characters.
pub fn check_credential(dialect: Dialect, credential: Option<&str>) -> Result<String, SignError> {
    match (dialect, credential) {
        (Dialect::AppConfig, None | Some("")) => Err(SignError::MissingCredential),
        (Dialect::AppConfig, Some(c)) => {
            if c.chars().any(|ch| "&,= ;".contains(ch) || ch.is_control()) {
                return Err(SignError::InvalidCredential(c.to_owned()));
            }
            Ok(c.to_owned())
        }
        (Dialect::Acs, _) => Ok(String::new()),
    }
}

/// Signs requests with one key in one dialect.
#[derive(Debug, Clone)]
pub struct RequestSigner<B> {
    backend: B,
    dialect: Dialect,
    credential: String,
}

impl<B: KeyBackend> RequestSigner<B> {
    /// A signer for the `acs` dialect.
    pub fn acs(backend: B) -> Self {
        Self {
            backend,
            dialect: Dialect::Acs,
            credential: String::new(),
        }
    }

    /// A signer for `dialect`; `credential` is the access key id that
    /// `appconfig` puts in the header (ignored by `acs`).
    ///
    /// # Errors
    /// [`SignError::MissingCredential`] for `appconfig` without a credential,
    /// [`SignError::InvalidCredential`] for one with `&`, `,`, `=`, spaces or
    /// control characters.
    pub fn new(backend: B, dialect: Dialect, credential: Option<&str>) -> Result<Self, SignError> {
        let credential = check_credential(dialect, credential)?;
        Ok(Self {
            backend,
            dialect,
            credential,
        })
    }

    /// The key backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Signs `method url` with the body hash `content` at time `at`.
    ///
    /// # Errors
    /// [`SignError::Canonical`] for an invalid method or URL,
    /// [`SignError::Backend`] when the key cannot sign.
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        content: &ContentHash,
        at: SystemTime,
    ) -> Result<SignedHeaders, SignError> {
        let target = Target::parse(url)?;
        self.sign_target(method, &target, content, at)
    }

    /// Like [`RequestSigner::sign`] for an already parsed target.
    ///
    /// # Errors
    /// As [`RequestSigner::sign`].
    pub fn sign_target(
        &self,
        method: &str,
        target: &Target,
        content: &ContentHash,
        at: SystemTime,
    ) -> Result<SignedHeaders, SignError> {
        let method = canonical_method(method)?;
        let date = format_http_date(at);
        let content_sha256 = content.to_base64();
        let string_to_sign = StringToSign::new(
            &method,
            &target.path_and_query,
            [date.as_str(), target.host.as_str(), content_sha256.as_str()],
        );
        let tag = self.backend.sign(string_to_sign.as_bytes())?;
        let authorization = format_authorization(self.dialect, &self.credential, &tag.to_base64());
        Ok(SignedHeaders {
            date,
            content_sha256,
            authorization,
            host: target.host.clone(),
            string_to_sign,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::software::SoftwareKey;
    use crate::secret::SecretBytes;

    fn key() -> SoftwareKey {
        SoftwareKey::new(SecretBytes::new(vec![0x42; 32]))
    }

    #[test]
    fn dialect_names() {
        assert_eq!("ACS".parse::<Dialect>(), Ok(Dialect::Acs));
        assert_eq!("appconfig".parse::<Dialect>(), Ok(Dialect::AppConfig));
        assert!("aws".parse::<Dialect>().is_err());
    }

    #[test]
    fn appconfig_needs_a_clean_credential() {
        assert!(matches!(
            RequestSigner::new(key(), Dialect::AppConfig, None),
            Err(SignError::MissingCredential)
        ));
        assert!(matches!(
            RequestSigner::new(key(), Dialect::AppConfig, Some("a&Signature=x")),
            Err(SignError::InvalidCredential(_))
        ));
        assert!(RequestSigner::new(key(), Dialect::Acs, None).is_ok());
    }
}
