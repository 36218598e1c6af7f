//! Frames of the tier-1 session. Each is one JSON object in a WebSocket *text* frame with a
//! snake_case `type`; the enums below are tagged on that field.
//!
//! Optional fields the coordinator may add are `Option`s or ignored; fields we must send are plain.

use serde::{Deserialize, Serialize};

/// The protocol version a tier-1 `hello` announces.
pub const PROTOCOL_VERSION: u32 = 1;
/// The `binary_version` Hearth announces: not Hearth's own version but the protocol level it
/// speaks, named as the coordinator knows it, by the release of the reference (Swift) provider
/// whose frames these are (PROTOCOL-V2.md lists its sources at 1.8.56). Production coordinators
/// admit only a `binary_version` at or above their floor (1.8.33) and close anything lower with
/// 4004; Hearth's own `0.1.0` would be refused. Hearth's version goes in `runtime_source`.
pub const REFERENCE_BINARY_VERSION: &str = "1.8.56";
/// The heartbeat interval a coordinator uses when its ack does not say.
pub const DEFAULT_HEARTBEAT_INTERVAL_S: u64 = 30;
/// The provider never lets its heartbeat tick be slower than this, whatever the ack says.
pub const MAX_HEARTBEAT_TICK_S: u64 = 5;

/// Frames a provider sends to the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderMessage {
    Hello(Hello),
    /// v2's first and third frame (`stage` says which).
    AuthRequest(crate::v2::AuthRequest),
    AeadRekeyResponse(crate::v2::RekeyResponse),
    StateUpdate(StateUpdate),
    Heartbeat(Heartbeat),
    InferenceResponseChunk(ResponseChunk),
    InferenceResponseEnd(ResponseEnd),
    PreflightAck(PreflightAck),
    DrainStatus(DrainStatus),
    Nak(Nak),
}

/// Frames a coordinator sends to a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoordinatorMessage {
    HelloAck(HelloAck),
    AuthChallenge(crate::v2::AuthChallenge),
    AuthResponse(crate::v2::AuthResponse),
    AeadRekeyRequest(crate::v2::RekeyRequest),
    InferenceRequest(InferenceRequest),
    CancelRequest(CancelRequest),
    Preflight(Preflight),
    WarmUp {},
    Drain {},
    Nak(Nak),
}

impl ProviderMessage {
    /// The wire name of this message's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::AuthRequest(_) => "auth_request",
            Self::AeadRekeyResponse(_) => "aead_rekey_response",
            Self::StateUpdate(_) => "state_update",
            Self::Heartbeat(_) => "heartbeat",
            Self::InferenceResponseChunk(_) => "inference_response_chunk",
            Self::InferenceResponseEnd(_) => "inference_response_end",
            Self::PreflightAck(_) => "preflight_ack",
            Self::DrainStatus(_) => "drain_status",
            Self::Nak(_) => "nak",
        }
    }
}

impl CoordinatorMessage {
    /// The wire name of this message's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::HelloAck(_) => "hello_ack",
            Self::AuthChallenge(_) => "auth_challenge",
            Self::AuthResponse(_) => "auth_response",
            Self::AeadRekeyRequest(_) => "aead_rekey_request",
            Self::InferenceRequest(_) => "inference_request",
            Self::CancelRequest(_) => "cancel_request",
            Self::Preflight(_) => "preflight",
            Self::WarmUp {} => "warm_up",
            Self::Drain {} => "drain",
            Self::Nak(_) => "nak",
        }
    }
}

/// First frame of a tier-1 session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub tier: u32,
    pub provider_id: String,
    pub hostname: String,
    pub model_id: String,
    pub model_params_b: f64,
    pub ram_gb: u64,
    pub max_context_tokens: u64,
    pub max_concurrency: u32,
    pub throughput_tps_estimate: f64,
    pub binary_version: String,
    /// Always sent, as `null`, like the reference provider does.
    #[serde(default)]
    pub attestation: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_source: Option<String>,
}

