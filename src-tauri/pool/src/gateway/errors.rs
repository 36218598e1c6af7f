//! Buyer-facing errors: an HTTP status plus the OpenAI envelope, built from the protocol crate's
//! [`ApiError`] so the provider and the pool word them the same way.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_protocol::openai::{error_code, ApiError, RequestError};
use hearth_protocol::{EndStatus, ResponseEnd};

use crate::registry::RouteError;
use crate::relay::Failure;

#[derive(Debug, Clone)]
pub(crate) struct HttpError {
    pub status: StatusCode,
    pub error: ApiError,
}

impl HttpError {
    fn new(status: StatusCode, kind: &str, code: &str, message: impl Into<String>) -> Self {
        Self { status, error: ApiError::new(kind, code, message, None) }
    }

    pub(crate) fn invalid_request(e: &RequestError) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: ApiError::invalid_request(e) }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_token",
            "a valid provider bearer token is required",
        )
    }

    pub(crate) fn preflight_rejected(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable_error",
            error_code::PREFLIGHT_REJECTED,
            message,
        )
    }

    pub(crate) fn provider_error(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "provider_error", error_code::PROVIDER_ERROR, message)
    }

    pub(crate) fn timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout_error",
            error_code::PROVIDER_TIMEOUT,
            "the provider did not finish the request in time",
        )
    }

    /// A request failed before its end frame. A streaming buyer is told the provider vanished
    /// (`provider_disconnected`); a non-streaming one gets a plain 502.
    pub(crate) fn from_failure(failure: &Failure, streaming: bool) -> Self {
        match failure {
            Failure::Disconnected if streaming => Self::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                error_code::PROVIDER_DISCONNECTED,
                "the provider disconnected before the response was complete",
            ),
            Failure::Disconnected => {
                Self::provider_error("the provider disconnected before the response was complete")
            }
            Failure::Refused(message) => Self::provider_error(message.clone()),
            Failure::BufferExceeded(limit) => {
                let limit = human_bytes(*limit);
                let message = if streaming {
                    format!(
                        "the response was cancelled: the client fell more than {limit} behind the \
                         stream; read the stream as it arrives"
                    )
                } else {
                    format!(
                        "the response was cancelled: it outgrew the pool's {limit} relay buffer; \
                         ask for a shorter answer (max_tokens) or stream it (\"stream\": true)"
                    )
                };
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_error",
                    error_code::RELAY_BUFFER_EXCEEDED,
                    message,
                )
            }
        }
    }

    /// What an unsuccessful end status means to the buyer.
    pub(crate) fn from_end(end: &ResponseEnd) -> Self {
        let detail =
            end.error.as_ref().map(|e| format!("{} ({})", e.message, e.code)).unwrap_or_else(|| {
                format!("the provider ended the request with status {}", end.status.as_str())
            });
        match end.status {
            EndStatus::ErrorContextExceeded => Self {
                status: StatusCode::BAD_REQUEST,
                error: ApiError::new(
                    "invalid_request_error",
                    error_code::INVALID_REQUEST,
                    detail,
                    Some("messages".into()),
                ),
            },
            EndStatus::ErrorQueueFull => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable_error",
                error_code::NO_PROVIDER_AVAILABLE,
                detail,
            ),
            EndStatus::ProviderTimeout => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout_error", error_code::PROVIDER_TIMEOUT, detail)
            }
            _ => Self::provider_error(detail),
        }
    }
}

impl From<RouteError> for HttpError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::ModelNotFound(model) => Self {
                status: StatusCode::NOT_FOUND,
                error: ApiError::new(
                    "invalid_request_error",
                    error_code::MODEL_NOT_FOUND,
                    format!("no provider in this pool serves model {model:?}"),
                    Some("model".into()),
                ),
            },
            RouteError::NoProvider(message) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable_error",
                error_code::NO_PROVIDER_AVAILABLE,
                message,
            ),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "application/json")], self.error.to_body()).into_response()
    }
}

/// `16 MiB`, `64 KiB`, `900 bytes`.
fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}
