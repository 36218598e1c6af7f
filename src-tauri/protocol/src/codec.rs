//! Text frame ⇄ message, with a size limit and errors that say what was wrong.
//!
//! Decoding is two-step on purpose: first only the `type` is read, so an unknown type can be told
//! apart from a known type with bad fields. The first is answered with a `nak`
//! (`unknown_message_type`), the second with a `nak` naming the problem; neither ends a session.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::messages::{nak_code, CoordinatorMessage, ErrorBody, Nak, ProviderMessage};

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
}

const COORDINATOR_TYPES: &[&str] =
    &["hello_ack", "inference_request", "cancel_request", "preflight", "warm_up", "drain", "nak"];
const PROVIDER_TYPES: &[&str] = &[
    "hello",
    "state_update",
    "heartbeat",
    "inference_response_chunk",
    "inference_response_end",
    "preflight_ack",
    "drain_status",
    "nak",
];

fn decode<T: DeserializeOwned>(text: &str, max: usize, known: &[&str]) -> Result<T, DecodeError> {
    if text.len() > max {
        return Err(DecodeError::TooLarge { size: text.len(), max });
    }
    let head: TypeOnly<'_> = serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let type_name = head.type_name.ok_or(DecodeError::MissingType)?;
    if !known.contains(&type_name.as_ref()) {
        return Err(DecodeError::UnknownType(type_name.into_owned()));
    }
    serde_json::from_str(text)
        .map_err(|e| DecodeError::Invalid { type_name: type_name.into_owned(), detail: e.to_string() })
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
