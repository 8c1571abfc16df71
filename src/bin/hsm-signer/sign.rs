//! `hsm-signer sign`: the headers to add to one request, or a batch of them.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hsm_signer::config::Profile;
use hsm_signer::request::date::parse_http_date;
use hsm_signer::request::sign::check_credential;
use hsm_signer::{ContentHash, Dialect, KeyBackend, RequestSigner, SignedHeaders, Target};
use serde::{Deserialize, Serialize};

use crate::cli::{SignArgs, SignFormat};
use crate::failure::{Context, Failure};
use crate::keys;

#[derive(Serialize)]
struct HeadersJson<'a> {
    #[serde(rename = "x-ms-date")]
    date: &'a str,
    #[serde(rename = "x-ms-content-sha256")]
    content_sha256: &'a str,
    #[serde(rename = "Authorization")]
    authorization: &'a str,
}

impl<'a> From<&'a SignedHeaders> for HeadersJson<'a> {
    fn from(s: &'a SignedHeaders) -> Self {
        Self {
            date: &s.date,
            content_sha256: &s.content_sha256,
            authorization: &s.authorization,
        }
    }
}

#[derive(Serialize)]
struct SignJson<'a> {
    headers: HeadersJson<'a>,
    string_to_sign: &'a str,
}

pub(crate) fn run(args: &SignArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    let (dialect, credential) = keys::scheme(&args.scheme, profile)?;
    if args.batch {
        let backend = keys::open_backend(&args.key, profile)?;
        return batch(&*backend, dialect, credential);
    }
    let (Some(method), Some(url)) = (&args.method, &args.url) else {
        return Err(Failure::msg("METHOD and URL are required"));
    };
    let at = parse_date(args.date.as_deref())?;
    let target = Target::parse(url)?;
    let content = match (&args.body, &args.body_file) {
        (Some(text), _) => ContentHash::of_bytes(text.as_bytes()),
        (None, Some(path)) => hash_file(path)?,
        (None, None) => ContentHash::of_bytes(b""),
    };
    // Check the dialect settings before touching the key.
    check_credential(dialect, credential)?;
    let backend = keys::open_backend(&args.key, profile)?;
    let signer = RequestSigner::new(&*backend, dialect, credential)?;
    let signed = signer
        .sign_target(method, &target, &content, at)
        .context("cannot sign the request")?;
    let out = match args.format {
        SignFormat::Headers => signed
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {value}\n"))
            .collect(),
        SignFormat::Json => {
            let json = SignJson {
                headers: (&signed).into(),
                string_to_sign: signed.string_to_sign.as_str(),
            };
            format!("{}\n", serde_json::to_string(&json)?)
        }
        SignFormat::Curl => curl_command(&signed, method, url, args),
    };
    io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `--date` parsed (any accepted HTTP-date form), or the clock.
pub(crate) fn parse_date(date: Option<&str>) -> Result<SystemTime, Failure> {
    match date {
        Some(text) => parse_http_date(text).context("invalid --date"),
        None => Ok(SystemTime::now()),
    }
}

/// Read size for body files: large enough that hashing, not system calls,
/// sets the pace.
const BODY_BUFFER: usize = 1024 * 1024;

fn hash_file(path: &Path) -> Result<ContentHash, Failure> {
    let result = if path.as_os_str() == "-" {
        ContentHash::of_reader(io::BufReader::with_capacity(
            BODY_BUFFER,
            io::stdin().lock(),
        ))
    } else {
        File::open(path)
            .and_then(|f| ContentHash::of_reader(io::BufReader::with_capacity(BODY_BUFFER, f)))
    };
    result
        .map(|(hash, _)| hash)
        .context(format!("cannot read body file {}", path.display()))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn curl_command(signed: &SignedHeaders, method: &str, url: &str, args: &SignArgs) -> String {
    let mut cmd = format!("curl -X {}", shell_quote(&method.to_ascii_uppercase()));
    for (name, value) in signed.headers() {
        cmd.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
    }
    match (&args.body, &args.body_file) {
        (Some(text), _) => cmd.push_str(&format!(" --data-binary {}", shell_quote(text))),
        (None, Some(path)) => cmd.push_str(&format!(
            " --data-binary {}",
            shell_quote(&format!("@{}", path.display()))
        )),
        (None, None) => {}
    }
    cmd.push_str(&format!(" {}\n", shell_quote(url)));
    cmd
}

/// One line of `sign --batch` input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    method: String,
    url: String,
    body: Option<String>,
    body_b64: Option<String>,
    body_file: Option<PathBuf>,
    date: Option<String>,
    dialect: Option<String>,
    credential: Option<String>,
}

#[derive(Serialize)]
struct BatchHeaders<'a> {
    headers: HeadersJson<'a>,
}

