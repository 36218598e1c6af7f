//! The binary AAD every sealed frame is bound to (PROTOCOL-V2.md §2.3). Both sides build it from
//! what they hold (their ids, the request's id and stream flag, the expected seq) and compare it
//! byte for byte with the frame's, so a frame cannot be replayed into another request, direction,
//! session or position.

use super::keys::put_len_prefixed;

const PREFIX: &[u8] = b"macprovider/spec008/pillar-b/aad/v1\0";

/// Which way a sealed frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Coordinator to provider.
    C2p,
    /// Provider to coordinator.
    P2c,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::C2p => "c2p",
            Self::P2c => "p2c",
        }
    }
}

/// The fields of one frame's AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AadFields<'a> {
    /// The outer frame's `type`, e.g. `inference_request`.
    pub frame_type: &'a str,
    pub direction: Direction,
    /// The request's id, or for rekey frames the `rekey_id`.
    pub request_id: &'a str,
    /// The request's stream flag (false for rekey frames).
    pub stream: bool,
    pub provider_id: &'a str,
    pub assigned_id: &'a str,
    pub seq: u64,
}

impl AadFields<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = PREFIX.to_vec();
        put_len_prefixed(&mut out, self.frame_type.as_bytes());
        put_len_prefixed(&mut out, self.direction.as_str().as_bytes());
        put_len_prefixed(&mut out, self.request_id.as_bytes());
        out.push(u8::from(self.stream));
        put_len_prefixed(&mut out, self.provider_id.as_bytes());
        put_len_prefixed(&mut out, self.assigned_id.as_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out
    }
}