/// The coordinator's answer to a `hello`. Only the fields Hearth acts on are typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloAck {
    #[serde(default = "one")]
    pub coordinator_version: u32,
    pub assigned_id: String,
    #[serde(default = "default_interval")]
    pub heartbeat_interval_s: u64,
    /// `"pinned"` or `"provisional"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_binary_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_binary_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_provider_token: Option<String>,
    /// `bearer_validated`, `self_minted` or `bearerless_duplicate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoupdate_drain_extensions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_policy: Option<String>,
}

impl HelloAck {
    /// The answer a coordinator gives a provider whose bearer it validated: a provisional tier, no
    /// binary-version floor, no minted token, drain extensions on. The local pool sends it, and the
    /// test kit's fake coordinator sends the same, so a provider meets one accept in both.
    pub fn accepted(assigned_id: impl Into<String>, heartbeat_interval_s: u64) -> Self {
        HelloAck {
            coordinator_version: PROTOCOL_VERSION,
            assigned_id: assigned_id.into(),
            heartbeat_interval_s,
            tier: Some("provisional".into()),
            recommended_binary_version: None,
            required_binary_version: None,
            assigned_provider_token: None,
            auth_state: Some("bearer_validated".into()),
            autoupdate_drain_extensions: Some(true),
            compatibility_policy: Some("unconfigured".into()),
        }
    }
}

fn one() -> u32 {
    1
}
fn default_interval() -> u64 {
    DEFAULT_HEARTBEAT_INTERVAL_S
}

/// Provider states as the coordinator knows them. `Unavailable` is only ever set by the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderState {
    Ready,
    Busy,
    Degraded,
    Draining,
    Unavailable,
}

impl ProviderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Busy => "busy",
            Self::Degraded => "degraded",
            Self::Draining => "draining",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The metrics window carried by heartbeats and state updates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricsWindow {
    pub requests_served_since_last: u64,
    pub avg_latency_ms_since_last: Option<f64>,
    pub throughput_tps_since_last: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    pub slots_free: u32,
    pub slots_total: u32,
    #[serde(flatten)]
    pub window: MetricsWindow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateUpdate {
    pub state: ProviderState,
    pub reason: String,
    /// RFC 3339.
    pub since: String,
    pub metrics_snapshot: MetricsSnapshot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub status: ProviderState,
    pub model_id: String,
    pub model_params_b: f64,
    pub ram_gb: u64,
    pub max_context_tokens: u64,
    pub max_concurrency: u32,
    pub slots_free: u32,
    pub slots_total: u32,
    pub throughput_tps_estimate: f64,
    #[serde(flatten)]
    pub window: MetricsWindow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loading: Option<bool>,
}

/// A buyer request routed to this provider. `body` is the buyer's chat-completions JSON as a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    pub request_id: String,
    #[serde(default)]
    pub stream: bool,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseChunk {
    pub request_id: String,
    pub seq: u64,
    pub data: String,
}

/// How a request ended. `error_*` statuses earn nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndStatus {
    Complete,
    Cancelled,
    ErrorModelNotLoaded,
    ErrorContextExceeded,
    ErrorQueueFull,
    ErrorInternal,
    ProviderTimeout,
}

