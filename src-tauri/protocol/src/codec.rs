//! Text frame ⇄ message, with a size limit and errors that say what was wrong.
//!
//! Decoding is two-step on purpose: first only the `type` is read, so an unknown type can be told
//! apart from a known type with bad fields. The first is answered with a `nak`
//! (`unknown_message_type`), the second with a `nak` naming the problem; neither ends a session.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::messages::{nak_code, CoordinatorMessage, ErrorBody, Nak, ProviderMessage};
use crate::v2::{SealedCoordinatorFrame, SealedProviderFrame, SealedRekey, SealedRequest, SealedResponse};

/// The coordinator's `ws.max_frame_bytes`.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "frame of {size} bytes is over the {max}-byte limit; split the payload or raise max_frame_bytes"
    )]
    TooLarge { size: usize, max: usize },
    #[error("frame is not a JSON object: {0}")]
    Malformed(String),
    #[error("frame has no string \"type\" field")]
    MissingType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {type_name} message: {detail}")]
    Invalid { type_name: String, detail: String },
}

impl DecodeError {
    /// The `nak` a peer should answer this frame with.
    pub fn to_nak(&self) -> Nak {
        let (in_reply_to, code) = match self {
            Self::TooLarge { .. } => ("unknown".to_string(), nak_code::FRAME_TOO_LARGE),
            Self::Malformed(_) | Self::MissingType => ("unknown".to_string(), nak_code::MALFORMED_FRAME),
            Self::UnknownType(t) => (t.clone(), nak_code::UNKNOWN_MESSAGE_TYPE),
            Self::Invalid { type_name, .. } => (type_name.clone(), nak_code::INVALID_MESSAGE),
        };
        Nak { in_reply_to, error: ErrorBody::new(code, self.to_string()) }
    }
}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    type_name: Option<std::borrow::Cow<'a, str>>,
    /// `true` on a sealed frame of a v2 session.
    #[serde(default)]
    encrypted: Option<bool>,
}

const COORDINATOR_TYPES: &[&str] = &[
    "hello_ack",
    "auth_challenge",
    "auth_response",
    "aead_rekey_request",
    "inference_request",
    "cancel_request",
    "preflight",
    "warm_up",
    "drain",
    "nak",
];
const PROVIDER_TYPES: &[&str] = &[
    "hello",
    "auth_request",
    "aead_rekey_response",
    "state_update",
    "heartbeat",
    "inference_response_chunk",
    "inference_response_end",
    "preflight_ack",
    "drain_status",
    "nak",
];

/// A frame a provider reads: plaintext, or sealed (v2's encrypted leg; open it with the session's
/// [`crate::v2::Opener`]).
#[derive(Debug, Clone, PartialEq)]
pub enum CoordinatorFrame {
    Plain(CoordinatorMessage),
    Sealed(SealedCoordinatorFrame),
}

/// A frame the pool reads: plaintext or sealed.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderFrame {
    Plain(ProviderMessage),
    Sealed(SealedProviderFrame),
}

fn decode<T: DeserializeOwned>(text: &str, max: usize, known: &[&str]) -> Result<T, DecodeError> {
    let (type_name, _) = head(text, max)?;
    typed(text, type_name, known)
}

/// The size check and the `type` (and `encrypted` flag) of a frame.
fn head(text: &str, max: usize) -> Result<(String, bool), DecodeError> {
    if text.len() > max {
        return Err(DecodeError::TooLarge { size: text.len(), max });
    }
    let head: TypeOnly<'_> = serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let type_name = head.type_name.ok_or(DecodeError::MissingType)?;
    Ok((type_name.into_owned(), head.encrypted == Some(true)))
}

fn typed<T: DeserializeOwned>(text: &str, type_name: String, known: &[&str]) -> Result<T, DecodeError> {
    if !known.contains(&type_name.as_str()) {
        return Err(DecodeError::UnknownType(type_name));
    }
    serde_json::from_str(text).map_err(|e| DecodeError::Invalid { type_name, detail: e.to_string() })
}

/// A sealed frame's body, its `type` already read: decoded straight into its struct (the tagged
/// enum would first buffer the whole frame, ciphertext included, on every chunk).
fn sealed<T: DeserializeOwned>(text: &str, type_name: &str) -> Result<T, DecodeError> {
    serde_json::from_str(text)
        .map_err(|e| DecodeError::Invalid { type_name: type_name.to_string(), detail: e.to_string() })
}

/// Decodes what a coordinator sent on a session that may be encrypted.
pub fn decode_coordinator_frame(text: &str, max_frame_bytes: usize) -> Result<CoordinatorFrame, DecodeError> {
    match head(text, max_frame_bytes)? {
        (type_name, true) => Ok(CoordinatorFrame::Sealed(match type_name.as_str() {
            "inference_request" => {
                SealedCoordinatorFrame::InferenceRequest(sealed::<SealedRequest>(text, &type_name)?)
            }
            "aead_rekey_commit" => {
                SealedCoordinatorFrame::AeadRekeyCommit(sealed::<SealedRekey>(text, &type_name)?)
            }
            _ => return Err(DecodeError::UnknownType(type_name)),
        })),
        (type_name, false) => typed(text, type_name, COORDINATOR_TYPES).map(CoordinatorFrame::Plain),
    }
}

/// Decodes what a provider sent on a session that may be encrypted.
pub fn decode_provider_frame(text: &str, max_frame_bytes: usize) -> Result<ProviderFrame, DecodeError> {
    match head(text, max_frame_bytes)? {
        (type_name, true) => Ok(ProviderFrame::Sealed(match type_name.as_str() {
            "inference_response_chunk" => {
                SealedProviderFrame::InferenceResponseChunk(sealed::<SealedResponse>(text, &type_name)?)
            }
            "inference_response_end" => {
                SealedProviderFrame::InferenceResponseEnd(sealed::<SealedResponse>(text, &type_name)?)
            }
            "aead_rekey_committed" => {
                SealedProviderFrame::AeadRekeyCommitted(sealed::<SealedRekey>(text, &type_name)?)
            }
            _ => return Err(DecodeError::UnknownType(type_name)),
        })),
        (type_name, false) => typed(text, type_name, PROVIDER_TYPES).map(ProviderFrame::Plain),
    }
}

/// Decodes a frame a coordinator sent (what a provider reads).
pub fn decode_coordinator(text: &str, max_frame_bytes: usize) -> Result<CoordinatorMessage, DecodeError> {
    decode(text, max_frame_bytes, COORDINATOR_TYPES)
}

/// Decodes a frame a provider sent (what the pool reads).
pub fn decode_provider(text: &str, max_frame_bytes: usize) -> Result<ProviderMessage, DecodeError> {
    decode(text, max_frame_bytes, PROVIDER_TYPES)
}

/// Encodes any protocol message as the text of one frame.
pub fn encode<T: Serialize>(message: &T) -> String {
    // Our message types contain only strings, numbers, bools and JSON values: serialising cannot fail.
    serde_json::to_string(message).expect("protocol messages always serialise")
}
