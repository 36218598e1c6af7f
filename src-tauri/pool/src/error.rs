//! Errors at the crate boundary. Everything after startup is reported per request or per session,
//! so only starting and serving can fail as a whole.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot listen on {addr}: {source} (is another pool or coordinator already running there?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the TLS certificate or key {path}: {problem}")]
    Tls { path: std::path::PathBuf, problem: String },
    #[error("the pool's HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}
