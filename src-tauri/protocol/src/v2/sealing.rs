//! The four sealed frames of a request's life, each sealed or opened in one place for both ends:
//! the coordinator's `inference_request` and the provider's chunks and end (PROTOCOL-V2.md §2.4–2.6).

use super::envelope::{FrameContext, Opener, Sealer};
use super::error::LegError;
use super::messages::{ChunkPlaintext, RequestPlaintext, SealedProviderFrame, SealedRequest, SealedResponse};
use crate::messages::{InferenceRequest, ProviderMessage, ResponseChunk, ResponseEnd};

const REQUEST: &str = "inference_request";
const CHUNK: &str = "inference_response_chunk";
const END: &str = "inference_response_end";

/// Seals a request at the sealer's next seq; the buyer's body goes inside, `settlement` stays clear.
pub fn seal_request(sealer: &mut Sealer, request: &InferenceRequest) -> Result<SealedRequest, LegError> {
    let inner = RequestPlaintext::new(request.body.clone(), request.conversation_key.clone());
    let plaintext = serde_json::to_vec(&inner).expect("a request plaintext always serialises");
    let frame = FrameContext { frame_type: REQUEST, request_id: &request.request_id, stream: request.stream };
    Ok(SealedRequest {
        request_id: request.request_id.clone(),
        stream: request.stream,
        encrypted: true,
        enc: sealer.seal(frame, &plaintext)?,
        settlement: request.settlement.clone(),
    })
}

/// Opens a sealed request into the request it carries.
pub fn open_request(opener: &mut Opener, sealed: &SealedRequest) -> Result<InferenceRequest, LegError> {
    let frame = FrameContext { frame_type: REQUEST, request_id: &sealed.request_id, stream: sealed.stream };
    let plaintext = opener.open(&sealed.enc, frame)?;
    let inner: RequestPlaintext = serde_json::from_slice(&plaintext)
        .map_err(|e| LegError::Plaintext { what: "inference_request_plaintext", problem: e.to_string() })?;
    Ok(InferenceRequest {
        request_id: sealed.request_id.clone(),
        stream: sealed.stream,
        body: inner.body,
        settlement: sealed.settlement.clone(),
        conversation_key: inner.conversation_key,
        body_encoding: None,
    })
}

/// Seals a chunk or end of a request with stream flag `stream`. With `envelope` a chunk carries
/// its own per-request seq inside; without it the coordinator numbers chunks by the AEAD seq.
/// `None` for any other message (they are never sealed).
pub fn seal_response(
    sealer: &mut Sealer,
    message: &ProviderMessage,
    stream: bool,
    envelope: bool,
) -> Option<Result<SealedProviderFrame, LegError>> {
    let (request_id, frame_type, plaintext) = match message {
        ProviderMessage::InferenceResponseChunk(chunk) => {
            let plaintext = if envelope {
                serde_json::to_vec(&ChunkPlaintext::new(chunk.data.as_str(), chunk.seq))
                    .expect("a chunk envelope always serialises")
            } else {
                chunk.data.as_bytes().to_vec()
            };
            (&chunk.request_id, CHUNK, plaintext)
        }
        ProviderMessage::InferenceResponseEnd(end) => {
            (&end.request_id, END, crate::encode(message).into_bytes())
        }
        _ => return None,
    };
    let frame = FrameContext { frame_type, request_id, stream };
    Some(sealer.seal(frame, &plaintext).map(|enc| {
        let outer = SealedResponse { request_id: request_id.clone(), encrypted: true, enc };
        if frame_type == CHUNK {
            SealedProviderFrame::InferenceResponseChunk(outer)
        } else {
            SealedProviderFrame::InferenceResponseEnd(outer)
        }
    }))
}

/// What a sealed chunk or end held.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenedResponse {
    Chunk(ResponseChunk),
    End(ResponseEnd),
}

/// Opens a sealed chunk (`is_chunk`) or end of a request with stream flag `stream`. The request
/// id is the outer one, which the AAD binds; an end naming another inside is routed by the outer.
pub fn open_response(
    opener: &mut Opener,
    response: &SealedResponse,
    is_chunk: bool,
    stream: bool,
    envelope: bool,
) -> Result<OpenedResponse, LegError> {
    let request_id = response.request_id.as_str();
    let frame_type = if is_chunk { CHUNK } else { END };
    let plaintext = opener.open(&response.enc, FrameContext { frame_type, request_id, stream })?;
    if !is_chunk {
        let end: ResponseEnd = serde_json::from_slice(&plaintext)
            .map_err(|e| LegError::Plaintext { what: "inference_response_end", problem: e.to_string() })?;
        return Ok(OpenedResponse::End(ResponseEnd { request_id: request_id.to_string(), ..end }));
    }
    let (seq, data) = if envelope {
        let inner: ChunkPlaintext = serde_json::from_slice(&plaintext).map_err(|e| LegError::Plaintext {
            what: "inference_response_chunk_plaintext",
            problem: e.to_string(),
        })?;
        (inner.seq, inner.data.into_owned())
    } else {
        let data = String::from_utf8(plaintext)
            .map_err(|_| LegError::Plaintext { what: "chunk data", problem: "not UTF-8".into() })?;
        (response.enc.seq, data)
    };
    Ok(OpenedResponse::Chunk(ResponseChunk { request_id: request_id.to_string(), seq, data }))
}
