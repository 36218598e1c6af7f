//! The one observable snapshot of the provider: everything the CLI, the control API, the tray and the
//! UI show comes from [`Status`], published through a [`StatusHub`].
//!
//! Writers call [`StatusHub::update`] with a closure; readers hold a `watch::Receiver` and see the
//! newest snapshot (intermediate ones may be skipped, which is what a UI wants). The crate's clock
//! helpers ([`unix_ms`], [`rfc3339_now`]) live here too, at the bottom where every module can reach
//! them.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// How a finished job ended: the ledger's own type, so the snapshot and the ledger cannot disagree.
/// In the snapshot's JSON it reads as the ledger stores it: `complete`, `cancelled`, `lost`, or
/// `error:<end status>` (e.g. `error:error_queue_full`).
pub use hearth_ledger::JobOutcome;
use hearth_settings::FieldError;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How many finished jobs the snapshot keeps.
pub const RECENT_JOBS: usize = 100;
/// After this long ready without a single routed request, the snapshot says so.
pub const DEFAULT_IDLE_ALERT_S: u64 = 600;

/// What the provider is doing, as the user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderPhase {
    Stopped,
    Connecting,
    Ready,
    Busy,
    Draining,
    Degraded,
    Paused,
    Offline,
    Error,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionHealth {
    pub coordinator_url: String,
    pub connected: bool,
    pub assigned_id: Option<String>,
    pub heartbeat_interval_s: Option<u64>,
    pub heartbeat_tick_ms: Option<u64>,
    /// Unix ms of the last heartbeat handed to the writer.
    pub last_heartbeat_sent_ms: Option<u64>,
    /// Unix ms of the last frame read from the coordinator (any kind).
    pub last_frame_received_ms: Option<u64>,
    /// Round-trip time the kernel measured on the session's TCP connection.
    pub rtt_ms: Option<f64>,
    pub reconnects: u64,
    /// Unix ms when the current session was accepted.
    pub session_started_ms: Option<u64>,
    pub last_close_code: Option<u16>,
    pub last_close_reason: Option<String>,
    pub last_error: Option<String>,
    /// The session's protocol: `"v2"` or `"v1"` (None before the first handshake).
    pub protocol: Option<String>,
    /// The encrypted leg, on a v2 session.
    pub encrypted_leg: Option<EncryptedLegStatus>,
    /// In-band rekeys this session so far.
    pub rekeys: u64,
    /// This coordinator refused v2's first frame, so `auto` now speaks v1 to it.
    pub v1_fallback: bool,
}

/// What the UI shows of a session's encryption.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EncryptedLegStatus {
    pub alg: String,
    pub kid: String,
    /// Chunks carry the per-request envelope.
    pub chunk_envelope: bool,
    /// In-band rekey was negotiated.
    pub in_band_rekey: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveJob {
    pub request_id: String,
    pub model: String,
    pub stream: bool,
    pub started_ms: u64,
    pub completion_tokens: u64,
    pub tokens_per_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedJob {
    pub request_id: String,
    /// The session (`hello_ack` `assigned_id`) that served it; `None` if it ended before one.
    #[serde(default)]
    pub assigned_id: Option<String>,
    pub model: String,
    pub outcome: JobOutcome,
    /// The end status sent (or that would have been sent), e.g. `complete`, `error_queue_full`.
    pub status: String,
    /// Why it did not complete, in words.
    pub reason: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub started_ms: u64,
    pub ended_ms: u64,
    #[serde(default)]
    pub prefill_ms: u64,
    #[serde(default)]
    pub decode_ms: u64,
}

/// One model as the coordinator's gateway lists it in `/v1/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolModel {
    pub id: String,
    pub provider_count: u64,
    pub ready_provider_count: u64,
    pub total_slots: u64,
    pub slots_free: u64,
    pub available: bool,
    /// `available`, `no_awake_provider` or `no_free_slots`.
    pub availability: String,
}

/// The pool as the gateway's `/v1/status` shows it (polled; the coordinator pushes nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolView {
    /// Where it is polled from: the coordinator's host and port over http(s).
    pub gateway_url: String,
    /// `up` / `idle` / `degraded` / `down`, as the gateway says.
    pub status: Option<String>,
    pub providers_total: u64,
    pub providers_ready: u64,
    pub models: Vec<PoolModel>,
    /// Unix ms of the last successful poll.
    pub fetched_ms: Option<u64>,
    /// Why the last poll failed (the gateway may not exist at all); the figures above are then the
    /// last good ones.
    pub error: Option<String>,
}

