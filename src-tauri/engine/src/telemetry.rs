//! Logging setup for the binaries (`hearth` and the Tauri shell both call [`init`]): `RUST_LOG`
//! filters what goes to stderr, human-readable or JSON lines; beside it the log view's ring
//! ([`crate::log_ring`]) keeps the recent lines at `info` and above whatever `RUST_LOG` says, so
//! the dashboard shows the same thing however the app was started. Both outputs are redacted.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::log_ring::{RedactingStderr, RingLayer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(RedactingStderr);
    let stderr = match format {
        LogFormat::Human => stderr.boxed(),
        LogFormat::Json => stderr.json().flatten_event(true).boxed(),
    };
    // The ring has its own filter: the log view should not go quiet because a terminal asked for
    // warnings only, nor fill with a dependency's debug chatter because it asked for more.
    let ring = RingLayer::new().with_filter(EnvFilter::new("info"));
    let _ = tracing_subscriber::registry().with(stderr.with_filter(filter)).with(ring).try_init();
}
