//! Any text on the encrypted leg: decoding it as a frame and opening its envelope gives a message
//! or an error naming the problem (bad base64, wrong tag, seq, kid, AAD, size), never a panic.
#![no_main]

use hearth_protocol::v2::{
    keys, FrameContext, Opener, RequestPlaintext, SealedCoordinatorFrame, SealedProviderFrame, SeqPolicy,
    SessionIds,
};
use hearth_protocol::{decode_coordinator_frame, decode_provider_frame, CoordinatorFrame, ProviderFrame};
use libfuzzer_sys::fuzz_target;

fn opener(policy: SeqPolicy) -> Opener {
    let ids = SessionIds { provider_id: "fuzz-provider".into(), assigned_id: "fuzz-session".into() };
    let keys = keys::derive(&[7; 32], &ids, &[1; 32], &[2; 32]);
    Opener::new(&keys, hearth_protocol::v2::Direction::C2p, &ids, policy)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(CoordinatorFrame::Sealed(SealedCoordinatorFrame::InferenceRequest(r))) =
        decode_coordinator_frame(text, 1 << 20)
    {
        let frame =
            FrameContext { frame_type: "inference_request", request_id: &r.request_id, stream: r.stream };
        for policy in [SeqPolicy::Strict, SeqPolicy::Window(4096)] {
            if let Ok(plain) = opener(policy).open(&r.enc, frame) {
                let _ = serde_json::from_slice::<RequestPlaintext>(&plain);
            }
        }
    }
    if let Ok(ProviderFrame::Sealed(SealedProviderFrame::InferenceResponseChunk(r))) =
        decode_provider_frame(text, 1 << 20)
    {
        let frame =
            FrameContext { frame_type: "inference_response_chunk", request_id: &r.request_id, stream: true };
        let _ = opener(SeqPolicy::Window(4096)).open(&r.enc, frame);
    }
    if let Ok(enc) = serde_json::from_str::<hearth_protocol::v2::Enc>(text) {
        let frame = FrameContext { frame_type: "inference_request", request_id: "r", stream: false };
        let _ = opener(SeqPolicy::Strict).open(&enc, frame);
    }
});
