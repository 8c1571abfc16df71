//! Known-answer tests. Each vector runs on every backend (software, and
//! SoftHSM when configured) and has negative twins.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hsm_signer::request::date::parse_http_date;
use hsm_signer::request::verify::VerifyRequestError;
use hsm_signer::{
    verify_request, ContentHash, Dialect, ReceivedRequest, Rejection, RequestSigner, Tag,
    VerifyError, VerifyPolicy,
};
use serde::Deserialize;

// ---------------------------------------------------------------- RFC 4231

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs one RFC 4231 case on every backend; `truncate` is the number of
/// leading tag bytes the RFC publishes (16 for case 5).
fn rfc4231(key: &[u8], data: &[u8], expected_hex: &str, truncate: usize) {
    let expected = hex(expected_hex);
    for b in common::backends(key) {
        let tag = b.backend.sign(data).unwrap();
        assert_eq!(&tag.as_bytes()[..truncate], &expected[..], "{}", b.name);
        b.backend.verify(data, &tag).unwrap();
        // Negative twin: one bit flipped in the tag, and in the message.
        let mut flipped = *tag.as_bytes();
        flipped[31] ^= 0x01;
        assert!(
            matches!(
                b.backend.verify(data, &Tag::new(flipped)),
                Err(VerifyError::Mismatch)
            ),
            "{}",
            b.name
        );
        let mut other = data.to_vec();
        other[0] ^= 0x80;
        assert!(
            matches!(b.backend.verify(&other, &tag), Err(VerifyError::Mismatch)),
            "{}",
            b.name
        );
    }
}

#[test]
fn rfc4231_case_1() {
    rfc4231(
        &[0x0b; 20],
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        32,
    );
}

#[test]
fn rfc4231_case_2() {
    rfc4231(
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        32,
    );
}

#[test]
fn rfc4231_case_3() {
    rfc4231(
        &[0xaa; 20],
        &[0xdd; 50],
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        32,
    );
}

#[test]
fn rfc4231_case_4() {
    rfc4231(
        &hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
        &[0xcd; 50],
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        32,
    );
}

#[test]
fn rfc4231_case_5_truncated() {
    rfc4231(
        &[0x0c; 20],
        b"Test With Truncation",
        "a3b6167473100ee06e0c796c2955552b",
        16,
    );
}

#[test]
fn rfc4231_case_6_key_larger_than_block() {
    rfc4231(
        &[0xaa; 131],
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        32,
    );
}

#[test]
fn rfc4231_case_7_key_and_data_larger_than_block() {
    rfc4231(
        &[0xaa; 131],
        b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        32,
    );
}

// ------------------------------------------------------- request signing

#[derive(Deserialize)]
struct Vectors {
    key_b64: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    dialect: String,
    credential: String,
    method: String,
    url: String,
    date: String,
    body_b64: String,
    host: String,
    path_and_query: String,
    x_ms_date: String,
    content_sha256: String,
    string_to_sign: String,
    signature: String,
    authorization: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("vectors/signing.json")).unwrap()
}

fn case(name: &str) -> (Vec<u8>, Case) {
    let v = vectors();
    let key = STANDARD.decode(&v.key_b64).unwrap();
    let case = v.cases.into_iter().find(|c| c.name == name).unwrap();
    (key, case)
}

/// The raw request a client sends with the signed headers.
fn received(c: &Case, date: &str, content: &str, auth: &str) -> ReceivedRequest {
    ReceivedRequest {
        method: c.method.to_ascii_uppercase(),
        path_and_query: c.path_and_query.clone(),
        headers: vec![
            ("Host".into(), c.host.clone()),
            ("x-ms-date".into(), date.into()),
            ("x-ms-content-sha256".into(), content.into()),
            ("Authorization".into(), auth.into()),
            ("Content-Type".into(), "application/json".into()),
        ],
    }
}

