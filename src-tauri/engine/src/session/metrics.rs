//! The metrics window a provider reports: requests served, mean latency and throughput since the
//! window opened. The relay records each completed job into it; the heartbeat reports (and rolls) it,
//! and every `state_update` carries its current figures.

use std::time::{Duration, Instant};

use hearth_protocol::MetricsWindow;

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
}
