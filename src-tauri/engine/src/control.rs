//! The local control API: how `hearth status` and the web UI in a browser talk to a running
//! provider, over HTTP. It serves the app's [`ControlBackend`]; the Tauri shell calls that same
//! backend in-process instead.
//!
//! It binds to loopback only and every request needs the per-install token (header
//! `Authorization: Bearer …` or the `hearth_token` cookie). A browser gets the cookie from a
//! one-time URL the app opens (`GET /api/session?once=<nonce>`: single use, short-lived, sets an
//! `HttpOnly; SameSite=Strict` cookie, redirects to `/`). Host and Origin are checked so that a web
//! page the user visits cannot reach the API through DNS rebinding or a cross-site request. Where it
//! listens and the token are written to `control.json` in the data directory (owner-only), which is
//! how local clients find it.
//!
//! Endpoints: `GET /api/status`, `GET /api/events` (SSE of snapshots, at most ~5 a second, always
//! the newest, with a keepalive comment every 15 s), `POST /api/start`, `POST /api/stop`,
//! `GET|PUT /api/settings` (422 `{errors:[{field,message}]}` when invalid, nothing saved),
//! `GET /api/models`, `POST /api/models/pull` (a background pull from the Hugging Face hub),
//! `GET /api/models/pulls` (their progress), `DELETE /api/models/pulls/{id}` (cancel),
//! `GET /api/onboarding` (the first-launch view: this machine, its models, what to fetch),
//! `GET /api/earnings?range=today|7d|30d|all`, `GET /api/earnings.csv?range=…`
//! (the same range's jobs as a CSV download), `GET /api/logs?level=&limit=&after=` (the recent
//! log lines, redacted), `GET /api/doctor` (the doctor's checks), `GET|POST /api/session`; any other
//! GET is a file of the web UI embedded in the binary ([`crate::ui_assets`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::backend::{ControlBackend, PutSettingsError};
use crate::earnings::EarningsRange;
use crate::status::{Status, StatusHub};

/// Snapshots per SSE client are at least this far apart (≤ 5 a second); the newest always wins.
pub const SSE_MIN_GAP: Duration = Duration::from_millis(200);
/// A comment line on every SSE stream this often, so proxies and clients see the link is alive.
pub const SSE_KEEPALIVE: Duration = Duration::from_secs(15);
/// How long a one-time session URL stays valid.
pub const SESSION_NONCE_TTL: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the control API must listen on a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "no running provider found ({path} is missing); start one with `hearth serve` or `hearth local`"
    )]
    NotRunning { path: PathBuf },
    #[error("cannot reach the provider's control API at {url}: {problem}")]
    Unreachable { url: String, problem: String },
}

/// What a client needs to reach a running provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub token: String,
    pub pid: u32,
}

#[derive(Clone)]
struct ApiState {
    status: StatusHub,
    token: Arc<str>,
    port: u16,
    backend: Option<Arc<dyn ControlBackend>>,
    nonces: Arc<Mutex<HashMap<String, Instant>>>,
}

impl ApiState {
    fn mint_nonce(&self) -> String {
        let nonce = random_hex();
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        nonces.retain(|_, issued| issued.elapsed() < SESSION_NONCE_TTL);
        nonces.insert(nonce.clone(), Instant::now());
        nonce
    }

    /// True once per valid nonce.
    fn redeem_nonce(&self, nonce: &str) -> bool {
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        nonces.retain(|_, issued| issued.elapsed() < SESSION_NONCE_TTL);
        nonces.remove(nonce).is_some()
    }
}

/// A running control API server.
pub struct ControlServer {
    pub addr: SocketAddr,
    endpoint_file: PathBuf,
    state: ApiState,
    task: tokio::task::JoinHandle<()>,
}

impl ControlServer {
    /// A status-only server: binds `addr` (loopback only), writes `control.json` into `data_dir`,
    /// serves until dropped.
    pub async fn start(addr: SocketAddr, data_dir: &Path, status: StatusHub) -> Result<Self, ControlError> {
        Self::start_with_backend(addr, data_dir, status, None).await
    }

