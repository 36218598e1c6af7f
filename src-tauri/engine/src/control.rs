//! The local control API: how `hearth status` (and later the UI) talks to a running provider.
//!
//! It binds to loopback only and every request needs the per-install token (header
//! `Authorization: Bearer …` or the `hearth_token` cookie). Host and Origin are checked so that a web
//! page the user visits cannot reach it through DNS rebinding. Where it listens and the token are
//! written to `control.json` in the data directory (owner-only), which is how local clients find it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::status::StatusHub;

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
    token: String,
    port: u16,
}

/// A running control API server.
pub struct ControlServer {
    pub addr: SocketAddr,
    endpoint_file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlServer {
    /// Binds `addr` (loopback only), writes `control.json` into `data_dir`, serves until dropped.
    pub async fn start(addr: SocketAddr, data_dir: &Path, status: StatusHub) -> Result<Self, ControlError> {
        if !addr.ip().is_loopback() {
            return Err(ControlError::NotLoopback(addr));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ControlError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| ControlError::Bind { addr, source })?;
        let token = install_token(data_dir)?;
        let state = ApiState { status, token: token.clone(), port: addr.port() };
        let app = Router::new()
            .route("/api/status", get(get_status))
            .layer(middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let endpoint = Endpoint { url: format!("http://{addr}"), token, pid: std::process::id() };
        let endpoint_file = data_dir.join("control.json");
        write_private(&endpoint_file, &serde_json::to_vec_pretty(&endpoint).unwrap_or_default())?;
        Ok(Self { addr, endpoint_file, task })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.endpoint_file);
    }
}

async fn get_status(State(state): State<ApiState>) -> impl IntoResponse {
    Json(state.status.snapshot())
}

/// Token, Host and Origin checks for every request.
async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Err((code, message)) = check(&state, request.headers()) {
        return (code, Json(serde_json::json!({ "error": message }))).into_response();
    }
    next.run(request).await
}

fn check(state: &ApiState, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
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
    let token: String = {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    write_private(&path, token.as_bytes())?;
    Ok(token)
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
