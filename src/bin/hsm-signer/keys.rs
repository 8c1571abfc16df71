//! Choosing and opening the key backend: flags > environment > profile.

use std::path::PathBuf;

use hsm_signer::config::{default_config_path, ConfigFile, Profile};
use hsm_signer::{KeyBackend, SecretSource, SoftwareKey};

use crate::cli::{DialectArg, DialectArgs, KeyArgs};
use crate::failure::{Context, Failure};

/// Loads the profile named by `--profile` / `HSM_SIGNER_PROFILE`, or an
/// empty one when none is named.
pub(crate) fn load_profile(
    config: Option<&PathBuf>,
    profile: Option<&str>,
) -> Result<Profile, Failure> {
    let env_profile = std::env::var("HSM_SIGNER_PROFILE")
        .ok()
        .filter(|p| !p.is_empty());
    let Some(name) = profile.map(str::to_owned).or(env_profile) else {
        return Ok(Profile::default());
    };
    let path = config
        .cloned()
        .or_else(|| std::env::var_os("HSM_SIGNER_CONFIG").map(PathBuf::from))
        .or_else(default_config_path)
        .ok_or_else(|| Failure::msg("no config file: use --config PATH"))?;
    let file = ConfigFile::load(&path)?;
    Ok(file.profile(&name, &path)?.clone())
}

/// The dialect from the flag, else the profile, else `acs`.
pub(crate) fn dialect(
    flag: Option<DialectArg>,
    profile: &Profile,
) -> Result<hsm_signer::Dialect, Failure> {
    Ok(match flag {
        Some(DialectArg::Acs) => hsm_signer::Dialect::Acs,
        Some(DialectArg::Appconfig) => hsm_signer::Dialect::AppConfig,
        None => match &profile.dialect {
            Some(name) => name
                .parse::<hsm_signer::Dialect>()
                .context("invalid dialect in profile")?,
            None => hsm_signer::Dialect::Acs,
        },
    })
}

/// The dialect and credential from the flags, else the profile.
pub(crate) fn scheme<'a>(
    flags: &'a DialectArgs,
    profile: &'a Profile,
) -> Result<(hsm_signer::Dialect, Option<&'a str>), Failure> {
    let credential = flags
        .credential
        .as_deref()
        .or(profile.credential.as_deref());
    Ok((dialect(flags.dialect, profile)?, credential))
}

/// Which kind of key the settings ask for.
enum Choice {
    Software(SecretSource),
    #[cfg(feature = "pkcs11")]
    Pkcs11,
}

fn choose(key: &KeyArgs, profile: &Profile) -> Result<Choice, Failure> {
    let flag_software = software_source(key.key_env.as_ref(), key.key_file.as_ref());
    let flag_hsm =
        key.key_label.is_some() || key.key_id.is_some() || key.token.pkcs11_uri.is_some();
    let profile_software = software_source(profile.key_env.as_ref(), profile.key_file.as_ref());
    let profile_hsm =
        profile.key_label.is_some() || profile.key_id.is_some() || profile.pkcs11_uri.is_some();
    match (flag_software, flag_hsm) {
        (Some(_), true) => Err(Failure::msg(
            "choose either a software key (--key-env/--key-file) or a PKCS#11 key \
             (--key-label/--key-id/--pkcs11-uri), not both",
        )),
        (Some(source), false) => Ok(Choice::Software(source)),
        (None, true) => pkcs11_choice(),
        (None, false) => match (profile_software, profile_hsm) {
            (Some(_), true) => Err(Failure::msg(
                "the profile names both a software key and a PKCS#11 key; keep one",
            )),
            (Some(source), false) => Ok(Choice::Software(source)),
            (None, true) => pkcs11_choice(),
            (None, false) => Err(Failure::msg(
                "no key given: use --key-env VAR or --key-file PATH (software key), \
                 --key-label LABEL or --pkcs11-uri URI (PKCS#11 key), or a --profile",
            )),
        },
    }
}

/// A software key from an environment variable, else a file (`-` = stdin).
fn software_source(env: Option<&String>, file: Option<&PathBuf>) -> Option<SecretSource> {
    match (env, file) {
        (Some(var), _) => Some(SecretSource::Env(var.clone())),
        (None, Some(path)) if path.as_os_str() == "-" => Some(SecretSource::Stdin),
        (None, Some(path)) => Some(SecretSource::File(path.clone())),
        (None, None) => None,
    }
}

#[cfg(feature = "pkcs11")]
fn pkcs11_choice() -> Result<Choice, Failure> {
    Ok(Choice::Pkcs11)
}

#[cfg(not(feature = "pkcs11"))]
fn pkcs11_choice() -> Result<Choice, Failure> {
    Err(Failure::msg(
        "this build has no PKCS#11 support (feature pkcs11)",
    ))
}

/// Opens the key the flags and profile select.
pub(crate) fn open_backend(
    key: &KeyArgs,
    profile: &Profile,
) -> Result<Box<dyn KeyBackend>, Failure> {
    match choose(key, profile)? {
        Choice::Software(source) => Ok(Box::new(SoftwareKey::from_source(&source)?)),
        #[cfg(feature = "pkcs11")]
        Choice::Pkcs11 => crate::token::open_key(key, profile),
    }
}
