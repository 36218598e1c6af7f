//! The state the session's parts share: [`Shared`] outlives every connection (engine, slot
//! accounting, metrics, status), [`SessionFlags`] lives for one connection (draining, degraded, what
//! was last announced). Both sit below the handler, relay, heartbeat, drain and state reporter, which
//! all read them, so none of those has to reach back into the session loop.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use hearth_inference::Engine;
use hearth_protocol::{
    Hello, MetricsSnapshot, ProviderMessage, ProviderState, StateUpdate, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch};

use super::config::ProviderConfig;
use super::job_sink::JobSink;
use super::metrics::MetricsAccumulator;
use super::writer::Outbox;
use crate::status::{rfc3339_now, ProviderPhase, StatusHub};

/// State that outlives a single connection: the engine, slot accounting, metrics, status.
pub struct Shared {
    pub config: ProviderConfig,
    pub engine: Arc<dyn Engine>,
    pub status: StatusHub,
    /// Told about every job's start and end (the app's ledger); `None` for a bare provider.
    pub job_sink: Option<Arc<dyn JobSink>>,
    pub(super) metrics: Mutex<MetricsAccumulator>,
    slots_in_use: AtomicU32,
    /// Bumped on every capacity change so the state reporter can tell the coordinator.
    capacity_changed: watch::Sender<u64>,
}

impl Shared {
    pub fn new(config: ProviderConfig, engine: Arc<dyn Engine>, status: StatusHub) -> Arc<Self> {
        Self::with_job_sink(config, engine, status, None)
    }

    pub fn with_job_sink(
        config: ProviderConfig,
        engine: Arc<dyn Engine>,
        status: StatusHub,
        job_sink: Option<Arc<dyn JobSink>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            engine,
            status,
            job_sink,
            metrics: Mutex::new(MetricsAccumulator::default()),
            slots_in_use: AtomicU32::new(0),
            capacity_changed: watch::Sender::new(0),
        })
    }

    pub fn slots_free(&self) -> u32 {
        self.config.slots.saturating_sub(self.slots_in_use.load(Ordering::Acquire))
    }

    pub(super) fn try_reserve_slot(&self) -> bool {
        let total = self.config.slots;
        let reserved = self
            .slots_in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < total).then_some(n + 1))
            .is_ok();
        if reserved {
            self.capacity_changed.send_modify(|g| *g += 1);
        }
        reserved
    }

    pub(super) fn release_slot(&self) {
        let _ = self.slots_in_use.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.capacity_changed.send_modify(|g| *g += 1);
    }

    /// Ticks on every slot reserved or released.
    pub(super) fn capacity_changes(&self) -> watch::Receiver<u64> {
        self.capacity_changed.subscribe()
    }

    /// The state to announce, with its `reason`.
    pub fn state(&self, flags: &SessionFlags) -> (ProviderState, &'static str) {
        if flags.is_draining() {
            (ProviderState::Draining, "draining")
        } else if flags.is_degraded() {
            (ProviderState::Degraded, "warm_up")
        } else if self.slots_free() == 0 {
            (ProviderState::Busy, "request_capacity_full")
        } else {
            (ProviderState::Ready, "request_capacity_available")
        }
    }

    /// Sends a `state_update` with the current state and remembers what was announced.
    pub(super) fn announce_state(&self, flags: &SessionFlags, outbox: &Outbox, reason: Option<&str>) -> bool {
        let message = self.state_update(flags, reason);
        if let ProviderMessage::StateUpdate(u) = &message {
            *flags.last_announced.lock().unwrap() = Some((u.state, u.metrics_snapshot.slots_free));
        }
        self.publish_phase(flags);
        outbox.send_priority(&message)
    }

    fn state_update(&self, flags: &SessionFlags, reason: Option<&str>) -> ProviderMessage {
        let (state, default_reason) = self.state(flags);
        let window = self.metrics.lock().unwrap().current();
        ProviderMessage::StateUpdate(StateUpdate {
            state,
            reason: reason.unwrap_or(default_reason).to_string(),
            since: rfc3339_now(),
            metrics_snapshot: MetricsSnapshot {
                slots_free: self.slots_free(),
                slots_total: self.config.slots,
                window,
            },
        })
    }

    pub(super) fn hello(&self) -> Hello {
        let d = self.engine.descriptor();
        Hello {
            version: PROTOCOL_VERSION,
            tier: 1,
            provider_id: self.config.provider_id.clone(),
            hostname: self.config.hostname.chars().take(253).collect(),
            model_id: d.model_id.clone(),
            model_params_b: d.params_b,
            ram_gb: self.config.ram_gb,
            max_context_tokens: d.max_context_tokens,
            max_concurrency: self.config.slots,
            throughput_tps_estimate: d.throughput_tps_estimate,
            binary_version: self.config.binary_version.clone(),
            attestation: None,
            model_hash: None,
            model_hash_algorithm: None,
            // Hearth's own version, and the engine that serves.
            runtime_source: Some(format!("hearth/{} ({})", env!("CARGO_PKG_VERSION"), d.engine)),
        }
    }

    /// The v2 initial `auth_request`: the hello's fields minus `tier` and `attestation` (the
    /// handshake adds the X25519 key and capabilities).
    pub(super) fn auth_initial(&self) -> hearth_protocol::v2::AuthInitial {
        hearth_protocol::v2::AuthInitial::from_hello(self.hello())
    }

    /// Mirrors the session state into the user-facing phase.
    pub(super) fn publish_phase(&self, flags: &SessionFlags) {
        let (state, _) = self.state(flags);
        let slots_free = self.slots_free();
        self.status.update(|s| {
            s.slots_free = slots_free;
            match state {
                ProviderState::Ready => s.set_phase(ProviderPhase::Ready, "serving: waiting for requests"),
                ProviderState::Busy => s.set_phase(ProviderPhase::Busy, "every slot is serving a request"),
                ProviderState::Draining => {
                    s.set_phase(ProviderPhase::Draining, "finishing in-flight requests")
                }
                ProviderState::Degraded => {
                    s.set_phase(ProviderPhase::Degraded, "warming up after a long gap")
                }
                ProviderState::Unavailable => {}
            }
        });
    }
}

/// Per-connection flags the handler, relay, heartbeat and reporter share.
#[derive(Debug, Default)]
pub struct SessionFlags {
    draining: AtomicBool,
    degraded: AtomicBool,
    changed: Mutex<Option<mpsc::UnboundedSender<()>>>,
    last_announced: Mutex<Option<(ProviderState, u32)>>,
}

impl SessionFlags {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    pub(super) fn set_draining(&self) {
        self.set(&self.draining, true);
    }

    pub(super) fn set_degraded(&self, on: bool) {
        self.set(&self.degraded, on);
    }

    /// From now on, every flag change sends `()` on the returned channel (the state reporter's).
    pub(super) fn watch_changes(&self) -> mpsc::UnboundedReceiver<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.changed.lock().unwrap() = Some(tx);
        rx
    }

    /// The state and free slots of the last `state_update` sent.
    pub(super) fn last_announced(&self) -> Option<(ProviderState, u32)> {
        *self.last_announced.lock().unwrap()
    }

    fn set(&self, flag: &AtomicBool, on: bool) {
        flag.store(on, Ordering::Release);
        if let Some(tx) = self.changed.lock().unwrap().as_ref() {
            let _ = tx.send(());
        }
    }
}
