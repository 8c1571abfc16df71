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

/// The parameters of a received `HMAC-SHA256` Authorization header,
/// borrowed from the header value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthParams<'a> {
    /// `Credential=` (access key id).
    pub credential: Option<&'a str>,
    /// `SignedHeaders=` as sent (names separated by `;`).
    pub signed_headers: Option<&'a str>,
    /// `Signature=` (base64), as sent.
    pub signature: Option<&'a str>,
}

impl<'a> AuthParams<'a> {
    /// The `SignedHeaders` names in the client's order, trimmed.
    pub fn signed_header_names(&self) -> impl Iterator<Item = &'a str> + Clone {
        self.signed_headers
            .unwrap_or("")
            .split(';')
            .map(str::trim_ascii)
            .filter(|h| !h.is_empty())
    }
}

/// Parses an Authorization value. Returns `None` when the scheme is not
/// `HMAC-SHA256`. Parameters may be separated by `&` or `,` (with optional
/// spaces); names are case-insensitive; unknown parameters are ignored; the
/// first occurrence of a repeated parameter wins. Empty values count as absent.
pub fn parse_authorization(value: &str) -> Option<AuthParams<'_>> {
    let value = value.trim_ascii();
    let (scheme, rest) = match value.bytes().position(|b| b.is_ascii_whitespace()) {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let mut params = AuthParams::default();
    // One pass over the bytes; '&', ',' and '=' are ASCII, so every slice
    // boundary is a character boundary.
    let mut start = 0;
    let bytes = rest.as_bytes();
    for end in (0..=bytes.len()).filter(|&i| i == bytes.len() || matches!(bytes[i], b'&' | b',')) {
        let part = &rest[start..end];
        start = end + 1;
        let Some(eq) = part.bytes().position(|b| b == b'=') else {
            continue;
        };
        let val = part[eq + 1..].trim_ascii();
        if val.is_empty() {
            continue;
        }
        let name = part[..eq].trim_ascii();
        let slot = if name.eq_ignore_ascii_case("Credential") {
            &mut params.credential
        } else if name.eq_ignore_ascii_case("SignedHeaders") {
            &mut params.signed_headers
        } else if name.eq_ignore_ascii_case("Signature") {
            &mut params.signature
        } else {
            continue;
        };
        slot.get_or_insert(val);
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
        assert_eq!(p.credential, Some("id-1"));
        assert_eq!(p.signature, Some("YWJj+/8="));
        assert_eq!(
            p.signed_header_names().collect::<Vec<_>>(),
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
        assert_eq!(p.credential, Some("id"));
        assert_eq!(p.signature, Some("abc="));
        assert_eq!(
            p.signed_header_names().collect::<Vec<_>>(),
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
