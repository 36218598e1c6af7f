//! Everything a provider session needs to know, with the production defaults from PROTOCOL.md.
//! Tests scale the timings down; nothing else changes between a test and production.

use std::path::PathBuf;
use std::time::Duration;

use hearth_protocol::DEFAULT_MAX_FRAME_BYTES;

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The coordinator's provider endpoint, used exactly as given (path included).
    pub coordinator_url: String,
    /// Sent as `Authorization: Bearer …` on the upgrade when present.
    pub token: Option<String>,
    pub provider_id: String,
    pub hostname: String,
    /// Concurrent jobs (the hello's `max_concurrency`; the coordinator clamps it to 8).
    pub slots: u32,
    pub ram_gb: u64,
    /// Largest frame accepted from the coordinator; bigger ones are refused with a `nak`.
    pub max_frame_bytes: usize,
    /// Each WebSocket write (and flush) must finish within this, or the session is torn down.
    pub write_timeout: Duration,
    pub connect_timeout: Duration,
    /// The coordinator must answer the hello within this.
    pub handshake_timeout: Duration,
    /// The heartbeat tick is `min(ack interval, heartbeat_cap)`.
    pub heartbeat_cap: Duration,
    /// Unacknowledged bytes kill the socket after this (`TCP_USER_TIMEOUT`): how a half-open link
    /// is found even though the coordinator may say nothing for minutes.
    pub tcp_user_timeout: Duration,
    /// Reconnect when nothing at all was read for this long. Off by default: the production
    /// coordinator may legitimately stay silent on an idle link (PROTOCOL.md, "Dead links").
    pub silence_timeout: Option<Duration>,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Fixed wait before reconnecting after a drain completed.
    pub reconnect_after_drain: Duration,
    /// In-flight jobs get this long to finish during a drain; the rest are cancelled.
    pub drain_timeout: Duration,
    /// A PEM file of extra certificate authorities to trust for `wss://` (self-hosted coordinators).
    pub ca_file: Option<PathBuf>,
    /// The hello's `binary_version`: the protocol level announced (see
    /// [`hearth_protocol::REFERENCE_BINARY_VERSION`]).
    pub binary_version: String,
    /// v2 (encrypted), v1, or v2 with a remembered fallback (`auto`).
    pub protocol: hearth_protocol::ProtocolChoice,
}

impl ProviderConfig {
    pub fn new(coordinator_url: impl Into<String>, provider_id: impl Into<String>) -> Self {
        Self {
            coordinator_url: coordinator_url.into(),
            token: None,
            provider_id: provider_id.into(),
            hostname: crate::system::hostname(),
            slots: 1,
            ram_gb: crate::system::total_ram_gb(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            write_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            heartbeat_cap: Duration::from_secs(hearth_protocol::MAX_HEARTBEAT_TICK_S),
            tcp_user_timeout: Duration::from_secs(20),
            silence_timeout: None,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            reconnect_after_drain: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            ca_file: None,
            binary_version: hearth_protocol::REFERENCE_BINARY_VERSION.to_string(),
            protocol: hearth_protocol::ProtocolChoice::Auto,
        }
    }
}
