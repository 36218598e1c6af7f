//! `GET /v1/rate-card` and `GET /providers/{provider_id}/earnings`, from the pool's usage log.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::errors::HttpError;
use crate::credits::RateCard;
use crate::session::bearer_ok;
use crate::state::PoolState;

pub(crate) async fn rate_card(State(shared): State<Arc<PoolState>>) -> Json<RateCard> {
    Json(shared.rate_card())
}

/// Needs a provider bearer when the pool is configured with tokens, like the coordinator.
pub(crate) async fn provider_earnings(
    State(shared): State<Arc<PoolState>>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !bearer_ok(shared.config.provider_tokens.as_ref(), &headers) {
        return HttpError::unauthorized().into_response();
    }
    let card = shared.rate_card();
    let earnings = shared.usage_log().earnings(&card, &provider_id, time::OffsetDateTime::now_utc());
    Json(earnings).into_response()
}
