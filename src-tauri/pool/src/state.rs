//! The pool's shared state: one mutex-guarded table of provider rows and in-flight requests, the
//! ledger, and the event channel.
//!
//! A plain `std::sync::Mutex` is enough: every critical section is a few map operations and
//! channel sends, and no lock is ever held across an `.await`. Sessions and buyer handlers talk to
//! each other only through this table and unbounded channels, so neither can block the other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use hearth_protocol::{encode, CoordinatorMessage, PreflightAck, ProviderState, ResponseChunk, ResponseEnd};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::PoolConfig;
use crate::events::PoolEvent;
use crate::ledger::Ledger;

/// What a session's writer task is asked to do; it owns the socket's sink.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    Text(String),
    Close(u16, String),
}

/// Asks a session task to end (replaced, drain complete, pool shutdown, writer failure).
#[derive(Debug)]
pub(crate) struct EndSession {
    /// `None` drops the connection without a close frame.
    pub close: Option<(u16, String)>,
    pub reason: String,
}

/// How the rest of the pool reaches one live session.
#[derive(Debug, Clone)]
pub(crate) struct SessionLink {
    pub out: mpsc::UnboundedSender<WriterCmd>,
    pub ctl: mpsc::UnboundedSender<EndSession>,
}

impl SessionLink {
    /// Queues a frame for the writer; false when the session is already gone.
    pub(crate) fn send(&self, message: &CoordinatorMessage) -> bool {
        self.out.send(WriterCmd::Text(encode(message))).is_ok()
    }

    pub(crate) fn end(&self, close: Option<(u16, String)>, reason: impl Into<String>) {
        let _ = self.ctl.send(EndSession { close, reason: reason.into() });
    }
}

/// One provider as the pool sees it. The row outlives its session by the disconnect grace.
#[derive(Debug)]
pub(crate) struct ProviderRow {
    pub provider_id: String,
    /// The current (or last) session's id; stale sessions are told apart by it.
    pub assigned_id: String,
    pub model_id: String,
    pub state: ProviderState,
    pub slots_free: u32,
    pub slots_total: u32,
    pub max_context_tokens: u64,
    pub connected_unix: u64,
    /// `None` while disconnected (in grace).
    pub link: Option<SessionLink>,
}

/// Why a buyer's request failed before its end frame.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The provider's session ended.
    Disconnected,
    /// The provider refused the request with a `nak`.
    Refused(String),
    /// The buyer fell this many bytes behind the stream (the relay buffer's limit).
    BufferExceeded(usize),
}

/// What a waiting buyer receives, in order.
#[derive(Debug)]
pub(crate) enum RelayEvent {
    Chunk(ResponseChunk),
    End(ResponseEnd),
    Failed(Failure),
}

/// Bytes of response relayed to one buyer and not yet taken by them: the relay adds a chunk's size
/// when it queues the chunk, the buyer's side subtracts it once the bytes are handed to the client
/// connection. The channel between them is unbounded so a session never waits on a buyer; this
/// count is what bounds it instead.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    /// Counts `bytes` more as queued; returns the new total.
    pub(crate) fn queued(&self, bytes: usize) -> usize {
        self.0.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    /// `bytes` left the pool for the client.
    pub(crate) fn taken(&self, bytes: usize) {
        self.0.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A request dispatched to a provider and not yet ended.
#[derive(Debug)]
pub(crate) struct ActiveRequest {
    pub provider_id: String,
    pub assigned_id: String,
    pub model: String,
    /// `None` once the buyer is gone (cancelled); the entry then only waits for the end frame so the
    /// usage so far is still recorded.
    pub buyer: Option<mpsc::UnboundedSender<RelayEvent>>,
    /// What this buyer has been sent and has not taken yet; bounded by `relay_buffer_bytes`.
    pub backlog: Backlog,
    pub preflight: Option<oneshot::Sender<PreflightAck>>,
    /// Whether `inference_request` was written (before that, cancelling needs no frame).
    pub sent: bool,
    pub chunks: u64,
    /// Dispatch order, to attribute a `nak` that does not name its request.
    pub order: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub providers: HashMap<String, ProviderRow>,
    pub requests: HashMap<String, ActiveRequest>,
    pub dispatched: u64,
}

impl Registry {
    /// The live link of the session that owns `request`, if that session is still current.
    pub(crate) fn link_for(&self, provider_id: &str, assigned_id: &str) -> Option<&SessionLink> {
        self.providers
            .get(provider_id)
            .filter(|row| row.assigned_id == assigned_id)
            .and_then(|row| row.link.as_ref())
    }

    /// Gives back the slot a finished request held (the provider's own updates overwrite it anyway).
    pub(crate) fn release_slot(&mut self, provider_id: &str, assigned_id: &str) {
        if let Some(row) = self.providers.get_mut(provider_id).filter(|r| r.assigned_id == assigned_id) {
            if row.link.is_some() {
                row.slots_free = (row.slots_free + 1).min(row.slots_total);
            }
        }
    }
}

pub(crate) struct Shared {
    pub config: PoolConfig,
    pub started: Instant,
    pub registry: Mutex<Registry>,
    pub ledger: Mutex<Ledger>,
    pub events: broadcast::Sender<PoolEvent>,
    pub shutting_down: AtomicBool,
}

impl Shared {
    pub(crate) fn new(config: PoolConfig) -> Self {
        Self {
            config,
            started: Instant::now(),
            registry: Mutex::new(Registry::default()),
            ledger: Mutex::new(Ledger::default()),
            events: broadcast::channel(4096).0,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The table; a panic elsewhere must not wedge the pool, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: PoolEvent) {
        let _ = self.events.send(event);
    }
}
