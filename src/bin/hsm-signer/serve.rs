//! `hsm-signer serve`: the Cloud-HSM style HMAC REST API, backed by the token.
//!
//! PKCS#11 calls block, so they run on `--sessions` dedicated worker threads
//! ([`crate::workers`]), never on the async workers.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hsm_signer::backend::pkcs11::provision::{KeyDescription, Token};
use hsm_signer::backend::pkcs11::{
    self as p11, KeySelector, Pkcs11Backend, PoolOptions, TokenSpec,
};
use hsm_signer::config::Profile;
use hsm_signer::request::auth_header::parse_authorization;
use hsm_signer::request::verify::VerifyRequestError;
use hsm_signer::{
    verify_request, Dialect, KeyBackend, ReceivedRequest, Rejection, Tag, VerifyError, VerifyPolicy,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::cli::ServeArgs;
use crate::failure::{Context, Failure};
use crate::token::token_spec;
use crate::workers::{JobError, Workers};

/// How clients prove who they are.
struct Auth {
    /// Label prefix of client HMAC keys, e.g. `client:`.
    client_prefix: String,
    /// Optional static bearer token.
    bearer: Option<SecretString>,
    /// `--insecure-no-auth` on loopback.
    none: bool,
}

pub(crate) struct AppState {
    spec: TokenSpec,
    auth: Auth,
    health_key: String,
    max_payload: usize,
    workers: Workers,
    keys: Mutex<HashMap<String, Arc<Pkcs11Backend>>>,
    metrics: Metrics,
    /// Set when the HSM looked unavailable: the module is re-initialized.
    needs_reset: std::sync::atomic::AtomicBool,
    last_reset: Mutex<Option<Instant>>,
}

// ------------------------------------------------------------------ errors

/// A JSON error response `{"error", "message"}`.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    www_authenticate: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            www_authenticate: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(label: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("no key named {label:?}"),
        )
    }

    fn unauthorized(rejection: &Rejection) -> Self {
        Self {
            www_authenticate: Some(rejection.www_authenticate()),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                rejection.description(),
            )
        }
    }

    fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// Maps a backend failure: a missing key is 404, an unusable one 400,
    /// anything else means the HSM is unavailable (503).
    fn from_backend(label: &str, e: &hsm_signer::backend::Error) -> Self {
        use hsm_signer::backend::Error as B;
        match e {
            B::Pkcs11(p11::Error::KeyNotFound { .. }) => Self::not_found(label),
            B::Pkcs11(p11::Error::KeyCannotSign { .. } | p11::Error::KeyTooShort { .. }) => {
                Self::bad_request(format!("key {label:?} cannot be used: {e}"))
            }
            other => Self::unavailable(label, other),
        }
    }
}

impl ApiError {
    /// 503: the HSM failed. The cause goes to the log, not to the client.
    fn unavailable(what: &str, e: &dyn std::error::Error) -> Self {
        tracing::error!(key = what, error = %crate::sign::error_chain(e), "HSM failure");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "hsm_unavailable",
            "the HSM is not available; try again later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        if let Some(value) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

fn job_error(e: JobError) -> ApiError {
    match e {
        JobError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is stopping",
        ),
        JobError::Panicked => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        ),
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn decode_b64(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD
        .decode(value)
        .map_err(|_| ApiError::bad_request(format!("{field} is not valid base64")))
}

// -------------------------------------------------------------- HSM access

impl AppState {
    /// Runs `f` on one of the `--sessions` PKCS#11 worker threads.
    async fn hsm<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&AppState) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        let result = self.workers.run(move || f(&state)).await.map_err(job_error);
        if self.needs_reset.swap(false, Ordering::AcqRel) {
            self.reset_module().await;
        }
        result
    }