/// `{"error": ...}` for a batch line that failed.
#[derive(Serialize)]
struct BatchError<'a> {
    error: &'a str,
}

/// Runs a JSON-lines batch: reads standard input line by line (blank lines
/// skipped), lets `each` write one result line per input line, and flushes.
pub(crate) fn json_lines(
    mut each: impl FnMut(&str, &mut dyn Write) -> serde_json::Result<()>,
) -> Result<ExitCode, Failure> {
    let mut out = BufWriter::new(io::stdout().lock());
    for line in io::stdin().lock().lines() {
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        each(&line, &mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Writes one batch result line: `ok` as JSON, or `{"error": ...}`.
pub(crate) fn write_result<T: Serialize>(
    out: &mut dyn Write,
    result: Result<T, &str>,
) -> serde_json::Result<()> {
    match result {
        Ok(ok) => serde_json::to_writer(&mut *out, &ok)?,
        Err(error) => serde_json::to_writer(&mut *out, &BatchError { error })?,
    }
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

fn batch(
    backend: &dyn KeyBackend,
    dialect: Dialect,
    credential: Option<&str>,
) -> Result<ExitCode, Failure> {
    let now = SystemTime::now();
    json_lines(|line, out| {
        let signed = sign_line(backend, dialect, credential, line, now);
        let shaped = signed.as_ref().map(|s| BatchHeaders { headers: s.into() });
        write_result(out, shaped.map_err(String::as_str))
    })
}

/// Signs one batch line; the error is the text for `{"error": ...}`.
fn sign_line(
    backend: &dyn KeyBackend,
    dialect: Dialect,
    credential: Option<&str>,
    line: &str,
    now: SystemTime,
) -> Result<SignedHeaders, String> {
    let req: BatchRequest =
        serde_json::from_str(line).map_err(|e| format!("invalid request line: {e}"))?;
    let dialect = match &req.dialect {
        Some(name) => name.parse().map_err(|e| format!("{e}"))?,
        None => dialect,
    };
    let credential = req.credential.as_deref().or(credential);
    let at = match &req.date {
        Some(text) => parse_http_date(text).map_err(|e| e.to_string())?,
        None => now,
    };
    let content = match (&req.body, &req.body_b64, &req.body_file) {
        (None, None, None) => ContentHash::of_bytes(b""),
        (Some(text), None, None) => ContentHash::of_bytes(text.as_bytes()),
        (None, Some(b64), None) => ContentHash::of_bytes(
            &STANDARD
                .decode(b64)
                .map_err(|_| "body_b64 is not valid base64".to_owned())?,
        ),
        (None, None, Some(path)) => File::open(path)
            .and_then(|f| ContentHash::of_reader(io::BufReader::with_capacity(BODY_BUFFER, f)))
            .map(|(h, _)| h)
            .map_err(|e| format!("cannot read body file {}: {e}", path.display()))?,
        _ => return Err("give at most one of body, body_b64, body_file".to_owned()),
    };
    let signer = RequestSigner::new(backend, dialect, credential).map_err(|e| e.to_string())?;
    signer
        .sign(&req.method, &req.url, &content, at)
        .map_err(|e| error_chain(&e))
}

/// An error and its causes on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}
