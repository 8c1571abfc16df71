//! Black-box tests of the `hsm-signer` binary: exact output and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::Path;

use assert_cmd::Command;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

const DATE: &str = "Fri, 11 May 2018 18:48:36 GMT";
const URL: &str = "https://contoso.communication.azure.com/identities?api-version=2023-10-01";

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/signing.json")).unwrap()
}

fn key_b64() -> String {
    vectors()["key_b64"].as_str().unwrap().to_owned()
}

fn case(name: &str) -> Value {
    vectors()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
        .clone()
}

/// The binary with the test key in `TEST_KEY` and no PKCS#11/profile settings.
fn hsm_signer() -> Command {
    let mut cmd = Command::cargo_bin("hsm-signer").unwrap();
    cmd.env("TEST_KEY", key_b64())
        .env_remove("HSM_SIGNER_PROFILE")
        .env_remove("HSM_SIGNER_CONFIG");
    cmd
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Out {
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn expected_headers(c: &Value) -> String {
    format!(
        "x-ms-date: {}\nx-ms-content-sha256: {}\nAuthorization: {}\n",
        c["x_ms_date"].as_str().unwrap(),
        c["content_sha256"].as_str().unwrap(),
        c["authorization"].as_str().unwrap()
    )
}

// ------------------------------------------------------------------ sign

#[test]
fn sign_prints_the_three_headers() {
    let c = case("acs-identities-get");
    let out = run(hsm_signer().args(["sign", "--key-env", "TEST_KEY", "--date", DATE, "GET", URL]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, expected_headers(&c));
    assert_eq!(out.stderr, "");
}

#[test]
fn sign_appconfig_json_with_body_file() {
    let c = case("binary-body");
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.bin");
    std::fs::write(
        &body,
        STANDARD.decode(c["body_b64"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let out = run(hsm_signer()
        .args([
            "sign",
            "--key-file",
            "-",
            "--dialect",
            "appconfig",
            "--credential",
            "bin-id",
            "--date",
            c["date"].as_str().unwrap(),
            "--body-file",
            body.to_str().unwrap(),
            "--format",
            "json",
            "put",
            c["url"].as_str().unwrap(),
        ])
        .write_stdin(key_b64()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["headers"]["x-ms-date"], c["x_ms_date"]);
    assert_eq!(json["headers"]["x-ms-content-sha256"], c["content_sha256"]);
    assert_eq!(json["headers"]["Authorization"], c["authorization"]);
    assert_eq!(json["string_to_sign"], c["string_to_sign"]);
}

#[test]
fn sign_body_from_stdin_and_text_agree() {
    let c = case("upper-case-host-default-port");
    let url = c["url"].as_str().unwrap();
    let date = c["date"].as_str().unwrap();
    let from_stdin = run(hsm_signer()
        .args([
            "sign",
            "--key-env",
            "TEST_KEY",
            "--date",
            date,
            "--body-file",
            "-",
            "PATCH",
            url,
        ])
        .write_stdin("hello"));
    let from_text = run(hsm_signer().args([
        "sign",
        "--key-env",
        "TEST_KEY",
        "--date",
        date,
        "--body",
        "hello",
        "PATCH",
        url,
    ]));
    assert_eq!(from_stdin.stdout, expected_headers(&c));
    assert_eq!(from_text.stdout, expected_headers(&c));
}

#[test]
fn sign_curl_format_is_a_usable_command() {
    let out = run(hsm_signer().args([
        "sign",
        "--key-env",
        "TEST_KEY",
        "--date",
        DATE,
        "--body",
        "it's",
        "--format",
        "curl",
        "post",
        URL,
    ]));
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with(
        "curl -X 'POST' -H 'x-ms-date: Fri, 11 May 2018 18:48:36 GMT' -H 'x-ms-content-sha256: "
    ));
    assert!(
        out.stdout.contains(" --data-binary 'it'\\''s' "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with(&format!(" '{URL}'\n")));
}

#[test]
fn sign_errors_exit_2_with_causes() {
    let out = run(hsm_signer()
        .args(["sign", "--key-env", "NO_SUCH_VAR", "GET", URL])
        .env_remove("NO_SUCH_VAR"));
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: cannot load the software key\n  caused by: environment variable NO_SUCH_VAR is not set\n"
    );
    assert_eq!(out.stdout, "");

    let out = run(hsm_signer().env("BAD_KEY", "s3cr3t-not-base64!").args([
        "sign",
        "--key-env",
        "BAD_KEY",
        "GET",
        URL,
    ]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("environment variable BAD_KEY"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("not valid base64"));
    assert!(
        !out.stderr.contains("s3cr3t"),
        "secret echoed: {}",
        out.stderr
    );

    let out =
        run(hsm_signer()
            .env("EMPTY_KEY", "")
            .args(["sign", "--key-env", "EMPTY_KEY", "GET", URL]));
    assert_eq!(out.code, 2);
    assert!(out
        .stderr
        .contains("secret from environment variable EMPTY_KEY is empty"));

    let out = run(hsm_signer().args([
        "sign",
        "--key-env",
        "TEST_KEY",
        "--date",
        "yesterday",
        "GET",
        URL,
    ]));
    assert_eq!(out.code, 2);
    assert!(out
        .stderr
        .starts_with("error: invalid --date\n  caused by: unrecognised HTTP date \"yesterday\""));

    let out =
        run(hsm_signer().args(["sign", "--key-env", "TEST_KEY", "GET", "contoso/identities"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: invalid URL \"contoso/identities\""),
        "{}",
        out.stderr
    );

    let out = run(hsm_signer().args(["sign", "--key-env", "TEST_KEY", "GET", "ftp://h/x"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("must be an absolute http or https URL"));

    let out = run(hsm_signer().args(["sign", "--key-env", "TEST_KEY", "GE T", URL]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("invalid HTTP method"));

    let out = run(hsm_signer().args([
        "sign",
        "--key-env",
        "TEST_KEY",
        "--body-file",
        "/nonexistent/body",
        "PUT",
        URL,
    ]));
    assert_eq!(out.code, 2);
    assert!(out
        .stderr
        .starts_with("error: cannot read body file /nonexistent/body\n  caused by: "));

    let out = run(hsm_signer().args([
        "sign",
        "--key-env",
        "TEST_KEY",
        "--dialect",
        "appconfig",
        "GET",
        URL,
    ]));
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: the appconfig dialect needs a credential (access key id)\n"
    );

    let out = run(hsm_signer()
        .args(["sign", "GET", URL])
        .env_remove("HSM_SIGNER_MODULE"));
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("error: no key given"));

    // Secrets cannot be passed on the command line at all.
    let out = run(hsm_signer().args(["sign", "--key", &key_b64(), "GET", URL]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unexpected argument '--key'"));
}

// ---------------------------------------------------------------- verify

/// A raw HTTP request carrying the signed headers of `c`.
fn raw_request(c: &Value, line_end: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "{} {} HTTP/1.1{e}Host: {}{e}x-ms-date: {}{e}x-ms-content-sha256: {}{e}Authorization: {}{e}Content-Length: {}{e}{e}",
        c["method"].as_str().unwrap().to_ascii_uppercase(),
        c["path_and_query"].as_str().unwrap(),
        c["host"].as_str().unwrap(),
        c["x_ms_date"].as_str().unwrap(),
        c["content_sha256"].as_str().unwrap(),
        c["authorization"].as_str().unwrap(),
        body.len(),
        e = line_end
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn verify_cmd(raw: &[u8], extra: &[&str]) -> Out {
    run(hsm_signer()
        .args(["verify", "--key-env", "TEST_KEY", "--request", "-"])
        .args(extra)
        .write_stdin(raw.to_vec()))
}

#[test]
fn verify_accepts_a_signed_request_crlf_and_lf() {
    let c = case("acs-create-token-post");
    let body = STANDARD.decode(c["body_b64"].as_str().unwrap()).unwrap();
    let now = c["x_ms_date"].as_str().unwrap();
    for eol in ["\r\n", "\n"] {
        let out = verify_cmd(&raw_request(&c, eol, &body), &["--now", now]);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "valid\n"),
            "{}",
            out.stderr
        );
    }
    let out = verify_cmd(
        &raw_request(&c, "\r\n", &body),
        &["--now", now, "--format", "json"],
    );
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "{\"valid\":true,\"error\":null,\"www_authenticate\":null}\n"
    );
}

#[test]
fn verify_rejections_exit_1_with_reason() {
    let c = case("acs-create-token-post");
    let body = STANDARD.decode(c["body_b64"].as_str().unwrap()).unwrap();
    let now = c["x_ms_date"].as_str().unwrap();

    let mut changed = body.clone();
    changed[2] ^= 0x20;
    let out = verify_cmd(&raw_request(&c, "\r\n", &changed), &["--now", now]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "invalid: Invalid Signature\n\
         WWW-Authenticate: HMAC-SHA256 error=\"invalid_token\" error_description=\"Invalid Signature\", Bearer\n\
         detail: the body does not match x-ms-content-sha256\n"
    );

    let out = verify_cmd(
        &raw_request(&c, "\r\n", &body),
        &["--now", "Mon, 23 Nov 2026 12:16:01 GMT", "--format", "json"],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "{\"valid\":false,\"error\":\"The access token has expired\",\"www_authenticate\":\"HMAC-SHA256 error=\\\"invalid_token\\\" error_description=\\\"The access token has expired\\\", Bearer\"}\n"
    );
    // Inside a custom window it passes.
    let out = verify_cmd(
        &raw_request(&c, "\r\n", &body),
        &[
            "--now",
            "Mon, 23 Nov 2026 12:16:01 GMT",
            "--max-skew",
            "1000",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stdout);

    let raw = String::from_utf8(raw_request(&c, "\r\n", &body)).unwrap();
    let no_auth: String = raw
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Authorization"))
        .collect();
    let out = verify_cmd(no_auth.as_bytes(), &["--now", now]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "invalid: Authorization request header with HMAC-SHA256 scheme is not provided\nWWW-Authenticate: HMAC-SHA256, Bearer\n"
    );
}

#[test]
fn verify_bad_input_exits_2() {
    let out = verify_cmd(b"GET / HTTP/1.1\r\nHost: h\r\n", &[]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: cannot read request -\n  caused by: malformed request: no blank line after the headers\n"
    );
    let out = run(hsm_signer().args([
        "verify",
        "--key-env",
        "TEST_KEY",
        "--request",
        "/nonexistent/req",
    ]));
    assert_eq!(out.code, 2);
    assert!(out
        .stderr
        .starts_with("error: cannot open request file /nonexistent/req"));
    let out = verify_cmd(b"GET / HTTP/1.1\r\n\r\n", &["--now", "soon"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("error: invalid --now"));
}

#[test]
fn sign_then_verify_round_trip_through_the_cli() {
    let out = run(hsm_signer().args([
        "sign",
        "--key-env",
        "TEST_KEY",
        "--date",
        DATE,
        "--body",
        "{}",
        "POST",
        URL,
    ]));
    assert_eq!(out.code, 0);
    let mut raw = format!(
        "POST /identities?api-version=2023-10-01 HTTP/1.1\r\nHost: contoso.communication.azure.com\r\n{}Content-Length: 2\r\n\r\n{{}}",
        out.stdout.replace('\n', "\r\n")
    );
    let ok = verify_cmd(raw.as_bytes(), &["--now", DATE]);
    assert_eq!((ok.code, ok.stdout.as_str()), (0, "valid\n"));
    raw = raw.replace("Host: contoso", "Host: evil-contoso");
    let bad = verify_cmd(raw.as_bytes(), &["--now", DATE]);
    assert_eq!(bad.code, 1);
    assert!(bad.stdout.starts_with("invalid: Invalid Signature\n"));
}

// ------------------------------------------------------------------ hmac

#[test]
fn hmac_and_hmac_verify() {
    // RFC 4231 test case 2: key "Jefe".
    let jefe = STANDARD.encode("Jefe");
    let tag = STANDARD.encode(
        (0..32)
            .map(|i| {
                u8::from_str_radix(
                    &"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
                        [i * 2..i * 2 + 2],
                    16,
                )
                .unwrap()
            })
            .collect::<Vec<_>>(),
    );
    let out = run(hsm_signer()
        .env("JEFE", &jefe)
        .args(["hmac", "--key-env", "JEFE"])
        .write_stdin("what do ya want for nothing?"));
    assert_eq!(
        (out.code, out.stdout.clone()),
        (0, format!("{tag}\n")),
        "{}",
        out.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("msg");
    std::fs::write(&input, "what do ya want for nothing?").unwrap();
    let verify = |sig: &str| {
        run(hsm_signer()
            .env("JEFE", &jefe)
            .args([
                "hmac-verify",
                "--key-env",
                "JEFE",
                "--signature",
                sig,
                "--input",
            ])
            .arg(&input))
    };
    let ok = verify(&tag);
    assert_eq!((ok.code, ok.stdout.as_str()), (0, "valid\n"));
    let mut flipped = STANDARD.decode(&tag).unwrap();
    flipped[0] ^= 1;
    let bad = verify(&STANDARD.encode(&flipped));
    assert_eq!((bad.code, bad.stdout.as_str()), (1, "invalid\n"));
    let short = verify("YXNk");
    assert_eq!((short.code, short.stdout.as_str()), (1, "invalid\n"));
    let garbage = verify("***");
    assert_eq!(garbage.code, 2);
    assert_eq!(garbage.stderr, "error: --signature is not valid base64\n");
}

// ----------------------------------------------------------------- batch

#[test]
fn sign_batch_keeps_going_after_a_bad_line() {
    let c = case("acs-identities-get");
    let lines = format!(
        "{}\n{{not json\n{}\n{}\n",
        serde_json::json!({"method": "GET", "url": c["url"], "date": c["date"]}),
        serde_json::json!({"method": "GET", "url": "no-url", "date": DATE}),
        serde_json::json!({"method": "POST", "url": URL, "date": DATE, "body_b64": STANDARD.encode("{}"),
                           "dialect": "appconfig", "credential": "cid"}),
    );
    let out = run(hsm_signer()
        .args(["sign", "--batch", "--key-env", "TEST_KEY"])
        .write_stdin(lines));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let results: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["headers"]["Authorization"], c["authorization"]);
    assert!(results[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid request line"));
    assert!(results[2]["error"]
        .as_str()
        .unwrap()
        .contains("invalid URL"));
    let auth = results[3]["headers"]["Authorization"].as_str().unwrap();
    assert!(
        auth.starts_with("HMAC-SHA256 Credential=cid&SignedHeaders="),
        "{auth}"
    );
    assert_eq!(
        results[3]["headers"]["x-ms-content-sha256"],
        "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
    );
}

#[test]
fn hmac_batch() {
    let jefe = STANDARD.encode("Jefe");
    let input = format!(
        "{}\n{{\"payload_b64\": \"%%%\"}}\n{}\n",
        serde_json::json!({"payload_b64": STANDARD.encode("what do ya want for nothing?")}),
        serde_json::json!({"payload_b64": "YXNk"}),
    );
    let out = run(hsm_signer()
        .env("JEFE", &jefe)
        .args(["hmac", "--batch", "--key-env", "JEFE"])
        .write_stdin(input));
    assert_eq!(out.code, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        "{\"hmac\":\"W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=\"}"
    );
    assert_eq!(lines[1], "{\"error\":\"payload_b64 is not valid base64\"}");
    assert!(lines[2].starts_with("{\"hmac\":\""));
}

// -------------------------------------------------------------- profiles

fn write(path: &Path, text: &str) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

#[test]
fn profiles_supply_settings_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    write(
        &cfg,
        "[profiles.dev]\ndialect = \"appconfig\"\ncredential = \"myid\"\nkey_env = \"TEST_KEY\"\n",
    );
    let c = case("seed-appconfig-kv");
    let url = c["url"].as_str().unwrap();
    let out = run(hsm_signer().args([
        "--config",
        cfg.to_str().unwrap(),
        "--profile",
        "dev",
        "sign",
        "--date",
        DATE,
        "GET",
        url,
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, expected_headers(&c));

    // The environment selects the profile too; a flag overrides the dialect.
    let out = run(hsm_signer()
        .env("HSM_SIGNER_CONFIG", &cfg)
        .env("HSM_SIGNER_PROFILE", "dev")
        .args(["sign", "--dialect", "acs", "--date", DATE, "GET", url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out
        .stdout
        .contains("Authorization: HMAC-SHA256 SignedHeaders="));

    let out = run(hsm_signer().args([
        "--config",
        cfg.to_str().unwrap(),
        "--profile",
        "prod",
        "sign",
        "GET",
        url,
    ]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("profile \"prod\" not found") && out.stderr.contains("(profiles: dev)")
    );

    for bad in [
        "[profiles.x]\npin = \"1234\"\n",
        "[profiles.x]\nkey_lable = \"k\"\n",
        "[profiles.x\n",
    ] {
        write(&cfg, bad);
        let out = run(hsm_signer().args([
            "--config",
            cfg.to_str().unwrap(),
            "--profile",
            "x",
            "sign",
            "GET",
            url,
        ]));
        assert_eq!(out.code, 2, "{bad}");
        assert!(
            out.stderr.starts_with("error: invalid config file"),
            "{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("1234"),
            "inline secret echoed: {}",
            out.stderr
        );
    }
}

#[test]
fn help_lists_every_command() {
    let out = run(hsm_signer().arg("--help"));
    assert_eq!(out.code, 0);
    for cmd in ["sign", "verify", "hmac", "hmac-verify", "key", "doctor"] {
        assert!(
            out.stdout.contains(&format!("  {cmd} ")),
            "{cmd} missing:\n{}",
            out.stdout
        );
    }
    let out = run(hsm_signer().arg("frobnicate"));
    assert_eq!(out.code, 2);
}

// --------------------------------------------------------- with SoftHSM

#[cfg(feature = "pkcs11")]
mod pkcs11 {
    use super::*;
    use common::hsm::{spec, unique_label};
    use std::sync::{Mutex, MutexGuard};

    /// These tests start processes that write to one SoftHSM token, and
    /// SoftHSM's file store does not isolate a reader from a concurrent
    /// writer in another process: run them one at a time.
    fn one_at_a_time() -> MutexGuard<'static, ()> {
        static TOKEN: Mutex<()> = Mutex::new(());
        TOKEN.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn token_label() -> String {
        std::env::var("HSM_SIGNER_TOKEN_LABEL").unwrap()
    }

    /// `key import` of the test key (`TEST_KEY`) under `label`.
    fn import_test_key(tl: &str, label: &str) -> Out {
        run(hsm_signer().args([
            "key",
            "import",
            "--token-label",
            tl,
            "--label",
            label,
            "--from-env",
            "TEST_KEY",
        ]))
    }

    #[test]
    fn import_sign_verify_list_end_to_end() {
        let Some(_) = spec() else { return };
        let _token = one_at_a_time();
        let label = unique_label("cli");
        let tl = token_label();
        let out = import_test_key(&tl, &label);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.starts_with(&format!("imported {label}")));
        assert!(out
            .stdout
            .contains("sensitive,not-extractable,not-modifiable,not-destroyable"));

        // Same label again: refused.
        let again = import_test_key(&tl, &label);
        assert_eq!(again.code, 2);
        assert!(again.stderr.contains("already exists"));

        // The HMAC runs in the token and equals the software key's.
        let c = case("acs-identities-get");
        let hsm = run(hsm_signer().args([
            "sign",
            "--token-label",
            &tl,
            "--key-label",
            &label,
            "--date",
            DATE,
            "GET",
            URL,
        ]));
        assert_eq!(hsm.code, 0, "{}", hsm.stderr);
        assert_eq!(hsm.stdout, expected_headers(&c));

        // Verify with the token key (C_Verify inside the token).
        let post = case("acs-create-token-post");
        let body = STANDARD.decode(post["body_b64"].as_str().unwrap()).unwrap();
        let raw = raw_request(&post, "\r\n", &body);
        let now = post["x_ms_date"].as_str().unwrap();
        let verify_in_token = |request: Vec<u8>| {
            run(hsm_signer()
                .args([
                    "verify",
                    "--token-label",
                    &tl,
                    "--key-label",
                    &label,
                    "--now",
                    now,
                    "--request",
                    "-",
                ])
                .write_stdin(request))
        };
        let ok = verify_in_token(raw.clone());
        assert_eq!(
            (ok.code, ok.stdout.as_str()),
            (0, "valid\n"),
            "{}",
            ok.stderr
        );
        let mut tampered = raw.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let bad = verify_in_token(tampered);
        assert_eq!(bad.code, 1);

        // The same key by RFC 7512 URI, PIN from a file.
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        std::fs::write(
            &pin,
            format!("{}\n", std::env::var("HSM_SIGNER_PIN").unwrap()),
        )
        .unwrap();
        let uri = format!(
            "pkcs11:token={tl};object={label}?module-path={}&pin-source=file:{}",
            std::env::var("HSM_SIGNER_MODULE").unwrap(),
            pin.display()
        );
        let by_uri = run(hsm_signer()
            .env_remove("HSM_SIGNER_PIN")
            .env_remove("HSM_SIGNER_MODULE")
            .args(["sign", "--pkcs11-uri", &uri, "--date", DATE, "GET", URL]));
        assert_eq!(by_uri.code, 0, "{}", by_uri.stderr);
        assert_eq!(by_uri.stdout, expected_headers(&c));
        let pin_value = run(hsm_signer().args([
            "sign",
            "--pkcs11-uri",
            &format!("pkcs11:token={tl}?pin-value=1234"),
            "GET",
            URL,
        ]));
        assert_eq!(pin_value.code, 2);
        assert!(pin_value.stderr.contains("pin-value is refused"));

        // key list --format json
        let list =
            run(hsm_signer().args(["key", "list", "--token-label", &tl, "--format", "json"]));
        assert_eq!(list.code, 0, "{}", list.stderr);
        let keys: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
        let k = keys.iter().find(|k| k["label"] == label.as_str()).unwrap();
        assert_eq!(k["length"], 64);
        assert_eq!(k["key_type"], "CKK_GENERIC_SECRET");
        for (field, want) in [
            ("sign", true),
            ("verify", true),
            ("sensitive", true),
            ("extractable", false),
            ("modifiable", false),
            ("destroyable", false),
        ] {
            assert_eq!(k[field], want, "{field}");
        }
        assert_eq!(k["id"].as_str().unwrap().len(), 16);

        // Not destroyable: delete fails and the key stays.
        let del =
            run(hsm_signer().args(["key", "delete", "--token-label", &tl, "--label", &label]));
        assert_eq!(del.code, 2);
        assert!(del.stderr.contains("not destroyable"));

        let doctor =
            run(hsm_signer().args(["doctor", "--token-label", &tl, "--key-label", &label]));
        assert_eq!(doctor.code, 0, "{}", doctor.stdout);
        assert_eq!(
            doctor.stdout.matches("\nok    ").count() + 1,
            7,
            "{}",
            doctor.stdout
        );
        assert!(doctor.stdout.ends_with("all checks passed\n"));
    }

    #[test]
    fn import_from_stdin_generate_and_delete() {
        let Some(_) = spec() else { return };
        let _token = one_at_a_time();
        let tl = token_label();
        let label = unique_label("stdin");
        let out = run(hsm_signer()
            .args([
                "key",
                "import",
                "--token-label",
                &tl,
                "--label",
                &label,
                "--allow-delete",
            ])
            .write_stdin(format!("{}\n", key_b64())));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let del =
            run(hsm_signer().args(["key", "delete", "--token-label", &tl, "--label", &label]));
        assert_eq!(
            (del.code, del.stdout.clone()),
            (0, format!("deleted key {label:?}\n"))
        );

        let short = run(hsm_signer()
            .args(["key", "import", "--token-label", &tl, "--label", &label])
            .write_stdin(STANDARD.encode([1u8; 16])));
        assert_eq!(short.code, 2);
        assert!(
            short.stderr.contains("16-byte key is outside"),
            "{}",
            short.stderr
        );

        let gen = unique_label("gen");
        let out = run(hsm_signer().args([
            "key",
            "generate",
            "--token-label",
            &tl,
            "--label",
            &gen,
            "--bytes",
            "48",
        ]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("48 bytes"));
        let tag = run(hsm_signer()
            .args(["hmac", "--token-label", &tl, "--key-label", &gen])
            .write_stdin("YXNk"));
        assert_eq!(tag.code, 0);
        let tag = tag.stdout.trim().to_owned();
        let ok = run(hsm_signer()
            .args([
                "hmac-verify",
                "--token-label",
                &tl,
                "--key-label",
                &gen,
                "--signature",
                &tag,
            ])
            .write_stdin("YXNk"));
        assert_eq!((ok.code, ok.stdout.as_str()), (0, "valid\n"));
    }

    #[test]
    fn user_errors_are_clear() {
        let Some(_) = spec() else { return };
        let _token = one_at_a_time();
        let tl = token_label();
        let label = unique_label("e");
        let out = import_test_key(&tl, &label);
        assert_eq!(out.code, 0);

        let wrong = run(hsm_signer().env("HSM_SIGNER_PIN", "0000").args([
            "sign",
            "--token-label",
            &tl,
            "--key-label",
            &label,
            "GET",
            URL,
        ]));
        assert_eq!(wrong.code, 2);
        assert!(
            wrong.stderr.contains("wrong PIN for token")
                && wrong.stderr.contains("CKR_PIN_INCORRECT"),
            "{}",
            wrong.stderr
        );

        let doctor = run(hsm_signer().env("HSM_SIGNER_PIN", "0000").args([
            "doctor",
            "--token-label",
            &tl,
            "--key-label",
            &label,
        ]));
        assert_eq!(doctor.code, 2);
        assert!(
            doctor.stdout.contains("FAIL  login: wrong PIN"),
            "{}",
            doctor.stdout
        );
        assert!(doctor.stdout.contains("      hint: check the user PIN"));

        let missing = run(hsm_signer().args([
            "sign",
            "--token-label",
            "nope",
            "--key-label",
            &label,
            "GET",
            URL,
        ]));
        assert_eq!(missing.code, 2);
        assert!(
            missing.stderr.contains(&format!(
                "no token labelled \"nope\" (tokens present: \"{tl}\""
            )),
            "{}",
            missing.stderr
        );

        let nokey = run(hsm_signer().args([
            "sign",
            "--token-label",
            &tl,
            "--key-label",
            "nope",
            "GET",
            URL,
        ]));
        assert_eq!(nokey.code, 2);
        assert!(nokey.stderr.contains("key not found"));

        let nomodule = run(hsm_signer().args([
            "sign",
            "--module",
            "/nonexistent.so",
            "--token-label",
            &tl,
            "--key-label",
            &label,
            "GET",
            URL,
        ]));
        assert_eq!(nomodule.code, 2);
        assert!(nomodule
            .stderr
            .contains("PKCS#11 module /nonexistent.so does not exist"));

        let nopin = run(hsm_signer().env_remove("HSM_SIGNER_PIN").args([
            "sign",
            "--token-label",
            &tl,
            "--key-label",
            &label,
            "GET",
            URL,
        ]));
        assert_eq!(nopin.code, 2);
        assert!(
            nopin.stderr.contains("no PIN for token"),
            "{}",
            nopin.stderr
        );

        let both = run(hsm_signer().args([
            "sign",
            "--key-env",
            "TEST_KEY",
            "--key-label",
            &label,
            "GET",
            URL,
        ]));
        assert_eq!(both.code, 2);
        assert!(both.stderr.contains("not both"));
    }
}