impl EndStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Cancelled => "cancelled",
            Self::ErrorModelNotLoaded => "error_model_not_loaded",
            Self::ErrorContextExceeded => "error_context_exceeded",
            Self::ErrorQueueFull => "error_queue_full",
            Self::ErrorInternal => "error_internal",
            Self::ProviderTimeout => "provider_timeout",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEnd {
    pub request_id: String,
    pub status: EndStatus,
    pub chunks_sent: u64,
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_state_ts_unix_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub request_id: String,
    /// `buyer_disconnected`, `timeout`, `coordinator_shutdown`, `relay_buffer_exceeded`, …
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preflight {
    pub request_id: String,
    pub estimated_tokens: u64,
}

/// Why a provider refuses a preflight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreflightReason {
    ContextExceedsCapacity,
    QueueFull,
    Draining,
    ModelNotLoaded,
    Unhealthy,
    TierMismatch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightAck {
    pub request_id: String,
    pub accepted: bool,
    pub estimated_wait_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<PreflightReason>,
    pub max_context_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainPhase {
    Starting,
    InProgress,
    Complete,
    TimeoutSkipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainStatus {
    pub phase: DrainPhase,
    pub inflight_requests: u32,
    pub estimated_drain_seconds: u64,
}

/// Either side's "I could not act on that frame".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nak {
    /// The `type` of the frame being refused (or `"unknown"` when it had none).
    pub in_reply_to: String,
    pub error: ErrorBody,
}

/// `nak` error codes Hearth uses.
pub mod nak_code {
    pub const UNKNOWN_MESSAGE_TYPE: &str = "unknown_message_type";
    pub const DUPLICATE_REQUEST_ID: &str = "duplicate_request_id";
    pub const MALFORMED_FRAME: &str = "malformed_frame";
    pub const INVALID_MESSAGE: &str = "invalid_message";
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    pub const UNEXPECTED_MESSAGE: &str = "unexpected_message";
    /// A plaintext request on an encrypted session.
    pub const TIER2_ENCRYPTED_FRAME_REQUIRED: &str = "tier2_encrypted_frame_required";
    /// A sealed frame that did not open.
    pub const TIER2_AEAD_DECRYPT_FAILED: &str = "tier2_aead_decrypt_failed";
}

/// Why a `hello` is not acceptable; the coordinator closes 4001 with `invalid_hello: <field>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid_hello: {field} ({problem})")]
pub struct InvalidHello {
    pub field: &'static str,
    pub problem: &'static str,
}

impl Hello {
    /// The coordinator's admission checks on a tier-1 hello, reproduced for the local pool and for
    /// the provider to check itself before it connects.
    pub fn validate(&self) -> Result<(), InvalidHello> {
        let bad = |field, problem| Err(InvalidHello { field, problem });
        if self.version != PROTOCOL_VERSION {
            return bad("version", "must be 1");
        }
        if self.tier != 1 {
            return bad("tier", "must be 1");
        }
        if !is_safe_id(&self.provider_id) {
            return bad("provider_id", "1-128 letters, digits, '-', '_' or '.'");
        }
        for (field, value, max) in [
            ("hostname", &self.hostname, 253usize),
            ("model_id", &self.model_id, 256),
            ("binary_version", &self.binary_version, 32),
        ] {
            if value.is_empty() {
                return bad(field, "must not be empty");
            }
            if value.len() > max {
                return bad(field, "too long");
            }
            if value.chars().any(char::is_control) {
                return bad(field, "contains control characters");
            }
        }
        if !is_semver(&self.binary_version) {
            return bad("binary_version", "must be a semver like 1.2.3");
        }
        if !(self.model_params_b.is_finite() && self.model_params_b >= 0.0) {
            return bad("model_params_b", "must be a non-negative number");
        }
        if !(self.throughput_tps_estimate.is_finite() && self.throughput_tps_estimate >= 0.0) {
            return bad("throughput_tps_estimate", "must be a non-negative number");
        }
        if self.max_concurrency == 0 {
            return bad("max_concurrency", "must be at least 1");
        }
        if self.max_context_tokens == 0 {
            return bad("max_context_tokens", "must be at least 1");
        }
        if let Some(alg) = &self.model_hash_algorithm {
            if alg != "sha256" {
                return bad("model_hash_algorithm", "must be lowercase sha256");
            }
        }
        Ok(())
    }
}

/// Provider ids: letters, digits, `-`, `_`, `.`; a UUID is typical.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `v` is a `binary_version` a coordinator accepts: a semver (`1.2.3`, optionally with a
/// pre-release or build suffix) of at most 32 bytes.
pub fn is_binary_version(v: &str) -> bool {
    v.len() <= 32 && is_semver(v)
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}
