//! Liveness: a text `heartbeat` frame on its own wall-clock timer.
//!
//! The ticker is a separate task that only reads small shared counters, so nothing the handler or
//! an inference thread does (a stalled prefill, a drain wait, a disk write) can delay it. It sends
//! through the writer's priority lane. It never sends WebSocket pings (PROTOCOL.md, "The seed's
//! hazard").

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_protocol::{Heartbeat, MetricsWindow, ProviderMessage};

use super::writer::Outbox;
use super::Shared;
use crate::status::unix_ms;

/// The heartbeat's metrics window: requests served, mean latency and throughput since the window
/// opened. It rolls once per full coordinator interval; the extra keepalive ticks in between repeat
/// the window as it accumulates.
#[derive(Debug)]
pub struct MetricsAccumulator {
    opened: Instant,
    served: u64,
    latency_ms_sum: f64,
    tokens: u64,
    decode_secs: f64,
}

impl Default for MetricsAccumulator {
    fn default() -> Self {
        Self { opened: Instant::now(), served: 0, latency_ms_sum: 0.0, tokens: 0, decode_secs: 0.0 }
    }
}

impl MetricsAccumulator {
    pub fn record(&mut self, latency: Duration, completion_tokens: u64, decode_time: Duration) {
        self.served += 1;
        self.latency_ms_sum += latency.as_secs_f64() * 1000.0;
        self.tokens += completion_tokens;
        self.decode_secs += decode_time.as_secs_f64();
    }

    /// The window to report now; rolls it when a full `interval` has passed since it opened.
    pub fn report(&mut self, interval: Duration, now: Instant) -> MetricsWindow {
        let window = self.current();
        if now.duration_since(self.opened) >= interval {
            *self = Self { opened: now, ..Self::default() };
        }
        window
    }

    pub fn current(&self) -> MetricsWindow {
        MetricsWindow {
            requests_served_since_last: self.served,
            avg_latency_ms_since_last: (self.served > 0).then(|| self.latency_ms_sum / self.served as f64),
            throughput_tps_since_last: (self.decode_secs > 0.0)
                .then(|| self.tokens as f64 / self.decode_secs),
        }
    }
}

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

    pub async fn run(
        self,
        shared: std::sync::Arc<Shared>,
        flags: std::sync::Arc<super::SessionFlags>,
        outbox: Outbox,
    ) {
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

fn build(
    shared: &Shared,
    flags: &super::SessionFlags,
    metrics: &Mutex<MetricsAccumulator>,
    interval: Duration,
) -> Heartbeat {
    let d = shared.engine.descriptor();
    let (state, _) = shared.state(flags);
    let window = metrics.lock().unwrap_or_else(|e| e.into_inner()).report(interval, Instant::now());
    Heartbeat {
        status: state,
        model_id: d.model_id.clone(),
        model_params_b: d.params_b,
        ram_gb: shared.config.ram_gb,
        max_context_tokens: d.max_context_tokens,
        max_concurrency: shared.config.slots,
        slots_free: shared.slots_free(),
        slots_total: shared.config.slots,
        throughput_tps_estimate: d.throughput_tps_estimate,
        window,
        loading: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rolls_once_per_full_interval() {
        let mut m = MetricsAccumulator::default();
        let start = m.opened;
        m.record(Duration::from_millis(100), 10, Duration::from_secs(1));
        let interval = Duration::from_secs(30);
        // A keepalive tick inside the interval repeats the accumulating window.
        let w = m.report(interval, start + Duration::from_secs(5));
        assert_eq!(w.requests_served_since_last, 1);
        m.record(Duration::from_millis(300), 30, Duration::from_secs(1));
        let w = m.report(interval, start + Duration::from_secs(10));
        assert_eq!(w.requests_served_since_last, 2);
        assert_eq!(w.avg_latency_ms_since_last, Some(200.0));
        assert_eq!(w.throughput_tps_since_last, Some(20.0));
        // The tick at the end of the interval reports the full window, then it rolls.
        let w = m.report(interval, start + Duration::from_secs(30));
        assert_eq!(w.requests_served_since_last, 2);
        let w = m.report(interval, start + Duration::from_secs(35));
        assert_eq!(w.requests_served_since_last, 0);
        assert_eq!(w.avg_latency_ms_since_last, None);
    }

    #[test]
    fn tick_is_capped() {
        assert_eq!(HeartbeatTicker::new(30, Duration::from_secs(5)).tick, Duration::from_secs(5));
        assert_eq!(HeartbeatTicker::new(2, Duration::from_secs(5)).tick, Duration::from_secs(2));
        assert_eq!(HeartbeatTicker::new(0, Duration::from_secs(5)).tick, Duration::from_secs(1));
    }
}
