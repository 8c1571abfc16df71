//! PKCS#11 on the command line: which token, PIN and key; `key` commands; `doctor`.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use hsm_signer::backend::pkcs11::provision::{KeyDescription, Token};
use hsm_signer::backend::pkcs11::uri::Pkcs11Uri;
use hsm_signer::backend::pkcs11::{
    self as p11, parse_hex, KeySelector, Pkcs11Backend, PoolOptions, TokenSelector, TokenSpec,
};
use hsm_signer::config::Profile;
use hsm_signer::secret::read_pin;
use hsm_signer::{KeyBackend, SecretBytes, SecretSource, Tag};
use secrecy::SecretString;

use crate::cli::{
    DoctorArgs, KeyArgs, KeyCommand, KeyDeleteArgs, KeyGenerateArgs, KeyImportArgs, KeyListArgs,
    ListFormat, TokenArgs,
};
use crate::failure::{Context, Failure};

/// Environment variable read for the PIN when no PIN flag is given.
const PIN_ENV: &str = "HSM_SIGNER_PIN";

fn uri(args: &TokenArgs, profile: &Profile) -> Result<Option<Pkcs11Uri>, Failure> {
    match args.pkcs11_uri.as_ref().or(profile.pkcs11_uri.as_ref()) {
        Some(text) => Ok(Some(Pkcs11Uri::parse(text)?)),
        None => Ok(None),
    }
}

