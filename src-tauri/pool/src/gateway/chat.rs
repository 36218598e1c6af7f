//! `POST /v1/chat/completions`: validate, route to a provider, relay its answer (whole here,
//! streamed in `sse`). The buyer's side of each request runs in the request's `relayed_request` span.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_protocol::openai::{ChatCompletionRequest, RequestError};
use hearth_protocol::{CoordinatorMessage, EndStatus, InferenceRequest};
use tokio::time::Instant;
use tracing::Instrument;

use super::errors::HttpError;
use super::guard::RequestGuard;
use super::sse;
use crate::registry::RouteError;
use crate::relay::{Dispatch, Failure, RelayEvent, PREFLIGHT_THRESHOLD_TOKENS};
use crate::state::PoolState;

/// A provider must answer a `preflight` within this.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn chat(State(shared): State<Arc<PoolState>>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text,
        Err(_) => {
            let e = RequestError { param: None, message: "request body is not valid UTF-8".into() };
            return HttpError::invalid_request(&e).into_response();
        }
    };
    let request = match ChatCompletionRequest::parse(text) {
        Ok(request) => request,
        Err(e) => return HttpError::invalid_request(&e).into_response(),
    };
    // A provider that is rekeying takes no dispatch until it commits (milliseconds): wait for it
    // rather than fail the buyer, up to the handshake timeout a rekey gets.
    let rekey_wait = Instant::now() + shared.config.handshake_timeout;
    let dispatch = loop {
        match shared.route(&request.model) {
            Ok(dispatch) => break dispatch,
            Err(RouteError::NoProvider(_))
                if Instant::now() < rekey_wait && shared.rekeying_serves(&request.model) =>
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return HttpError::from(e).into_response(),
        }
    };
    let route = [
        ("x-macprovider-provider", HeaderValue::from_str(&dispatch.provider_id).ok()),
        ("x-macprovider-route", HeaderValue::from_str(&dispatch.assigned_id).ok()),
    ];
    let span = dispatch.span.clone();
    let mut response = match relay(shared, dispatch, text, request.stream).instrument(span).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    for (name, value) in route {
        if let Some(value) = value {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn relay(
    shared: Arc<PoolState>,
    dispatch: Dispatch,
    body: &str,
    stream: bool,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + shared.config.request_timeout;
    let guard = RequestGuard { shared: Arc::clone(&shared), request_id: dispatch.request_id.clone() };
    let estimated_tokens = (body.len() / 4) as u64;
    if estimated_tokens > PREFLIGHT_THRESHOLD_TOKENS {
        preflight(&shared, &dispatch.request_id, estimated_tokens).await?;
    }
    let message = CoordinatorMessage::InferenceRequest(InferenceRequest {
        request_id: dispatch.request_id.clone(),
        stream,
        body: body.to_string(),
        settlement: None,
        conversation_key: None,
        body_encoding: None,
    });
    if !shared.send_for(&dispatch.request_id, &message) {
        return Err(HttpError::provider_error("the provider disconnected before the request could be sent"));
    }
    if stream {
        Ok(sse::respond(shared, guard, dispatch, deadline))
    } else {
        whole(&shared, guard, dispatch, deadline).await
    }
}

/// Asks the provider whether it can take a long prompt; a refusal (or silence) is a 503.
async fn preflight(shared: &PoolState, request_id: &str, estimated_tokens: u64) -> Result<(), HttpError> {
    let refusal = match shared.begin_preflight(request_id, estimated_tokens) {
        None => "the provider disconnected before the preflight".to_string(),
        Some(ack) => match tokio::time::timeout(PREFLIGHT_TIMEOUT, ack).await {
            Ok(Ok(ack)) if ack.accepted => return Ok(()),
            Ok(Ok(ack)) => {
                let reason = ack
                    .reason
                    .and_then(|r| serde_json::to_value(r).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "unspecified".into());
                format!(
                    "the provider cannot take a prompt of ~{estimated_tokens} tokens: {reason} \
                     (max_context_tokens {})",
                    ack.max_context_tokens
                )
            }
            Ok(Err(_)) => "the provider refused the preflight".to_string(),
            Err(_) => format!("no preflight_ack within {PREFLIGHT_TIMEOUT:?}"),
        },
    };
    shared.forget(request_id);
    Err(HttpError::preflight_rejected(refusal))
}

/// Non-streaming: collect the chunk(s) until the end frame, then answer once.
async fn whole(
    shared: &PoolState,
    _guard: RequestGuard,
    mut dispatch: Dispatch,
    deadline: Instant,
) -> Result<Response, HttpError> {
    let mut chunks = BTreeMap::new();
    loop {
        let event = match tokio::time::timeout_at(deadline, dispatch.events.recv()).await {
            Err(_) => {
                shared.time_out(&dispatch.request_id, &dispatch.provider_id);
                return Err(HttpError::timeout());
            }
            Ok(None) => return Err(HttpError::from_failure(&Failure::Disconnected, false)),
            Ok(Some(event)) => event,
        };
        match event {
            RelayEvent::Chunk(chunk) => {
                chunks.insert(chunk.seq, chunk.data);
            }
            RelayEvent::End(end) => {
                return match end.status {
                    EndStatus::Complete if !chunks.is_empty() => {
                        let body: String = chunks.into_values().collect();
                        Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body)
                            .into_response())
                    }
                    EndStatus::Complete => Err(HttpError::provider_error(
                        "the provider completed the request without a response",
                    )),
                    EndStatus::Cancelled => {
                        Err(HttpError::provider_error("the provider cancelled the request"))
                    }
                    _ => Err(HttpError::from_end(&end)),
                };
            }
            RelayEvent::Failed(failure) => return Err(HttpError::from_failure(&failure, false)),
        }
    }
}
