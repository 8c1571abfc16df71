//! The performance table of `scripts/bench.sh` (run it through that script:
//! it builds in release mode, creates a SoftHSM token and imports the key).
//!
//! Every row measures ours and a reference in the same run, interleaved,
//! `REPS` times each, and reports median [min..max] and the ratio of medians.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use hmac::{Hmac, KeyInit, Mac};
use hsm_signer::backend::pkcs11::module::{context, find_token};
use hsm_signer::backend::pkcs11::{
    KeySelector, Pkcs11Backend, PoolOptions, TokenSelector, TokenSpec,
};
use hsm_signer::request::date::format_http_date;
use hsm_signer::{
    verify_request, ContentHash, KeyBackend, ReceivedRequest, RequestSigner, SecretBytes,
    SoftwareKey, StringToSign, VerifyPolicy,
};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const REPS: usize = 5;

struct Env {
    spec: TokenSpec,
    token: String,
    pin: String,
    key_label: String,
    key_id: String,
    bin: PathBuf,
    dir: PathBuf,
    big_gib: u64,
    window: Duration,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench.sh"))
}

impl Env {
    fn load() -> Self {
        let token = var("HSM_SIGNER_TOKEN_LABEL");
        let pin = var("HSM_SIGNER_PIN");
        Self {
            spec: TokenSpec {
                module: var("HSM_SIGNER_MODULE").into(),
                token: TokenSelector::Label(token.clone()),
                pin: Some(SecretString::from(pin.clone())),
            },
            token,
            pin,
            key_label: var("BENCH_KEY_LABEL"),
            key_id: var("BENCH_KEY_ID"),
            bin: var("BENCH_BIN").into(),
            dir: var("BENCH_DIR").into(),
            big_gib: std::env::var("BENCH_BIG_GIB")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
            window: Duration::from_millis(
                std::env::var("BENCH_WINDOW_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(600),
            ),
        }
    }

    fn backend(&self) -> Pkcs11Backend {
        Pkcs11Backend::open(
            &self.spec,
            &KeySelector {
                label: Some(self.key_label.clone()),
                id: None,
            },
            PoolOptions::default(),
        )
        .unwrap()
    }

    /// A raw cryptoki session with the key handle cached: the reference.
    fn raw_session(&self) -> (Session, ObjectHandle) {
        let ctx = context(&self.spec.module).unwrap();
        let slot = find_token(&ctx, &self.spec.token).unwrap().slot;
        let session = ctx.open_ro_session(slot).unwrap();
        let _ = session.login(UserType::User, self.spec.pin.as_ref());
        let key = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(self.key_label.as_bytes().to_vec()),
            ])
            .unwrap()[0];
        (session, key)
    }
}

#[derive(Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(mut v: Vec<f64>) -> Stat {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Stat {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

struct Row {
    n: u8,
    what: String,
    unit: &'static str,
    ours: Stat,
    reference: Stat,
    reference_name: String,
    /// ours / reference for rates, reference / ours for times (higher is better),
    /// or ours / reference for wall time where the target is "at most".
    ratio: f64,
    target: String,
    ok: bool,
    note: String,
}

/// Ops per second of `op` run for `window`.
fn rate(window: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..32 {
            op();
        }
        n += 32;
        let t = start.elapsed();
        if t >= window {
            return n as f64 / t.as_secs_f64();
        }
    }
}

/// Runs ours and the reference alternately `REPS` times.
fn paired(mut ours: impl FnMut() -> f64, mut reference: impl FnMut() -> f64) -> (Stat, Stat) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..REPS {
        if i % 2 == 0 {
            a.push(ours());
            b.push(reference());
        } else {
            b.push(reference());
            a.push(ours());
        }
    }
    (stat(a), stat(b))
}