    /// After the token went away (SoftHSM only rescans tokens at
    /// `C_Initialize`): with no PKCS#11 call in flight and new ones held
    /// back, close all sessions, then finalize and re-initialize the module.
    /// At most once a second.
    async fn reset_module(self: &Arc<Self>) {
        {
            let mut last = self
                .last_reset
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(Instant::now());
        }
        let state = self.clone();
        let _ = self.workers.exclusive(move || {
            // Sessions close while their handles still mean something.
            state
                .keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            match p11::module::context(&state.spec.module) {
                Ok(ctx) => {
                    let _ = ctx.clone().finalize();
                    match p11::module::reinitialize(&ctx) {
                        Ok(()) => tracing::warn!(
                            "PKCS#11 module re-initialized after the HSM became unavailable"
                        ),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot re-initialize the PKCS#11 module")
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot reach the PKCS#11 module"),
            }
        })
        .await;
    }

    /// The backend for key `label`, opened once and cached. Blocking.
    fn backend(&self, label: &str) -> Result<Arc<Pkcs11Backend>, hsm_signer::backend::Error> {
        if let Some(b) = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(label)
        {
            return Ok(b.clone());
        }
        let backend = Arc::new(Pkcs11Backend::open(
            &self.spec,
            &KeySelector {
                label: Some(label.to_owned()),
                id: None,
            },
            PoolOptions {
                // As many as there are workers: none waits for a session.
                max_sessions: self.workers.size(),
                acquire_timeout: Duration::from_secs(10),
            },
        )?);
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(label.to_owned(), backend.clone());
        Ok(backend)
    }

    fn forget(&self, label: &str) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(label);
    }

    /// Runs `op` with key `label`; a key deleted behind the cache is evicted.
    fn with_key<T>(
        &self,
        label: &str,
        op: impl FnOnce(&Pkcs11Backend) -> Result<T, hsm_signer::backend::Error>,
    ) -> Result<T, ApiError> {
        let result = self.backend(label).and_then(|b| op(&b));
        result.map_err(|e| {
            if matches!(
                e,
                hsm_signer::backend::Error::Pkcs11(p11::Error::KeyNotFound { .. })
            ) {
                self.forget(label);
            } else {
                self.metrics.hsm_errors.fetch_add(1, Ordering::Relaxed);
            }
            let error = ApiError::from_backend(label, &e);
            if error.status == StatusCode::SERVICE_UNAVAILABLE {
                self.needs_reset.store(true, Ordering::Release);
            }
            error
        })
    }

    /// API keys are every key but the client keys.
    fn check_api_key_name(&self, label: &str) -> Result<(), ApiError> {
        if label.is_empty() || label.len() > 128 || label.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "a key name is 1 to 128 printable characters",
            ));
        }
        if label.starts_with(&self.auth.client_prefix) {
            // Client secrets must never become an HMAC oracle.
            return Err(ApiError::not_found(label));
        }
        Ok(())
    }
}

fn token_error(e: &p11::Error) -> ApiError {
    match e {
        p11::Error::LabelExists(label) => ApiError::new(
            StatusCode::CONFLICT,
            "key_exists",
            format!("a key named {label:?} already exists"),
        ),
        p11::Error::NotDestroyable(label) => ApiError::new(
            StatusCode::CONFLICT,
            "key_not_destroyable",
            format!("key {label:?} was created with destroyable=false"),
        ),
        p11::Error::KeyNotFound { selector, .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("no key with {selector}"),
        ),
        p11::Error::KeyLength { .. } => ApiError::bad_request(e.to_string()),
        other => ApiError::unavailable("token", other),
    }
}

// ---------------------------------------------------------------- handlers

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateKey {
    label: String,
    #[serde(default)]
    password: Option<Value>,
    algorithm: String,
    #[serde(default)]
    attributes: KeyAttributes,
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(default)]
struct KeyAttributes {
    sign: bool,
    extractable: bool,
    modifiable: bool,
    destroyable: bool,
    sensitive: bool,
    decrypt: bool,
    unwrap: bool,
}

impl Default for KeyAttributes {
    fn default() -> Self {
        Self {
            sign: true,
            extractable: false,
            modifiable: false,
            destroyable: false,
            sensitive: true,
            decrypt: false,
            unwrap: false,
        }
    }
}

fn describe(d: &KeyDescription) -> Value {
    json!({
        "label": d.label,
        "id": d.id,
        "algorithm": "HMACSHA256",
        "length": d.length,
        "attributes": {
            "sign": d.sign,
            "verify": d.verify,
            "extractable": d.extractable,
            "modifiable": d.modifiable,
            "destroyable": d.destroyable,
            "sensitive": d.sensitive,
            "decrypt": false,
            "unwrap": false,
        }
    })
}

