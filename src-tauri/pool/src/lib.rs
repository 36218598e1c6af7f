//! Hearth's local pool: a coordinator for provider WebSocket sessions and an OpenAI-compatible
//! gateway for buyers, in one process on one port.
//!
//! It is the app's embedded default (so a Mac can serve itself and the user's tools) and the test
//! peer for the provider engine. It speaks the protocol in `shared/design/PROTOCOL.md` using the
//! `hearth-protocol` types, and in [`PoolConfig::strict`] mode reproduces the older production
//! coordinator's stale-write-deadline hazard so the provider can be proven to survive it.
//!
//! Layout, bottom up: [`config`] and [`error`] are the boundary; `link` is how anything reaches a
//! live session; `registry` owns the provider rows, `relay` the requests in flight, [`credits`] and
//! `usage_log` price and record finished requests, [`status`] builds the `/v1/status` document;
//! `state` holds those parts together (`PoolState`) and is what the two front doors call: `session`
//! runs each provider's WebSocket, `gateway` is the HTTP API. [`events`] is what tests observe.

pub mod config;
pub mod credits;
pub mod error;
pub mod events;
mod gateway;
mod link;
mod registry;
mod relay;
mod session;
mod state;
pub mod status;
mod tls;
mod usage_log;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

pub use config::{PoolConfig, TlsFiles};
pub use error::PoolError;
pub use events::PoolEvent;
pub use status::PoolStatus;
pub use usage_log::{Earnings, ProviderUsage, UsageSummary};

use state::PoolState;

/// How long a graceful shutdown waits for open HTTP responses before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running pool. Dropping it without [`Pool::shutdown`] leaves the server running until the
/// runtime ends.
pub struct Pool {
    shared: Arc<PoolState>,
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Pool {
    /// Binds `config.listen` and starts serving; returns once the port is bound.
    pub async fn start(config: PoolConfig) -> Result<Pool, PoolError> {
        let addr = config.listen;
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| PoolError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| PoolError::Bind { addr, source })?;
        let shared = Arc::new(PoolState::new(config));
        let app = gateway::router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let server = match &shared.config.tls {
            None => {
                tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped).await })
            }
            Some(files) => {
                let listener = tls::TlsListener::new(listener, tls::server_config(files)?);
                tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped).await })
            }
        };
        tracing::info!(%local_addr, strict = shared.config.strict, "local pool listening");
        Ok(Pool { shared, local_addr, stop: Some(stop), server })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What `GET /v1/status` returns.
    pub fn snapshot(&self) -> PoolStatus {
        self.shared.snapshot()
    }

    /// What `GET /v1/usage` returns.
    pub fn usage(&self) -> UsageSummary {
        self.shared.usage_log().usage()
    }

    /// Everything the pool observes from now on.
    pub fn events(&self) -> broadcast::Receiver<PoolEvent> {
        self.shared.events.subscribe()
    }

    /// Sends `{"type":"drain"}` to every connected provider.
    pub async fn drain_all(&self) {
        for link in self.shared.live_links() {
            link.send(&hearth_protocol::CoordinatorMessage::Drain {});
        }
    }

    /// Cancels requests in flight (`coordinator_shutdown`), closes every session with "going away",
    /// and stops the server, waiting a few seconds for open responses to finish.
    pub async fn shutdown(mut self) {
        self.shared.shutting_down.store(true, Ordering::Relaxed);
        self.shared.cancel_all("coordinator_shutdown");
        for link in self.shared.live_links() {
            link.end(
                Some((hearth_protocol::close::GOING_AWAY, "pool shutting down".into())),
                "pool shutting down",
            );
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "pool server ended with an error"),
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("open responses did not finish in time; stopping the pool anyway");
                self.server.abort();
            }
        }
        tracing::info!("local pool stopped");
    }
}

/// Runs a pool until `shutdown` resolves (for the `hearth pool` command), then stops it gracefully.
pub async fn run(config: PoolConfig, shutdown: impl Future<Output = ()>) -> Result<(), PoolError> {
    let mut pool = Pool::start(config).await?;
    tokio::select! {
        _ = shutdown => {
            pool.shutdown().await;
            Ok(())
        }
        result = &mut pool.server => match result {
            Ok(Err(e)) => Err(PoolError::Serve(e)),
            _ => Ok(()),
        },
    }
}
