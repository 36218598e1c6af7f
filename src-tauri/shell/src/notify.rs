//! Which state changes deserve a desktop notification: offline for over a minute, back online
//! after that, and a new error. Everything else (starting, stopping, busy, short blips) stays quiet,
//! because a menu-bar app that chatters gets its notifications turned off.

use hearth_engine::status::ProviderPhase;

/// How long the provider must be unable to reach the coordinator before the user is told.
pub const OFFLINE_NOTICE_AFTER_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Offline { reason: String },
    BackOnline,
    Error { reason: String },
}

impl Notice {
    pub fn title(&self) -> &'static str {
        match self {
            Notice::Offline { .. } => "Hearth is offline",
            Notice::BackOnline => "Hearth is back online",
            Notice::Error { .. } => "Hearth stopped with an error",
        }
    }

    pub fn body(&self) -> String {
        match self {
            Notice::Offline { reason } => format!("Not connected to the pool for over a minute: {reason}"),
            Notice::BackOnline => "Connected to the pool again and taking requests.".into(),
            Notice::Error { reason } => reason.clone(),
        }
    }
}

/// Remembers what was already said. Fed every snapshot, and on a timer (an outage grows old
/// without the snapshot changing).
#[derive(Debug, Default)]
pub struct Notifier {
    /// When the provider last lost (or failed to get) its connection while meant to serve.
    offline_since_ms: Option<u64>,
    told_offline: bool,
    last_phase: Option<ProviderPhase>,
}

impl Notifier {
    pub fn observe(&mut self, phase: ProviderPhase, reason: &str, now_ms: u64) -> Option<Notice> {
        use ProviderPhase::*;
        let previous = self.last_phase.replace(phase);
        match phase {
            Offline | Connecting => {
                let since = *self.offline_since_ms.get_or_insert(now_ms);
                if !self.told_offline && now_ms.saturating_sub(since) >= OFFLINE_NOTICE_AFTER_MS {
                    self.told_offline = true;
                    return Some(Notice::Offline { reason: reason.to_string() });
                }
                None
            }
            Ready | Busy | Degraded | Draining => {
                let was_told = std::mem::take(&mut self.told_offline);
                self.offline_since_ms = None;
                was_told.then_some(Notice::BackOnline)
            }
            Error => {
                self.offline_since_ms = None;
                self.told_offline = false;
                (previous != Some(Error)).then(|| Notice::Error { reason: reason.to_string() })
            }
            // The user (or the battery) stopped it: nothing to report, and any outage is over.
            Stopped | Paused => {
                self.offline_since_ms = None;
                self.told_offline = false;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProviderPhase::*;

    #[test]
    fn a_short_blip_is_quiet_a_long_outage_is_told_once_and_its_end_too() {
        let mut n = Notifier::default();
        assert_eq!(n.observe(Ready, "", 0), None);
        assert_eq!(n.observe(Offline, "refused", 1_000), None);
        assert_eq!(n.observe(Connecting, "retrying", 30_000), None);
        assert_eq!(n.observe(Ready, "", 40_000), None, "back within a minute: nothing to say");

        assert_eq!(n.observe(Offline, "refused", 100_000), None);
        let told = n.observe(Offline, "refused", 160_000).expect("a minute offline");
        assert!(matches!(&told, Notice::Offline { reason } if reason == "refused"));
        assert!(told.body().contains("refused"));
        assert_eq!(n.observe(Offline, "refused", 220_000), None, "said once");
        assert_eq!(n.observe(Ready, "", 230_000), Some(Notice::BackOnline));
        assert_eq!(n.observe(Busy, "", 231_000), None);
    }

    #[test]
    fn errors_are_told_when_they_start_and_stops_are_not() {
        let mut n = Notifier::default();
        assert_eq!(n.observe(Stopped, "", 0), None);
        assert_eq!(
            n.observe(Error, "model not loaded", 1),
            Some(Notice::Error { reason: "model not loaded".into() })
        );
        assert_eq!(n.observe(Error, "model not loaded", 2), None);
        assert_eq!(n.observe(Stopped, "", 3), None);
        // An outage the user ended by stopping is not "back online" later.
        assert_eq!(n.observe(Offline, "x", 10), None);
        assert_eq!(n.observe(Offline, "x", 70_010), Some(Notice::Offline { reason: "x".into() }));
        assert_eq!(n.observe(Stopped, "", 70_020), None);
        assert_eq!(n.observe(Ready, "", 80_000), None);
    }
}
