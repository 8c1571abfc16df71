//! `hsm-signer verify`: check one raw HTTP request.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use hsm_signer::config::Profile;
use hsm_signer::request::date::parse_http_date;
use hsm_signer::request::http::read_request;
use hsm_signer::request::verify::{VerifyRequestError, DEFAULT_MAX_SKEW};
use hsm_signer::{verify_request, Rejection, VerifyPolicy};
use serde::Serialize;

use crate::cli::{VerifyArgs, VerifyFormat};
use crate::failure::{Context, Failure, EXIT_INVALID};
use crate::keys;

#[derive(Serialize)]
struct VerifyJson {
    valid: bool,
    error: Option<String>,
    www_authenticate: Option<String>,
}

pub(crate) fn run(args: &VerifyArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    let (dialect, credential) = keys::scheme(&args.scheme, profile)?;
    let policy = VerifyPolicy {
        dialect,
        credential: credential.map(str::to_owned),
        max_skew: args
            .max_skew
            .or(profile.max_skew)
            .map_or(DEFAULT_MAX_SKEW, Duration::from_secs),
    };
    let now = match &args.now {
        Some(text) => parse_http_date(text).context("invalid --now")?,
        None => SystemTime::now(),
    };
    let input: Box<dyn io::Read> = if args.request.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.request).context(format!(
            "cannot open request file {}",
            args.request.display()
        ))?)
    };
    let (request, body) = read_request(BufReader::new(input))
        .context(format!("cannot read request {}", args.request.display()))?;
    let backend = keys::open_backend(&args.key, profile)?;
    let rejection = match verify_request(&*backend, &policy, &request, body, now) {
        Ok(()) => None,
        Err(VerifyRequestError::Rejected(r)) => Some(r),
        Err(e) => return Err(e.into()),
    };
    print_outcome(args.format, rejection.as_ref())?;
    Ok(match rejection {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(EXIT_INVALID),
    })
}

fn print_outcome(format: VerifyFormat, rejection: Option<&Rejection>) -> Result<(), Failure> {
    let out = match (format, rejection) {
        (VerifyFormat::Text, None) => "valid\n".to_owned(),
        (VerifyFormat::Text, Some(r)) => {
            let mut text = format!("invalid: {r}\nWWW-Authenticate: {}\n", r.www_authenticate());
            if let Some(detail) = r.detail() {
                text.push_str(&format!("detail: {detail}\n"));
            }
            text
        }
        (VerifyFormat::Json, r) => {
            let json = VerifyJson {
                valid: r.is_none(),
                error: r.map(Rejection::description),
                www_authenticate: r.map(Rejection::www_authenticate),
            };
            format!("{}\n", serde_json::to_string(&json)?)
        }
    };
    io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}
