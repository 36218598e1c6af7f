//! Hearth's headless provider engine.
//!
//! * [`session`]: the WebSocket session with a coordinator (receiver, handler, writer, heartbeat,
//!   reconnect, drain);
//! * [`relay`]: requests → inference jobs → response frames;
//! * [`status`]: the one snapshot everything user-facing shows;
//! * [`control`]: the local HTTP API (`hearth status`, later the UI);
//! * [`provider`]: ties them together for the CLI and the app.

pub mod control;
pub mod provider;
pub mod relay;
pub mod session;
pub mod status;
pub mod system;
pub mod telemetry;
