//! How a pool is set up. Every timing is a field so tests can scale them down to milliseconds.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The port the production coordinator serves providers on; the local pool serves buyers on it too.
pub const DEFAULT_PORT: u16 = 8444;

/// The production coordinator buffers at most this much of one response (`config.go`).
pub const DEFAULT_RELAY_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// Settings of one pool. `Default` gives the production coordinator's defaults on 127.0.0.1:8444.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// One port serves both the provider WebSocket and the buyer HTTP API.
    pub listen: SocketAddr,
    /// Reproduce the older production coordinator's hazards (stale write deadline on auto-pongs).
    pub strict: bool,
    /// Sent to providers in `hello_ack`.
    pub heartbeat_interval_s: u64,
    /// A session with no text frame for this long is closed, unless it has an active request.
    pub liveness_timeout: Duration,
    /// How long a disconnected provider's row stays (as `unavailable`) so a reconnect keeps it.
    pub disconnect_grace: Duration,
    /// Per-write timeout; in strict mode, the length of the stale absolute write deadline.
    pub write_timeout: Duration,
    /// The first frame must arrive within this after the upgrade.
    pub handshake_timeout: Duration,
    /// A buyer request with no end by then is cancelled (`timeout`) and answered 504.
    pub request_timeout: Duration,
    /// Text frames over this are answered with a `frame_too_large` nak (the session stays).
    pub max_frame_bytes: usize,
    /// Bytes of one response the pool holds for a buyer that is not reading them yet (the
    /// production relay's 16 MiB). Past it the request is cancelled with `relay_buffer_exceeded`,
    /// so a client that stops reading costs bounded memory instead of the whole response.
    pub relay_buffer_bytes: usize,
    /// Period of `: keepalive` SSE comments while a streaming buyer waits for its first chunk.
    pub sse_keepalive: Duration,
    /// `None`: any (or no) bearer is accepted. `Some`: the upgrade must carry one of these.
    pub provider_tokens: Option<HashSet<String>>,
    /// Serve `wss://` and `https://` with this certificate instead of plain text.
    pub tls: Option<TlsFiles>,
    /// Refuse a v1 `hello` (4013 `tier2_encrypted_leg_required`), as a coordinator with
    /// `tier2.require_encrypted_leg` does.
    pub require_v2: bool,
    /// Rekey an encrypted session after this many requests in one key epoch (production: 10000).
    pub rekey_after_requests: u64,
    /// … or after its key epoch is this old (production: an hour).
    pub rekey_after: Duration,
}

/// A PEM certificate chain and its PEM private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            strict: false,
            heartbeat_interval_s: hearth_protocol::DEFAULT_HEARTBEAT_INTERVAL_S,
            liveness_timeout: Duration::from_secs(90),
            disconnect_grace: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(900),
            max_frame_bytes: hearth_protocol::DEFAULT_MAX_FRAME_BYTES,
            relay_buffer_bytes: DEFAULT_RELAY_BUFFER_BYTES,
            sse_keepalive: Duration::from_secs(5),
            provider_tokens: None,
            tls: None,
            require_v2: false,
            rekey_after_requests: 10_000,
            rekey_after: Duration::from_secs(3600),
        }
    }
}

impl PoolConfig {
    /// How often a session checks its liveness: often enough to close close to the deadline, rarely
    /// enough to cost nothing.
    pub(crate) fn liveness_tick(&self) -> Duration {
        (self.liveness_timeout / 10).clamp(Duration::from_millis(10), Duration::from_millis(200))
    }
}