    /// The full API, with the app behind `backend` (without one, only status, events and the
    /// session endpoints answer; the rest say 503).
    pub async fn start_with_backend(
        addr: SocketAddr,
        data_dir: &Path,
        status: StatusHub,
        backend: Option<Arc<dyn ControlBackend>>,
    ) -> Result<Self, ControlError> {
        if !addr.ip().is_loopback() {
            return Err(ControlError::NotLoopback(addr));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ControlError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| ControlError::Bind { addr, source })?;
        let token = install_token(data_dir)?;
        // The log view and stderr must never show it (a request log line, an error quoting a header).
        crate::log_ring::add_secret(&token);
        let state = ApiState {
            status,
            token: token.clone().into(),
            port: addr.port(),
            backend,
            nonces: Arc::new(Mutex::new(HashMap::new())),
        };
        let app = Router::new()
            .route("/api/status", get(get_status))
            .route("/api/events", get(events))
            .route("/api/start", post(start))
            .route("/api/stop", post(stop))
            .route("/api/settings", get(get_settings).put(put_settings))
            .route("/api/models", get(models))
            .route("/api/models/pull", post(pull_model))
            .route("/api/models/pulls", get(pulls))
            .route("/api/models/pulls/{id}", axum::routing::delete(cancel_pull))
            .route("/api/onboarding", get(onboarding))
            .route("/api/earnings", get(earnings))
            .route("/api/earnings.csv", get(earnings_csv))
            .route("/api/logs", get(logs))
            .route("/api/doctor", get(doctor))
            .route("/api/session", get(session).post(new_session));
        // The web UI (embedded in the binary, or `$HEARTH_UI_DIR`) answers every other path. It
        // sits inside the guard: the bundle holds no data, but a page that only a token holder can
        // load is one thing less for a foreign site to probe.
        let app = app.fallback_service(crate::ui_assets::router(crate::ui_assets::UiSource::from_env()));
        let app = app.layer(middleware::from_fn_with_state(state.clone(), guard)).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let endpoint = Endpoint { url: format!("http://{addr}"), token, pid: std::process::id() };
        let endpoint_file = data_dir.join("control.json");
        write_private(&endpoint_file, &serde_json::to_vec_pretty(&endpoint).unwrap_or_default())?;
        Ok(Self { addr, endpoint_file, state, task })
    }

    /// A single-use URL that gives a browser the control cookie (the shell opens it).
    pub fn one_time_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/session?once={}", self.addr.port(), self.state.mint_nonce())
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.endpoint_file);
    }
}

fn json_error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// An error answer, as `{"error": "…"}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_error(self.0, self.1)
    }
}

fn backend(state: &ApiState) -> Result<Arc<dyn ControlBackend>, ApiError> {
    state.backend.clone().ok_or_else(|| {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, "this control API serves status only".into())
    })
}

/// Runs a blocking backend call off the async workers.
async fn blocking<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&dyn ControlBackend) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let backend = backend(state)?;
    tokio::task::spawn_blocking(move || f(backend.as_ref()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("the request failed: {e}")))
}

async fn get_status(State(state): State<ApiState>) -> impl IntoResponse {
    Json(state.status.snapshot())
}

