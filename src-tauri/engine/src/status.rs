//! The one observable snapshot of the provider: everything the CLI, the control API, the tray and the
//! UI show comes from [`Status`], published through a [`StatusHub`].
//!
//! Writers call [`StatusHub::update`] with a closure; readers hold a `watch::Receiver` and see the
//! newest snapshot (intermediate ones may be skipped, which is what a UI wants).

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How many finished jobs the snapshot keeps.
pub const RECENT_JOBS: usize = 100;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// Finished and its end frame was handed to the coordinator.
    Complete,
    Cancelled,
    /// Ended with an `error_*` status.
    Failed,
    /// Cut by a lost connection: the coordinator will never see its end, the buyer got an error, and
    /// nobody pays for it.
    Lost,
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
        }
    }

    pub fn set_phase(&mut self, phase: ProviderPhase, reason: impl Into<String>) {
        self.phase = phase;
        self.reason = reason.into();
    }

    /// Moves a job from the active list to the history.
    pub fn finish_job(&mut self, job: FinishedJob) {
        self.active_jobs.retain(|j| j.request_id != job.request_id);
        match job.outcome {
            JobOutcome::Complete => self.jobs_completed += 1,
            JobOutcome::Cancelled => {}
            JobOutcome::Failed => self.jobs_failed += 1,
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
    pub fn new(initial: Status) -> Self {
        Self { tx: watch::Sender::new(initial) }
    }

    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        self.tx.send_modify(|s| {
            f(s);
            s.updated_ms = unix_ms();
        });
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
