//! Hearth's headless provider engine.
//!
//! * [`session`]: the WebSocket session with a coordinator (receiver, handler, writer, heartbeat,
//!   reconnect, drain) and its relay (requests → inference jobs → response frames);
//! * [`status`]: the one snapshot everything user-facing shows;
//! * [`backend`]: what the app does for its clients ([`backend::ControlBackend`]) and the views it
//!   answers with; the control API serves it over HTTP, the Tauri shell calls it in-process;
//! * [`control`]: the local HTTP API (`hearth status`, the web UI in a browser);
//! * [`provider`]: ties session and status together behind one handle;
//! * [`app`]: the long-lived headless service (settings, ledger, control API, provider lifecycle)
//!   that `hearth serve` runs and the Tauri shell embeds;
//! * [`earnings`]: the earnings report the control API serves;
//! * [`models`]: discovery of the models already on this machine (Hugging Face cache, LM Studio,
//!   Ollama, Hearth's folder, the user's folders), each inspected as the loader would;
//! * [`engines`]: the engine factory (settings → loaded inference engine) the CLI and the shell share;
//! * [`ui_assets`]: the built web UI, served by the control API to browsers;
//! * [`log_ring`]: the recent log lines, redacted, for the dashboard's log view;
//! * [`doctor`]: named health checks (`hearth doctor`, `GET /api/doctor`), each a verdict and an action.

pub mod app;
pub mod backend;
pub mod control;
pub mod doctor;
pub mod earnings;
pub mod engines;
pub mod log_ring;
pub mod models;
pub mod provider;
pub mod session;
pub mod status;
pub mod system;
pub mod telemetry;
pub mod ui_assets;
