//! The `Authorization: HMAC-SHA256 ...` header: formatting and tolerant parsing.

use super::sign::Dialect;

/// The authorization scheme name.
pub const SCHEME: &str = "HMAC-SHA256";

/// The signed headers, in the order this crate signs them.
pub const SIGNED_HEADERS: &str = "x-ms-date;host;x-ms-content-sha256";

/// Formats the header value for `dialect`. `credential` is used by
/// [`Dialect::AppConfig`] only.
pub fn format_authorization(dialect: Dialect, credential: &str, signature_b64: &str) -> String {
    match dialect {
        Dialect::Acs => {
            format!("{SCHEME} SignedHeaders={SIGNED_HEADERS}&Signature={signature_b64}")
        }
        Dialect::AppConfig => format!(
            "{SCHEME} Credential={credential}&SignedHeaders={SIGNED_HEADERS}&Signature={signature_b64}"
        ),
    }
}

/// The parameters of a received `HMAC-SHA256` Authorization header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthParams {
    /// `Credential=` (access key id).
    pub credential: Option<String>,
    /// `SignedHeaders=`, split on `;`, as sent.
    pub signed_headers: Option<Vec<String>>,
    /// `Signature=` (base64), as sent.
    pub signature: Option<String>,
}

/// Parses an Authorization value. Returns `None` when the scheme is not
/// `HMAC-SHA256`. Parameters may be separated by `&` or `,` (with optional
/// spaces); names are case-insensitive; unknown parameters are ignored; the
/// first occurrence of a repeated parameter wins. Empty values count as absent.
pub fn parse_authorization(value: &str) -> Option<AuthParams> {
    let value = value.trim();
    let (scheme, rest) = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((scheme, rest)) => (scheme, rest),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let mut params = AuthParams::default();
    for part in rest.split(['&', ',']) {
        let Some((name, val)) = part.trim().split_once('=') else {
            continue;
        };
        let val = val.trim();
        if val.is_empty() {
            continue;
        }
        let name = name.trim();
        if name.eq_ignore_ascii_case("Credential") {
            params.credential.get_or_insert_with(|| val.to_owned());
        } else if name.eq_ignore_ascii_case("SignedHeaders") {
            params
                .signed_headers
                .get_or_insert_with(|| val.split(';').map(|h| h.trim().to_owned()).collect());
        } else if name.eq_ignore_ascii_case("Signature") {
            params.signature.get_or_insert_with(|| val.to_owned());
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_both_dialects() {
        assert_eq!(
            format_authorization(Dialect::Acs, "ignored", "c2ln"),
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=c2ln"
        );
        assert_eq!(
            format_authorization(Dialect::AppConfig, "id-1", "c2ln"),
            "HMAC-SHA256 Credential=id-1&SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=c2ln"
        );
    }

    #[test]
    fn parse_round_trips_format() {
        let value = format_authorization(Dialect::AppConfig, "id-1", "YWJj+/8=");
        let p = parse_authorization(&value).unwrap();
        assert_eq!(p.credential.as_deref(), Some("id-1"));
        assert_eq!(p.signature.as_deref(), Some("YWJj+/8="));
        assert_eq!(
            p.signed_headers.unwrap(),
            ["x-ms-date", "host", "x-ms-content-sha256"]
        );
    }

    #[test]
    fn accepts_comma_space_separators_and_any_case() {
        // The form the Java and Go samples send.
        let p = parse_authorization(
            "hmac-sha256 credential=id, SignedHeaders=Date;HOST;x-ms-content-sha256, Signature=abc=",
        )
        .unwrap();
        assert_eq!(p.credential.as_deref(), Some("id"));
        assert_eq!(p.signature.as_deref(), Some("abc="));
        assert_eq!(
            p.signed_headers.unwrap(),
            ["Date", "HOST", "x-ms-content-sha256"]
        );
    }

    #[test]
    fn other_schemes_and_missing_parts() {
        assert_eq!(parse_authorization("Bearer abc"), None);
        assert_eq!(parse_authorization(""), None);
        let p = parse_authorization("HMAC-SHA256").unwrap();
        assert_eq!(p, AuthParams::default());
        let p = parse_authorization("HMAC-SHA256 Signature=&SignedHeaders").unwrap();
        assert_eq!(p, AuthParams::default());
    }
}
