//! The state the session's parts share: [`Shared`] outlives every connection (engine, slot
//! accounting, metrics, status), [`SessionFlags`] lives for one connection (draining, degraded, what
//! was last announced). Both sit below the handler, relay, heartbeat, drain and state reporter, which
//! all read them, so none of those has to reach back into the session loop.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hearth_inference::Engine;
use hearth_protocol::{
    Hello, MetricsSnapshot, ProviderMessage, ProviderState, StateUpdate, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch};

use super::availability::Availability;
use super::config::ProviderConfig;
use super::job_sink::JobSink;
use super::metrics::MetricsAccumulator;
use super::writer::Outbox;
use crate::status::{rfc3339_now, ProviderPhase, StatusHub};

/// State that outlives a single connection: the engine, slot accounting, metrics, status.
pub struct Shared {
    pub config: ProviderConfig,
    /// The engine serving now; [`Shared::swap_engine`] replaces it between jobs.
    engine: RwLock<Arc<dyn Engine>>,
    /// Bumped by every swap, so the state reporter knows to re-announce the model.
    engine_generation: AtomicU64,
    /// Slots offered: `config.slots` at start, the new model's after a swap.
    slots_offered: AtomicU32,
    /// A model swap is waiting for the jobs in flight: new work is refused meanwhile.
    swapping: AtomicBool,
    pub status: StatusHub,
    /// Told about every job's start and end (the app's ledger); `None` for a bare provider.
    pub job_sink: Option<Arc<dyn JobSink>>,
    pub(super) metrics: Mutex<MetricsAccumulator>,
    slots_in_use: AtomicU32,
    /// Bumped on every capacity change so the state reporter can tell the coordinator.
    capacity_changed: watch::Sender<u64>,
    /// What the app's power policy allows; outlives connections like the slots it limits.
    availability: watch::Sender<Availability>,
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
            slots_offered: AtomicU32::new(config.slots),
            config,
            engine: RwLock::new(engine),
            engine_generation: AtomicU64::new(0),
            swapping: AtomicBool::new(false),
            status,
            job_sink,
            metrics: Mutex::new(MetricsAccumulator::default()),
            slots_in_use: AtomicU32::new(0),
            capacity_changed: watch::Sender::new(0),
            availability: watch::Sender::new(Availability::full()),
        })
    }

    /// The engine serving now.
    pub fn engine(&self) -> Arc<dyn Engine> {
        self.engine.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn slots_offered(&self) -> u32 {
        self.slots_offered.load(Ordering::Acquire)
    }

    /// Slots open to new work: the slots offered, or fewer while the power policy says so.
    pub fn slot_limit(&self) -> u32 {
        self.slots_offered().min(self.availability.borrow().slots).max(1)
    }

    pub(super) fn engine_generation(&self) -> u64 {
        self.engine_generation.load(Ordering::Acquire)
    }

    /// A model swap waits for the jobs in flight; no new work meanwhile.
    pub fn is_swapping(&self) -> bool {
        self.swapping.load(Ordering::Acquire)
    }

    /// Replaces the engine between jobs without leaving the session: new work is refused (the
    /// coordinator sees `draining`, reason `model_swap`), the jobs in flight finish on the old
    /// engine (for up to `wait`; after that the swap gives up and the old engine keeps serving),
    /// then the new engine and its slots take over and the state reporter re-announces the model
    /// (a heartbeat with the new `model_id`, then `ready`). True when swapped.
    pub async fn swap_engine(&self, engine: Arc<dyn Engine>, slots: u32, wait: Duration) -> bool {
        /// Clears the swapping flag however the swap ends, an abort included: a flag left set
        /// would refuse work forever.
        struct Swapping<'a>(&'a Shared);
        impl Drop for Swapping<'_> {
            fn drop(&mut self) {
                self.0.swapping.store(false, Ordering::Release);
                self.0.capacity_changed.send_modify(|g| *g += 1);
            }
        }
        let mut capacity = self.capacity_changes();
        self.swapping.store(true, Ordering::Release);
        self.capacity_changed.send_modify(|g| *g += 1);
        let _swapping = Swapping(self);
        let idle = tokio::time::timeout(wait, async {
            while self.slots_in_use.load(Ordering::Acquire) > 0 {
                if capacity.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok();
        if idle {
            let d = engine.descriptor().clone();
            *self.engine.write().unwrap_or_else(|e| e.into_inner()) = engine;
            self.slots_offered.store(slots.max(1), Ordering::Release);
            self.engine_generation.fetch_add(1, Ordering::AcqRel);
            self.status.update(|s| {
                s.model_id = d.model_id.clone();
                s.engine = d.engine.clone();
                s.slots_total = slots.max(1);
            });
        }
        idle
    }

    pub fn slots_free(&self) -> u32 {
        self.slot_limit().saturating_sub(self.slots_in_use.load(Ordering::Acquire))
    }

    /// Applies the power policy's word. Jobs already running keep running: fewer slots only
    /// refuse new work until enough of them have ended.
    pub fn set_availability(&self, availability: Availability) {
        let changed = self.availability.send_if_modified(|a| {
            let changed = *a != availability;
            *a = availability;
            changed
        });
        if changed {
            self.capacity_changed.send_modify(|g| *g += 1);
        }
    }

    /// The power policy pauses: new work is refused from the moment it says so, before the
    /// handler has even begun the drain.
    pub fn is_paused(&self) -> bool {
        self.availability.borrow().pause
    }

    pub fn availability(&self) -> Availability {
        self.availability.borrow().clone()
    }

    /// Ticks whenever the availability changes.
    pub(super) fn availability_changes(&self) -> watch::Receiver<Availability> {
        self.availability.subscribe()
    }

    pub(super) fn try_reserve_slot(&self) -> bool {
        let total = self.slot_limit();
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

    /// The state to announce, with its `reason`: while a power rule limits the provider, the
    /// rule's code (`on_battery`, `user_active`, …), so the coordinator sees why.
    pub fn state(&self, flags: &SessionFlags) -> (ProviderState, &'static str) {
        let rule = self.availability.borrow().code;
        if flags.is_draining() {
            (ProviderState::Draining, rule.filter(|_| self.availability.borrow().pause).unwrap_or("draining"))
        } else if self.is_swapping() {
            (ProviderState::Draining, "model_swap")
        } else if flags.is_degraded() {
            (ProviderState::Degraded, "warm_up")
        } else if self.slots_free() == 0 {
            (ProviderState::Busy, rule.unwrap_or("request_capacity_full"))
        } else {
            (ProviderState::Ready, rule.unwrap_or("request_capacity_available"))
        }
    }

    /// Sends a `state_update` with the current state and remembers what was announced.
    pub(super) fn announce_state(&self, flags: &SessionFlags, outbox: &Outbox, reason: Option<&str>) -> bool {
        let message = self.state_update(flags, reason);
        if let ProviderMessage::StateUpdate(u) = &message {
            let m = &u.metrics_snapshot;
            *flags.last_announced.lock().unwrap() = Some((u.state, m.slots_free, m.slots_total));
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
                slots_total: self.slot_limit(),
                window,
            },
        })
    }

    pub(super) fn hello(&self) -> Hello {
        let d = self.engine().descriptor().clone();
        Hello {
            version: PROTOCOL_VERSION,
            tier: 1,
            provider_id: self.config.provider_id.clone(),
            hostname: self.config.hostname.chars().take(253).collect(),
            model_id: d.model_id.clone(),
            model_params_b: d.params_b,
            ram_gb: self.config.ram_gb,
            max_context_tokens: d.max_context_tokens,
            max_concurrency: self.slots_offered(),
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
        let limited = self.availability();
        let limited = (limited.code.is_some() && !limited.reason.is_empty()).then_some(limited);
        self.status.update(|s| {
            s.slots_free = slots_free;
            match (state, &limited) {
                (ProviderState::Ready, Some(a)) => s.set_phase(ProviderPhase::Ready, a.reason.clone()),
                (ProviderState::Ready, None) => {
                    s.set_phase(ProviderPhase::Ready, "serving: waiting for requests")
                }
                (ProviderState::Busy, Some(a)) => s.set_phase(
                    ProviderPhase::Busy,
                    format!("every allowed slot is serving a request ({})", a.reason),
                ),
                (ProviderState::Busy, None) => {
                    s.set_phase(ProviderPhase::Busy, "every slot is serving a request")
                }
                (ProviderState::Draining, Some(a)) if a.pause => s.set_phase(
                    ProviderPhase::Draining,
                    format!("{}; finishing the jobs it holds first", a.reason),
                ),
                (ProviderState::Draining, _) => {
                    s.set_phase(ProviderPhase::Draining, "finishing in-flight requests")
                }
                (ProviderState::Degraded, _) => {
                    s.set_phase(ProviderPhase::Degraded, "warming up after a long gap")
                }
                (ProviderState::Unavailable, _) => {}
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
    last_announced: Mutex<Option<(ProviderState, u32, u32)>>,
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

    /// The state, free slots and slots total of the last `state_update` sent.
    pub(super) fn last_announced(&self) -> Option<(ProviderState, u32, u32)> {
        *self.last_announced.lock().unwrap()
    }

    fn set(&self, flag: &AtomicBool, on: bool) {
        flag.store(on, Ordering::Release);
        if let Some(tx) = self.changed.lock().unwrap().as_ref() {
            let _ = tx.send(());
        }
    }
}
