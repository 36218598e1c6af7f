//! What the pool observed, broadcast for tests and benchmarks (see [`crate::Pool::events`]).
//!
//! Events are informational: nothing in the pool waits for a subscriber, and a slow subscriber only
//! loses old events (the broadcast channel lags), never slows a session down.

use std::time::Instant;

use hearth_protocol::{EndStatus, Nak};

#[derive(Debug, Clone, PartialEq)]
pub enum PoolEvent {
    /// A `hello` was accepted and acknowledged.
    ProviderConnected { provider_id: String, assigned_id: String },
    /// A session ended; `reason` says why (peer close, liveness timeout, replaced, strict pong…).
    ProviderDisconnected { provider_id: String, assigned_id: String, reason: String },
    /// A disconnected provider's row outlived the grace period and was removed.
    ProviderRemoved { provider_id: String },
    /// A well-formed text frame arrived (heartbeats included: tests measure gaps from `at`).
    FrameReceived { provider_id: String, type_name: String, at: Instant },
    /// A control or binary frame arrived (`ping`, `pong`, `binary`); these never count as liveness.
    ControlReceived { provider_id: String, kind: &'static str, at: Instant },
    /// The provider refused one of our frames.
    NakReceived { provider_id: String, nak: Nak },
    /// We refused one of the provider's frames (the session stays up).
    NakSent { provider_id: String, nak: Nak },
    /// A request ended with an end frame from the provider.
    RequestEnded { request_id: String, provider_id: String, status: EndStatus },
}
