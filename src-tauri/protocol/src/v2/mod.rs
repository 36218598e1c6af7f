//! Protocol v2 (PROTOCOL-V2.md): the `auth_request` → `auth_challenge` → proof → `auth_response`
//! handshake and the Pillar-B encrypted leg, for both ends.
//!
//! * [`keys`]: X25519 agreement, the labelled transcript, HKDF-SHA256, the kid;
//! * [`aad`] and [`envelope`]: the binary AAD, sealing and opening with per-direction counters;
//! * [`messages`]: the new frames, the outer shape of sealed frames, the plaintexts inside;
//! * [`handshake`]: [`ProviderHandshake`] and [`CoordinatorHandshake`]; [`leg`]: what they agree;
//! * [`sealing`]: a request, its chunks and its end, sealed and opened the same way at both ends;
//! * [`rekey`]: the in-band rekey, both ends;
//! * [`jcs`] and [`identity`]: canonical JSON, the transcript hash and the optional signature.
//!
//! All cryptography is the RustCrypto and dalek crates'; this module only arranges the bytes.

pub mod aad;
pub mod envelope;
pub mod error;
pub mod handshake;
pub mod identity;
pub mod jcs;
pub mod keys;
pub mod leg;
pub mod messages;
pub mod rekey;
pub mod sealing;

pub use aad::{AadFields, Direction};
pub use envelope::{Enc, FrameContext, Opener, Sealer, SeqPolicy, P2C_REORDER_WINDOW};
pub use error::{HandshakeError, LegError};
pub use handshake::{CoordinatorHandshake, ProviderHandshake, Refusal};
pub use keys::{KeyPair, KeySet, SessionIds, SUITE};
pub use leg::Leg;
pub use messages::*;
pub use rekey::{CommitSent, CoordinatorRekey, NewEpoch, ProviderRekey, RekeyFailure};
pub use sealing::{open_request, open_response, seal_request, seal_response, OpenedResponse};
