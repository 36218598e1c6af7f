//! Liveness: a text `heartbeat` frame on its own wall-clock timer.
//!
//! The ticker is a separate task that only reads small shared counters, so nothing the handler or
//! an inference thread does (a stalled prefill, a drain wait, a disk write) can delay it. It sends
//! through the writer's priority lane. It never sends WebSocket pings (PROTOCOL.md, "The seed's
//! hazard").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_protocol::{Heartbeat, ProviderMessage};

use super::metrics::MetricsAccumulator;
use super::shared::{SessionFlags, Shared};
use super::writer::Outbox;
use crate::status::unix_ms;

/// Sends a heartbeat every `tick` until the session's outbox closes.
pub struct HeartbeatTicker {
    pub tick: Duration,
    pub interval: Duration,
}

impl HeartbeatTicker {
    /// `tick = min(interval, cap)`; an interval of 0 from a confused coordinator counts as 1 s.
    pub fn new(ack_interval_s: u64, cap: Duration) -> Self {
        let interval = Duration::from_secs(ack_interval_s.max(1));
        Self { tick: interval.min(cap), interval }
    }

    pub async fn run(self, shared: Arc<Shared>, flags: Arc<SessionFlags>, outbox: Outbox) {
        let mut timer = tokio::time::interval(self.tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            let heartbeat = build(&shared, &flags, &shared.metrics, self.interval);
            if !outbox.send_priority(&ProviderMessage::Heartbeat(heartbeat)) {
                return;
            }
            shared.status.update(|s| s.connection.last_heartbeat_sent_ms = Some(unix_ms()));
        }
    }
}

/// One heartbeat as of now; the ticker's, and the state reporter's after a model swap.
pub(super) fn build(
    shared: &Shared,
    flags: &SessionFlags,
    metrics: &Mutex<MetricsAccumulator>,
    interval: Duration,
) -> Heartbeat {
    let engine = shared.engine();
    let d = engine.descriptor();
    let (state, _) = shared.state(flags);
    let window = metrics.lock().unwrap_or_else(|e| e.into_inner()).report(interval, Instant::now());
    Heartbeat {
        status: state,
        model_id: d.model_id.clone(),
        model_params_b: d.params_b,
        ram_gb: shared.config.ram_gb,
        max_context_tokens: d.max_context_tokens,
        max_concurrency: shared.slots_offered(),
        slots_free: shared.slots_free(),
        slots_total: shared.slot_limit(),
        throughput_tps_estimate: d.throughput_tps_estimate,
        window,
        loading: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_capped() {
        assert_eq!(HeartbeatTicker::new(30, Duration::from_secs(5)).tick, Duration::from_secs(5));
        assert_eq!(HeartbeatTicker::new(2, Duration::from_secs(5)).tick, Duration::from_secs(2));
        assert_eq!(HeartbeatTicker::new(0, Duration::from_secs(5)).tick, Duration::from_secs(1));
    }
}