/// `GET /api/events`: the current snapshot at once, then every change, coalesced per client.
async fn events(State(state): State<ApiState>) -> impl IntoResponse {
    let stream = snapshot_stream(state.status.subscribe());
    let mut response = Sse::new(stream).into_response();
    // Reverse proxies must not buffer a live stream.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Snapshots as SSE events: the newest one whenever the status changes, never more often than
/// [`SSE_MIN_GAP`], plus a keepalive comment carrying the wall-clock time every [`SSE_KEEPALIVE`].
fn snapshot_stream(rx: watch::Receiver<Status>) -> impl Stream<Item = Result<Event, Infallible>> {
    struct S {
        rx: watch::Receiver<Status>,
        first: bool,
        last_sent: Option<tokio::time::Instant>,
        keepalive: tokio::time::Interval,
    }
    let keepalive = tokio::time::interval_at(tokio::time::Instant::now() + SSE_KEEPALIVE, SSE_KEEPALIVE);
    let state = S { rx, first: true, last_sent: None, keepalive };
    futures_util::stream::unfold(state, |mut s| async move {
        if !s.first {
            tokio::select! {
                changed = s.rx.changed() => {
                    changed.ok()?;
                    if let Some(last) = s.last_sent {
                        // Whatever changes meanwhile is folded into the one snapshot sent next.
                        tokio::time::sleep_until(last + SSE_MIN_GAP).await;
                    }
                }
                _ = s.keepalive.tick() => {
                    let now = crate::status::rfc3339_now();
                    return Some((Ok(Event::default().comment(format!("keepalive {now}"))), s));
                }
            }
        }
        s.first = false;
        let snapshot = s.rx.borrow_and_update().clone();
        s.last_sent = Some(tokio::time::Instant::now());
        let event = Event::default().event("status").json_data(&snapshot).unwrap_or_default();
        Some((Ok(event), s))
    })
}

async fn start(State(state): State<ApiState>) -> Response {
    match backend(&state) {
        Ok(b) => {
            b.start();
            (StatusCode::ACCEPTED, Json(state.status.snapshot())).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn stop(State(state): State<ApiState>) -> Response {
    match backend(&state) {
        Ok(b) => {
            b.stop();
            (StatusCode::ACCEPTED, Json(state.status.snapshot())).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn get_settings(State(state): State<ApiState>) -> Response {
    match blocking(&state, |b| b.settings()).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn put_settings(State(state): State<ApiState>, body: Bytes) -> Response {
    match blocking(&state, move |b| b.put_settings(&body)).await {
        Ok(Ok(settings)) => Json(serde_json::json!({ "settings": settings })).into_response(),
        Ok(Err(PutSettingsError::Invalid(errors))) => {
            (StatusCode::UNPROCESSABLE_ENTITY, Json(serde_json::json!({ "errors": errors }))).into_response()
        }
        Ok(Err(PutSettingsError::Save(e))) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => e.into_response(),
    }
}

async fn models(State(state): State<ApiState>) -> Response {
    match blocking(&state, |b| b.models()).await {
        Ok(models) => Json(serde_json::json!({ "models": models })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/models/pull {"repo": "org/name", "file": "x.gguf"?, "force": false?}`: 202 with the
/// pull (`{"pull": {id, state, bytes_done, …}}`), 400 when the request itself is wrong.
async fn pull_model(State(state): State<ApiState>, body: Bytes) -> Response {
    let request: crate::models::fetch::PullRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(StatusCode::BAD_REQUEST, format!("expected {{\"repo\": \"org/name\"}}: {e}"))
        }
    };
    match blocking(&state, move |b| b.pull_model(request)).await {
        Ok(Ok(pull)) => (StatusCode::ACCEPTED, Json(serde_json::json!({ "pull": pull }))).into_response(),
        Ok(Err(e)) => json_error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/models/pulls`: `{"pulls": [...]}`, oldest first.
async fn pulls(State(state): State<ApiState>) -> Response {
    match blocking(&state, |b| b.pulls()).await {
        Ok(pulls) => Json(serde_json::json!({ "pulls": pulls })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/models/pulls/{id}`: cancels a running pull, forgets an ended one.
async fn cancel_pull(
    State(state): State<ApiState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match blocking(&state, move |b| b.cancel_pull(&id)).await {
        Ok(Some(pull)) => Json(serde_json::json!({ "pull": pull })).into_response(),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such pull"),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/onboarding`: `{machine, found, suggestions, needs_model}` (see
/// [`crate::models::catalog::Onboarding`]); walks the model folders, so off the async workers.
async fn onboarding(State(state): State<ApiState>) -> Response {
    match blocking(&state, |b| b.onboarding()).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct EarningsQuery {
    range: Option<String>,
    limit: Option<usize>,
}

async fn earnings(State(state): State<ApiState>, Query(q): Query<EarningsQuery>) -> Response {
    let range: EarningsRange = match q.range.as_deref().unwrap_or("today").parse() {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match blocking(&state, move |b| b.earnings(range, limit)).await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/earnings.csv?range=…` (default `all`: an export is usually the whole ledger), served
/// as an attachment so a browser that opens the URL directly saves it.
async fn earnings_csv(State(state): State<ApiState>, Query(q): Query<EarningsQuery>) -> Response {
    let range: EarningsRange = match q.range.as_deref().unwrap_or("all").parse() {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    match blocking(&state, move |b| b.earnings_csv(range)).await {
        Ok(Ok(csv)) => {
            let disposition = format!("attachment; filename=\"{}\"", crate::earnings::csv_file_name(range));
            let mut response = (StatusCode::OK, csv).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(hearth_ledger::CSV_CONTENT_TYPE));
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            // Earnings are private: no cache keeps a copy.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/logs?level=warn&limit=500&after=<seq>`: the recent log lines, redacted, newest last.
async fn logs(State(state): State<ApiState>, Query(q): Query<crate::log_ring::LogQuery>) -> Response {
    match blocking(&state, move |b| b.logs(&q)).await {
        Ok(Ok(page)) => Json(page).into_response(),
        Ok(Err(e)) => json_error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/doctor`: runs the checks now (a few seconds at most) and answers the report.
async fn doctor(State(state): State<ApiState>) -> Response {
    match blocking(&state, |b| b.doctor()).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct SessionQuery {
    once: Option<String>,
}

/// `GET /api/session?once=<nonce>`: trades a one-time nonce for the control cookie.
async fn session(State(state): State<ApiState>, Query(q): Query<SessionQuery>) -> Response {
    if !q.once.as_deref().is_some_and(|n| state.redeem_nonce(n)) {
        return json_error(
            StatusCode::FORBIDDEN,
            "this sign-in link was already used or has expired; open a new one from Hearth",
        );
    }
    let cookie = format!("hearth_token={}; HttpOnly; SameSite=Strict; Path=/", state.token);
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `POST /api/session` (token required): a fresh one-time URL, for a client that wants to open
/// the UI in a browser (e.g. `hearth open`).
async fn new_session(State(state): State<ApiState>) -> Response {
    let url = format!("http://127.0.0.1:{}/api/session?once={}", state.port, state.mint_nonce());
    Json(serde_json::json!({ "url": url })).into_response()
}

/// Host and Origin checks for every request; the token for all but the one-time session URL.
async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let exempt = request.method() == Method::GET && request.uri().path() == "/api/session";
    if let Err((code, message)) = check(&state, request.headers(), !exempt) {
        return json_error(code, message);
    }
    next.run(request).await
}

fn check(state: &ApiState, headers: &HeaderMap, need_token: bool) -> Result<(), (StatusCode, &'static str)> {
    let allowed_hosts = [format!("127.0.0.1:{}", state.port), format!("localhost:{}", state.port)];
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !allowed_hosts.iter().any(|h| h == host) {
        return Err((StatusCode::FORBIDDEN, "wrong Host header: the control API answers only on 127.0.0.1"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !allowed_hosts.iter().any(|h| origin == format!("http://{h}")) {
            return Err((
                StatusCode::FORBIDDEN,
                "foreign Origin: the control API is not for other web pages",
            ));
        }
    }
    if !need_token {
        return Ok(());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let cookie = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.split(';').find_map(|kv| kv.trim().strip_prefix("hearth_token=").map(str::to_string))
    });
    match bearer.or(cookie) {
        Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => Ok(()),
        Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong control token")),
        None => Err((StatusCode::UNAUTHORIZED, "missing control token")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The per-install control token, created on first use.
fn install_token(data_dir: &Path) -> Result<String, ControlError> {
    let path = data_dir.join("control-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    let token = random_hex();
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// 32 random bytes as hex.
fn random_hex() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), ControlError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ControlError::Io { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads `control.json` from `data_dir`.
pub fn find_endpoint(data_dir: &Path) -> Result<Endpoint, ControlError> {
    let path = data_dir.join("control.json");
    let raw = std::fs::read(&path).map_err(|_| ControlError::NotRunning { path: path.clone() })?;
    serde_json::from_slice(&raw).map_err(|_| ControlError::NotRunning { path })
}

/// Where Hearth keeps its data: `$HEARTH_HOME/data`, or the platform's data directory.
pub fn data_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("HEARTH_HOME") {
        return PathBuf::from(home).join("data");
    }
    directories::ProjectDirs::from("dev", "hearth", "Hearth")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".hearth"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ProviderPhase;
    use futures_util::StreamExt;

    /// The SSE body as text chunks, the way a client reads it.
    fn body(hub: &StatusHub) -> impl Stream<Item = String> {
        let response = Sse::new(snapshot_stream(hub.subscribe())).into_response();
        response
            .into_body()
            .into_data_stream()
            .map(|b| String::from_utf8_lossy(&b.expect("body chunk")).into_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn sse_coalesces_to_the_newest_snapshot_and_keeps_alive_on_the_wall_clock() {
        let hub = StatusHub::new(Status::new("p", "m", "scripted", 1, "ws://x"));
        let mut sse = Box::pin(body(&hub));
        let first = sse.next().await.unwrap();
        assert!(first.starts_with("event: status\ndata: {"), "{first}");
        assert!(first.contains("\"phase\":\"stopped\""));

        // A burst of changes right after a send: one event, after the gap, with the last state.
        let started = tokio::time::Instant::now();
        for i in 0..50 {
            hub.update(|s| s.jobs_completed = i);
        }
        hub.update(|s| s.set_phase(ProviderPhase::Ready, "serving"));
        let next = sse.next().await.unwrap();
        assert!(started.elapsed() >= SSE_MIN_GAP, "{:?}", started.elapsed());
        assert!(next.contains("\"phase\":\"ready\"") && next.contains("\"jobs_completed\":49"), "{next}");

        // After a quiet spell a change goes out at once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = tokio::time::Instant::now();
        hub.update(|s| s.set_phase(ProviderPhase::Busy, "full"));
        let next = sse.next().await.unwrap();
        assert!(next.contains("\"phase\":\"busy\""));
        assert_eq!(at.elapsed(), Duration::ZERO);

        // Nothing changes: a keepalive comment with the time, 15 s after the stream opened.
        let comment = sse.next().await.unwrap();
        assert!(comment.starts_with(": keepalive 20"), "{comment}");
        assert!(started.elapsed() >= SSE_KEEPALIVE - Duration::from_secs(2));
    }
}
