//! TOML profiles and the choice of key backend.
//!
//! A profile holds the same settings as the command-line flags, but never a
//! secret: only where to read it (`key_env`, `key_file`, `pin_env`,
//! `pin_file`). Unknown keys are an error.
//!
//! ```toml
//! [profiles.acs-prod]
//! dialect = "acs"
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "signer"
//! pin_file = "/run/secrets/hsm-pin"
//! key_label = "acs-key"
//!
//! [profiles.dev]
//! dialect = "appconfig"
//! credential = "my-access-key-id"
//! key_env = "APPCONFIG_SECRET"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why configuration could not be loaded or a key not be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys. Only the line
    /// number and the parser's message are kept: the offending line may
    /// hold a secret someone pasted inline.
    #[error("invalid config file {path}, line {line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// What the parser said, without the source text.
        message: String,
    },
    /// The named profile is not in the file.
    #[error("profile {name:?} not found in {path} (profiles: {available})")]
    UnknownProfile {
        /// Profile asked for.
        name: String,
        /// The file.
        path: PathBuf,
        /// Names that exist, comma-separated.
        available: String,
    },
    /// Settings that cannot go together, or a missing one.
    #[error("{0}")]
    Invalid(String),
}

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Named profiles.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One profile: the same settings as the flags, secrets only by reference.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `acs` or `appconfig`.
    pub dialect: Option<String>,
    /// Access key id for `appconfig`.
    pub credential: Option<String>,
    /// Verifier clock skew window in seconds.
    pub max_skew: Option<u64>,
    /// Software key: environment variable holding the base64 secret.
    pub key_env: Option<String>,
    /// Software key: file holding the base64 secret.
    pub key_file: Option<PathBuf>,
    /// PKCS#11 module path.
    pub module: Option<PathBuf>,
    /// Token label.
    pub token_label: Option<String>,
    /// Slot id.
    pub slot: Option<u64>,
    /// Environment variable holding the user PIN.
    pub pin_env: Option<String>,
    /// File holding the user PIN.
    pub pin_file: Option<PathBuf>,
    /// Key label.
    pub key_label: Option<String>,
    /// Key id, hex.
    pub key_id: Option<String>,
    /// RFC 7512 PKCS#11 URI.
    pub pkcs11_uri: Option<String>,
}

impl ConfigFile {
    /// Parses TOML text; `path` is only used in messages.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for invalid TOML, unknown keys or wrong types.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            line: e.span().map_or(0, |span| {
                text[..span.start.min(text.len())].matches('\n').count() + 1
            }),
            message: e.message().trim().to_owned(),
        })
    }

    /// Reads and parses a config file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The profile called `name`.
    ///
    /// # Errors
    /// [`ConfigError::UnknownProfile`] listing the profiles that exist.
    pub fn profile(&self, name: &str, path: &Path) -> Result<&Profile, ConfigError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ConfigError::UnknownProfile {
                name: name.to_owned(),
                path: path.to_owned(),
                available: if self.profiles.is_empty() {
                    "none".to_owned()
                } else {
                    self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })
    }
}

/// The default config path: `$XDG_CONFIG_HOME/hsm-signer/config.toml`, or
/// `$HOME/.config/hsm-signer/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("hsm-signer").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles() {
        let text = r#"
            [profiles.dev]
            dialect = "appconfig"
            credential = "id"
            key_env = "K"
            [profiles.hsm]
            module = "/m.so"
            token_label = "t"
            pin_file = "/p"
            key_label = "k"
            slot = 3
        "#;
        let cfg = ConfigFile::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(cfg.profiles["dev"].key_env.as_deref(), Some("K"));
        assert_eq!(cfg.profiles["hsm"].slot, Some(3));
        let err = cfg.profile("nope", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("dev, hsm"), "{err}");
    }

    #[test]
    fn unknown_keys_and_inline_secrets_are_rejected() {
        for text in [
            "[profiles.a]\npin = \"1234\"\n",
            "[profiles.a]\nkey = \"c2VjcmV0\"\n",
            "[profiles.a]\nkey_labl = \"typo\"\n",
            "top = 1\n",
        ] {
            let err = ConfigFile::parse(text, Path::new("c")).unwrap_err();
            assert!(matches!(err, ConfigError::Parse { .. }), "{text}");
            let shown = err.to_string();
            assert!(
                !shown.contains("1234") && !shown.contains("c2VjcmV0"),
                "{shown}"
            );
        }
    }
}
