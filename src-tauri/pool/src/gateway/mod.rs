//! The HTTP surface on the pool's one port: the provider WebSocket and the buyer API.
//!
//! Handlers only parse, call [`PoolState`]'s methods and shape responses; the pool's state and its
//! rules live below this layer.

mod chat;
mod earnings;
mod errors;
mod guard;
mod info;
mod sse;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::state::PoolState;

pub(crate) fn router(shared: Arc<PoolState>) -> Router {
    // A buyer body must fit in one `inference_request` frame.
    let body_limit = shared.config.max_frame_bytes;
    Router::new()
        .route("/ws/provider", get(crate::session::upgrade))
        .route("/v1/chat/completions", post(chat::chat))
        .route("/v1/models", get(info::models))
        .route("/v1/status", get(info::status))
        .route("/v1/usage", get(info::usage))
        .route("/healthz", get(info::healthz))
        .route("/v1/rate-card", get(earnings::rate_card))
        .route("/providers/{provider_id}/earnings", get(earnings::provider_earnings))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
}
