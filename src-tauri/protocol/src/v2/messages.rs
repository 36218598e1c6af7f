//! The frames v2 adds (PROTOCOL-V2.md §1–2): the handshake, the rekey exchange, the outer shape of
//! sealed frames and the plaintexts inside them. Unknown fields are ignored, as the Go structs do.

use serde::{Deserialize, Deserializer, Serialize};

use super::envelope::Enc;
use crate::messages::{ErrorBody, Hello};

/// The handshake's `version`.
pub const AUTH_VERSION: u32 = 2;
/// The rekey frames' `version`.
pub const REKEY_VERSION: u32 = 1;

/// `version` as the coordinator reads it: the integer 2 or the string "2" (another number or
/// string is kept as 0 and refused by the version check; any other JSON type fails to decode).
fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::Int(n) => u32::try_from(n).unwrap_or(0),
        Raw::Text(s) => s.parse().unwrap_or(0),
    })
}

/// What a provider offers for the encrypted leg. Hearth sends exactly the five fields the Swift
/// provider sends ([`Tier2Capabilities::hearth`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier2Capabilities {
    #[serde(default)]
    pub encrypted_leg: bool,
    #[serde(default)]
    pub attestation: bool,
    #[serde(default)]
    pub aead_suites: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_chunk_plaintext_envelope: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_band_aead_rekey_v1: Option<bool>,
}

impl Tier2Capabilities {
    pub fn hearth() -> Self {
        Self {
            encrypted_leg: true,
            attestation: false,
            aead_suites: vec![super::keys::SUITE.to_string()],
            response_chunk_plaintext_envelope: Some(true),
            in_band_aead_rekey_v1: Some(true),
        }
    }
}

/// `auth_request`, both stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum AuthRequest {
    Initial(AuthInitial),
    Proof(AuthProof),
}

/// The first frame of a v2 session: the v1 hello's fields minus `tier` and `attestation`, plus the
/// provider's fresh X25519 key and its capabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthInitial {
    #[serde(deserialize_with = "int_or_string")]
    pub version: u32,
    pub provider_id: String,
    pub hostname: String,
    pub model_id: String,
    pub model_params_b: f64,
    pub ram_gb: u64,
    pub max_context_tokens: u64,
    pub max_concurrency: u32,
    pub throughput_tps_estimate: f64,
    pub binary_version: String,
    pub provider_ecdh_public_key: String,
    pub tier2_capabilities: Tier2Capabilities,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_models: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_admission_public_key: Option<String>,
}

impl AuthInitial {
    /// The initial frame that stands for `hello`: its fields minus `tier` and `attestation`, the
    /// served model as `supported_models`, Hearth's capabilities; the key is set by the handshake.
    pub fn from_hello(hello: Hello) -> Self {
        Self {
            version: AUTH_VERSION,
            supported_models: Some(vec![hello.model_id.clone()]),
            provider_id: hello.provider_id,
            hostname: hello.hostname,
            model_id: hello.model_id,
            model_params_b: hello.model_params_b,
            ram_gb: hello.ram_gb,
            max_context_tokens: hello.max_context_tokens,
            max_concurrency: hello.max_concurrency,
            throughput_tps_estimate: hello.throughput_tps_estimate,
            binary_version: hello.binary_version,
            provider_ecdh_public_key: String::new(),
            tier2_capabilities: Tier2Capabilities::hearth(),
            model_hash: hello.model_hash,
            model_hash_algorithm: hello.model_hash_algorithm,
            runtime_source: hello.runtime_source,
            provider_admission_public_key: None,
        }
    }

    /// The hello this frame stands for (what a coordinator registers the provider by).
    pub fn to_hello(&self) -> Hello {
        Hello {
            version: crate::PROTOCOL_VERSION,
            tier: 1,
            provider_id: self.provider_id.clone(),
            hostname: self.hostname.clone(),
            model_id: self.model_id.clone(),
            model_params_b: self.model_params_b,
            ram_gb: self.ram_gb,
            max_context_tokens: self.max_context_tokens,
            max_concurrency: self.max_concurrency,
            throughput_tps_estimate: self.throughput_tps_estimate,
            binary_version: self.binary_version.clone(),
            attestation: None,
            model_hash: self.model_hash.clone(),
            model_hash_algorithm: self.model_hash_algorithm.clone(),
            runtime_source: self.runtime_source.clone(),
        }
    }
}

/// The second `auth_request`: binds the session to the challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthProof {
    #[serde(deserialize_with = "int_or_string")]
    pub version: u32,
    pub auth_attempt_id: String,
    pub provider_id: String,
    /// Sent as `null` without a token, as the Swift provider does.
    #[serde(default)]
    pub attestation_token: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_signature_transcript_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_models: Option<Vec<String>>,
}

/// The coordinator's challenge: its X25519 key, the session id and the kid it derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthChallenge {
    pub version: u32,
    pub auth_attempt_id: String,
    pub assigned_id: String,
    #[serde(default)]
    pub attestation_challenge: String,
    #[serde(default)]
    pub attestation_formats: Vec<String>,
    pub coordinator_ecdh_public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_aead_suite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_aead: Option<String>,
    pub key_id: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_identity_public_key: Option<String>,
}