fn msg256() -> Vec<u8> {
    let date = format_http_date(SystemTime::now());
    let mut m = format!(
        "POST\n/identities/8%3Aacs%3A00000000-0000-0000-0000-000000000000/:issueAccessToken?api-version=2023-10-01\n{date};contoso.communication.azure.com;47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    )
    .into_bytes();
    m.resize(256, b'x');
    m
}

fn row1(env: &Env) -> Row {
    let msg = msg256();
    let ours = env.backend();
    let (raw, key) = env.raw_session();
    let expected = ours.sign(&msg).unwrap();
    assert_eq!(
        raw.sign(&Mechanism::Sha256Hmac, key, &msg).unwrap(),
        expected.as_bytes()
    );
    let (o, r) = paired(
        || {
            rate(env.window, || {
                ours.sign(&msg).unwrap();
            })
        },
        || {
            rate(env.window, || {
                raw.sign(&Mechanism::Sha256Hmac, key, &msg).unwrap();
            })
        },
    );
    rate_row(
        1,
        "in-process sign, PKCS#11 backend, 256 B, 1 thread",
        o,
        r,
        "raw cryptoki loop (session + handle cached)",
        0.90,
        "op/s",
    )
}

fn two_threads(window: Duration, work: impl Fn() -> Box<dyn FnMut() + Send> + Sync) -> f64 {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut op = work();
                    rate(window, &mut *op)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

fn row2(env: &Env) -> Row {
    let msg = Arc::new(msg256());
    let ours = Arc::new(env.backend());
    let (o, r) = paired(
        || {
            two_threads(env.window, || {
                let ours = ours.clone();
                let msg = msg.clone();
                Box::new(move || {
                    ours.sign(&msg).unwrap();
                })
            })
        },
        || {
            two_threads(env.window, || {
                let (raw, key) = env.raw_session();
                let msg = msg.clone();
                Box::new(move || {
                    raw.sign(&Mechanism::Sha256Hmac, key, &msg).unwrap();
                })
            })
        },
    );
    rate_row(
        2,
        "same, 2 threads sharing one backend",
        o,
        r,
        "raw loop, 2 threads, a session each",
        0.90,
        "op/s",
    )
}

fn rate_row(
    n: u8,
    what: &str,
    ours: Stat,
    reference: Stat,
    reference_name: &str,
    target: f64,
    unit: &'static str,
) -> Row {
    let ratio = ours.median / reference.median;
    Row {
        n,
        what: what.into(),
        unit,
        ours,
        reference,
        reference_name: reference_name.into(),
        ratio,
        target: format!(">= {target:.2}x"),
        ok: ratio >= target,
        note: String::new(),
    }
}

fn wall(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let status = cmd.status().unwrap();
    let t = start.elapsed().as_secs_f64();
    assert!(status.success(), "{cmd:?} failed");
    t
}

fn token_args(env: &Env) -> [String; 4] {
    [
        "--token-label".into(),
        env.token.clone(),
        "--key-label".into(),
        env.key_label.clone(),
    ]
}

fn row3(env: &Env) -> Row {
    const N: usize = 10_000;
    let url = "https://contoso.communication.azure.com/identities?api-version=2023-10-01";
    let date = "Mon, 23 Nov 2026 12:00:00 GMT";
    let lines = env.dir.join("batch.jsonl");
    let mut f = BufWriter::new(File::create(&lines).unwrap());
    let mut sts = Vec::with_capacity(N);
    for i in 0..N {
        let body = format!("{{\"createTokenWithScopes\":[\"chat\"],\"n\":{i}}}");
        writeln!(
            f,
            "{}",
            serde_json::json!({"method": "POST", "url": url, "body": body, "date": date})
        )
        .unwrap();
        let hash = ContentHash::of_bytes(body.as_bytes()).to_base64();
        sts.push(StringToSign::new(
            "POST",
            "/identities?api-version=2023-10-01",
            [date, "contoso.communication.azure.com", hash.as_str()],
        ));
    }
    f.flush().unwrap();
    drop(f);
    let batch = || {
        let mut cmd = Command::new(&env.bin);
        cmd.args(["sign", "--batch"]).args(token_args(env));
        cmd.stdin(File::open(&lines).unwrap())
            .stdout(Stdio::piped());
        cmd
    };
    // Correctness once: 10,000 lines, no errors, the first equals the raw HMAC.
    let out = batch().output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), N);
    assert!(!text.contains("\"error\""));
    let (raw, key) = env.raw_session();
    let first = STANDARD.encode(
        raw.sign(&Mechanism::Sha256Hmac, key, sts[0].as_bytes())
            .unwrap(),
    );
    assert!(text.lines().next().unwrap().contains(&first));
    let (o, r) = paired(
        || {
            let mut cmd = batch();
            cmd.stdout(Stdio::null());
            N as f64 / wall(&mut cmd)
        },
        || {
            let start = Instant::now();
            for s in &sts {
                raw.sign(&Mechanism::Sha256Hmac, key, s.as_bytes()).unwrap();
            }
            N as f64 / start.elapsed().as_secs_f64()
        },
    );
    rate_row(
        3,
        "batch: 10,000 requests, `sign --batch` (whole process)",
        o,
        r,
        "raw cryptoki loop, same 10,000 HMACs",
        0.75,
        "req/s",
    )
}

