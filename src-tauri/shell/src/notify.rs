//! Which state changes deserve a desktop notification: offline for over a minute, back online
//! after that, a new error, and the power policy pausing serving and ending that pause. Everything
//! else (starting, stopping, busy, short blips, yielding a slot to the user) stays quiet, because a
//! menu-bar app that chatters gets its notifications turned off.

use hearth_engine::status::{PowerView, ProviderPhase};

/// How long the provider must be unable to reach the coordinator before the user is told.
pub const OFFLINE_NOTICE_AFTER_MS: u64 = 60_000;
/// At most one power notice this often: a laptop on the edge of its battery threshold, or a user
/// coming and going, would otherwise flip the policy (and the notices) every few minutes.
pub const POWER_NOTICE_GAP_MS: u64 = 10 * 60_000;

/// `PowerPaused` carries the policy's reason ("Paused: on battery…"); `ServingAgain` ends a pause
/// that was told, with `detail` saying how when it is not with every slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Offline { reason: String },
    BackOnline,
    Error { reason: String },
    PowerPaused { reason: String },
    ServingAgain { detail: Option<String> },
}

impl Notice {
    pub fn title(&self) -> &'static str {
        match self {
            Notice::Offline { .. } => "Hearth is offline",
            Notice::BackOnline => "Hearth is back online",
            Notice::Error { .. } => "Hearth stopped with an error",
            Notice::PowerPaused { .. } => "Hearth paused",
            Notice::ServingAgain { .. } => "Hearth is serving again",
        }
    }

    pub fn body(&self) -> String {
        match self {
            Notice::Offline { reason } => format!("Not connected to the pool for over a minute: {reason}"),
            Notice::BackOnline => "Connected to the pool again and taking requests.".into(),
            Notice::Error { reason } => reason.clone(),
            Notice::PowerPaused { reason } => {
                // The title already says "paused"; the body is the why.
                let why =
                    ["Paused: ", "Pausing: "].iter().find_map(|p| reason.strip_prefix(p)).unwrap_or(reason);
                let mut chars = why.trim_end_matches('.').chars();
                let why: String =
                    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
                format!("{why}. Serving resumes by itself when that changes.")
            }
            Notice::ServingAgain { detail } => {
                detail.clone().unwrap_or_else(|| "Taking requests again.".into())
            }
        }
    }
}

/// The policy takes no new work in these modes (`pausing` finishes what it holds).
fn is_pause(p: &PowerView) -> bool {
    matches!(p.mode.as_str(), "pausing" | "paused")
}

