//! `hsm-signer proxy`: a reverse proxy to one upstream that adds
//! `x-ms-date`, `x-ms-content-sha256` and `Authorization` to every request.
//!
//! The body is hashed as it arrives; up to `--spill-threshold` bytes stay in
//! memory, larger bodies go to an unnamed temporary file, so memory stays
//! bounded. The response streams back unchanged.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures_util::StreamExt;
use hsm_signer::backend::pkcs11::PoolOptions;
use hsm_signer::config::Profile;
use hsm_signer::request::sign::check_credential;
use hsm_signer::{ContentHash, KeyBackend, RequestSigner, Target};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use url::Url;

use crate::cli::ProxyArgs;
use crate::failure::{Context, Failure};
use crate::keys;
use crate::workers::Workers;

struct ProxyState {
    signer: RequestSigner<Arc<dyn KeyBackend>>,
    /// `scheme://host[:port]`, no trailing slash.
    origin: String,
    allow: Vec<String>,
    spill_threshold: usize,
    client: reqwest::Client,
    /// Runs the signing calls (they block in the token), as many at once as
    /// the key's session pool allows.
    workers: Workers,
}

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers the proxy sets itself on the way up.
const REPLACED: [&str; 6] = [
    "host",
    "authorization",
    "content-length",
    "x-ms-date",
    "x-ms-content-sha256",
    "expect",
];

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

/// A request body: in memory, or spilled to a temporary file.
enum Spooled {
    Memory(Vec<u8>),
    File(tokio::fs::File),
}

fn spill_error(e: std::io::Error) -> String {
    format!("cannot spill the body: {e}")
}

/// Reads the body to its end, hashing as it goes.
async fn spool(body: Body, threshold: usize) -> Result<(Spooled, ContentHash, u64), String> {
    let mut stream = body.into_data_stream();
    let mut hasher = Sha256::new();
    let mut spooled = Spooled::Memory(Vec::new());
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("cannot read the request body: {e}"))?;
        hasher.update(&chunk);
        len += chunk.len() as u64;
        match &mut spooled {
            Spooled::Memory(buf) if buf.len() + chunk.len() > threshold => {
                let file = tempfile::tempfile().map_err(spill_error)?;
                let mut file = tokio::fs::File::from_std(file);
                file.write_all(buf).await.map_err(spill_error)?;
                file.write_all(&chunk).await.map_err(spill_error)?;
                spooled = Spooled::File(file);
            }
            Spooled::Memory(buf) => buf.extend_from_slice(&chunk),
            Spooled::File(file) => file.write_all(&chunk).await.map_err(spill_error)?,
        }
    }
    if let Spooled::File(file) = &mut spooled {
        file.flush().await.map_err(spill_error)?;
        file.rewind().await.map_err(spill_error)?;
    }
    Ok((
        spooled,
        ContentHash::from_digest(hasher.finalize().into()),
        len,
    ))
}

fn upstream_body(spooled: Spooled) -> reqwest::Body {
    match spooled {
        Spooled::Memory(buf) => reqwest::Body::from(buf),
        Spooled::File(file) => {
            let chunks = futures_util::stream::unfold(file, |mut file| async move {
                let mut buf = vec![0u8; 256 * 1024];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok::<_, std::io::Error>(buf), file))
                    }
                    Err(e) => Some((Err(e), file)),
                }
            });
            reqwest::Body::wrap_stream(chunks)
        }
    }
}

async fn forward(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = parts.uri.path();
    if !st.allow.is_empty() && !st.allow.iter().any(|p| path.starts_with(p.as_str())) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("path {path:?} is not allowed"),
        );
    }
    let url = match Url::parse(&format!("{}{path_and_query}", st.origin)) {
        Ok(url) => url,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("bad request target: {e}"),
            )
        }
    };
    // Sign exactly what reqwest will send: the parsed URL's host and path.
    let target = match Target::from_url(&url) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    let (spooled, content, len) = match spool(body, st.spill_threshold).await {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e),
    };
    let method = parts.method.clone();
    let signer_state = st.clone();
    let signed = st
        .workers
        .run(move || {
            signer_state
                .signer
                .sign_target(method.as_str(), &target, &content, SystemTime::now())
        })
        .await;
    let signed = match signed {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(error = %crate::sign::error_chain(&e), "signing failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "signing_failed",
                "the key could not sign the request",
            );
        }
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    };

    let mut upstream = st.client.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if !HOP_BY_HOP.contains(&n) && !REPLACED.contains(&n) {
            upstream = upstream.header(name, value);
        }
    }
    for (name, value) in signed.headers() {
        upstream = upstream.header(name, value);
    }
    if len > 0 || !matches!(parts.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        upstream = upstream.header(header::CONTENT_LENGTH, len);
    }
    let response = match upstream.body(upstream_body(spooled)).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %crate::sign::error_chain(&e), "upstream unreachable");
            return error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the upstream did not answer",
            );
        }
    };
    tracing::info!(method = %parts.method, path, status = response.status().as_u16(), bytes = len, "forwarded");
    let mut out = Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    out.body(Body::from_stream(response.bytes_stream()))
        .unwrap_or_else(|_| {
            error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "unusable upstream response",
            )
        })
}

fn origin(upstream: &str) -> Result<String, Failure> {
    let url = Url::parse(upstream).context(format!("invalid --upstream {upstream:?}"))?;
    let target = Target::from_url(&url)?;
    if target.path_and_query != "/" || url.fragment().is_some() {
        return Err(Failure::msg(format!(
            "--upstream must be an origin such as https://host[:port], without a path: {upstream:?}"
        )));
    }
    Ok(format!("{}://{}", url.scheme(), target.host))
}

pub(crate) fn run(args: &ProxyArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
        return Err(Failure::msg(format!(
            "refusing to listen on non-loopback {}: anyone who reaches it can make signed requests; \
             pass --allow-non-loopback if that is intended",
            args.listen
        )));
    }
    let origin = origin(&args.upstream)?;
    let (dialect, credential) = keys::scheme(&args.scheme, profile)?;
    check_credential(dialect, credential)?;
    let backend: Arc<dyn KeyBackend> = Arc::from(keys::open_backend(&args.key, profile)?);
    let signer = RequestSigner::new(backend, dialect, credential)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;
    let state = Arc::new(ProxyState {
        signer,
        origin,
        allow: args.allow_path_prefix.clone(),
        spill_threshold: args.spill_threshold,
        client,
        workers: Workers::start(PoolOptions::default().max_sessions)
            .context("cannot start the signing worker threads")?,
    });
    crate::serve::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(listen(args.listen, state))?;
    Ok(ExitCode::SUCCESS)
}

async fn listen(addr: SocketAddr, state: Arc<ProxyState>) -> Result<(), Failure> {
    let (listener, local) = crate::serve::bind(addr).await?;
    tracing::info!(%local, upstream = %state.origin, "proxying");
    let app = Router::new().fallback(forward).with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await
        .context("proxy failed")?;
    Ok(())
}
