//! `serve` and `proxy` over real HTTP on loopback, SoftHSM behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::hsm::{spec, unique_label};
use hsm_signer::{ContentHash, Dialect, KeyBackend, RequestSigner, SecretBytes, SoftwareKey};
use serde_json::Value;

/// The servers here share one SoftHSM token with processes they start:
/// one test at a time (see tests/cli.rs).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TOKEN: Mutex<()> = Mutex::new(());
    TOKEN.lock().unwrap_or_else(|e| e.into_inner())
}

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("hsm-signer")
}

/// Runs the binary with `args`; asserts exit 2 and `needle` on stderr.
fn fails_with(args: &[&str], envs: &[(&str, &str)], needle: &str) {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

fn token_label() -> String {
    std::env::var("HSM_SIGNER_TOKEN_LABEL").unwrap()
}

/// Imports a key with a known secret; returns the secret.
fn import(label: &str, len: usize) -> Vec<u8> {
    let secret: Vec<u8> = (0..len).map(|i| (i * 31 + label.len()) as u8).collect();
    let out = Command::new(bin())
        .args([
            "key",
            "import",
            "--token-label",
            &token_label(),
            "--label",
            label,
            "--allow-delete",
        ])
        .env("IMPORT_KEY", STANDARD.encode(&secret))
        .args(["--from-env", "IMPORT_KEY"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    secret
}

/// A child server process, killed on drop. Its log goes to a temporary
/// file so that a failing test can show what the server said.
struct Server {
    child: Child,
    addr: String,
    log: tempfile::NamedTempFile,
}

impl Server {
    fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server did not start: {line:?}"))
            .to_owned();
        Self { child, addr, log }
    }

    /// The ERROR and WARN lines the server logged so far.
    fn problems(&self) -> String {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// curl with extra headers and a body from stdin.
fn curl(method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "-X", method, url, "-H", "Expect:"]);
    for (n, v) in headers {
        cmd.args(["-H", &format!("{n}: {v}")]);
    }
    if !body.is_empty() {
        cmd.args([
            "--data-binary",
            "@-",
            "-H",
            "Content-Type: application/json",
        ]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    parse_reply(&out.stdout)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let mut text = String::from_utf8_lossy(raw).into_owned();
    // Skip interim responses (100 Continue for large uploads).
    while text.starts_with("HTTP/1.1 1") {
        match text.split_once("\r\n\r\n") {
            Some((_, rest)) => text = rest.to_owned(),
            None => break,
        }
    }
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// A client that signs with the App Configuration scheme as `id`.
struct Client {
    addr: String,
    id: String,
    key: SoftwareKey,
}

impl Client {
    fn new(addr: &str, id: &str, secret: &[u8]) -> Self {
        Self {
            addr: addr.to_owned(),
            id: id.to_owned(),
            key: SoftwareKey::new(SecretBytes::new(secret.to_vec())),
        }
    }

    fn headers(&self, method: &str, url: &str, body: &[u8]) -> Vec<(String, String)> {
        let signer = RequestSigner::new(&self.key, Dialect::AppConfig, Some(&self.id)).unwrap();
        let s = signer
            .sign(method, url, &ContentHash::of_bytes(body), SystemTime::now())
            .unwrap();
        s.headers()
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let url = format!("http://{}{path}", self.addr);
        curl(method, &url, &self.headers(method, &url, body), body)
    }
}

fn serve_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--token-label"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.push(token_label());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn start_serve(extra: &[&str], envs: &[(&str, &str)]) -> Server {
    let args = serve_args(extra);
    Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), envs)
}

// ------------------------------------------------------------------ serve

#[test]
fn serve_seed_examples_endpoints_and_errors() {
    let Some(_) = spec() else { return };
    let _token = one_at_a_time();
    let client_id = unique_label("alice").replace('-', "_");
    let secret = import(&format!("client:{client_id}"), 32);
    let server = start_serve(&["--max-payload", "4096"], &[]);
    let c = Client::new(&server.addr, &client_id, &secret);
    let name = unique_label("seedkey");

    // The seed's three request bodies, verbatim but for the key name.
    let create = include_str!("http/seed-create-key.json").replace("<keyname>", &name);
    let r = c.call("POST", "/v1/key", create.as_bytes());
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.json();
    assert_eq!(key["label"], name.as_str());
    assert_eq!(key["algorithm"], "HMACSHA256");
    for (attr, want) in [
        ("sign", true),
        ("extractable", false),
        ("modifiable", false),
        ("destroyable", false),
        ("sensitive", true),
        ("decrypt", false),
        ("unwrap", false),
    ] {
        assert_eq!(key["attributes"][attr], want, "{attr}");
    }
    let sign = include_str!("http/seed-sign.json").replace("<keyname>", &name);
    let r = c.call("POST", "/v1/synchronousHmac", sign.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    let keyed_hash = r.json()["keyedHash"].as_str().unwrap().to_owned();
    assert_eq!(STANDARD.decode(&keyed_hash).unwrap().len(), 32);
    let verify = include_str!("http/seed-verify.json")
        .replace("<keyname>", &name)
        .replace("D8xCI255hjQf+x4cfO3l97WC8K+Lg+ARiXHMkvGAGOU=", &keyed_hash);
    let r = c.call("POST", "/v1/verify", verify.as_bytes());
    assert_eq!(
        (r.status, r.json()["signatureValid"].clone()),
        (200, Value::Bool(true)),
        "{}",
        r.body
    );
    // The seed's own signature was made with another key: not valid here.
    let r = c.call(
        "POST",
        "/v1/verify",
        include_str!("http/seed-verify.json")
            .replace("<keyname>", &name)
            .as_bytes(),
    );
    assert_eq!(r.json()["signatureValid"], false);

    // A key with a known secret: the HMAC is the right one.
    let known = unique_label("known");
    let known_secret = import(&known, 64);
    let body = format!(r#"{{"hmacRequest":{{"keyName":"{known}","payload":"YXNk"}}}}"#);
    let r = c.call("POST", "/v1/synchronousHmac", body.as_bytes());
    let expected = SoftwareKey::new(SecretBytes::new(known_secret))
        .sign(b"asd")
        .unwrap();
    assert_eq!(r.json()["keyedHash"], expected.to_base64());

    // Create: conflicts and refusals.
    let r = c.call("POST", "/v1/key", create.as_bytes());
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (409, Value::from("key_exists"))
    );
    for (patch, why) in [
        (r#""algorithm": "HMACSHA256""#, r#""algorithm": "AES""#),
        (r#""password": null"#, r#""password": "hunter2""#),
        (r#""extractable": false"#, r#""extractable": true"#),
        (r#""sensitive": true"#, r#""sensitive": false"#),
        (r#""sign": true"#, r#""sign": false"#),
    ] {
        let body = create
            .replace(&name, &unique_label("refused"))
            .replace(patch, why);
        let r = c.call("POST", "/v1/key", body.as_bytes());
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        assert!(!r.body.contains("hunter2"));
    }

    // List, get, delete.
    let r = c.call("GET", "/v1/key", b"");
    assert_eq!(r.status, 200);
    let labels: Vec<String> = r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["label"].as_str().unwrap().to_owned())
        .collect();
    assert!(labels.contains(&name));
    assert!(
        !labels.iter().any(|l| l.starts_with("client:")),
        "client keys listed: {labels:?}"
    );
    let r = c.call("GET", &format!("/v1/key/{name}"), b"");
    assert_eq!(
        (r.status, r.json()["attributes"]["destroyable"].clone()),
        (200, Value::Bool(false))
    );
    assert!(!r.body.to_ascii_lowercase().contains("value"), "{}", r.body);
    let r = c.call("DELETE", &format!("/v1/key/{name}"), b"");
    assert_eq!(r.status, 409, "{}", r.body);
    let gone = unique_label("gone");
    let r = c.call(
        "POST",
        "/v1/key",
        create
            .replace(&name, &gone)
            .replace(r#""destroyable": false"#, r#""destroyable": true"#)
            .as_bytes(),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        c.call("DELETE", &format!("/v1/key/{gone}"), b"").status,
        204
    );
    assert_eq!(c.call("GET", &format!("/v1/key/{gone}"), b"").status, 404);

    // Errors: JSON {"error","message"} with the right status.
    let hmac = |body: &str| c.call("POST", "/v1/synchronousHmac", body.as_bytes());
    for (body, status) in [
        (
            r#"{"hmacRequest": {"keyName": "nope-key", "payload": "YXNk"}}"#,
            404,
        ),
        (
            r#"{"hmacRequest": {"keyName": "x", "payload": "***"}}"#,
            400,
        ),
        (r#"{"hmacRequest": {"keyName": 5, "payload": "YXNk"}}"#, 400),
        (r#"{"hmacRequest": {"payload": "YXNk"}}"#, 400),
        (r#"{"hmacRequest": {"keyName": "x", "payload": "YX"#, 400),
        ("not json", 400),
        (
            &format!(
                r#"{{"hmacRequest": {{"keyName": "client:{client_id}", "payload": "YXNk"}}}}"#
            ),
            404,
        ),
    ] {
        let r = hmac(body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        let j = r.json();
        assert!(
            j["error"].is_string() && j["message"].is_string(),
            "{}",
            r.body
        );
    }
    let big = format!(
        r#"{{"hmacRequest": {{"keyName": "{known}", "payload": "{}"}}}}"#,
        "A".repeat(5000)
    );
    assert_eq!(hmac(&big).status, 413);

    // Authentication: none, wrong signature, unknown client.
    let url = format!("http://{}/v1/key", server.addr);
    let r = curl("GET", &url, &[], b"");
    assert_eq!(r.status, 401);
    assert!(
        r.headers.contains("www-authenticate: hmac-sha256, bearer"),
        "{}",
        r.headers
    );
    let mut h = c.headers("GET", &url, b"");
    h[2].1 = h[2].1.replace("Signature=", "Signature=A");
    let r = curl("GET", &url, &h, b"");
    assert_eq!(r.status, 401);
    assert!(
        r.headers
            .contains("error_description=\"invalid signature\""),
        "{}",
        r.headers
    );
    let stranger = Client::new(&server.addr, "mallory", &secret);
    let r = stranger.call("GET", "/v1/key", b"");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Invalid Credential"));

    // Health and metrics.
    let r = curl("GET", &format!("http://{}/healthz", server.addr), &[], b"");
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, Value::from("ok"))
    );
    let r = curl("GET", &format!("http://{}/metrics", server.addr), &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("hsm_signer_requests_total{route=\"/v1/synchronousHmac\",status=\"200\"}"),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains("hsm_signer_request_duration_seconds_bucket{le=\"+Inf\"}"));
    assert!(r.body.contains("hsm_signer_hsm_pool_in_use"));
    assert!(!r.body.contains("YXNk") && !r.body.contains(&keyed_hash));

    assert!(server.stop().success(), "graceful shutdown exits 0");
}

#[test]
fn serve_refuses_to_start_without_authentication() {
    let Some(_) = spec() else { return };
    let _token = one_at_a_time();
    let public: Vec<String> = serve_args(&["--insecure-no-auth"])
        .iter()
        .map(|s| s.replace("127.0.0.1:0", "0.0.0.0:0"))
        .collect();
    let public: Vec<&str> = public.iter().map(String::as_str).collect();
    fails_with(&public, &[], "only allowed on a loopback address");
    let nobody = serve_args(&["--client-key-prefix", "nobody-has-this:"]);
    let nobody: Vec<&str> = nobody.iter().map(String::as_str).collect();
    fails_with(&nobody, &[], "no way to authenticate clients");
}

#[test]
fn serve_bearer_token_and_bad_input_corpus() {
    let Some(_) = spec() else { return };
    let _token = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("bearer");
    std::fs::write(&token_file, "s3cret-bearer-token\n").unwrap();
    let client_id = unique_label("bob").replace('-', "_");
    let secret = import(&format!("client:{client_id}"), 32);
    let server = start_serve(&["--bearer-token-file", token_file.to_str().unwrap()], &[]);
    let base = format!("http://{}", server.addr);
    let bearer = vec![(
        "Authorization".to_owned(),
        "Bearer s3cret-bearer-token".to_owned(),
    )];
    assert_eq!(
        curl("GET", &format!("{base}/v1/key"), &bearer, b"").status,
        200
    );
    let wrong = vec![("Authorization".to_owned(), "Bearer guess".to_owned())];
    let r = curl("GET", &format!("{base}/v1/key"), &wrong, b"");
    assert_eq!(r.status, 401);
    assert!(r.headers.contains("www-authenticate: bearer"));

    // Authenticated garbage: every one is a JSON 400 and the server stays up.
    let c = Client::new(&server.addr, &client_id, &secret);
    let deep = "[".repeat(100_000);
    let corpus: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        br#"{"hmacRequest": {"keyName": "k", "payload": "YXNk""#.to_vec(),
        br#"{"hmacRequest": {"keyName": "k", "payload": 1e999999}}"#.to_vec(),
        br#"{"hmacRequest": {"keyName": 123456789012345678901234567890, "payload": "YXNk"}}"#
            .to_vec(),
        deep.as_bytes().to_vec(),
        vec![0xff, 0xfe, b'{', 0x80],
        br#"{"hmacRequest": {"keyName": "\u0000\n", "payload": "YXNk"}}"#.to_vec(),
        br#"{"label": ["x"], "algorithm": {}}"#.to_vec(),
        Vec::new(),
    ];
    for body in &corpus {
        for path in ["/v1/synchronousHmac", "/v1/verify", "/v1/key"] {
            let r = c.call("POST", path, body);
            assert_eq!(
                r.status,
                400,
                "{path} {:?}: {}",
                String::from_utf8_lossy(body),
                r.body
            );
            assert!(r.json()["error"].is_string());
        }
    }

    // Raw bytes on the socket: header injection, garbage, a slow client.
    let send_raw = |raw: &[u8]| -> String {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    for raw in [
        &b"GET /v1/key HTTP/1.1\r\nHost: x\r\nAuthorization: HMAC-SHA256 Credential=a\r\n\rX-Evil: 1\r\nConnection: close\r\n\r\n"[..],
        b"GET /v1/key HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\nConnection: close\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage",
        b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nConnection: close\r\n\r\n",
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let reply = send_raw(raw);
        assert!(!reply.contains("panicked") && !reply.contains("RUST_BACKTRACE"), "{reply}");
    }
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();
    // While it dawdles, others are served.
    for _ in 0..5 {
        assert_eq!(
            curl("GET", &format!("{base}/healthz"), &[], b"").status,
            200
        );
    }
    drop(slow);
    assert_eq!(c.call("GET", "/v1/key", b"").status, 200);
    assert!(server.stop().success());
}

#[test]
fn serve_under_load_with_session_loss() {
    let Some(_) = spec() else { return };
    let _token = one_at_a_time();
    let client_id = unique_label("load").replace('-', "_");
    let client_secret = import(&format!("client:{client_id}"), 32);
    let key = unique_label("loadkey");
    let key_secret = import(&key, 32);
    let server = start_serve(&[], &[("HSM_SIGNER_TEST_HOOKS", "1")]);
    let addr = server.addr.clone();
    let reference = SoftwareKey::new(SecretBytes::new(key_secret));

    const CLIENTS: usize = 16;
    const REQUESTS: usize = 500;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let failures = rt.block_on(async {
        let http = reqwest::Client::new();
        let client = std::sync::Arc::new(Client::new(&addr, &client_id, &client_secret));
        let mut tasks = Vec::new();
        for t in 0..CLIENTS {
            let http = http.clone();
            let client = client.clone();
            let key = key.clone();
            let expected: Vec<String> = (0..REQUESTS)
                .map(|i| {
                    reference
                        .sign(format!("client {t} request {i}").as_bytes())
                        .unwrap()
                        .to_base64()
                })
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut bad = Vec::new();
                for (i, want) in expected.iter().enumerate() {
                    let payload = STANDARD.encode(format!("client {t} request {i}"));
                    let body =
                        format!(r#"{{"hmacRequest":{{"keyName":"{key}","payload":"{payload}"}}}}"#);
                    let url = format!("http://{}/v1/synchronousHmac", client.addr);
                    let mut req = http.post(&url).body(body.clone());
                    for (n, v) in client.headers("POST", &url, body.as_bytes()) {
                        req = req.header(n, v);
                    }
                    match req.send().await {
                        Ok(r) if r.status() == 200 => {
                            let j: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                            if j["keyedHash"] != want.as_str() {
                                bad.push(format!("{t}/{i}: wrong HMAC"));
                            }
                        }
                        Ok(r) => bad.push(format!(
                            "{t}/{i}: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => bad.push(format!("{t}/{i}: {e}")),
                    }
                }
                bad
            }));
        }
        // Twice during the load, every session loses its login.
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let r = http
                .post(format!("http://{addr}/_test/logout"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert!(
        failures.is_empty(),
        "{} failed: {:?}\nserver log:\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        server.problems()
    );
    let metrics = curl("GET", &format!("http://{addr}/metrics"), &[], b"").body;
    let ok_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("hsm_signer_requests_total{route=\"/v1/synchronousHmac\",status=\"200\"}")
        })
        .unwrap();
    assert!(
        ok_line.ends_with(&format!(" {}", CLIENTS * REQUESTS)),
        "{ok_line}"
    );
    assert!(server.stop().success());
}

// ------------------------------------------------------------------ proxy

/// An upstream that checks every request with the product's verifier and
/// reports what it received.
fn verifying_upstream(secret: Vec<u8>) -> (String, tokio::runtime::Runtime) {
    use axum::body::{to_bytes, Body};
    use axum::extract::Request;
    use hsm_signer::{verify_request, ReceivedRequest, VerifyPolicy};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let key = std::sync::Arc::new(SoftwareKey::new(SecretBytes::new(secret)));
    let app = axum::Router::new().fallback(move |req: Request| {
        let key = key.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = to_bytes(Body::new(body), usize::MAX).await.unwrap();
            let received = ReceivedRequest {
                method: parts.method.as_str().to_owned(),
                path_and_query: parts.uri.path_and_query().unwrap().as_str().to_owned(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                    .collect(),
            };
            let verdict = verify_request(
                &*key,
                &VerifyPolicy::default(),
                &received,
                &body[..],
                SystemTime::now(),
            );
            let json = serde_json::json!({
                "valid": verdict.is_ok(),
                "error": verdict.err().map(|e| e.to_string()),
                "len": body.len(),
                "sha256": ContentHash::of_bytes(&body).to_base64(),
                "path": received.path_and_query,
                "incoming_auth": received.header("x-client-auth"),
            });
            (
                axum::http::StatusCode::OK,
                [("x-upstream", "yes")],
                axum::Json(json),
            )
        }
    });
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rt)
}

#[test]
fn proxy_signs_what_curl_sends() {
    let Some(_) = spec() else { return };
    let _token = one_at_a_time();
    let label = unique_label("proxykey");
    let secret = import(&label, 64);
    let (upstream, _rt) = verifying_upstream(secret);
    let proxy = Server::start(
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{upstream}"),
            "--token-label",
            &token_label(),
            "--key-label",
            &label,
            "--allow-path-prefix",
            "/api/",
            "--spill-threshold",
            "1048576",
        ],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let binary: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big_path = dir.path().join("big.bin");
    {
        let mut f = std::fs::File::create(&big_path).unwrap();
        let chunk: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..50 {
            f.write_all(&chunk).unwrap();
        }
    }
    let big_hash = ContentHash::of_reader(std::fs::File::open(&big_path).unwrap())
        .unwrap()
        .0
        .to_base64();
    let via = |method: &str, path: &str, body: Option<&std::path::Path>, extra: &[&str]| -> Reply {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-i",
            "-X",
            method,
            &format!("http://{}{path}", proxy.addr),
        ]);
        cmd.args(["-H", "Authorization: Bearer client-secret-must-not-travel"]);
        cmd.args(extra);
        if let Some(p) = body {
            cmd.args(["--data-binary", &format!("@{}", p.display())]);
        }
        parse_reply(&cmd.output().unwrap().stdout)
    };
    let json_path = dir.path().join("body.json");
    std::fs::write(
        &json_path,
        br#"{"createTokenWithScopes":["chat"],"note":"h\u00e9llo"}"#,
    )
    .unwrap();
    let bin_path = dir.path().join("body.bin");
    std::fs::write(&bin_path, &binary).unwrap();
    for (method, path, body, len, hash) in [
        (
            "GET",
            "/api/items?q=a+b%2Bc&x=%20",
            None,
            0,
            ContentHash::of_bytes(b"").to_base64(),
        ),
        (
            "DELETE",
            "/api/items/7",
            None,
            0,
            ContentHash::of_bytes(b"").to_base64(),
        ),
        (
            "PUT",
            "/api/json",
            Some(json_path.as_path()),
            std::fs::metadata(&json_path).unwrap().len() as usize,
            ContentHash::of_bytes(&std::fs::read(&json_path).unwrap()).to_base64(),
        ),
        (
            "POST",
            "/api/binary",
            Some(bin_path.as_path()),
            binary.len(),
            ContentHash::of_bytes(&binary).to_base64(),
        ),
        (
            "POST",
            "/api/big",
            Some(big_path.as_path()),
            50 << 20,
            big_hash.clone(),
        ),
    ] {
        let r = via(
            method,
            path,
            body,
            &["-H", "Content-Type: application/octet-stream"],
        );
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        assert!(r.headers.contains("x-upstream: yes"));
        let j = r.json();
        assert_eq!(j["valid"], true, "{method} {path}: {}", r.body);
        assert_eq!(j["len"], len);
        assert_eq!(j["sha256"], hash.as_str());
        assert_eq!(j["path"], path);
        assert_eq!(j["incoming_auth"], Value::Null);
    }
    // The client's own Authorization never reaches the upstream (it is
    // replaced by the signature, which the upstream verified above).
    let r = via("GET", "/admin/users", None, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "forbidden");

    // Memory stayed bounded while a 50 MiB body went through.
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.child.id())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        hwm_kib < 40 * 1024,
        "proxy peak RSS {hwm_kib} KiB for a 50 MiB body"
    );
    assert!(proxy.stop().success());
}

#[test]
fn proxy_refuses_non_loopback_without_the_flag() {
    let key = [("K", "c2VjcmV0")];
    let proxy = |listen: &'static str, upstream: &'static str| {
        [
            "proxy",
            "--listen",
            listen,
            "--upstream",
            upstream,
            "--key-env",
            "K",
        ]
    };
    fails_with(
        &proxy("0.0.0.0:0", "http://127.0.0.1:9"),
        &key,
        "--allow-non-loopback",
    );
    fails_with(
        &proxy("127.0.0.1:0", "http://h/base"),
        &key,
        "without a path",
    );
}

#[test]
fn serve_over_tls() {
    let Some(_) = spec() else { return };
    let _token = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let bearer = dir.path().join("bearer");
    std::fs::write(&bearer, "tls-bearer\n").unwrap();
    let server = start_serve(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--bearer-token-file",
            bearer.to_str().unwrap(),
        ],
        &[],
    );
    let https = |path: &str, extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-i", "--cacert", cert.to_str().unwrap()])
            .args(extra)
            .arg(format!("https://{}{path}", server.addr))
            .output()
            .unwrap();
        parse_reply(&out.stdout)
    };
    let r = https("/healthz", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = https("/v1/key", &["-H", "Authorization: Bearer tls-bearer"]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(https("/v1/key", &[]).status, 401);
    // Plain HTTP on the TLS port gets no answer, and the server carries on.
    let plain = curl("GET", &format!("http://{}/healthz", server.addr), &[], b"");
    assert_ne!(plain.status, 200);
    assert_eq!(https("/healthz", &[]).status, 200);
    assert!(server.stop().success());

    // A key that does not match the certificate: refused at start.
    let other = dir.path().join("other.pem");
    Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
        ])
        .arg(&other)
        .output()
        .unwrap();
    let args = serve_args(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        other.to_str().unwrap(),
        "--bearer-token-file",
        bearer.to_str().unwrap(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails_with(&args, &[], "do not go together");
}

/// The token directory of the SoftHSM configuration in use.
fn token_dir() -> std::path::PathBuf {
    let conf = std::fs::read_to_string(std::env::var("SOFTHSM2_CONF").unwrap()).unwrap();
    conf.lines()
        .find_map(|l| l.trim().strip_prefix("directories.tokendir"))
        .map(|v| v.trim_start_matches([' ', '=']).trim().into())
        .unwrap()
}

#[test]
fn serve_503_while_the_hsm_is_gone_then_recovers() {
    let Some(_) = spec() else { return };
    let _token = one_at_a_time();
    let key = unique_label("gone-hsm");
    import(&key, 32);
    let dir = tempfile::tempdir().unwrap();
    let bearer = dir.path().join("bearer");
    std::fs::write(&bearer, "t\n").unwrap();
    let server = start_serve(&["--bearer-token-file", bearer.to_str().unwrap()], &[]);
    let auth = vec![("Authorization".to_owned(), "Bearer t".to_owned())];
    let body = format!(r#"{{"hmacRequest":{{"keyName":"{key}","payload":"YXNk"}}}}"#);
    let hmac = || {
        curl(
            "POST",
            &format!("http://{}/v1/synchronousHmac", server.addr),
            &auth,
            body.as_bytes(),
        )
    };
    let first = hmac();
    assert_eq!(first.status, 200, "{}", first.body);

    // The token disappears (as an HSM that restarts or is unplugged).
    let tokens = token_dir();
    let away = tokens.with_extension("away");
    std::fs::rename(&tokens, &away).unwrap();
    let restore = scopeguard(&away, &tokens);
    for _ in 0..3 {
        let r = hmac();
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.json()["error"], "hsm_unavailable");
    }
    let health = curl("GET", &format!("http://{}/healthz", server.addr), &[], b"");
    assert_eq!(health.status, 503);
    drop(restore);

    // Back: within a few seconds the server serves again, same HMAC.
    let mut recovered = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        let r = hmac();
        if r.status == 200 {
            recovered = Some(r);
            break;
        }
    }
    let r = recovered.expect("no recovery after the token came back");
    assert_eq!(r.json()["keyedHash"], first.json()["keyedHash"]);
    assert_eq!(
        curl("GET", &format!("http://{}/healthz", server.addr), &[], b"").status,
        200
    );
    assert!(server.stop().success());
}

/// Renames `from` back to `to` when dropped, even if the test fails.
fn scopeguard(from: &std::path::Path, to: &std::path::Path) -> impl Drop {
    struct Back(std::path::PathBuf, std::path::PathBuf);
    impl Drop for Back {
        fn drop(&mut self) {
            let _ = std::fs::rename(&self.0, &self.1);
        }
    }
    Back(from.to_owned(), to.to_owned())
}