fn row4(env: &Env) -> Row {
    const RUNS: usize = 10;
    let input = env.dir.join("in256");
    std::fs::write(&input, msg256()).unwrap();
    let ours = || {
        let mut cmd = Command::new(&env.bin);
        cmd.args(["sign", "--date", "Mon, 23 Nov 2026 12:00:00 GMT"])
            .args(token_args(env))
            .args([
                "GET",
                "https://contoso.communication.azure.com/identities?api-version=2023-10-01",
            ])
            .stdout(Stdio::null());
        cmd
    };
    let reference = || {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module")
            .arg(&env.spec.module)
            .args(["--login", "--pin", &env.pin, "--token-label", &env.token])
            .args(["--sign", "--mechanism", "SHA256-HMAC", "--id", &env.key_id])
            .arg("--input-file")
            .arg(&input)
            .args(["--output-file", "/dev/null"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mean_ms = |make: &dyn Fn() -> Command| {
        (0..RUNS).map(|_| wall(&mut make())).sum::<f64>() / RUNS as f64 * 1000.0
    };
    let (o, r) = paired(|| mean_ms(&ours), || mean_ms(&reference));
    let ratio = o.median / r.median;
    Row {
        n: 4,
        what: "one-shot CLI sign (start, load, login, sign)".into(),
        unit: "ms",
        ours: o,
        reference: r,
        reference_name: "pkcs11-tool --sign -m SHA256-HMAC, 256 B".into(),
        ratio,
        target: "<= 1.00x wall".into(),
        ok: ratio <= 1.0,
        note: format!("mean of {RUNS} runs per repetition"),
    }
}

/// Writes `gib` GiB of pseudo-random bytes (xorshift) once.
fn big_file(path: &Path, gib: u64) {
    if path.metadata().is_ok_and(|m| m.len() == gib << 30) {
        return;
    }
    let mut f = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..(gib << 10) {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
}

/// Wall seconds and peak RSS (KiB) of one run, through GNU time.
fn wall_rss(env: &Env, args: &[&std::ffi::OsStr]) -> (f64, u64) {
    let rss_file = env.dir.join("rss");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .args(args)
        .stdout(Stdio::null());
    let t = wall(&mut cmd);
    let kib = std::fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (t, kib)
}

fn row5(env: &Env) -> (Row, String) {
    let big = env.dir.join("big.bin");
    big_file(&big, env.big_gib);
    let bytes = (env.big_gib << 30) as f64;
    let bin = env.bin.as_os_str();
    let ours_args: Vec<&std::ffi::OsStr> = [
        bin,
        "sign".as_ref(),
        "--token-label".as_ref(),
        env.token.as_ref(),
        "--key-label".as_ref(),
        env.key_label.as_ref(),
        "--body-file".as_ref(),
        big.as_os_str(),
        "PUT".as_ref(),
        "https://contoso.example.com/blob".as_ref(),
    ]
    .to_vec();
    let ref_args: Vec<&std::ffi::OsStr> = vec!["sha256sum".as_ref(), big.as_os_str()];
    // Correctness once: the same digest as sha256sum.
    let ours_out = Command::new(ours_args[0])
        .args(&ours_args[1..])
        .output()
        .unwrap();
    let ours_text = String::from_utf8(ours_out.stdout).unwrap();
    let sum = Command::new("sha256sum").arg(&big).output().unwrap();
    let hex = String::from_utf8(sum.stdout).unwrap()[..64].to_owned();
    let digest: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    assert!(
        ours_text.contains(&STANDARD.encode(&digest)),
        "digest differs from sha256sum"
    );
    let mut peak = Vec::new();
    let (o, r) = paired(
        || {
            let (t, kib) = wall_rss(env, &ours_args);
            peak.push(kib as f64 / 1024.0);
            bytes / t / 1e6
        },
        || wall_rss(env, &ref_args).0.recip() * bytes / 1e6,
    );
    let rss = stat(peak);
    let ratio = o.median / r.median;
    let ok = ratio >= 0.90 && rss.max <= 16.0;
    let row = Row {
        n: 5,
        what: format!(
            "{} GiB body file, `sign --body-file` (whole process)",
            env.big_gib
        ),
        unit: "MB/s",
        ours: o,
        reference: r,
        reference_name: "sha256sum of the same file".into(),
        ratio,
        target: ">= 0.90x, RSS <= 16 MiB".into(),
        ok,
        note: format!(
            "peak RSS {:.1} MiB [{:.1}..{:.1}]",
            rss.median, rss.min, rss.max
        ),
    };
    (row, format!("{:.1}", rss.max))
}

fn row6() -> Row {
    const N: usize = 10_000;
    let secret = vec![0x42u8; 64];
    let key = SoftwareKey::new(SecretBytes::new(secret.clone()));
    let signer = RequestSigner::acs(&key);
    let at = SystemTime::now();
    let mut requests = Vec::with_capacity(N);
    for i in 0..N {
        let body = format!(
            "{{\"createTokenWithScopes\":[\"chat\",\"voip\"],\"n\":{i},\"pad\":\"{}\"}}",
            "x".repeat(100)
        );
        let url = format!(
            "https://contoso.communication.azure.com/identities/{i}?api-version=2023-10-01"
        );
        let s = signer
            .sign("POST", &url, &ContentHash::of_bytes(body.as_bytes()), at)
            .unwrap();
        let mut headers = vec![
            ("Host".to_owned(), s.host.clone()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ];
        headers.extend(
            s.headers()
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        requests.push((
            ReceivedRequest {
                method: "POST".into(),
                path_and_query: format!("/identities/{i}?api-version=2023-10-01"),
                headers,
            },
            body.into_bytes(),
        ));
    }
    let policy = VerifyPolicy::default();
    let (o, r) = paired(
        || {
            let start = Instant::now();
            for (req, body) in &requests {
                verify_request(&key, &policy, req, &body[..], at).unwrap();
            }
            N as f64 / start.elapsed().as_secs_f64()
        },
        || {
            // Plain recompute: hash the body, rebuild the string-to-sign, HMAC, compare.
            let start = Instant::now();
            for (req, body) in &requests {
                let get = |n: &str| {
                    req.headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.as_str())
                        .unwrap()
                };
                let content = get("x-ms-content-sha256");
                let claimed = STANDARD.decode(content).unwrap();
                assert!(bool::from(Sha256::digest(body).as_slice().ct_eq(&claimed)));
                let sts = format!(
                    "{}\n{}\n{};{};{}",
                    req.method,
                    req.path_and_query,
                    get("x-ms-date"),
                    get("host"),
                    content
                );
                let auth = get("authorization");
                let sig = STANDARD
                    .decode(&auth[auth.rfind("Signature=").unwrap() + 10..])
                    .unwrap();
                let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
                mac.update(sts.as_bytes());
                mac.verify_slice(&sig).unwrap();
            }
            N as f64 / start.elapsed().as_secs_f64()
        },
    );
    rate_row(
        6,
        "verifier: 10,000 signed requests, library loop, software key",
        o,
        r,
        "plain hmac+sha2 recompute loop",
        0.90,
        "req/s",
    )
}

/// A child server started from the release binary; killed on drop.
struct Child(std::process::Child, String);

impl Child {
    fn start(cmd: &mut Command) -> Self {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Self(child, addr)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in USER_HZ (100 on Linux).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// One keep-alive HTTP/1.1 connection sending `request` over and over
/// until `deadline`; every answer must be a 200 of the right shape.
async fn http_client(addr: String, request: Arc<Vec<u8>>, deadline: Instant) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0;
    while Instant::now() < deadline {
        tcp.write_all(&request).await.unwrap();
        buf.clear();
        // Whole length of the answer, known once its head is in.
        let mut len = None;
        while len.is_none_or(|len| buf.len() < len) {
            let mut chunk = [0u8; 4096];
            let got = tcp.read(&mut chunk).await.unwrap();
            assert!(got > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..got]);
            if len.is_none() {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = std::str::from_utf8(&buf[..end])
                        .unwrap()
                        .to_ascii_lowercase();
                    assert!(head.starts_with("http/1.1 200"), "{head}");
                    let body: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    len = Some(end + 4 + body);
                }
            }
        }
        let len = len.unwrap();
        assert!(buf[..len].ends_with(b"\"}"), "not a JSON answer");
        n += 1;
    }
    n
}

/// Requests per second from `conns` keep-alive connections driven by ONE
/// client thread with a minimal HTTP/1.1 client (the load generator shares
/// the machine's cores, so it should take as little of them as it can), and
/// the server's CPU time per request (µs) over the same window.
fn http_rate(server: &Child, request: &[u8], window: Duration, conns: usize) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = Arc::new(request.to_vec());
    let cpu0 = cpu_seconds(server.0.id());
    let start = Instant::now();
    let total: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                tokio::spawn(http_client(
                    server.1.clone(),
                    request.clone(),
                    start + window,
                ))
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.0.id()) - cpu0;
    (total as f64 / elapsed, cpu / total as f64 * 1e6)
}

fn row7(env: &Env) -> Row {
    let bearer = env.dir.join("bearer");
    std::fs::write(&bearer, "bench-bearer-token\n").unwrap();
    let server = Child::start(
        Command::new(&env.bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--token-label",
                &env.token,
            ])
            .arg("--bearer-token-file")
            .arg(&bearer)
            .env("HSM_SIGNER_LOG", "warn"),
    );
    let payload = STANDARD.encode(msg256());
    let body = format!(
        r#"{{"hmacRequest":{{"keyName":"{}","payload":"{payload}"}}}}"#,
        env.key_label
    );
    let request = format!(
        "POST /v1/synchronousHmac HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer bench-bearer-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.1,
        body.len()
    );
    let ours_backend = Arc::new(env.backend());
    let msg = Arc::new(msg256());
    let mut server_us = Vec::new();
    let mut reference_us = Vec::new();
    let (o, r) = paired(
        || {
            let (rate, us) = http_rate(&server, request.as_bytes(), env.window, 16);
            server_us.push(us);
            rate
        },
        || {
            let rate = two_threads(env.window, || {
                let b = ours_backend.clone();
                let msg = msg.clone();
                Box::new(move || {
                    b.sign(&msg).unwrap();
                })
            });
            // Two threads kept busy for the whole window.
            reference_us.push(2.0 / rate * 1e6);
            rate
        },
    );
    let (server_us, reference_us) = (stat(server_us).median, stat(reference_us).median);
    let mut row = rate_row(
        7,
        "`serve` POST /v1/synchronousHmac, 16 keep-alive connections, bearer auth",
        o,
        r,
        "in-process backend, 2 threads",
        0.60,
        "req/s",
    );
    row.note = format!(
        "the load generator shares the 2 cores; server CPU {server_us:.1} us/request vs \
         {reference_us:.1} us/op in-process = {:.2}x if the server had both cores",
        reference_us / server_us
    );
    row
}

/// Median latency (ms) of `n` sequential GETs.
fn p50_ms(rt: &tokio::runtime::Runtime, url: &str, n: usize) -> f64 {
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let r = http.get(url).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
            v.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        stat(v).median
    })
}

