//! Server side: check a received request and name the catalogued 401 reason.

use std::fmt;
use std::io::Read;
use std::time::{Duration, SystemTime};

use super::auth_header::parse_authorization;
use super::canonical::{ContentHash, StringToSign};
use super::date::parse_http_date;
use super::sign::Dialect;
use crate::backend::{self, KeyBackend, VerifyError};
use crate::tag::Tag;

/// Default clock skew window: 15 minutes either way.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(900);

/// A request as received: method, raw request target and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// Method as received (compared upper-cased, as the client signed it).
    pub method: String,
    /// Path and query exactly as on the request line.
    pub path_and_query: String,
    /// Header names and values in order of arrival, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl ReceivedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Which dialect: `appconfig` requires a `Credential` parameter.
    pub dialect: Dialect,
    /// For `appconfig`, the only accepted access key id; `None` accepts any.
    pub credential: Option<String>,
    /// How far the request date may be from `now`, either way.
    pub max_skew: Duration,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            dialect: Dialect::Acs,
            credential: None,
            max_skew: DEFAULT_MAX_SKEW,
        }
    }
}

/// The App Configuration 401 catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No Authorization header with the HMAC-SHA256 scheme.
    MissingAuthorization,
    /// The date is older than the skew window.
    Expired,
    /// The date header is missing, unparsable, or too far in the future.
    InvalidDate,
    /// `Credential`, `SignedHeaders` or `Signature` is missing.
    MissingParameter,
    /// The access key id is not the accepted one.
    InvalidCredential,
    /// The signature is malformed or wrong, or the body does not match its hash.
    InvalidSignature {
        /// An explanation for logs; never the expected signature.
        detail: Option<&'static str>,
    },
    /// A header named in `SignedHeaders` is absent from the request.
    SignedHeaderNotProvided(String),
    /// `SignedHeaders` lacks a header that must be signed.
    RequiredSignedHeader(String),
}

impl Rejection {
    /// The `error_description` text (for [`Rejection::MissingAuthorization`],
    /// a short sentence instead).
    pub fn description(&self) -> String {
        match self {
            Self::MissingAuthorization => {
                "Authorization request header with HMAC-SHA256 scheme is not provided".to_owned()
            }
            Self::Expired => "The access token has expired".to_owned(),
            Self::InvalidDate => "Invalid access token date".to_owned(),
            Self::MissingParameter => {
                "[Credential][SignedHeaders][Signature] is required".to_owned()
            }
            Self::InvalidCredential => "Invalid Credential".to_owned(),
            Self::InvalidSignature { .. } => "Invalid Signature".to_owned(),
            Self::SignedHeaderNotProvided(name) => {
                format!("Signed request header '{name}' is not provided")
            }
            Self::RequiredSignedHeader(name) => format!("{name} is required as a signed header"),
        }
    }

    /// The `WWW-Authenticate` value that goes with the 401.
    pub fn www_authenticate(&self) -> String {
        match self {
            Self::MissingAuthorization => "HMAC-SHA256, Bearer".to_owned(),
            other => format!(
                "HMAC-SHA256 error=\"invalid_token\" error_description=\"{}\", Bearer",
                other.description()
            ),
        }
    }

