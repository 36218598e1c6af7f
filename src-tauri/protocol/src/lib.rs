//! The wire protocol Hearth speaks, in one place so the provider and the local pool cannot drift apart.
//!
//! * [`messages`]: every frame of the tier-1 provider ⇄ coordinator session (both directions), as
//!   serde types. Unknown fields are ignored so newer coordinators do not break older providers.
//! * [`codec`]: turning a text frame into a message with a size limit and typed errors that say what
//!   was wrong (and whether a `nak` is the right answer).
//! * [`close`]: the coordinator's WebSocket close codes and what a provider should do on each.
//! * [`openai`]: the buyer-facing OpenAI chat-completions shapes: the request body the coordinator
//!   forwards verbatim, the SSE chunks and completion objects a provider streams back, and the error
//!   envelope the gateway answers with.
//! * [`model_key`]: how the coordinator names models (the rate card's key, the names a request may
//!   use for the served model); [`earnings`]: its earnings formula, in integers.
//!
//! * [`v2`]: the v2 handshake and the encrypted leg (PROTOCOL-V2.md).
//!
//! The facts encoded here come from `shared/design/PROTOCOL.md` and `PROTOCOL-V2.md`.

pub mod choice;
pub mod close;
pub mod codec;
pub mod earnings;
pub mod messages;
pub mod model_key;
pub mod openai;
pub mod v2;

pub use choice::ProtocolChoice;
pub use codec::{
    decode_coordinator, decode_coordinator_frame, decode_provider, decode_provider_frame, encode,
    CoordinatorFrame, DecodeError, ProviderFrame, DEFAULT_MAX_FRAME_BYTES,
};
pub use messages::*;
pub use model_key::{model_key, names_served_model};