/// Remembers what was already said. Fed every snapshot, and on a timer (an outage grows old
/// without the snapshot changing).
#[derive(Debug, Default)]
pub struct Notifier {
    /// When the provider last lost (or failed to get) its connection while meant to serve.
    offline_since_ms: Option<u64>,
    told_offline: bool,
    last_phase: Option<ProviderPhase>,
    /// The power policy's current pause was announced (so its end will be).
    told_power_pause: bool,
    last_power_notice_ms: Option<u64>,
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
            // The user (or the power policy) stopped it: nothing to report here, and any outage
            // is over. A policy pause is told by `observe_power`.
            Stopped | Paused => {
                self.offline_since_ms = None;
                self.told_offline = false;
                None
            }
        }
    }

    /// The power policy's pauses: told when one starts (or, if a notice went out less than
    /// [`POWER_NOTICE_GAP_MS`] ago, once the gap has passed and it still holds), and its end told
    /// whenever its start was — even inside the gap, or the user would think it still paused.
    pub fn observe_power(
        &mut self,
        phase: ProviderPhase,
        power: Option<&PowerView>,
        now_ms: u64,
    ) -> Option<Notice> {
        let power = match (phase, power) {
            // Stopped by the user or by an error (told on its own): the pause ends unremarked.
            (ProviderPhase::Stopped | ProviderPhase::Error, _) | (_, None) => {
                self.told_power_pause = false;
                return None;
            }
            (_, Some(p)) => p,
        };
        if !is_pause(power) {
            if !std::mem::take(&mut self.told_power_pause) {
                return None;
            }
            self.last_power_notice_ms = Some(now_ms);
            let detail = (power.mode != "serving").then(|| power.reason.clone());
            return Some(Notice::ServingAgain { detail });
        }
        let recent =
            self.last_power_notice_ms.is_some_and(|t| now_ms.saturating_sub(t) < POWER_NOTICE_GAP_MS);
        if self.told_power_pause || recent {
            return None;
        }
        self.told_power_pause = true;
        self.last_power_notice_ms = Some(now_ms);
        Some(Notice::PowerPaused { reason: power.reason.clone() })
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

    fn power(mode: &str, reason: &str) -> PowerView {
        PowerView { mode: mode.into(), reason: reason.into(), ..Default::default() }
    }

    const MIN: u64 = 60_000;

    #[test]
    fn a_power_pause_is_told_with_its_reason_and_so_is_its_end() {
        let mut n = Notifier::default();
        let serving = power("serving", "Serving: no power rule applies");
        let battery = power("paused", "Paused: on battery at 38 %, below 50 %");
        assert_eq!(n.observe_power(Ready, Some(&serving), 0), None);
        assert_eq!(
            n.observe_power(
                Ready,
                Some(&power("yielding", "Yielding: you are using this Mac — 1 of 4 slots")),
                1
            ),
            None
        );
        let told = n
            .observe_power(Busy, Some(&power("pausing", "Pausing: on battery at 38 %, below 50 %")), 2)
            .unwrap();
        assert_eq!(told.title(), "Hearth paused");
        assert_eq!(
            told.body(),
            "On battery at 38 %, below 50 %. Serving resumes by itself when that changes."
        );
        assert_eq!(n.observe_power(Paused, Some(&battery), 3), None, "pausing → paused is one pause");
        assert_eq!(n.observe_power(Paused, Some(&battery), 5 * MIN), None);
        // Its end is told at once, inside the gap: the user was told it paused.
        let back = n.observe_power(Ready, Some(&serving), 6 * MIN).unwrap();
        assert_eq!(
            (back.title(), back.body().as_str()),
            ("Hearth is serving again", "Taking requests again.")
        );
        assert_eq!(n.observe_power(Ready, Some(&serving), 7 * MIN), None);
    }

    #[test]
    fn power_notices_come_at_most_every_ten_minutes_but_a_held_pause_is_told_late() {
        let mut n = Notifier::default();
        let serving = power("serving", "Serving: no power rule applies");
        let paused = power("paused", "Paused: outside the schedule");
        assert!(matches!(n.observe_power(Ready, Some(&paused), 0), Some(Notice::PowerPaused { .. })));
        assert!(matches!(n.observe_power(Ready, Some(&serving), MIN), Some(Notice::ServingAgain { .. })));
        // Flapping inside the gap stays quiet; a pause that was never told has no end to tell.
        assert_eq!(n.observe_power(Paused, Some(&paused), 2 * MIN), None);
        assert_eq!(n.observe_power(Ready, Some(&serving), 3 * MIN), None);
        assert_eq!(n.observe_power(Paused, Some(&paused), 4 * MIN), None);
        assert_eq!(n.observe_power(Paused, Some(&paused), 10 * MIN), None, "9 min since the last notice");
        // Still paused once the gap has passed (the timer re-checks): told then.
        assert_eq!(
            n.observe_power(Paused, Some(&paused), 11 * MIN),
            Some(Notice::PowerPaused { reason: "Paused: outside the schedule".into() })
        );
        // Resuming with fewer slots is serving again, and says how.
        let yielding = power("yielding", "Yielding: you are using this Mac — 1 of 4 slots");
        let back = n.observe_power(Ready, Some(&yielding), 11 * MIN + 1).unwrap();
        assert_eq!(back.body(), "Yielding: you are using this Mac — 1 of 4 slots");
    }

    #[test]
    fn a_power_pause_ended_by_a_stop_is_not_serving_again() {
        let mut n = Notifier::default();
        let paused = power("paused", "Paused: thermal state critical");
        assert!(n.observe_power(Paused, Some(&paused), 0).is_some());
        assert_eq!(n.observe_power(Stopped, Some(&paused), 1), None);
        assert_eq!(n.observe_power(Ready, Some(&PowerView::default()), 2), None, "the user's stop ended it");
        assert_eq!(n.observe_power(Ready, None, 3), None);
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
