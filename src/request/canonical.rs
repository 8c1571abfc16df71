//! The keyless, clockless part of signing: method, path-and-query, host,
//! content hash and the string-to-sign.

use std::fmt;
use std::io::{self, Read};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use url::Url;

/// Why a method or URL cannot be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CanonicalError {
    /// The method is empty or has characters outside the HTTP token set.
    #[error("invalid HTTP method {0:?}")]
    Method(String),
    /// The URL did not parse.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// The URL is not `http` or `https`, or has no host.
    #[error("URL {0:?} must be an absolute http or https URL with a host")]
    NotHttp(String),
}

/// Upper-cases an HTTP method after checking it is an RFC 9110 token.
///
/// # Errors
/// [`CanonicalError::Method`] for an empty method or one with separators,
/// spaces or control characters.
pub fn canonical_method(method: &str) -> Result<String, CanonicalError> {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if method.is_empty() || !method.chars().all(is_tchar) {
        return Err(CanonicalError::Method(method.to_owned()));
    }
    Ok(method.to_ascii_uppercase())
}

/// The parts of a URL that are signed: `Host` header value and request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `Host` header value: lower-case host, port only when not the default.
    pub host: String,
    /// Path and query exactly as sent on the request line; `/` when empty.
    pub path_and_query: String,
}

impl Target {
    /// Parses an absolute `http`/`https` URL.
    ///
    /// # Errors
    /// [`CanonicalError::Url`] or [`CanonicalError::NotHttp`].
    pub fn parse(url: &str) -> Result<Self, CanonicalError> {
        let parsed = Url::parse(url).map_err(|e| CanonicalError::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_url(&parsed)
    }

    /// Takes host and path-and-query from a parsed URL. The fragment is
    /// dropped; the URL's serialization (what an HTTP client puts on the
    /// wire) is used as is, never decoded.
    ///
    /// # Errors
    /// [`CanonicalError::NotHttp`] for other schemes or a URL without a host.
    pub fn from_url(url: &Url) -> Result<Self, CanonicalError> {
        let host = match (url.scheme(), url.host_str()) {
            ("http" | "https", Some(host)) if !host.is_empty() => host.to_ascii_lowercase(),
            _ => return Err(CanonicalError::NotHttp(url.to_string())),
        };
        // `Url::port` is `None` when the port is the scheme's default.
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        let mut path_and_query = url.path().to_owned();
        if path_and_query.is_empty() {
            path_and_query.push('/');
        }
        if let Some(query) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Ok(Self {
            host,
            path_and_query,
        })
    }
}

/// Feeds what is written into SHA-256.
struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// SHA-256 of a request body: the `x-ms-content-sha256` value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Hash of an in-memory body.
    pub fn of_bytes(body: &[u8]) -> Self {
        Self(Sha256::digest(body).into())
    }

    /// Hash of a body read to its end in constant memory. Returns the hash
    /// and the number of bytes read.
    ///
    /// # Errors
    /// The reader's I/O error.
    pub fn of_reader(mut body: impl Read) -> io::Result<(Self, u64)> {
        // `io::copy` reads straight out of in-memory and buffered readers and
        // otherwise through a small uninitialised stack buffer: nothing to
        // allocate or zero per body. Wrap files in a large `BufReader` (as the
        // CLI does) to hash them in few system calls.
        let mut hasher = HashWriter(Sha256::new());
        let total = io::copy(&mut body, &mut hasher)?;
        Ok((Self(hasher.0.finalize().into()), total))
    }

    /// Wraps a digest computed elsewhere (e.g. while streaming a proxied body).
    pub const fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The base64 header value.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_base64())
    }
}

/// `METHOD \n path_and_query \n value;value;...` — its `Display` is the
/// exact UTF-8 text that is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringToSign(String);

impl StringToSign {
    /// Joins an (already canonical) method, the path-and-query and the
    /// values of the signed headers, in the order they are signed.
    pub fn new<'a>(
        method: &str,
        path_and_query: &str,
        signed_values: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut text = String::with_capacity(method.len() + path_and_query.len() + 128);
        text.push_str(method);
        text.push('\n');
        text.push_str(path_and_query);
        text.push('\n');
        for (i, value) in signed_values.into_iter().enumerate() {
            if i > 0 {
                text.push(';');
            }
            text.push_str(value);
        }
        Self(text)
    }

    /// The bytes handed to HMAC.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StringToSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn method_is_upper_cased_and_checked() {
        assert_eq!(canonical_method("get").unwrap(), "GET");
        assert_eq!(canonical_method("PaTcH").unwrap(), "PATCH");
        assert!(canonical_method("").is_err());
        assert!(canonical_method("GET /").is_err());
        assert!(canonical_method("G\nT").is_err());
    }

    #[test]
    fn host_drops_default_port_and_is_lower_case() {
        assert_eq!(
            target("https://Contoso.Example.COM:443/x").host,
            "contoso.example.com"
        );
        assert_eq!(target("http://example.com:80").host, "example.com");
        assert_eq!(target("https://example.com:8443/").host, "example.com:8443");
        assert_eq!(target("http://example.com:443/").host, "example.com:443");
        assert_eq!(target("http://[::1]:8080/").host, "[::1]:8080");
    }

    #[test]
    fn path_and_query_is_kept_as_on_the_wire() {
        assert_eq!(target("https://h").path_and_query, "/");
        assert_eq!(target("https://h?a=1").path_and_query, "/?a=1");
        assert_eq!(
            target("https://h/kv?fields=*&api-version=1.0#frag").path_and_query,
            "/kv?fields=*&api-version=1.0"
        );
        assert_eq!(
            target("https://h/a?q=a+b%2Bc").path_and_query,
            "/a?q=a+b%2Bc"
        );
        assert_eq!(
            target("https://h/a%2Fb/c?x=%41").path_and_query,
            "/a%2Fb/c?x=%41"
        );
        // A literal space cannot go on the wire: clients send %20.
        assert_eq!(
            target("https://h/a b?q=c d").path_and_query,
            "/a%20b?q=c%20d"
        );
    }

    #[test]
    fn non_http_urls_are_refused() {
        assert!(matches!(
            Target::parse("ftp://h/x"),
            Err(CanonicalError::NotHttp(_))
        ));
        assert!(matches!(
            Target::parse("not a url"),
            Err(CanonicalError::Url { .. })
        ));
        assert!(matches!(
            Target::parse("/relative"),
            Err(CanonicalError::Url { .. })
        ));
    }

    #[test]
    fn string_to_sign_layout() {
        let sts = StringToSign::new("GET", "/kv?x=1", ["d", "h", "c"]);
        assert_eq!(sts.to_string(), "GET\n/kv?x=1\nd;h;c");
    }

    #[test]
    fn content_hash_of_empty_body() {
        // sha256("") from FIPS 180-2 / `printf '' | openssl sha256 -binary | base64`.
        assert_eq!(
            ContentHash::of_bytes(b"").to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        let (streamed, n) = ContentHash::of_reader(&b"abc"[..]).unwrap();
        assert_eq!(n, 3);
        assert_eq!(streamed, ContentHash::of_bytes(b"abc"));
        // Across the switch from the stack buffer to the heap buffer.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (streamed, n) = ContentHash::of_reader(&big[..]).unwrap();
        assert_eq!(n, 3_000_000);
        assert_eq!(streamed, ContentHash::of_bytes(&big));
    }
}