/// Token, module and PIN: flag > URI > environment > profile > prompt (TTY only).
pub(crate) fn token_spec(args: &TokenArgs, profile: &Profile) -> Result<TokenSpec, Failure> {
    let uri = uri(args, profile)?.unwrap_or_default();
    let module = args
        .module
        .clone()
        .or(uri.module_path.clone())
        .or_else(|| {
            std::env::var_os("HSM_SIGNER_MODULE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or(profile.module.clone())
        .ok_or(p11::Error::NoModule)?;
    // At each level a label wins over a slot id.
    let pick = |label: Option<&String>, slot: Option<u64>| match (label, slot) {
        (Some(label), _) => Some(TokenSelector::Label(label.clone())),
        (None, Some(slot)) => Some(TokenSelector::Slot(slot)),
        (None, None) => None,
    };
    let token = pick(args.token_label.as_ref(), args.slot)
        .or_else(|| pick(uri.token.as_ref(), uri.slot_id))
        .or_else(|| pick(profile.token_label.as_ref(), profile.slot))
        .unwrap_or(TokenSelector::Only);
    let pin_source = match (&args.pin_env, &args.pin_file, &uri.pin_file) {
        (Some(var), _, _) => Some(SecretSource::Env(var.clone())),
        (None, Some(path), _) | (None, None, Some(path)) => Some(SecretSource::File(path.clone())),
        (None, None, None) if std::env::var_os(PIN_ENV).is_some() => {
            Some(SecretSource::Env(PIN_ENV.to_owned()))
        }
        (None, None, None) => match (&profile.pin_env, &profile.pin_file) {
            (Some(var), _) => Some(SecretSource::Env(var.clone())),
            (None, Some(path)) => Some(SecretSource::File(path.clone())),
            (None, None) => None,
        },
    };
    let pin = match pin_source {
        Some(source) => Some(read_pin(&source).context("cannot read the PIN")?),
        None => prompt_pin()?,
    };
    Ok(TokenSpec { module, token, pin })
}

/// Asks for the PIN only when a person is at the terminal.
fn prompt_pin() -> Result<Option<SecretString>, Failure> {
    if !io::stdin().is_terminal() || !io::stderr().is_terminal() {
        return Ok(None);
    }
    let pin = rpassword::prompt_password("token PIN: ").context("cannot read the PIN")?;
    Ok(Some(SecretString::from(pin)))
}

fn key_selector(key: &KeyArgs, profile: &Profile) -> Result<KeySelector, Failure> {
    let uri = uri(&key.token, profile)?.unwrap_or_default();
    let hex_id = |text: &String| parse_hex(text);
    let flags = KeySelector {
        label: key.key_label.clone(),
        id: key.key_id.as_ref().map(hex_id).transpose()?,
    };
    if flags != KeySelector::default() {
        return Ok(flags);
    }
    let from_uri = KeySelector {
        label: uri.object,
        id: uri.id,
    };
    if from_uri != KeySelector::default() {
        return Ok(from_uri);
    }
    Ok(KeySelector {
        label: profile.key_label.clone(),
        id: profile.key_id.as_ref().map(hex_id).transpose()?,
    })
}

/// Opens the PKCS#11 key that the flags and profile select.
pub(crate) fn open_key(key: &KeyArgs, profile: &Profile) -> Result<Box<dyn KeyBackend>, Failure> {
    let spec = token_spec(&key.token, profile)?;
    let selector = key_selector(key, profile)?;
    let backend = Pkcs11Backend::open(&spec, &selector, PoolOptions::default())
        .context("cannot open the PKCS#11 key")?;
    Ok(Box::new(backend))
}

fn open_token(args: &TokenArgs, profile: &Profile) -> Result<Token, Failure> {
    let spec = token_spec(args, profile)?;
    Token::open(&spec).context("cannot open the token")
}

pub(crate) fn run_key(cmd: &KeyCommand, profile: &Profile) -> Result<ExitCode, Failure> {
    match cmd {
        KeyCommand::Import(args) => import(args, profile),
        KeyCommand::Generate(args) => generate(args, profile),
        KeyCommand::List(args) => list(args, profile),
        KeyCommand::Delete(args) => delete(args, profile),
    }
}

fn describe_line(d: &KeyDescription) -> String {
    let flag = |on: bool, yes: &str, no: &str| if on { yes.to_owned() } else { no.to_owned() };
    format!(
        "{label:<24} id={id:<18} {key_type:<18} {length:>4} bytes  {sign},{verify},{sens},{extr},{modi},{dest}",
        label = d.label,
        id = d.id,
        key_type = d.key_type,
        length = d.length.map_or("?".to_owned(), |n| n.to_string()),
        sign = flag(d.sign, "sign", "no-sign"),
        verify = flag(d.verify, "verify", "no-verify"),
        sens = flag(d.sensitive, "sensitive", "NOT-SENSITIVE"),
        extr = flag(d.extractable, "EXTRACTABLE", "not-extractable"),
        modi = flag(d.modifiable, "modifiable", "not-modifiable"),
        dest = flag(d.destroyable, "destroyable", "not-destroyable"),
    )
}

fn import(args: &KeyImportArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    let new = &args.new;
    let id = new.id.as_deref().map(parse_hex).transpose()?;
    let source = match (&args.from_env, &args.from_file) {
        (Some(var), _) => SecretSource::Env(var.clone()),
        (None, Some(path)) if path.as_os_str() != "-" => SecretSource::File(path.clone()),
        _ => SecretSource::Stdin,
    };
    // Read and check the secret before logging in.
    let secret = SecretBytes::read_base64(&source).context("cannot read the secret to import")?;
    let token = open_token(&new.token, profile)?;
    let d = token
        .import(&new.label, id.as_deref(), &secret, new.allow_delete)
        .context(format!("cannot import key {:?}", new.label))?;
    drop(secret);
    writeln!(io::stdout().lock(), "imported {}", describe_line(&d))?;
    Ok(ExitCode::SUCCESS)
}

fn generate(args: &KeyGenerateArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    let new = &args.new;
    let id = new.id.as_deref().map(parse_hex).transpose()?;
    let token = open_token(&new.token, profile)?;
    let d = token
        .generate(&new.label, id.as_deref(), args.bytes, new.allow_delete)
        .context(format!("cannot generate key {:?}", new.label))?;
    writeln!(io::stdout().lock(), "generated {}", describe_line(&d))?;
    Ok(ExitCode::SUCCESS)
}

fn list(args: &KeyListArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    let token = open_token(&args.token, profile)?;
    let keys = token.list().context("cannot list keys")?;
    let mut out = io::stdout().lock();
    match args.format {
        ListFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&keys)?)?,
        ListFormat::Text => {
            if keys.is_empty() {
                writeln!(out, "no secret keys in token {:?}", token.label())?;
            }
            for d in &keys {
                writeln!(out, "{}", describe_line(d))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn delete(args: &KeyDeleteArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    let token = open_token(&args.token, profile)?;
    token
        .delete(&args.label)
        .context(format!("cannot delete key {:?}", args.label))?;
    writeln!(io::stdout().lock(), "deleted key {:?}", args.label)?;
    Ok(ExitCode::SUCCESS)
}

/// One doctor check: its name, and the outcome with a hint on failure.
struct Check {
    out: Vec<String>,
    failed: bool,
}

impl Check {
    fn ok(&mut self, what: &str) {
        self.out.push(format!("ok    {what}"));
    }

    fn fail(&mut self, what: &str, error: &dyn std::error::Error, hint: &str) {
        self.failed = true;
        self.out
            .push(format!("FAIL  {what}: {}", crate::sign::error_chain(error)));
        self.out.push(format!("      hint: {hint}"));
    }

    fn skip(&mut self, what: &str, why: &str) {
        self.out.push(format!("skip  {what}: {why}"));
    }
}

fn hint_for(e: &p11::Error) -> &'static str {
    use p11::Error as E;
    match e {
        E::NoModule | E::ModuleMissing(_) => {
            "install the module (apt-get install softhsm2) or fix --module"
        }
        E::NotPkcs11Library { .. } => {
            "point --module at the vendor's PKCS#11 .so, not another library"
        }
        E::Initialize { .. } => {
            "check the module's own configuration (for SoftHSM2: SOFTHSM2_CONF)"
        }
        E::TokenNotFound { .. } | E::SlotNotFound { .. } | E::TokenNotNamed { .. } => {
            "use one of the labels listed, or initialise a token (scripts/softhsm-init.sh)"
        }
        E::PinMissing { .. } => "set HSM_SIGNER_PIN, or use --pin-env / --pin-file",
        E::PinIncorrect { .. } => "check the user PIN (not the SO PIN)",
        E::PinLocked { .. } => {
            "unlock the user PIN with the SO PIN (softhsm2-util / pkcs11-tool --init-pin)"
        }
        E::MechanismUnsupported { .. } => {
            "this token cannot compute HMAC-SHA256; use another token"
        }
        E::KeyNotFound { .. } | E::KeyNotNamed => {
            "list keys with `hsm-signer key list`; import or generate one"
        }
        E::AmbiguousKey { .. } => "select the key by --key-id as well",
        _ => "see the error above",
    }
}

pub(crate) fn run_doctor(args: &DoctorArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    let mut c = Check {
        out: Vec::new(),
        failed: false,
    };
    doctor_checks(args, profile, &mut c);
    let mut out = io::stdout().lock();
    for line in &c.out {
        writeln!(out, "{line}")?;
    }
    if c.failed {
        writeln!(out, "some checks failed")?;
        Ok(ExitCode::from(crate::failure::EXIT_ERROR))
    } else {
        writeln!(out, "all checks passed")?;
        Ok(ExitCode::SUCCESS)
    }
}

fn doctor_checks(args: &DoctorArgs, profile: &Profile, c: &mut Check) {
    let spec = match token_spec(&args.token, profile) {
        Ok(spec) => spec,
        Err(f) => {
            c.fail(
                "settings",
                &FailureError(f),
                "check --module, --token-label and the PIN source",
            );
            return;
        }
    };
    let ctx = match p11::module::context(&spec.module) {
        Ok(ctx) => {
            let lib = ctx
                .get_library_info()
                .map(|i| {
                    format!(
                        " ({} {})",
                        i.library_description().trim(),
                        i.library_version()
                    )
                })
                .unwrap_or_default();
            c.ok(&format!("module loads: {}{lib}", spec.module.display()));
            ctx
        }
        Err(e) => return c.fail("module loads", &e, hint_for(&e)),
    };
    let found = match p11::module::find_token(&ctx, &spec.token) {
        Ok(t) => {
            c.ok(&format!(
                "token found: {:?} in slot {}",
                t.label,
                t.slot.id()
            ));
            t
        }
        Err(e) => return c.fail("token found", &e, hint_for(&e)),
    };
    match p11::hmac_key_range(&ctx, found.slot, &found.label) {
        Ok((min, max)) => c.ok(&format!(
            "CKM_SHA256_HMAC supported for sign and verify, key sizes {min}..={max} bytes"
        )),
        Err(e) => c.fail("CKM_SHA256_HMAC supported", &e, hint_for(&e)),
    }
    let token = match Token::open(&spec) {
        Ok(t) => {
            c.ok("login");
            t
        }
        Err(e) => return c.fail("login", &e, hint_for(&e)),
    };
    let selector = KeySelector {
        label: args.key_label.clone(),
        id: match args.key_id.as_deref().map(parse_hex).transpose() {
            Ok(id) => id,
            Err(e) => return c.fail("key id", &e, "give the id as hex, e.g. 0a1b"),
        },
    };
    if selector == KeySelector::default() {
        c.skip("key checks", "give --key-label or --key-id to check a key");
        return;
    }
    let d = match token.find(&selector).and_then(|h| token.describe(h)) {
        Ok(d) => {
            c.ok(&format!(
                "key found: {selector} ({} {} bytes)",
                d.key_type,
                d.length.map_or("?".into(), |n| n.to_string())
            ));
            d
        }
        Err(e) => return c.fail("key found", &e, hint_for(&e)),
    };
    let mut problems = Vec::new();
    if !d.sensitive {
        problems.push("not sensitive (CKA_SENSITIVE false)");
    }
    if d.extractable {
        problems.push("extractable (CKA_EXTRACTABLE true)");
    }
    if !d.sign {
        problems.push("cannot sign (CKA_SIGN false)");
    }
    if !d.verify {
        problems.push("cannot verify (CKA_VERIFY false)");
    }
    if problems.is_empty() {
        c.ok("key attributes: sensitive, not extractable, sign, verify");
    } else {
        c.fail(
            "key attributes",
            &FailureError(Failure::msg(problems.join("; "))),
            "re-import the key with `hsm-signer key import` (it sets a hardened template)",
        );
    }
    let backend = match Pkcs11Backend::open(&spec, &selector, PoolOptions::default()) {
        Ok(b) => b,
        Err(e) => return c.fail("sign/verify round trip", &e, hint_for(&e)),
    };
    let probe = b"hsm-signer doctor probe";
    let round_trip = backend
        .sign(probe)
        .map_err(|e| e.to_string())
        .and_then(|tag| {
            backend.verify(probe, &tag).map_err(|e| e.to_string())?;
            let mut flipped = *tag.as_bytes();
            flipped[0] ^= 1;
            match backend.verify(probe, &Tag::new(flipped)) {
                Err(hsm_signer::VerifyError::Mismatch) => Ok(()),
                Ok(()) => Err("the token accepted a wrong tag".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        });
    match round_trip {
        Ok(()) => c.ok("sign/verify round trip in the token (and a wrong tag rejected)"),
        Err(e) => c.fail(
            "sign/verify round trip",
            &FailureError(Failure::msg(e)),
            "the key may be shorter than the token's minimum, or lack CKA_SIGN/CKA_VERIFY",
        ),
    }
}

/// A [`Failure`] shown through `std::error::Error` for the doctor lines.
#[derive(Debug)]
struct FailureError(Failure);

impl std::fmt::Display for FailureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.summary())
    }
}

impl std::error::Error for FailureError {}
