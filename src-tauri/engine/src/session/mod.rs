//! The provider's session with a coordinator, exactly as ARCHITECTURE.md "The session, precisely"
//! describes it:
//!
//! * one **receiver** task reads the socket and only enqueues frames ([`receiver`]);
//! * one **handler** loop takes them in order and acts, never waiting on slow work ([`handler`]);
//! * one **writer** task owns the sink, with a deadline on every write ([`writer`]);
//! * one **heartbeat ticker** on its own wall-clock timer ([`heartbeat`]);
//! * a **state reporter** that tells the coordinator about capacity changes;
//! * and around them, [`run_provider`]: connect, handshake, serve, and on any failure reconnect with
//!   capped exponential backoff and full jitter ([`backoff`]).

pub mod backoff;
pub mod config;
pub mod connect;
mod drain;
mod handler;
pub mod heartbeat;
mod link_error;
pub mod receiver;
pub mod writer;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hearth_inference::Engine;
use hearth_protocol::close::{advice, AfterClose, VERSION_UNSUPPORTED};
use hearth_protocol::{
    Hello, MetricsSnapshot, ProviderMessage, ProviderState, StateUpdate, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use self::backoff::Backoff;
pub use self::config::ProviderConfig;
pub use self::handler::HandlerProbe;
use self::heartbeat::{HeartbeatTicker, MetricsAccumulator};
use self::writer::Outbox;
use crate::relay::{JobSink, Relay};
use crate::status::{unix_ms, ProviderPhase, StatusHub};

/// State that outlives a single connection: the engine, slot accounting, metrics, status.
pub struct Shared {
    pub config: ProviderConfig,
    pub engine: Arc<dyn Engine>,
    pub status: StatusHub,
    /// Told about every job's start and end (the app's ledger); `None` for a bare provider.
    pub job_sink: Option<Arc<dyn JobSink>>,
    pub(crate) metrics: Mutex<MetricsAccumulator>,
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

    pub(crate) fn try_reserve_slot(&self) -> bool {
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

    pub(crate) fn release_slot(&self) {
        let _ = self.slots_in_use.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.capacity_changed.send_modify(|g| *g += 1);
    }

    /// The state to announce, with its `reason`.
    pub fn state(&self, flags: &SessionFlags) -> (ProviderState, &'static str) {
        if flags.is_draining() {
            (ProviderState::Draining, "draining")
        } else if flags.degraded.load(Ordering::Acquire) {
            (ProviderState::Degraded, "warm_up")
        } else if self.slots_free() == 0 {
            (ProviderState::Busy, "request_capacity_full")
        } else {
            (ProviderState::Ready, "request_capacity_available")
        }
    }

    /// Sends a `state_update` with the current state and remembers what was announced.
    pub(crate) fn announce_state(&self, flags: &SessionFlags, outbox: &Outbox, reason: Option<&str>) -> bool {
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

    fn hello(&self) -> Hello {
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
            binary_version: env!("CARGO_PKG_VERSION").to_string(),
            attestation: None,
            model_hash: None,
            model_hash_algorithm: None,
            runtime_source: Some(format!("hearth/{}", d.engine)),
        }
    }

    /// Mirrors the session state into the user-facing phase.
    fn publish_phase(&self, flags: &SessionFlags) {
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
    fn set(&self, flag: &AtomicBool, on: bool) {
        flag.store(on, Ordering::Release);
        if let Some(tx) = self.changed.lock().unwrap().as_ref() {
            let _ = tx.send(());
        }
    }
}

/// How a session ended, and so what the provider does next.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// Never got a session (connect or handshake failed).
    ConnectFailed { reason: String, permanent: bool },
    /// The coordinator closed the session.
    Closed { code: Option<u16>, reason: String },
    /// The connection broke (transport error, write timeout, silence).
    Lost { reason: String },
    /// We drained and closed; reconnect after the fixed grace unless quitting.
    Drained { quitting: bool },
}

/// Runs a provider until `shutdown` is cancelled: connects, serves, reconnects. When `shutdown`
/// fires during a session, the provider drains (bounded by `drain_timeout`) before returning.
pub async fn run_provider(
    shared: Arc<Shared>,
    probe: Option<Arc<dyn HandlerProbe>>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(shared.config.backoff_base, shared.config.backoff_cap);
    let mut first = true;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        shared.status.update(|s| {
            if !first {
                s.connection.reconnects += 1;
            }
            s.set_phase(ProviderPhase::Connecting, format!("connecting to {}", s.connection.coordinator_url));
        });
        first = false;
        let (end, accepted) = run_session(&shared, probe.clone(), &shutdown).await;
        if accepted {
            backoff.reset();
        }
        tracing::info!(?end, "session ended");
        let wait = match &end {
            SessionEnd::Drained { quitting: true } => break,
            SessionEnd::Drained { quitting: false } => shared.config.reconnect_after_drain,
            SessionEnd::ConnectFailed { reason, permanent: true } => {
                shared.status.update(|s| {
                    s.set_phase(ProviderPhase::Error, reason.clone());
                    s.connection.last_error = Some(reason.clone());
                });
                return;
            }
            SessionEnd::Closed { code: Some(code), reason } if advice(*code).0 == AfterClose::Stop => {
                let (_, why) = advice(*code);
                let text = if *code == VERSION_UNSUPPORTED {
                    format!("{why} (coordinator said: {reason})")
                } else {
                    format!("{why} (close {code}: {reason})")
                };
                shared.status.update(|s| s.set_phase(ProviderPhase::Error, text));
                return;
            }
            _ => backoff.next_delay(),
        };
        let why = match &end {
            SessionEnd::ConnectFailed { reason, .. } | SessionEnd::Lost { reason } => reason.clone(),
            SessionEnd::Closed { code, reason } => match code {
                Some(c) => format!("{} (close {c}: {reason})", advice(*c).1),
                None => format!("the coordinator closed the session: {reason}"),
            },
            SessionEnd::Drained { .. } => "drained; reconnecting shortly".to_string(),
        };
        shared.status.update(|s| {
            s.connection.connected = false;
            s.connection.last_error = Some(why.clone());
            s.set_phase(ProviderPhase::Offline, format!("{why}; retrying in {:.1} s", wait.as_secs_f64()));
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    shared.status.update(|s| {
        s.connection.connected = false;
        s.set_phase(ProviderPhase::Stopped, "stopped");
    });
}

/// One connection, from connect to close. Returns how it ended and whether the hello was accepted.
async fn run_session(
    shared: &Arc<Shared>,
    probe: Option<Arc<dyn HandlerProbe>>,
    shutdown: &CancellationToken,
) -> (SessionEnd, bool) {
    let connected = tokio::select! {
        c = connect::connect(&shared.config) => c,
        _ = shutdown.cancelled() => return (SessionEnd::Drained { quitting: true }, false),
    };
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            let permanent = e.is_permanent();
            return (SessionEnd::ConnectFailed { reason: e.to_string(), permanent }, false);
        }
    };
    let fd = connected.fd;
    let (sink, stream) = connected.socket.split();
    let (inbound_tx, mut inbound) = mpsc::unbounded_channel();
    let receiver = tokio::spawn(receiver::run(stream, inbound_tx, shared.config.tcp_user_timeout));
    let (outbox, outbox_rx) = Outbox::new();
    let mut writer = tokio::spawn(writer::run(
        sink,
        outbox_rx,
        shared.config.write_timeout,
        shared.config.tcp_user_timeout,
    ));
    let flags = Arc::new(SessionFlags::default());
    let relay = Relay::new(shared.clone(), flags.clone(), outbox.clone());
    let mut ctx = handler::Handler::new(shared.clone(), flags.clone(), relay.clone(), outbox.clone(), probe);

    outbox.send_priority(&ProviderMessage::Hello(shared.hello()));
    let ack = match ctx.handshake(&mut inbound, &mut writer).await {
        Ok(ack) => ack,
        Err(end) => {
            receiver.abort();
            writer.abort();
            return (end, false);
        }
    };
    let ticker = HeartbeatTicker::new(ack.heartbeat_interval_s, shared.config.heartbeat_cap);
    tracing::info!(
        assigned_id = %ack.assigned_id,
        tier = ack.tier.as_deref().unwrap_or("?"),
        heartbeat_tick_ms = ticker.tick.as_millis() as u64,
        "session accepted"
    );
    relay.set_assigned_id(&ack.assigned_id);
    shared.status.update(|s| {
        let c = &mut s.connection;
        c.connected = true;
        c.assigned_id = Some(ack.assigned_id.clone());
        c.heartbeat_interval_s = Some(ack.heartbeat_interval_s);
        c.heartbeat_tick_ms = Some(ticker.tick.as_millis() as u64);
        c.session_started_ms = Some(unix_ms());
        c.last_error = None;
        c.rtt_ms = connect::kernel_rtt(fd).map(|d| d.as_secs_f64() * 1000.0);
    });
    shared.announce_state(&flags, &outbox, Some("model_loaded"));
    let heartbeat = tokio::spawn(ticker.run(shared.clone(), flags.clone(), outbox.clone()));
    let reporter = tokio::spawn(report_state_changes(shared.clone(), flags.clone(), outbox.clone()));
    let rtt = tokio::spawn(sample_rtt(shared.clone(), fd));

    let end = ctx.serve(&mut inbound, &mut writer, shutdown).await;

    relay.connection_lost(&match &end {
        SessionEnd::Closed { reason, .. } | SessionEnd::Lost { reason } => reason.clone(),
        SessionEnd::ConnectFailed { reason, .. } => reason.clone(),
        SessionEnd::Drained { .. } => "session closed after a drain".into(),
    });
    for task in [heartbeat, reporter, rtt] {
        task.abort();
    }
    receiver.abort();
    writer.abort();
    shared.status.update(|s| {
        s.connection.connected = false;
        if let SessionEnd::Closed { code, reason } = &end {
            s.connection.last_close_code = *code;
            s.connection.last_close_reason = Some(reason.clone());
        }
    });
    (end, true)
}

/// Sends a `state_update` whenever the announced state or the free slots change, coalescing bursts
/// over 20 ms like the reference provider.
async fn report_state_changes(shared: Arc<Shared>, flags: Arc<SessionFlags>, outbox: Outbox) {
    let (tx, mut flag_changes) = mpsc::unbounded_channel();
    *flags.changed.lock().unwrap() = Some(tx);
    let mut capacity = shared.capacity_changed.subscribe();
    loop {
        tokio::select! {
            r = capacity.changed() => if r.is_err() { return },
            r = flag_changes.recv() => if r.is_none() { return },
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = (shared.state(&flags).0, shared.slots_free());
        shared.publish_phase(&flags);
        if *flags.last_announced.lock().unwrap() != Some(now) && !shared.announce_state(&flags, &outbox, None)
        {
            return;
        }
    }
}

/// Refreshes the kernel's RTT figure for the UI every few seconds.
async fn sample_rtt(shared: Arc<Shared>, fd: std::os::fd::RawFd) {
    let mut timer = tokio::time::interval(Duration::from_secs(2));
    loop {
        timer.tick().await;
        let rtt = connect::kernel_rtt(fd).map(|d| d.as_secs_f64() * 1000.0);
        shared.status.update(|s| s.connection.rtt_ms = rtt);
    }
}

pub(crate) fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