async fn create_key(State(st): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let req: CreateKey = parse_json(&body)?;
    st.check_api_key_name(&req.label)?;
    if req.label == st.health_key {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_exists",
            "that name is reserved for /healthz",
        ));
    }
    if !req.algorithm.eq_ignore_ascii_case("HMACSHA256") {
        return Err(ApiError::bad_request(format!(
            "unsupported algorithm {:?}: only HMACSHA256",
            req.algorithm
        )));
    }
    if req.password.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(ApiError::bad_request(
            "per-key passwords are not supported: keys are protected by the token login; send \"password\": null",
        ));
    }
    let a = req.attributes;
    let refusals = [
        (
            !a.sign,
            "sign must be true: an HMAC key that cannot sign is useless",
        ),
        (
            a.extractable,
            "extractable must be false: keys never leave the HSM",
        ),
        (
            !a.sensitive,
            "sensitive must be true: keys never leave the HSM",
        ),
        (
            a.modifiable,
            "modifiable must be false: keys are created hardened",
        ),
        (
            a.decrypt,
            "decrypt must be false: HMAC keys only sign and verify",
        ),
        (
            a.unwrap,
            "unwrap must be false: HMAC keys only sign and verify",
        ),
    ];
    if let Some((_, why)) = refusals.iter().find(|(refused, _)| *refused) {
        return Err(ApiError::bad_request(*why));
    }
    let label = req.label.clone();
    let created = st
        .hsm(move |st| {
            let token = Token::open(&st.spec)?;
            token.generate(&label, None, 32, a.destroyable)
        })
        .await?
        .map_err(|e| token_error(&e))?;
    tracing::info!(key = %created.label, "key created");
    Ok((StatusCode::CREATED, Json(describe(&created))).into_response())
}

async fn list_keys(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let keys = st
        .hsm(|st| Token::open(&st.spec)?.list())
        .await?
        .map_err(|e| token_error(&e))?;
    let visible: Vec<Value> = keys
        .iter()
        .filter(|k| !k.label.starts_with(&st.auth.client_prefix))
        .map(describe)
        .collect();
    Ok(Json(json!({ "keys": visible })))
}

async fn find_key(st: &Arc<AppState>, label: String) -> Result<KeyDescription, ApiError> {
    st.check_api_key_name(&label)?;
    st.hsm(move |st| {
        let token = Token::open(&st.spec)?;
        let handle = token.find(&KeySelector {
            label: Some(label),
            id: None,
        })?;
        token.describe(handle)
    })
    .await?
    .map_err(|e| token_error(&e))
}

async fn get_key(
    State(st): State<Arc<AppState>>,
    Path(label): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(describe(&find_key(&st, label).await?)))
}

