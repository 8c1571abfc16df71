//! `hsm-signer hmac` and `hmac-verify`: raw HMAC-SHA256 over a payload.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hsm_signer::config::Profile;
use hsm_signer::{KeyBackend, Tag, VerifyError};
use serde::{Deserialize, Serialize};

use crate::cli::{HmacArgs, HmacVerifyArgs};
use crate::failure::{Context, Failure, EXIT_INVALID};
use crate::keys;
use crate::sign::{error_chain, json_lines, write_result};

/// Largest payload accepted: HMAC payloads are messages, not files.
const MAX_INPUT: u64 = 64 * 1024 * 1024;

fn read_input(input: Option<&PathBuf>) -> Result<Vec<u8>, Failure> {
    let path = input.map_or(Path::new("-"), PathBuf::as_path);
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).context(format!("cannot open input {}", path.display()))?)
    };
    let mut data = Vec::new();
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut data)
        .context(format!("cannot read input {}", path.display()))?;
    if data.len() as u64 > MAX_INPUT {
        return Err(Failure::msg(format!(
            "input {} is larger than {MAX_INPUT} bytes",
            path.display()
        )));
    }
    Ok(data)
}

pub(crate) fn run(args: &HmacArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    if args.batch {
        let backend = keys::open_backend(&args.key, profile)?;
        return batch(&*backend);
    }
    let data = read_input(args.input.as_ref())?;
    let backend = keys::open_backend(&args.key, profile)?;
    let tag = backend.sign(&data).context("cannot compute the HMAC")?;
    writeln!(io::stdout().lock(), "{}", tag.to_base64())?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_verify(args: &HmacVerifyArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    let tag = match Tag::from_base64(&args.signature) {
        Ok(tag) => Some(tag),
        // Not base64 at all is a usage error; a tag of the wrong length is
        // simply not the right tag.
        Err(hsm_signer::tag::TagError::Base64) => {
            return Err(Failure::msg("--signature is not valid base64"))
        }
        Err(_) => None,
    };
    let data = read_input(args.input.as_ref())?;
    let backend = keys::open_backend(&args.key, profile)?;
    let valid = match tag {
        None => false,
        Some(tag) => match backend.verify(&data, &tag) {
            Ok(()) => true,
            Err(VerifyError::Mismatch) => false,
            Err(e) => return Err(e).context("cannot verify the HMAC"),
        },
    };
    let mut out = io::stdout().lock();
    if valid {
        writeln!(out, "valid")?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "invalid")?;
        Ok(ExitCode::from(EXIT_INVALID))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchPayload {
    payload_b64: String,
}

#[derive(Serialize)]
struct BatchHmac {
    hmac: String,
}

fn batch(backend: &dyn KeyBackend) -> Result<ExitCode, Failure> {
    json_lines(|line, out| {
        let result = serde_json::from_str::<BatchPayload>(line)
            .map_err(|e| format!("invalid payload line: {e}"))
            .and_then(|p| {
                STANDARD
                    .decode(p.payload_b64)
                    .map_err(|_| "payload_b64 is not valid base64".to_owned())
            })
            .and_then(|data| backend.sign(&data).map_err(|e| error_chain(&e)));
        let shaped = result.as_ref().map(|tag| BatchHmac {
            hmac: tag.to_base64(),
        });
        write_result(out, shaped.map_err(String::as_str))
    })
}
