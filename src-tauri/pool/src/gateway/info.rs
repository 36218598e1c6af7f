//! Read-only views: models, pool status, health, usage.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::state::PoolState;
use crate::status::PoolStatus;
use crate::usage_log::UsageSummary;

/// `GET /v1/models`: an OpenAI list of the models connected providers serve.
pub(crate) async fn models(State(shared): State<Arc<PoolState>>) -> Json<Value> {
    let data: Vec<Value> = shared
        .connected_models()
        .into_iter()
        .map(|(id, created)| json!({"id": id, "object": "model", "created": created, "owned_by": "hearth-pool"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/status`.
pub(crate) async fn status(State(shared): State<Arc<PoolState>>) -> Json<PoolStatus> {
    Json(shared.snapshot())
}

/// `GET /healthz`.
pub(crate) async fn healthz(State(shared): State<Arc<PoolState>>) -> Json<Value> {
    let (pool_size, pool_ready) = shared.provider_counts();
    Json(json!({
        "status": "ok",
        "uptime_s": shared.started.elapsed().as_secs(),
        "pool_size": pool_size,
        "pool_ready": pool_ready,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /v1/usage`: totals of finished requests.
pub(crate) async fn usage(State(shared): State<Arc<PoolState>>) -> Json<UsageSummary> {
    Json(shared.usage_log().usage())
}