fn rejection(result: Result<(), VerifyRequestError>) -> Rejection {
    match result {
        Err(VerifyRequestError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn run_signing_case(name: &str) {
    let (key, c) = case(name);
    let body = STANDARD.decode(&c.body_b64).unwrap();
    let dialect: Dialect = c.dialect.parse().unwrap();
    let credential = (!c.credential.is_empty()).then_some(c.credential.as_str());
    let at = parse_http_date(&c.date).unwrap();
    let content = ContentHash::of_bytes(&body);
    assert_eq!(
        content.to_base64(),
        c.content_sha256,
        "{name}: content hash"
    );
    let (streamed, _) = ContentHash::of_reader(&body[..]).unwrap();
    assert_eq!(streamed, content, "{name}: streamed hash");

    for b in common::backends(&key) {
        let ctx = format!("{name} on {}", b.name);
        let signer = RequestSigner::new(b.backend.clone(), dialect, credential).unwrap();
        let s = signer.sign(&c.method, &c.url, &content, at).unwrap();
        assert_eq!(s.host, c.host, "{ctx}: host");
        assert_eq!(s.date, c.x_ms_date, "{ctx}: x-ms-date");
        assert_eq!(
            s.content_sha256, c.content_sha256,
            "{ctx}: x-ms-content-sha256"
        );
        assert_eq!(
            s.string_to_sign.as_str(),
            c.string_to_sign,
            "{ctx}: string-to-sign"
        );
        assert_eq!(s.authorization, c.authorization, "{ctx}: Authorization");
        assert!(s.authorization.ends_with(&c.signature), "{ctx}: signature");

        // Verifier: accepted at the signing time and up to 15 minutes either way.
        let policy = VerifyPolicy {
            dialect,
            credential: credential.map(str::to_owned),
            ..VerifyPolicy::default()
        };
        let good = received(&c, &s.date, &s.content_sha256, &s.authorization);
        let verify = |req: &ReceivedRequest, body: &[u8], now| {
            verify_request(&*b.backend, &policy, req, body, now)
        };
        verify(&good, &body, at).unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
        verify(&good, &body, at + Duration::from_secs(899)).unwrap();
        verify(&good, &body, at - Duration::from_secs(899)).unwrap();

        // One bit flipped in the signature.
        let mut tag = *Tag::from_base64(&c.signature).unwrap().as_bytes();
        tag[7] ^= 0x10;
        let flipped_auth = s
            .authorization
            .replace(&c.signature, &Tag::new(tag).to_base64());
        let flipped = received(&c, &s.date, &s.content_sha256, &flipped_auth);
        assert_eq!(
            rejection(verify(&flipped, &body, at)),
            Rejection::InvalidSignature { detail: None },
            "{ctx}"
        );

        // Each signed header removed in turn, and the Authorization header.
        for header in ["x-ms-date", "host", "x-ms-content-sha256"] {
            let mut req = good.clone();
            req.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(header));
            assert_eq!(
                rejection(verify(&req, &body, at)),
                Rejection::SignedHeaderNotProvided(header.into()),
                "{ctx}: without {header}"
            );
        }
        let mut req = good.clone();
        req.headers.retain(|(n, _)| n != "Authorization");
        assert_eq!(
            rejection(verify(&req, &body, at)),
            Rejection::MissingAuthorization
        );

        // The date moved 16 minutes: too old, then too far ahead.
        let sixteen = Duration::from_secs(16 * 60);
        assert_eq!(
            rejection(verify(&good, &body, at + sixteen)),
            Rejection::Expired,
            "{ctx}"
        );
        assert_eq!(
            rejection(verify(&good, &body, at - sixteen)),
            Rejection::InvalidDate,
            "{ctx}"
        );

        // The body changed (one byte added, or one bit flipped).
        let mut longer = body.clone();
        longer.push(b'x');
        assert_eq!(
            rejection(verify(&good, &longer, at)).description(),
            "Invalid Signature",
            "{ctx}: body changed"
        );
        if let Some(first) = body.first() {
            let mut changed = body.clone();
            changed[0] = first ^ 1;
            assert!(matches!(
                rejection(verify(&good, &changed, at)),
                Rejection::InvalidSignature { detail: Some(_) }
            ));
        }

        // The method or path changed in transit.
        let mut req = good.clone();
        req.method = if req.method == "GET" {
            "HEAD".into()
        } else {
            "GET".into()
        };
        assert_eq!(
            rejection(verify(&req, &body, at)).description(),
            "Invalid Signature"
        );
        let mut req = good.clone();
        req.path_and_query.push_str("&x=1");
        assert_eq!(
            rejection(verify(&req, &body, at)).description(),
            "Invalid Signature"
        );
    }
}

macro_rules! signing_cases {
    ($($fn_name:ident => $case:literal),* $(,)?) => {
        $(#[test] fn $fn_name() { run_signing_case($case); })*

        #[test]
        fn every_vector_has_a_test() {
            let named = [$($case),*];
            for c in vectors().cases {
                assert!(named.contains(&c.name.as_str()), "no test for vector {}", c.name);
            }
        }
    };
}

signing_cases! {
    seed_appconfig_kv => "seed-appconfig-kv",
    acs_identities_get => "acs-identities-get",
    acs_create_token_post => "acs-create-token-post",
    empty_path => "empty-path",
    binary_body => "binary-body",
    query_plus_and_percent_2b => "query-plus-and-percent-2b",
    spaces_sent_as_percent_20 => "spaces-sent-as-percent-20",
    non_default_port => "non-default-port",
    upper_case_host_default_port => "upper-case-host-default-port",
    unpadded_date_input => "unpadded-date-input",
    utf8_body_and_path => "utf8-body-and-path",
}

// ----------------------------------------------- what real clients send

/// Requests as the seed's sample clients shape them: `, ` separators (Java,
/// Go), `Date` instead of `x-ms-date` (C#), header names in other cases,
/// extra signed headers in another order, and the SDK's odd date form.
#[test]
fn verifier_accepts_client_variants() {
    let (key, c) = case("seed-appconfig-kv");
    let backend = hsm_signer::SoftwareKey::new(hsm_signer::SecretBytes::new(key));
    let policy = VerifyPolicy {
        dialect: Dialect::AppConfig,
        credential: Some("myid".into()),
        ..VerifyPolicy::default()
    };
    let hash = &c.content_sha256;
    let now = parse_http_date(&c.x_ms_date).unwrap();
    let sign = |sts: String| {
        hsm_signer::KeyBackend::sign(&backend, sts.as_bytes())
            .unwrap()
            .to_base64()
    };
    let date = "Fri, 11 May 2018 18:48:36 GMT";
    let sdk_date = "May, 11 2018 18:48:36.290031 GMT";
    let variants: Vec<(Vec<(&str, String)>, String)> = vec![
        // Go / Java: ", " separators.
        (
            vec![("x-ms-date", date.into())],
            format!(
                "HMAC-SHA256 Credential=myid, SignedHeaders=x-ms-date;host;x-ms-content-sha256, Signature={}",
                sign(format!("GET\n{}\n{date};{};{hash}", c.path_and_query, c.host))
            ),
        ),
        // C#: Date header, signed as "date".
        (
            vec![("Date", date.into())],
            format!(
                "HMAC-SHA256 Credential=myid&SignedHeaders=date;host;x-ms-content-sha256&Signature={}",
                sign(format!("GET\n{}\n{date};{};{hash}", c.path_and_query, c.host))
            ),
        ),
        // Another order, upper-case names, an extra signed header.
        (
            vec![("X-MS-DATE", date.into()), ("x-custom", "v1".into())],
            format!(
                "HMAC-SHA256 Credential=myid&SignedHeaders=Host;X-Custom;x-ms-content-sha256;X-MS-Date&Signature={}",
                sign(format!("GET\n{}\n{};v1;{hash};{date}", c.path_and_query, c.host))
            ),
        ),
        // The SDK's date form is signed verbatim and parsed for the clock.
        (
            vec![("x-ms-date", sdk_date.into())],
            format!(
                "HMAC-SHA256 Credential=myid&SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={}",
                sign(format!("GET\n{}\n{sdk_date};{};{hash}", c.path_and_query, c.host))
            ),
        ),
    ];
    for (extra, auth) in variants {
        let mut headers = vec![
            ("host".to_owned(), c.host.clone()),
            ("x-ms-content-sha256".to_owned(), hash.clone()),
            ("authorization".to_owned(), auth.clone()),
        ];
        headers.extend(extra.into_iter().map(|(n, v)| (n.to_owned(), v)));
        let req = ReceivedRequest {
            method: "get".into(),
            path_and_query: c.path_and_query.clone(),
            headers,
        };
        verify_request(&backend, &policy, &req, &b""[..], now)
            .unwrap_or_else(|e| panic!("{auth}: {e:?}"));
    }
}

#[test]
fn verifier_names_each_catalogued_reason() {
    let (key, c) = case("seed-appconfig-kv");
    let backend = hsm_signer::SoftwareKey::new(hsm_signer::SecretBytes::new(key));
    let now = parse_http_date(&c.x_ms_date).unwrap();
    let appconfig = |credential: Option<&str>| VerifyPolicy {
        dialect: Dialect::AppConfig,
        credential: credential.map(str::to_owned),
        ..VerifyPolicy::default()
    };
    let check = |policy: &VerifyPolicy, headers: &[(&str, &str)]| {
        let req = ReceivedRequest {
            method: "GET".into(),
            path_and_query: c.path_and_query.clone(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
        };
        rejection(verify_request(&backend, policy, &req, &b""[..], now)).description()
    };
    let base = [
        ("Host", c.host.as_str()),
        ("x-ms-date", c.x_ms_date.as_str()),
        ("x-ms-content-sha256", c.content_sha256.as_str()),
    ];
    fn with<'a>(base: &[(&'a str, &'a str)], auth: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut h = base.to_vec();
        h.push(("Authorization", auth));
        h
    }
    let sig = &c.signature;
    let ok_auth = c.authorization.as_str();
    assert_eq!(
        check(&appconfig(None), &base),
        "Authorization request header with HMAC-SHA256 scheme is not provided"
    );
    assert_eq!(
        check(&appconfig(None), &with(&base, "Bearer abc")),
        "Authorization request header with HMAC-SHA256 scheme is not provided"
    );
    for auth in [
        format!("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"),
        "HMAC-SHA256 Credential=myid&SignedHeaders=x-ms-date;host;x-ms-content-sha256".into(),
        format!("HMAC-SHA256 Credential=myid&Signature={sig}"),
        "HMAC-SHA256 garbage".into(),
    ] {
        assert_eq!(
            check(&appconfig(None), &with(&base, &auth)),
            "[Credential][SignedHeaders][Signature] is required",
            "{auth}"
        );
    }
    assert_eq!(
        check(&appconfig(Some("other-id")), &with(&base, ok_auth)),
        "Invalid Credential"
    );
    for (signed, missing) in [
        ("host;x-ms-content-sha256", "x-ms-date"),
        ("x-ms-date;x-ms-content-sha256", "host"),
        ("x-ms-date;host", "x-ms-content-sha256"),
    ] {
        let auth = format!("HMAC-SHA256 Credential=myid&SignedHeaders={signed}&Signature={sig}");
        assert_eq!(
            check(&appconfig(None), &with(&base, &auth)),
            format!("{missing} is required as a signed header")
        );
    }
    // x-ms-date present but only Date signed: the unsigned x-ms-date would
    // decide freshness, so it must be signed.
    let auth = format!(
        "HMAC-SHA256 Credential=myid&SignedHeaders=date;host;x-ms-content-sha256&Signature={sig}"
    );
    let mut h = with(&base, &auth);
    h.push(("Date", c.x_ms_date.as_str()));
    assert_eq!(
        check(&appconfig(None), &h),
        "x-ms-date is required as a signed header"
    );

    let auth = format!("HMAC-SHA256 Credential=myid&SignedHeaders=x-ms-date;host;x-ms-content-sha256;x-extra&Signature={sig}");
    assert_eq!(
        check(&appconfig(None), &with(&base, &auth)),
        "Signed request header 'x-extra' is not provided"
    );
    let mut h = with(&base, ok_auth);
    h[1].1 = "Friday the 11th";
    assert_eq!(check(&appconfig(None), &h), "Invalid access token date");
    // A tag of the wrong length, and one that is not base64.
    for bad in ["YWJj", "!!!!", &sig[..40]] {
        let auth = ok_auth.replace(sig.as_str(), bad);
        assert_eq!(
            check(&appconfig(None), &with(&base, &auth)),
            "Invalid Signature",
            "{bad}"
        );
    }
    // A malformed x-ms-content-sha256 is an invalid signature, not a panic.
    let mut h = with(&base, ok_auth);
    h[2].1 = "not-a-hash";
    assert_eq!(check(&appconfig(None), &h), "Invalid Signature");
}

// ------------------------------------------- requests signed by the SDKs

#[derive(Deserialize)]
struct SdkManifest {
    cases: Vec<SdkCase>,
}

#[derive(Deserialize)]
struct SdkCase {
    file: String,
    now: String,
    dialect: String,
    credential: Option<String>,
}

/// Requests captured from the official Azure Python SDKs
/// (tests/vectors/sdk/capture.py): the ACS identity client and the App
/// Configuration client, which sends its own date form.
#[test]
fn official_sdk_requests_verify_and_tampering_is_caught() {
    let manifest: SdkManifest =
        serde_json::from_str(include_str!("vectors/sdk/manifest.json")).unwrap();
    let key = STANDARD.decode(vectors().key_b64).unwrap();
    assert_eq!(manifest.cases.len(), 4);
    for b in common::backends(&key) {
        for case in &manifest.cases {
            let ctx = format!("{} on {}", case.file, b.name);
            let raw = std::fs::read(format!("tests/vectors/sdk/{}", case.file)).unwrap();
            let now = parse_http_date(&case.now).unwrap() + Duration::from_secs(60);
            let policy = VerifyPolicy {
                dialect: case.dialect.parse().unwrap(),
                credential: case.credential.clone(),
                ..VerifyPolicy::default()
            };
            let check = |raw: &[u8], policy: &VerifyPolicy| {
                let (req, body) = hsm_signer::request::http::read_request(raw).unwrap();
                verify_request(&*b.backend, policy, &req, body, now)
            };
            check(&raw, &policy).unwrap_or_else(|e| panic!("{ctx}: {e:?}"));

            // The path changed in transit, and (when there is one) the body.
            let text = String::from_utf8(raw.clone()).unwrap();
            let tampered_path = text.replacen(" /", " /x", 1);
            assert_eq!(
                rejection(check(tampered_path.as_bytes(), &policy)).description(),
                "Invalid Signature",
                "{ctx}"
            );
            if !text.ends_with("\r\n\r\n") {
                let mut body_changed = raw.clone();
                *body_changed.last_mut().unwrap() ^= 0x01;
                assert_eq!(
                    rejection(check(&body_changed, &policy)).description(),
                    "Invalid Signature",
                    "{ctx}"
                );
            }
            if policy.dialect == Dialect::AppConfig {
                let other = VerifyPolicy {
                    credential: Some("someone-else".into()),
                    ..policy.clone()
                };
                assert_eq!(rejection(check(&raw, &other)), Rejection::InvalidCredential);
            }
            let late = VerifyPolicy {
                max_skew: Duration::from_secs(30),
                ..policy.clone()
            };
            assert_eq!(rejection(check(&raw, &late)), Rejection::Expired, "{ctx}");
        }
    }
}