/// An upstream that answers after `delay` (0: at once).
fn upstream(rt: &tokio::runtime::Runtime, delay: Duration) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new().fallback(move || async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        "{\"ok\":true}"
    });
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn row8(env: &Env, delay: Duration, n: u8) -> Row {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let up = upstream(&rt, delay);
    let proxy = Child::start(
        Command::new(&env.bin)
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &format!("http://{up}"),
            ])
            .args(token_args(env))
            .env("HSM_SIGNER_LOG", "warn"),
    );
    let direct = format!("http://{up}/identities?api-version=2023-10-01");
    let via = format!("http://{}/identities?api-version=2023-10-01", proxy.1);
    p50_ms(&rt, &via, 50);
    let (o, r) = paired(|| p50_ms(&rt, &via, 300), || p50_ms(&rt, &direct, 300));
    let ratio = o.median / r.median;
    let what = if delay.is_zero() {
        "`proxy` GET latency p50, upstream answers at once".to_owned()
    } else {
        format!(
            "`proxy` GET latency p50, upstream takes {} ms",
            delay.as_millis()
        )
    };
    Row {
        n,
        what,
        unit: "ms",
        ours: o,
        reference: r,
        reference_name: "the same GET sent directly to the upstream".into(),
        ratio,
        target: "<= 1.50x".into(),
        ok: ratio <= 1.5,
        note: "300 sequential requests per repetition".into(),
    }
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn main() {
    let env = Env::load();
    let only: Option<u8> = std::env::var("BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let want = |n: u8| only.is_none_or(|o| o == n);
    let mut rows = Vec::new();
    let mut run = |n: u8, f: &dyn Fn() -> Row| {
        if want(n) {
            eprintln!("bench: row {n}...");
            rows.push(f());
        }
    };
    run(1, &|| row1(&env));
    run(2, &|| row2(&env));
    run(3, &|| row3(&env));
    run(4, &|| row4(&env));
    run(5, &|| row5(&env).0);
    run(6, &row6);
    run(7, &|| row7(&env));
    run(8, &|| row8(&env, Duration::ZERO, 8));
    run(9, &|| row8(&env, Duration::from_millis(2), 9));

    println!();
    println!("hsm-signer benchmarks: median [min..max] of {REPS} repetitions, ours and reference interleaved in one run");
    println!(
        "machine: {} CPUs; SoftHSM token {:?}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env.token
    );
    println!();
    println!("| # | what | ours | reference | ratio | target | |");
    println!("|---|---|---|---|---|---|---|");
    let mut all_ok = true;
    for r in &rows {
        all_ok &= r.ok;
        let note = if r.note.is_empty() {
            String::new()
        } else {
            format!("; {}", r.note)
        };
        println!(
            "| {} | {} | {} {} [{}..{}] | {} {} [{}..{}] ({}) | {:.2}x | {} | {}{} |",
            r.n,
            r.what,
            fmt(r.ours.median),
            r.unit,
            fmt(r.ours.min),
            fmt(r.ours.max),
            fmt(r.reference.median),
            r.unit,
            fmt(r.reference.min),
            fmt(r.reference.max),
            r.reference_name,
            r.ratio,
            r.target,
            if r.ok { "ok" } else { "MISSED" },
            note
        );
    }
    if !all_ok {
        std::process::exit(1);
    }
}