/// Earnings at a glance. `estimated_*` is our rate-card estimate from the local ledger;
/// `credited_*` is what the coordinator's earnings endpoint reported. They are never mixed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EarningsBrief {
    pub today_estimated_credits: i64,
    pub last_7_days_estimated_credits: i64,
    pub last_30_days_estimated_credits: i64,
    pub total_estimated_credits: i64,
    pub today_jobs: u64,
    pub total_jobs: u64,
    /// Jobs cut by a disconnect or a crash: served work nobody pays for.
    pub lost_jobs: u64,
    pub credited_total_credits: Option<i64>,
    pub credited_window_credits: Option<i64>,
    pub credited_fetched_ms: Option<i64>,
    /// `total_estimated_credits − credited_total_credits`.
    pub estimated_minus_credited: Option<i64>,
    /// The rate card the estimates use, and where it came from (`coordinator` or `builtin`).
    pub rate_card_version: String,
    pub rate_card_source: String,
    /// The card's dollars per million credits, for showing dollars beside credits. 0 (a snapshot
    /// built by `Default`) means "not said": converters read it as 1.0, the protocol's rate
    /// (`hearth_ledger::money::effective_rate`).
    pub usd_per_million_credits: f64,
    /// The last problem with the ledger or the earnings endpoint.
    pub error: Option<String>,
}

/// The settings file as the app sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsState {
    pub path: String,
    /// Field errors of the last rejected edit; empty when the file on disk is in force.
    pub errors: Vec<FieldError>,
    /// Settings overridden by command-line flags (a file edit of those changes nothing).
    pub pinned: Vec<String>,
}

/// The power policy's verdict as the user sees it: which rule holds, why, and what the probes read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PowerView {
    /// The rule in force: `none`, `battery`, `thermal`, `user_active` or `schedule`.
    pub rule: String,
    /// `serving` (every slot), `yielding` / `backing_off` (fewer slots), `pausing` (finishing the
    /// jobs it holds, taking none) or `paused`.
    pub mode: String,
    /// In words, e.g. "Paused: on battery at 38 %, below 50 %".
    pub reason: String,
    /// Slots the policy allows now, of `slots_total`.
    pub slots_allowed: u32,
    pub slots_total: u32,
    /// `external`, `battery` or `unknown`.
    pub power_source: String,
    pub charge_percent: Option<u8>,
    /// `nominal`, `fair`, `serious`, `critical`; `None` without a thermal probe.
    pub thermal: Option<String>,
    /// Seconds since the last keyboard or mouse input; `None` when it cannot be known.
    pub idle_s: Option<u64>,
    /// The machine is kept from idle-sleeping while it serves.
    pub keep_awake: bool,
    /// Unix ms the verdict took effect.
    pub since_ms: u64,
}