async fn delete_key(
    State(st): State<Arc<AppState>>,
    Path(label): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.check_api_key_name(&label)?;
    let name = label.clone();
    st.hsm(move |st| {
        let result = Token::open(&st.spec)?.delete(&name);
        if result.is_ok() {
            st.forget(&name);
        }
        result
    })
    .await?
    .map_err(|e| token_error(&e))?;
    tracing::info!(key = %label, "key deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HmacBody {
    hmac_request: HmacRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HmacRequest {
    key_name: String,
    payload: String,
}

async fn synchronous_hmac(
    State(st): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: HmacBody = parse_json(&body)?;
    let HmacRequest { key_name, payload } = req.hmac_request;
    st.check_api_key_name(&key_name)?;
    let payload = decode_b64("hmacRequest.payload", &payload)?;
    let tag = st
        .hsm(move |st| st.with_key(&key_name, |b| b.sign(&payload)))
        .await??;
    Ok(Json(json!({ "keyedHash": tag.to_base64() })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyBody {
    verify_hmac_request: VerifyHmacRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyHmacRequest {
    key_name: String,
    payload: String,
    signature: String,
}

async fn verify_hmac(
    State(st): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: VerifyBody = parse_json(&body)?;
    let VerifyHmacRequest {
        key_name,
        payload,
        signature,
    } = req.verify_hmac_request;
    st.check_api_key_name(&key_name)?;
    let payload = decode_b64("verifyHmacRequest.payload", &payload)?;
    let signature = decode_b64("verifyHmacRequest.signature", &signature)?;
    let valid = st
        .hsm(move |st| {
            st.with_key(&key_name, |b| {
                // A tag of the wrong length is simply not the right tag (the
                // key was still looked up: an unknown key is 404).
                let Ok(tag) = Tag::from_slice(&signature) else {
                    return Ok(false);
                };
                match b.verify(&payload, &tag) {
                    Ok(()) => Ok(true),
                    Err(VerifyError::Mismatch) => Ok(false),
                    Err(VerifyError::Backend(e)) => Err(e),
                    Err(_) => Ok(false),
                }
            })
        })
        .await??;
    Ok(Json(json!({ "signatureValid": valid })))
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let label = st.health_key.clone();
    let result = st
        .hsm(move |st| {
            st.with_key(&label, |b| {
                let tag = b.sign(b"hsm-signer health probe")?;
                b.verify(b"hsm-signer health probe", &tag)
                    .map_err(|e| match e {
                        VerifyError::Backend(e) => e,
                        _ => hsm_signer::backend::Error::KeyRejected,
                    })
            })
        })
        .await;
    match result {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"status": "unavailable", "message": "HMAC round trip in the token failed"}),
            ),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(st.workers.running(), st.workers.size()),
    )
        .into_response()
}

/// Test hook: logs the application out of the token from a separate
/// session, which invalidates every session's login and key handle, as a
/// token reset would. The pools must recover without failing a request.
async fn test_logout(State(st): State<Arc<AppState>>) -> Result<StatusCode, ApiError> {
    st.hsm(|st| -> Result<(), p11::Error> {
        let ctx = p11::module::context(&st.spec.module)?;
        let slot = p11::module::find_token(&ctx, &st.spec.token)?.slot;
        let session = ctx
            .open_ro_session(slot)
            .map_err(p11::Error::op("opening a session"))?;
        session.logout().map_err(p11::Error::op("logging out"))
    })
    .await?
    .map_err(|e| ApiError::unavailable("test hook", &e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

// ---------------------------------------------------------- authentication

/// Client ids become parts of key labels: keep them plain.
fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

async fn authenticate(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let body = match to_bytes(body, st.max_payload).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::too_large(st.max_payload).into_response(),
    };
    if !st.auth.none {
        match check_auth(&st, &parts.method, &parts.uri, &parts.headers, &body).await {
            Ok(client) => {
                parts.extensions.insert(ClientId(client));
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

#[derive(Clone)]
struct ClientId(String);

async fn check_auth(
    st: &Arc<AppState>,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<String, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let (Some(expected), Some(given)) = (&st.auth.bearer, authorization.strip_prefix("Bearer "))
    {
        let ok: bool = expected
            .expose_secret()
            .as_bytes()
            .ct_eq(given.trim().as_bytes())
            .into();
        return if ok {
            Ok("bearer".into())
        } else {
            Err(ApiError {
                www_authenticate: Some("Bearer error=\"invalid_token\"".into()),
                ..ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "invalid bearer token",
                )
            })
        };
    }
    let credential = match parse_authorization(authorization) {
        None => return Err(ApiError::unauthorized(&Rejection::MissingAuthorization)),
        Some(p) => p.credential.map(str::to_owned),
    };
    let Some(credential) = credential else {
        return Err(ApiError::unauthorized(&Rejection::MissingParameter));
    };
    if !valid_client_id(&credential) {
        return Err(ApiError::unauthorized(&Rejection::InvalidCredential));
    }
    let request = ReceivedRequest {
        method: method.as_str().to_owned(),
        path_and_query: uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned(),
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.trim().to_owned())))
            .collect(),
    };
    let body = body.clone();
    let label = format!("{}{credential}", st.auth.client_prefix);
    let policy = VerifyPolicy {
        dialect: Dialect::AppConfig,
        credential: Some(credential.clone()),
        ..VerifyPolicy::default()
    };
    let outcome = st
        .hsm(move |st| match st.backend(&label) {
            Err(hsm_signer::backend::Error::Pkcs11(p11::Error::KeyNotFound { .. })) => {
                Err(Ok(Rejection::InvalidCredential))
            }
            Err(e) => Err(Err(ApiError::from_backend("client key", &e))),
            Ok(b) => match verify_request(&*b, &policy, &request, &body[..], SystemTime::now()) {
                Ok(()) => Ok(()),
                Err(VerifyRequestError::Rejected(r)) => Err(Ok(r)),
                Err(VerifyRequestError::Backend(e)) => {
                    Err(Err(ApiError::from_backend("client key", &e)))
                }
                Err(e) => Err(Err(ApiError::bad_request(e.to_string()))),
            },
        })
        .await?;
    match outcome {
        Ok(()) => Ok(credential),
        Err(Ok(rejection)) => {
            tracing::warn!(client = %credential, reason = %rejection, "rejected");
            Err(ApiError::unauthorized(&rejection))
        }
        Err(Err(e)) => Err(e),
    }
}

// ----------------------------------------------------------------- metrics

const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Default)]
struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    histogram: Mutex<([u64; BUCKETS.len() + 1], f64, u64)>,
    hsm_errors: AtomicU64,
}

impl Metrics {
    fn record(&self, route: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((route.to_owned(), status))
            .or_default() += 1;
        let mut h = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        h.0[i] += 1;
        h.1 += seconds;
        h.2 += 1;
    }

    fn render(&self, in_use: usize, size: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP hsm_signer_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE hsm_signer_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            out.push_str(&format!(
                "hsm_signer_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
            ));
        }
        let h = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        out.push_str("# HELP hsm_signer_request_duration_seconds Request latency.\n");
        out.push_str("# TYPE hsm_signer_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += h.0[i];
            out.push_str(&format!(
                "hsm_signer_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}\n"
            ));
        }
        cumulative += h.0[BUCKETS.len()];
        out.push_str(&format!(
            "hsm_signer_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n"
        ));
        out.push_str(&format!(
            "hsm_signer_request_duration_seconds_sum {}\n",
            h.1
        ));
        out.push_str(&format!(
            "hsm_signer_request_duration_seconds_count {}\n",
            h.2
        ));
        out.push_str(
            "# HELP hsm_signer_hsm_errors_total PKCS#11 failures (not counting unknown keys).\n",
        );
        out.push_str("# TYPE hsm_signer_hsm_errors_total counter\n");
        out.push_str(&format!(
            "hsm_signer_hsm_errors_total {}\n",
            self.hsm_errors.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP hsm_signer_hsm_pool_in_use PKCS#11 operations running now.\n");
        out.push_str("# TYPE hsm_signer_hsm_pool_in_use gauge\n");
        out.push_str(&format!("hsm_signer_hsm_pool_in_use {in_use}\n"));
        out.push_str("# HELP hsm_signer_hsm_pool_size Most PKCS#11 operations at once.\n");
        out.push_str("# TYPE hsm_signer_hsm_pool_size gauge\n");
        out.push_str(&format!("hsm_signer_hsm_pool_size {size}\n"));
        out
    }
}

/// Records every request (route template, never the path) and logs it.
async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let response = next.run(req).await;
    let seconds = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    st.metrics.record(&route, status, seconds);
    let client = response
        .extensions()
        .get::<ClientId>()
        .map_or("-", |c| c.0.as_str());
    tracing::info!(%method, %route, status, ms = format!("{:.2}", seconds * 1000.0), client, "request");
    response
}

/// Moves the client id from the request to the response for the log line.
async fn client_to_response(req: Request, next: Next) -> Response {
    let client = req.extensions().get::<ClientId>().cloned();
    let mut response = next.run(req).await;
    if let Some(c) = client {
        response.extensions_mut().insert(c);
    }
    response
}

// ------------------------------------------------------------------- start

pub(crate) fn router(st: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/key", post(create_key).get(list_keys))
        .route("/v1/key/{label}", get(get_key).delete(delete_key))
        .route("/v1/synchronousHmac", post(synchronous_hmac))
        .route("/v1/verify", post(verify_hmac))
        .route_layer(middleware::from_fn(client_to_response))
        .route_layer(middleware::from_fn_with_state(st.clone(), authenticate))
        // `authenticate` reads the body under --max-payload; no second limit.
        .layer(DefaultBodyLimit::disable());
    let mut app = Router::new().merge(api);
    if std::env::var("HSM_SIGNER_TEST_HOOKS").as_deref() == Ok("1") {
        tracing::warn!("test hooks enabled (HSM_SIGNER_TEST_HOOKS=1): never in production");
        app = app.route("/_test/logout", post(test_logout));
    }
    app.route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(st.clone(), track))
        .with_state(st)
}

/// Binds `addr` and announces the bound address on stdout as
/// `listening on ADDR` (tests and scripts wait for that line; with port 0 it
/// is the only way to learn the port).
pub(crate) async fn bind(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), Failure> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .context(format!("cannot listen on {addr}"))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    println!("listening on {local}");
    Ok((listener, local))
}

pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HSM_SIGNER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

pub(crate) fn run(args: &ServeArgs, profile: &Profile) -> Result<ExitCode, Failure> {
    if args.insecure_no_auth && !args.listen.ip().is_loopback() {
        return Err(Failure::msg(
            "--insecure-no-auth is only allowed on a loopback address",
        ));
    }
    if args.max_payload == 0 || args.sessions == 0 {
        return Err(Failure::msg(
            "--max-payload and --sessions must be positive",
        ));
    }
    let bearer = match &args.bearer_token_file {
        Some(path) => Some(
            hsm_signer::secret::read_pin(&hsm_signer::SecretSource::File(path.clone()))
                .context("cannot read --bearer-token-file")?,
        ),
        None => None,
    };
    let spec = token_spec(&args.token, profile)?;
    // Fail fast: the token must be reachable and the PIN right; make sure
    // the health key exists; and refuse to start when nobody could log in.
    let token = Token::open(&spec).context("cannot open the token")?;
    let keys = token.list().context("cannot list keys")?;
    if !keys.iter().any(|k| k.label == args.health_key) {
        token
            .generate(&args.health_key, None, 32, true)
            .context("cannot create the health-check key")?;
    }
    let clients = keys
        .iter()
        .filter(|k| k.label.starts_with(&args.client_key_prefix))
        .count();
    if clients == 0 && bearer.is_none() && !args.insecure_no_auth {
        return Err(Failure::msg(format!(
            "no way to authenticate clients: import client keys labelled {:?}+<client id> \
             (hsm-signer key import --label '{}alice'), or give --bearer-token-file",
            args.client_key_prefix, args.client_key_prefix
        )));
    }
    drop(token);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };

    let state = Arc::new(AppState {
        spec,
        auth: Auth {
            client_prefix: args.client_key_prefix.clone(),
            bearer,
            none: args.insecure_no_auth,
        },
        health_key: args.health_key.clone(),
        max_payload: args.max_payload,
        workers: Workers::start(args.sessions)
            .context("cannot start the PKCS#11 worker threads")?,
        keys: Mutex::new(HashMap::new()),
        metrics: Metrics::default(),
        needs_reset: std::sync::atomic::AtomicBool::new(false),
        last_reset: Mutex::new(None),
    });
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args.listen, state, clients, tls))?;
    Ok(ExitCode::SUCCESS)
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3) from PEM files.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, Failure> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .context(format!("cannot read certificates from {}", cert.display()))?;
    if certs.is_empty() {
        return Err(Failure::msg(format!(
            "no certificate in {}",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).context(format!(
        "cannot read the private key from {}",
        key.display()
    ))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("cannot set up TLS")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the TLS certificate and key do not go together")?;
    Ok(Arc::new(config))
}

async fn serve(
    listen: SocketAddr,
    state: Arc<AppState>,
    clients: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), Failure> {
    let (listener, local) = bind(listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%local, scheme, client_keys = clients, "serving the HMAC API");
    match tls {
        None => axum::serve(listener, router(state))
            .with_graceful_shutdown(crate::shutdown_signal())
            .await
            .context("server failed")?,
        Some(config) => serve_tls(listener, router(state), config).await,
    }
    tracing::info!("stopped");
    Ok(())
}

/// HTTPS: a TLS handshake (10 s at most) then HTTP/1.1 on each connection;
/// on SIGTERM/SIGINT stop accepting and let open connections finish.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    config: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(crate::shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
                    let Ok(Ok(stream)) = handshake.await else { return };
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}