    /// Extra detail for logs, when there is one.
    pub fn detail(&self) -> Option<&'static str> {
        match self {
            Self::InvalidSignature { detail } => *detail,
            _ => None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

/// Why verification did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyRequestError {
    /// The request is not authentic; answer 401 with this reason.
    #[error("request rejected: {0}")]
    Rejected(Rejection),
    /// The key backend failed (not the client's fault).
    #[error("the key backend failed to verify")]
    Backend(#[source] backend::Error),
    /// The body could not be read.
    #[error("cannot read the request body")]
    Body(#[source] std::io::Error),
}

impl From<Rejection> for VerifyRequestError {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

const INVALID_SIGNATURE: Rejection = Rejection::InvalidSignature { detail: None };

/// Checks a received request against `policy` at time `now`.
///
/// Steps, each with its catalogued reason: scheme present; `SignedHeaders`,
/// `Signature` (and for `appconfig`, `Credential`) present; credential
/// accepted; the date header (`x-ms-date`, else `Date`), `host` and
/// `x-ms-content-sha256` signed; every signed header present; date within
/// the skew window; signature checked by the backend over
/// `METHOD\npath_and_query\nv1;v2;...` in the client's `SignedHeaders`
/// order; and last the body, streamed, against `x-ms-content-sha256`.
///
/// # Errors
/// [`VerifyRequestError::Rejected`] with the reason, or a backend / body
/// read failure.
pub fn verify_request<B: KeyBackend + ?Sized>(
    backend: &B,
    policy: &VerifyPolicy,
    request: &ReceivedRequest,
    body: impl Read,
    now: SystemTime,
) -> Result<(), VerifyRequestError> {
    let (string_to_sign, tag, content_hash) = check_headers(policy, request, now)?;
    match backend.verify(string_to_sign.as_bytes(), &tag) {
        Ok(()) => {}
        Err(VerifyError::Mismatch) => return Err(INVALID_SIGNATURE.into()),
        Err(VerifyError::Backend(e)) => return Err(VerifyRequestError::Backend(e)),
    }
    let (actual, _) = ContentHash::of_reader(body).map_err(VerifyRequestError::Body)?;
    match content_hash {
        Some(expected) if expected == actual => Ok(()),
        _ => Err(Rejection::InvalidSignature {
            detail: Some("the body does not match x-ms-content-sha256"),
        }
        .into()),
    }
}

/// Everything up to the keyed check: returns the string-to-sign, the
/// client's tag and the decoded content hash (if it is well-formed).
fn check_headers(
    policy: &VerifyPolicy,
    request: &ReceivedRequest,
    now: SystemTime,
) -> Result<(StringToSign, Tag, Option<ContentHash>), Rejection> {
    let params = request
        .header("authorization")
        .and_then(parse_authorization)
        .ok_or(Rejection::MissingAuthorization)?;
    let (Some(_), Some(signature)) = (params.signed_headers, params.signature) else {
        return Err(Rejection::MissingParameter);
    };
    let signed = params.signed_header_names();
    if policy.dialect == Dialect::AppConfig {
        let Some(credential) = params.credential else {
            return Err(Rejection::MissingParameter);
        };
        if policy
            .credential
            .as_deref()
            .is_some_and(|c| c != credential)
        {
            return Err(Rejection::InvalidCredential);
        }
    }

    // One pass over SignedHeaders: look each header up, note which of the
    // required ones are listed and the first listed one that is absent.
    let mut values = Vec::with_capacity(4);
    let (mut has_x_ms_date, mut has_date, mut has_host) = (false, false, false);
    let mut content_header = None;
    let mut absent = None;
    for name in signed {
        let value = request.header(name);
        if name.eq_ignore_ascii_case("x-ms-date") {
            has_x_ms_date = true;
        } else if name.eq_ignore_ascii_case("date") {
            has_date = true;
        } else if name.eq_ignore_ascii_case("host") {
            has_host = true;
        } else if name.eq_ignore_ascii_case("x-ms-content-sha256") {
            content_header = Some(value);
        }
        match value {
            Some(v) => values.push(v),
            None => {
                absent.get_or_insert(name);
            }
        }
    }
    // x-ms-date wins over Date; whichever decides freshness must be signed.
    let x_ms_date = request.header("x-ms-date");
    let (date_name, date_signed) = if x_ms_date.is_some() || !has_date {
        ("x-ms-date", has_x_ms_date)
    } else {
        ("date", has_date)
    };
    for (required, listed) in [
        (date_name, date_signed),
        ("host", has_host),
        ("x-ms-content-sha256", content_header.is_some()),
    ] {
        if !listed {
            return Err(Rejection::RequiredSignedHeader(required.to_owned()));
        }
    }
    if let Some(name) = absent {
        return Err(Rejection::SignedHeaderNotProvided(name.to_owned()));
    }

    let date_text = match x_ms_date {
        Some(text) => text,
        None => request.header(date_name).ok_or(Rejection::InvalidDate)?,
    };
    let date = parse_http_date(date_text).map_err(|_| Rejection::InvalidDate)?;
    match now.duration_since(date) {
        Ok(age) if age > policy.max_skew => return Err(Rejection::Expired),
        Ok(_) => {}
        Err(ahead) if ahead.duration() > policy.max_skew => return Err(Rejection::InvalidDate),
        Err(_) => {}
    }

    let tag = Tag::from_base64(signature).map_err(|_| Rejection::InvalidSignature {
        detail: Some("the signature is not a base64 HMAC-SHA256 tag"),
    })?;
    let content_hash = content_header
        .flatten()
        .and_then(|v| Tag::from_base64(v).ok())
        .map(|t| ContentHash::from_digest(*t.as_bytes()));
    let method = if request.method.bytes().any(|b| b.is_ascii_lowercase()) {
        std::borrow::Cow::Owned(request.method.to_ascii_uppercase())
    } else {
        std::borrow::Cow::Borrowed(request.method.as_str())
    };
    let sts = StringToSign::new(&method, &request.path_and_query, values);
    Ok((sts, tag, content_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn www_authenticate_values_follow_the_catalogue() {
        assert_eq!(
            Rejection::MissingAuthorization.www_authenticate(),
            "HMAC-SHA256, Bearer"
        );
        assert_eq!(
            Rejection::Expired.www_authenticate(),
            "HMAC-SHA256 error=\"invalid_token\" error_description=\"The access token has expired\", Bearer"
        );
        assert_eq!(
            Rejection::SignedHeaderNotProvided("x-ms-date".into()).description(),
            "Signed request header 'x-ms-date' is not provided"
        );
        assert_eq!(
            Rejection::RequiredSignedHeader("host".into()).description(),
            "host is required as a signed header"
        );
    }
}