impl Default for PowerView {
    fn default() -> Self {
        PowerView {
            rule: "none".into(),
            mode: "serving".into(),
            reason: "Serving: no power rule applies".into(),
            slots_allowed: 0,
            slots_total: 0,
            power_source: "unknown".into(),
            charge_percent: None,
            thermal: None,
            idle_s: None,
            keep_awake: false,
            since_ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub phase: ProviderPhase,
    /// Why the provider is in this phase ("why am I not earning?").
    pub reason: String,
    pub provider_id: String,
    pub model_id: String,
    pub engine: String,
    pub slots_total: u32,
    pub slots_free: u32,
    pub connection: ConnectionHealth,
    pub active_jobs: Vec<ActiveJob>,
    pub recent_jobs: VecDeque<FinishedJob>,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub jobs_lost: u64,
    pub updated_ms: u64,
    /// "Why am I not earning?": set whenever the provider is not serving, in words.
    #[serde(default)]
    pub not_earning: Option<String>,
    /// Unix ms of the last request the coordinator routed here (any outcome).
    #[serde(default)]
    pub last_request_ms: Option<u64>,
    /// Ready this long without a request and `not_earning` says so.
    #[serde(default = "default_idle_alert")]
    pub idle_alert_after_s: u64,
    #[serde(default)]
    pub pool: Option<PoolView>,
    #[serde(default)]
    pub earnings: EarningsBrief,
    #[serde(default)]
    pub settings: SettingsState,
    /// The power policy in force (the app's; a bare provider has none).
    #[serde(default)]
    pub power: Option<PowerView>,
    /// A model being loaded beside the one serving, to take over between jobs.
    #[serde(default)]
    pub switching_to: Option<String>,
}

fn default_idle_alert() -> u64 {
    DEFAULT_IDLE_ALERT_S
}

impl Status {
    pub fn new(provider_id: &str, model_id: &str, engine: &str, slots: u32, url: &str) -> Self {
        Self {
            phase: ProviderPhase::Stopped,
            reason: "not started".into(),
            provider_id: provider_id.into(),
            model_id: model_id.into(),
            engine: engine.into(),
            slots_total: slots,
            slots_free: slots,
            connection: ConnectionHealth { coordinator_url: url.into(), ..Default::default() },
            active_jobs: vec![],
            recent_jobs: VecDeque::new(),
            jobs_completed: 0,
            jobs_failed: 0,
            jobs_lost: 0,
            updated_ms: unix_ms(),
            not_earning: None,
            last_request_ms: None,
            idle_alert_after_s: DEFAULT_IDLE_ALERT_S,
            pool: None,
            earnings: EarningsBrief::default(),
            settings: SettingsState::default(),
            power: None,
            switching_to: None,
        }
    }

    /// A provider (re)starts with these settings: identity, model and connection start afresh;
    /// history, earnings, the pool view and the settings state are kept.
    pub fn reset_for_start(
        &mut self,
        provider_id: &str,
        model_id: &str,
        engine: &str,
        slots: u32,
        url: &str,
    ) {
        self.provider_id = provider_id.into();
        self.model_id = model_id.into();
        self.engine = engine.into();
        self.slots_total = slots;
        self.slots_free = slots;
        self.connection = ConnectionHealth { coordinator_url: url.into(), ..Default::default() };
        self.active_jobs.clear();
        self.set_phase(ProviderPhase::Connecting, format!("connecting to {url}"));
    }

    /// Recomputes the derived fields (today only [`Status::not_earning`]).
    fn derive(&mut self, now_ms: u64) {
        self.not_earning = explain(self, now_ms);
    }

    pub fn set_phase(&mut self, phase: ProviderPhase, reason: impl Into<String>) {
        self.phase = phase;
        self.reason = reason.into();
    }

    /// Moves a job from the active list to the history.
    pub fn finish_job(&mut self, job: FinishedJob) {
        self.active_jobs.retain(|j| j.request_id != job.request_id);
        self.last_request_ms = Some(self.last_request_ms.unwrap_or(0).max(job.ended_ms));
        match job.outcome {
            JobOutcome::Complete => self.jobs_completed += 1,
            JobOutcome::Cancelled => {}
            JobOutcome::Error(_) => self.jobs_failed += 1,
            JobOutcome::Lost => self.jobs_lost += 1,
        }
        if self.recent_jobs.len() == RECENT_JOBS {
            self.recent_jobs.pop_back();
        }
        self.recent_jobs.push_front(job);
    }
}

/// Publishes [`Status`] snapshots.
#[derive(Clone)]
pub struct StatusHub {
    tx: watch::Sender<Status>,
}

impl StatusHub {
    pub fn new(mut initial: Status) -> Self {
        initial.derive(unix_ms());
        Self { tx: watch::Sender::new(initial) }
    }

    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        self.tx.send_modify(|s| {
            f(s);
            let now = unix_ms();
            s.updated_ms = now;
            s.derive(now);
        });
    }

    /// Re-derives the time-dependent fields ("no requests for N minutes") and notifies
    /// subscribers only if something changed. Returns whether it did.
    pub fn refresh(&self) -> bool {
        self.tx.send_if_modified(|s| {
            let now = unix_ms();
            let before = s.not_earning.clone();
            s.derive(now);
            let changed = s.not_earning != before;
            if changed {
                s.updated_ms = now;
            }
            changed
        })
    }

    pub fn snapshot(&self) -> Status {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.tx.subscribe()
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Now as an RFC 3339 UTC timestamp (a `state_update`'s `since`, the control API's keepalives).
pub fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Why the provider is not earning right now, in one specific sentence; `None` while it is serving
/// (ready and recently routed, or working).
pub fn explain(s: &Status, now_ms: u64) -> Option<String> {
    let c = &s.connection;
    match s.phase {
        ProviderPhase::Stopped => Some(format!("the provider is stopped ({}); start it to earn", s.reason)),
        ProviderPhase::Connecting => Some(match &c.last_error {
            Some(e) => format!("not connected to the coordinator yet (last attempt: {e})"),
            None => format!("not connected yet: connecting to {}", c.coordinator_url),
        }),
        ProviderPhase::Offline => Some(format!("not connected to the coordinator: {}", s.reason)),
        ProviderPhase::Error | ProviderPhase::Paused => Some(s.reason.clone()),
        ProviderPhase::Draining => {
            Some("draining: finishing in-flight requests and taking no new ones".to_string())
        }
        ProviderPhase::Degraded => Some(
            "warming up: the coordinator asked for a health check after a long gap; requests resume when it passes"
                .to_string(),
        ),
        ProviderPhase::Busy => Some(format!(
            "all {} slot(s) are busy: new requests are turned away until one frees",
            s.slots_total
        )),
        ProviderPhase::Ready => {
            let since = c.session_started_ms.unwrap_or(now_ms).max(s.last_request_ms.unwrap_or(0));
            let idle_ms = now_ms.saturating_sub(since);
            let threshold_ms = s.idle_alert_after_s.saturating_mul(1000);
            if threshold_ms == 0 || idle_ms < threshold_ms {
                return None;
            }
            let minutes = idle_ms / 60_000;
            let mut text = format!("ready, but the coordinator has routed no requests here for {minutes} minute(s)");
            if let Some(pool) = s.pool.as_ref().filter(|p| p.fetched_ms.is_some()) {
                match pool.models.iter().find(|m| m.id == s.model_id) {
                    Some(m) if m.provider_count > 1 => text.push_str(&format!(
                        "; {} providers offer {} with {} free slot(s), so demand is spread thin",
                        m.provider_count, s.model_id, m.slots_free
                    )),
                    Some(_) => text.push_str("; no buyer has asked for this model lately"),
                    None => text.push_str(&format!(
                        "; the pool's status does not list {} (buyers may not see it)",
                        s.model_id
                    )),
                }
            }
            Some(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(now: u64) -> Status {
        let mut s = Status::new("p", "m", "scripted", 2, "ws://127.0.0.1:1/ws/provider");
        s.set_phase(ProviderPhase::Ready, "serving");
        s.connection.connected = true;
        s.connection.session_started_ms = Some(now - 1_000);
        s
    }

    #[test]
    fn serving_says_nothing_and_idle_says_how_long() {
        let now = 10_000_000;
        let mut s = ready(now);
        assert_eq!(explain(&s, now), None);
        s.idle_alert_after_s = 60;
        s.connection.session_started_ms = Some(now - 5 * 60_000);
        let text = explain(&s, now).unwrap();
        assert!(text.contains("no requests here for 5 minute(s)"), "{text}");
        // A request a moment ago resets the clock.
        s.last_request_ms = Some(now - 1_000);
        assert_eq!(explain(&s, now), None);
        s.last_request_ms = Some(now - 3 * 60_000);
        s.pool = Some(PoolView {
            fetched_ms: Some(now),
            models: vec![PoolModel {
                id: "m".into(),
                provider_count: 4,
                slots_free: 7,
                ..Default::default()
            }],
            ..Default::default()
        });
        let text = explain(&s, now).unwrap();
        assert!(text.contains("3 minute(s)") && text.contains("4 providers offer m"), "{text}");
    }

    #[test]
    fn not_serving_is_explained() {
        let now = 10_000_000;
        let mut s = ready(now);
        s.set_phase(ProviderPhase::Busy, "full");
        assert!(explain(&s, now).unwrap().contains("all 2 slot(s) are busy"));
        s.set_phase(ProviderPhase::Offline, "cannot reach 127.0.0.1:1: refused; retrying in 2.0 s");
        assert!(explain(&s, now).unwrap().starts_with("not connected to the coordinator: cannot reach"));
        s.set_phase(ProviderPhase::Error, "model not loaded: no such directory");
        assert_eq!(explain(&s, now).unwrap(), "model not loaded: no such directory");
        s.set_phase(ProviderPhase::Stopped, "stopped by the user");
        assert!(explain(&s, now).unwrap().contains("stopped (stopped by the user)"));
    }

    #[test]
    fn hub_derives_on_update_and_refresh_only_notifies_changes() {
        let hub = StatusHub::new(Status::new("p", "m", "scripted", 1, "ws://x"));
        assert!(hub.snapshot().not_earning.unwrap().contains("stopped"));
        let mut rx = hub.subscribe();
        rx.borrow_and_update();
        assert!(!hub.refresh());
        assert!(!rx.has_changed().unwrap());
        hub.update(|s| s.set_phase(ProviderPhase::Ready, "serving"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(hub.snapshot().not_earning, None);
    }

    #[test]
    fn finished_jobs_count_by_outcome_and_show_it_as_the_ledger_stores_it() {
        let mut s = ready(10_000_000);
        let job = |id: &str, outcome: JobOutcome| FinishedJob {
            request_id: id.into(),
            assigned_id: None,
            model: "m".into(),
            outcome,
            status: String::new(),
            reason: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            started_ms: 1,
            ended_ms: 2,
            prefill_ms: 0,
            decode_ms: 0,
        };
        s.finish_job(job("a", JobOutcome::Complete));
        s.finish_job(job("b", JobOutcome::Error("error_queue_full".into())));
        s.finish_job(job("c", JobOutcome::Lost));
        s.finish_job(job("d", JobOutcome::Cancelled));
        assert_eq!((s.jobs_completed, s.jobs_failed, s.jobs_lost), (1, 1, 1));
        let json = serde_json::to_value(&s).unwrap();
        let outcomes: Vec<_> =
            json["recent_jobs"].as_array().unwrap().iter().map(|j| j["outcome"].clone()).collect();
        assert_eq!(outcomes, ["cancelled", "lost", "error:error_queue_full", "complete"]);
        let back: Status = serde_json::from_value(json).unwrap();
        assert_eq!(back.recent_jobs, s.recent_jobs);
    }
}
