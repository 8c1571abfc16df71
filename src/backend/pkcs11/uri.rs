//! RFC 7512 `pkcs11:` URIs, the parts this tool uses.

use std::path::PathBuf;

use super::error::Error;

/// What a `pkcs11:` URI selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=` label.
    pub token: Option<String>,
    /// `object=` key label.
    pub object: Option<String>,
    /// `id=` key id (percent-encoded bytes).
    pub id: Option<Vec<u8>>,
    /// `slot-id=`.
    pub slot_id: Option<u64>,
    /// `?module-path=`.
    pub module_path: Option<PathBuf>,
    /// `?pin-source=file:...` path.
    pub pin_file: Option<PathBuf>,
}

fn decode(value: &str) -> Result<Vec<u8>, Error> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::Uri(format!("bad percent escape in {value:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn decode_text(value: &str) -> Result<String, Error> {
    String::from_utf8(decode(value)?)
        .map_err(|_| Error::Uri(format!("{value:?} is not UTF-8 once decoded")))
}

impl Pkcs11Uri {
    /// Parses a URI such as
    /// `pkcs11:token=signer;object=acs-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin`.
    ///
    /// # Errors
    /// [`Error::Uri`] for a bad scheme or escape, an unknown attribute,
    /// `pin-value` (a PIN must never be on the command line) or a
    /// `pin-source` that is not a file.
    pub fn parse(uri: &str) -> Result<Self, Error> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| Error::Uri("it must start with \"pkcs11:\"".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut out = Self::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| Error::Uri(format!("attribute {attr:?} has no '='")))?;
            match name {
                "token" => out.token = Some(decode_text(value)?),
                "object" => out.object = Some(decode_text(value)?),
                "id" => out.id = Some(decode(value)?),
                "slot-id" => {
                    out.slot_id =
                        Some(value.parse().map_err(|_| {
                            Error::Uri(format!("slot-id {value:?} is not a number"))
                        })?)
                }
                "type" if matches!(value, "secret-key" | "secret") => {}
                "type" => {
                    return Err(Error::Uri(format!(
                        "type={value}: only secret keys are used"
                    )))
                }
                "manufacturer"
                | "model"
                | "serial"
                | "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer" => {}
                n if n.starts_with("x-") => {}
                n => return Err(Error::Uri(format!("unknown attribute {n:?}"))),
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| Error::Uri(format!("query attribute {attr:?} has no '='")))?;
            match name {
                "module-path" => out.module_path = Some(PathBuf::from(decode_text(value)?)),
                "pin-source" => {
                    let source = decode_text(value)?;
                    let path = source
                        .strip_prefix("file://")
                        .or_else(|| source.strip_prefix("file:"))
                        .unwrap_or(&source);
                    if path.starts_with('|') || path.is_empty() {
                        return Err(Error::Uri("pin-source must name a file".into()));
                    }
                    out.pin_file = Some(PathBuf::from(path));
                }
                "pin-value" => {
                    return Err(Error::Uri(
                        "pin-value is refused: a PIN must not appear on the command line; use pin-source=file:PATH".into(),
                    ))
                }
                "module-name" => {
                    return Err(Error::Uri("module-name is not supported; use module-path".into()))
                }
                n if n.starts_with("x-") => {}
                n => return Err(Error::Uri(format!("unknown query attribute {n:?}"))),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_parts_in_use() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=my%20token;object=acs-key;id=%01%ab;slot-id=7;type=secret-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("my token"));
        assert_eq!(uri.object.as_deref(), Some("acs-key"));
        assert_eq!(uri.id, Some(vec![0x01, 0xab]));
        assert_eq!(uri.slot_id, Some(7));
        assert_eq!(
            uri.module_path,
            Some(PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(uri.pin_file, Some(PathBuf::from("/run/pin")));
    }

    #[test]
    fn refuses_pin_value_and_unknowns() {
        for bad in [
            "pkcs11:token=t?pin-value=1234",
            "http://x",
            "pkcs11:tokn=t",
            "pkcs11:id=%zz",
            "pkcs11:type=private",
            "pkcs11:token=t?pin-source=|/bin/pinentry",
        ] {
            assert!(Pkcs11Uri::parse(bad).is_err(), "{bad}");
        }
        let err = Pkcs11Uri::parse("pkcs11:token=t?pin-value=1234").unwrap_err();
        assert!(!err.to_string().contains("1234"));
    }
}
