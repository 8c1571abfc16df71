//! Reading one raw HTTP/1.1 request (as captured from the wire) for the verifier.

use std::io::{self, BufRead, Read};

use super::verify::ReceivedRequest;

/// Why a raw request could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawRequestError {
    /// Reading failed.
    #[error("cannot read the request")]
    Io(#[from] io::Error),
    /// The head is not a valid HTTP/1.x request head.
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Longest request head accepted (request line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// Reads the request line and headers from `reader`, leaving it positioned
/// at the first body byte. Lines may end in CRLF or LF. The body is
/// returned as a reader limited to `Content-Length` when that header is
/// present; otherwise it runs to the end of the input.
///
/// # Errors
/// [`RawRequestError::Malformed`] for a bad request line, a header without
/// a colon, a missing blank line, a bad `Content-Length`, or chunked
/// transfer encoding (not supported).
pub fn read_request<R: BufRead>(
    mut reader: R,
) -> Result<(ReceivedRequest, io::Take<R>), RawRequestError> {
    let mut used = 0usize;
    let mut next_line = |reader: &mut R| -> Result<Option<String>, RawRequestError> {
        let mut raw = Vec::new();
        let n = (&mut *reader)
            .take((MAX_HEAD - used + 1) as u64)
            .read_until(b'\n', &mut raw)?;
        used += n;
        if used > MAX_HEAD {
            return Err(RawRequestError::Malformed(
                "request head is larger than 64 KiB".into(),
            ));
        }
        if n == 0 || !raw.ends_with(b"\n") {
            return Ok(None);
        }
        raw.pop();
        if raw.ends_with(b"\r") {
            raw.pop();
        }
        String::from_utf8(raw)
            .map(Some)
            .map_err(|_| RawRequestError::Malformed("request head is not valid UTF-8".into()))
    };

    let line = next_line(&mut reader)?
        .ok_or_else(|| RawRequestError::Malformed("no request line".into()))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RawRequestError::Malformed(format!(
            "bad request line {line:?}"
        )));
    };
    if method.is_empty() || target.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(RawRequestError::Malformed(format!(
            "bad request line {line:?}"
        )));
    }
    let path_and_query = origin_form(target);

    let mut headers = Vec::new();
    loop {
        let line = next_line(&mut reader)?
            .ok_or_else(|| RawRequestError::Malformed("no blank line after the headers".into()))?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(RawRequestError::Malformed(format!(
                "header line without ':' {line:?}"
            )));
        };
        if name.is_empty() || name.trim() != name {
            return Err(RawRequestError::Malformed(format!(
                "bad header name {name:?}"
            )));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let request = ReceivedRequest {
        method: method.to_owned(),
        path_and_query,
        headers,
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|te| !te.eq_ignore_ascii_case("identity"))
    {
        return Err(RawRequestError::Malformed(
            "transfer-encoding is not supported; send the body with Content-Length".into(),
        ));
    }
    let limit = match request.header("content-length") {
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| RawRequestError::Malformed(format!("bad Content-Length {v:?}")))?,
        None => u64::MAX,
    };
    Ok((request, reader.take(limit)))
}

/// The path-and-query of a request target: origin-form as is; for
/// absolute-form (`http://host/p?q`), the part from the path on.
fn origin_form(target: &str) -> String {
    for scheme in ["http://", "https://"] {
        let prefix = target.get(..scheme.len());
        if let (true, Some(rest)) = (
            prefix.is_some_and(|p| p.eq_ignore_ascii_case(scheme)),
            target.get(scheme.len()..),
        ) {
            return match rest.find(['/', '?']) {
                Some(i) if rest[i..].starts_with('/') => rest[i..].to_owned(),
                Some(i) => format!("/{}", &rest[i..]),
                None => "/".to_owned(),
            };
        }
    }
    target.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_head_and_leaves_body() {
        let raw =
            b"POST /kv?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX:  v \r\n\r\nabcEXTRA";
        let (req, mut body) = read_request(&raw[..]).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path_and_query, "/kv?x=1");
        assert_eq!(req.header("x"), Some("v"));
        let mut rest = String::new();
        body.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "abc");
    }

    #[test]
    fn lf_only_and_absolute_form() {
        let raw = b"GET http://h:8080?q=1 HTTP/1.1\nHost: h:8080\n\n";
        let (req, _) = read_request(&raw[..]).unwrap();
        assert_eq!(req.path_and_query, "/?q=1");
        let (req, _) = read_request(&b"GET HTTPS://h/a/b HTTP/1.1\n\n"[..]).unwrap();
        assert_eq!(req.path_and_query, "/a/b");
    }

    #[test]
    fn malformed_heads_are_errors() {
        for raw in [
            &b""[..],
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / SPDY/3\r\n\r\n",
        ] {
            assert!(
                matches!(read_request(raw), Err(RawRequestError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
