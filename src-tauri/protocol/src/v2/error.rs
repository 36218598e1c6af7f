//! What can go wrong on a v2 session, typed so each side can choose its answer (a close code, a
//! `nak`, a dropped connection) and say in words what was wrong.

/// A handshake that cannot complete. The text says what was wrong and, where it helps, what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("key exchange failed: {0}")]
    KeyExchange(String),
    #[error("the coordinator selected AEAD suite {0:?}; Hearth speaks only A256GCM")]
    Suite(String),
    #[error(
        "key id mismatch: the coordinator derived {theirs:?}, Hearth derived {ours:?}; \
         the coordinator may use an older transcript framing"
    )]
    KidMismatch { ours: String, theirs: String },
    #[error("the coordinator rejected the v2 handshake: {code}: {message}")]
    Rejected { code: String, message: String },
    #[error(
        "the coordinator accepted the session without the encrypted leg ({0}); refusing a plaintext session"
    )]
    LegNotEnabled(String),
    #[error("invalid {frame}: {problem}")]
    Invalid { frame: &'static str, problem: String },
}

/// A sealed frame that cannot be opened, or cannot be sealed. Any of these ends a session: after
/// acceptance a peer that sends one is broken or hostile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    #[error("enc.{field} is not unpadded base64url: {problem}")]
    Base64 { field: &'static str, problem: String },
    #[error("enc.alg is {0:?}, not A256GCM")]
    Alg(String),
    #[error("enc.kid is {got:?}, the session's key is {want:?}")]
    Kid { got: String, want: String },
    #[error("enc.seq {got} replays or skips: the next expected is {want}")]
    Seq { got: u64, want: u64 },
    #[error("enc.seq {got} was already seen")]
    Replayed { got: u64 },
    #[error("enc.seq {got} is more than {window} ahead of {want}")]
    OutOfWindow { got: u64, want: u64, window: u64 },
    #[error("enc.nonce does not match the direction's nonce base and seq {0}")]
    Nonce(u64),
    #[error("enc.aad does not match this frame (type, direction, request, stream, ids or seq)")]
    Aad,
    #[error("enc.tag is {0} bytes, not 16")]
    TagLength(usize),
    #[error("the ciphertext of {size} bytes is over the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("AES-GCM authentication failed: the frame was altered or sealed with another key")]
    Auth,
    #[error("the sequence counter is exhausted; the session must rekey or reconnect")]
    Exhausted,
    #[error("the plaintext is not a valid {what}: {problem}")]
    Plaintext { what: &'static str, problem: String },
}