impl AuthChallenge {
    /// The suite the coordinator chose (`selected_aead_suite`, else `selected_aead`).
    pub fn suite(&self) -> Option<&str> {
        self.selected_aead_suite.as_deref().or(self.selected_aead.as_deref())
    }
}

/// The encrypted leg as the coordinator recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedLegInfo {
    pub enabled: bool,
    #[serde(default)]
    pub alg: String,
    #[serde(default)]
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_after_requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_after_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub response_chunk_plaintext_envelope: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_band_aead_rekey_v1: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Tier2Session {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_leg: Option<EncryptedLegInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<serde_json::Value>,
}

/// The end of the handshake: `accepted` (with the session's leg) or `rejected` (with an error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthResponse {
    pub version: u32,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_id: Option<String>,
    #[serde(default = "default_interval")]
    pub heartbeat_interval_s: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_binary_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_provider_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoupdate_drain_extensions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier2_session: Option<Tier2Session>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

fn default_interval() -> u64 {
    crate::DEFAULT_HEARTBEAT_INTERVAL_S
}

/// C→P, plaintext: the coordinator wants a new key epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyRequest {
    pub version: u32,
    pub rekey_id: String,
    pub assigned_id: String,
    pub reason: String,
    pub old_kid: String,
    pub coordinator_ecdh_public_key: String,
    pub selected_aead: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub expires_at: String,
    #[serde(default)]
    pub response_chunk_plaintext_envelope: bool,
}

/// P→C, plaintext: the provider's fresh key and the kid it derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyResponse {
    pub version: u32,
    pub rekey_id: String,
    pub assigned_id: String,
    pub old_kid: String,
    pub new_kid: String,
    pub provider_ecdh_public_key: String,
}

/// The plaintext the coordinator seals into `aead_rekey_commit` and the provider echoes, byte for
/// byte, in `aead_rekey_committed`. Fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "aead_rekey_proof")]
pub struct RekeyProof {
    pub version: u32,
    pub rekey_id: String,
    pub provider_id: String,
    pub assigned_id: String,
    pub old_kid: String,
    pub new_kid: String,
    pub provider_ecdh_public_key: String,
    pub coordinator_ecdh_public_key: String,
    pub selected_aead: String,
    pub expires_at: String,
}

/// C→P sealed `inference_request`: no `body`; the buyer's request is inside `enc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedRequest {
    pub request_id: String,
    #[serde(default)]
    pub stream: bool,
    pub encrypted: bool,
    pub enc: Enc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<serde_json::Value>,
}

/// P→C sealed chunk or end. The outer `request_id` is a fallback; the AAD's is the one that counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedResponse {
    pub request_id: String,
    pub encrypted: bool,
    pub enc: Enc,
}

/// `aead_rekey_commit` (C→P) and `aead_rekey_committed` (P→C).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedRekey {
    pub version: u32,
    pub rekey_id: String,
    pub assigned_id: String,
    pub old_kid: String,
    pub new_kid: String,
    pub encrypted: bool,
    pub enc: Enc,
}

/// Sealed frames a coordinator sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SealedCoordinatorFrame {
    InferenceRequest(SealedRequest),
    AeadRekeyCommit(SealedRekey),
}

/// Sealed frames a provider sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SealedProviderFrame {
    InferenceResponseChunk(SealedResponse),
    InferenceResponseEnd(SealedResponse),
    AeadRekeyCommitted(SealedRekey),
}

/// The `type` of a plaintext inside a sealed frame, as a one-value enum: a required field checked
/// as it is read. (`#[serde(tag = …)]` on the struct would buffer the whole plaintext first, on
/// every request and every chunk.)
macro_rules! plaintext_type {
    ($(#[$doc:meta])* $name:ident = $wire:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
        pub enum $name {
            #[default]
            #[serde(rename = $wire)]
            Tag,
        }
    };
}

plaintext_type!(
    /// `"inference_request_plaintext"`.
    RequestPlaintextType = "inference_request_plaintext"
);
plaintext_type!(
    /// `"inference_response_chunk_plaintext"`.
    ChunkPlaintextType = "inference_response_chunk_plaintext"
);

impl SealedProviderFrame {
    /// The wire name of this frame's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::InferenceResponseChunk(_) => "inference_response_chunk",
            Self::InferenceResponseEnd(_) => "inference_response_end",
            Self::AeadRekeyCommitted(_) => "aead_rekey_committed",
        }
    }
}

/// Inside a sealed `inference_request`. `body` is the buyer's chat-completions JSON as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPlaintext {
    #[serde(rename = "type")]
    pub kind: RequestPlaintextType,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_key: Option<String>,
}

impl RequestPlaintext {
    pub fn new(body: String, conversation_key: Option<String>) -> Self {
        Self { kind: RequestPlaintextType::Tag, body, conversation_key }
    }
}

/// Inside a sealed chunk, with the envelope negotiated: the request's own chunk index and the
/// `data` a plaintext chunk would carry (borrowed when sealing, so the chunk is not copied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlaintext<'a> {
    pub data: std::borrow::Cow<'a, str>,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: ChunkPlaintextType,
}

impl<'a> ChunkPlaintext<'a> {
    pub fn new(data: impl Into<std::borrow::Cow<'a, str>>, seq: u64) -> Self {
        Self { data: data.into(), seq, kind: ChunkPlaintextType::Tag }
    }
}
