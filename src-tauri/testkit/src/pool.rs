//! The local pool in process (`hearth_pool::Pool`), for tests that drive it over real sockets:
//! a config with test-friendly timings, start-up, and waiting on its status snapshot.

use std::net::SocketAddr;
use std::time::Duration;

use hearth_pool::{Pool, PoolConfig, PoolStatus};

use crate::poll::poll_until;

/// How long [`status_until`] waits: pool state changes are in-process and take milliseconds.
pub const STATUS_WAIT: Duration = Duration::from_secs(5);

/// A config on an ephemeral loopback port whose liveness, grace and keepalive timers (30 s) never
/// fire during a test unless the test shortens them: `PoolConfig { liveness_timeout: …, ..test_config() }`.
pub fn test_config() -> PoolConfig {
    PoolConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        liveness_timeout: Duration::from_secs(30),
        disconnect_grace: Duration::from_secs(30),
        sse_keepalive: Duration::from_secs(30),
        ..PoolConfig::default()
    }
}

/// Starts the pool; panics if it cannot.
pub async fn start_pool(config: PoolConfig) -> Pool {
    Pool::start(config).await.expect("pool starts")
}

/// `http://<addr><path>`.
pub fn http_url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// Polls the pool's snapshot until `check` holds and returns it; panics after [`STATUS_WAIT`] with
/// `what` and the last snapshot.
pub async fn status_until(pool: &Pool, what: &str, check: impl FnMut(&PoolStatus) -> bool) -> PoolStatus {
    poll_until(what, STATUS_WAIT, || std::future::ready(pool.snapshot()), check).await
}
