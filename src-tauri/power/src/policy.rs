//! The one power policy: the probes' readings, the user's `[power]` settings and the local time go
//! in; a [`Verdict`] comes out — serve with N slots, or pause — naming the rule and saying why.
//!
//! Hysteresis, so a flapping input cannot produce a storm of state updates:
//! * a stricter verdict (a pause, fewer slots) takes effect at once: getting out of the way is
//!   never late;
//! * a looser one takes effect only after it has held without a break for `relax_after`;
//! * a battery pause below a threshold lifts only at [`BATTERY_MARGIN`] points above it.

use std::time::{Duration, Instant};

use hearth_settings::{OnBattery, OnThermal, OnUserActive, PowerSettings};
use jiff::civil::DateTime;

use crate::readings::{PowerSource, Readings, ThermalLevel};
use crate::schedule;

/// Percentage points above the threshold a battery must charge to before a pause lifts.
pub const BATTERY_MARGIN: u8 = 5;
/// How long a looser verdict must hold before it is adopted, by default.
pub const DEFAULT_RELAX_AFTER: Duration = Duration::from_secs(20);

/// Which rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    None,
    Battery,
    Thermal,
    UserActive,
    Schedule,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::None => "none",
            Rule::Battery => "battery",
            Rule::Thermal => "thermal",
            Rule::UserActive => "user_active",
            Rule::Schedule => "schedule",
        }
    }
}

/// What the machine should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub rule: Rule,
    /// Take no new work; finish what is held, then go offline.
    pub pause: bool,
    /// Slots allowed while serving (≤ the slots offered; meaningless when paused).
    pub slots: u32,
    /// In words, for people: "Paused: on battery at 38 %, below 50 %".
    pub reason: String,
    /// For the coordinator: the `state_update` reason, e.g. `on_battery`, `thermal_throttled`.
    pub code: &'static str,
}

impl Verdict {
    fn serve(total: u32) -> Verdict {
        Verdict {
            rule: Rule::None,
            pause: false,
            slots: total,
            reason: "Serving: no power rule applies".into(),
            code: "power_policy_clear",
        }
    }

    /// Stricter verdicts order lower: a pause below any slot count, fewer slots below more.
    fn room(&self) -> u32 {
        if self.pause {
            0
        } else {
            self.slots
        }
    }

    /// The same effect on serving (rule, pause, slots); the words may differ (a charge ticking down).
    pub fn same_effect(&self, other: &Verdict) -> bool {
        (self.rule, self.pause, self.slots) == (other.rule, other.pause, other.slots)
    }
}

/// The policy with its memory (the verdict in force, the looser one waiting to be adopted).
#[derive(Debug)]
pub struct Policy {
    relax_after: Duration,
    current: Option<Verdict>,
    /// Since when the rules have said something looser than the verdict in force.
    looser_since: Option<Instant>,
    battery_paused: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(DEFAULT_RELAX_AFTER)
    }
}

impl Policy {
    pub fn new(relax_after: Duration) -> Policy {
        Policy { relax_after, current: None, looser_since: None, battery_paused: false }
    }

    /// The verdict in force after these readings at `now` (local civil time for the schedule;
    /// `at` on the monotonic clock for the hysteresis). `total` is the slots the provider offers.
    pub fn evaluate(
        &mut self,
        settings: &PowerSettings,
        readings: &Readings,
        now: DateTime,
        at: Instant,
        total: u32,
    ) -> Verdict {
        let total = total.max(1);
        let raw = self.raw(settings, readings, now, total);
        let next = match self.current.take() {
            Some(current) if raw.room() > current.room() => {
                // Looser: adopted once it has held, without a break, for `relax_after`.
                let since = *self.looser_since.get_or_insert(at);
                if at.duration_since(since) >= self.relax_after {
                    self.looser_since = None;
                    raw
                } else {
                    current
                }
            }
            // Stricter, the same room with fresher words, or the first reading: at once.
            _ => {
                self.looser_since = None;
                raw
            }
        };
        self.battery_paused = next.pause && next.rule == Rule::Battery;
        self.current = Some(next.clone());
        next
    }

    /// What the rules say on their own, without hysteresis in time.
    fn raw(&self, s: &PowerSettings, r: &Readings, now: DateTime, total: u32) -> Verdict {
        if let Some(v) = self.battery_rule(s, r) {
            return v;
        }
        if s.thermal == OnThermal::BackOff && r.thermal == Some(ThermalLevel::Critical) {
            return Verdict {
                rule: Rule::Thermal,
                pause: true,
                slots: 0,
                reason: "Paused: thermal state critical; serving resumes once this Mac cools down".into(),
                code: "thermal_throttled",
            };
        }
        if !schedule::allows(&s.schedule, now) {
            let windows: Vec<String> = s.schedule.iter().map(schedule::describe).collect();
            return Verdict {
                rule: Rule::Schedule,
                pause: true,
                slots: 0,
                reason: format!("Paused: outside your schedule ({})", windows.join("; ")),
                code: "outside_schedule",
            };
        }
        let idle_limit = Duration::from_secs(u64::from(s.idle_minutes) * 60);
        let active = r.idle_for.map(|idle| idle < idle_limit);
        if s.user_active == OnUserActive::Pause && active == Some(true) {
            return Verdict {
                rule: Rule::UserActive,
                pause: true,
                slots: 0,
                reason: format!(
                    "Paused: you are using this Mac; serving resumes after {} min without input",
                    s.idle_minutes
                ),
                code: "user_active",
            };
        }
        let mut verdict = Verdict::serve(total);
        if s.thermal == OnThermal::BackOff && r.thermal == Some(ThermalLevel::Serious) && total > 1 {
            verdict = Verdict {
                rule: Rule::Thermal,
                pause: false,
                slots: 1,
                reason: format!("Backing off: thermal state serious — 1 of {total} slots"),
                code: "thermal_throttled",
            };
        }
        if s.user_active == OnUserActive::Yield && active == Some(true) {
            let slots = s.yield_slots.clamp(1, total);
            if slots < verdict.slots {
                verdict = Verdict {
                    rule: Rule::UserActive,
                    pause: false,
                    slots,
                    reason: format!("Yielding: you are using this Mac — {slots} of {total} slots"),
                    code: "user_active",
                };
            }
        }
        verdict
    }

    fn battery_rule(&self, s: &PowerSettings, r: &Readings) -> Option<Verdict> {
        if r.power.source != PowerSource::Battery {
            return None;
        }
        let charge = r.power.charge_percent;
        let at = charge.map(|c| format!(" at {c} %")).unwrap_or_default();
        match s.on_battery {
            OnBattery::Never => None,
            OnBattery::Pause => Some(Verdict {
                rule: Rule::Battery,
                pause: true,
                slots: 0,
                reason: format!("Paused: on battery{at}; serving resumes on the charger"),
                code: "on_battery",
            }),
            OnBattery::PauseBelow => {
                let threshold = s.battery_threshold_percent;
                // Once paused, the pause holds until the charge is a margin above the threshold.
                let limit =
                    if self.battery_paused { threshold.saturating_add(BATTERY_MARGIN) } else { threshold };
                // An unreadable charge on battery: the safe side is the pause the user asked for.
                let low = charge.is_none_or(|c| c < limit);
                low.then(|| Verdict {
                    rule: Rule::Battery,
                    pause: true,
                    slots: 0,
                    reason: match charge {
                        Some(c) if c < threshold => {
                            format!("Paused: on battery at {c} %, below {threshold} %")
                        }
                        Some(c) => {
                            format!("Paused: on battery at {c} %; resumes at {limit} % or on the charger")
                        }
                        None => format!("Paused: on battery, charge unknown (pausing below {threshold} %)"),
                    },
                    code: "on_battery",
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readings::PowerReading;
    use hearth_settings::{Day, ScheduleWindow};
    use jiff::civil::date;

    const SECOND: Duration = Duration::from_secs(1);

    fn mains() -> Readings {
        Readings {
            power: PowerReading { source: PowerSource::External, charge_percent: Some(100) },
            ..Readings::UNKNOWN
        }
    }

    fn battery(percent: u8) -> Readings {
        Readings {
            power: PowerReading { source: PowerSource::Battery, charge_percent: Some(percent) },
            ..Readings::UNKNOWN
        }
    }

    fn idle(r: Readings, secs: u64) -> Readings {
        Readings { idle_for: Some(Duration::from_secs(secs)), ..r }
    }

    fn hot(r: Readings, level: ThermalLevel) -> Readings {
        Readings { thermal: Some(level), ..r }
    }

    /// A Wednesday noon.
    fn noon() -> DateTime {
        date(2026, 12, 2).at(12, 0, 0, 0)
    }

    struct Run {
        policy: Policy,
        settings: PowerSettings,
        t0: Instant,
        now: Duration,
    }

    impl Run {
        fn new(settings: PowerSettings) -> Run {
            Run {
                policy: Policy::new(Duration::from_secs(20)),
                settings,
                t0: Instant::now(),
                now: Duration::ZERO,
            }
        }

        /// Evaluates `r` after `wait` more seconds, with 4 slots offered.
        fn at(&mut self, wait: u64, r: Readings) -> Verdict {
            self.now += SECOND * wait as u32;
            self.policy.evaluate(&self.settings, &r, noon(), self.t0 + self.now, 4)
        }
    }

    #[test]
    fn on_battery_pauses_at_once_and_the_charger_resumes_after_the_hold() {
        let mut run = Run::new(PowerSettings::default());
        let v = run.at(0, mains());
        assert_eq!((v.rule, v.pause, v.slots), (Rule::None, false, 4));
        let v = run.at(2, battery(38));
        assert_eq!((v.rule, v.pause, v.code), (Rule::Battery, true, "on_battery"));
        assert_eq!(v.reason, "Paused: on battery at 38 %; serving resumes on the charger");
        // Plugged in: still paused until the looser verdict held for 20 s.
        assert!(run.at(2, mains()).pause);
        assert!(run.at(10, mains()).pause);
        let v = run.at(10, mains());
        assert_eq!((v.rule, v.pause, v.slots), (Rule::None, false, 4));
    }

    #[test]
    fn pause_below_a_threshold_lifts_only_a_margin_above_it() {
        let settings = PowerSettings {
            on_battery: OnBattery::PauseBelow,
            battery_threshold_percent: 50,
            ..Default::default()
        };
        let mut run = Run::new(settings);
        assert!(!run.at(0, battery(60)).pause, "above the threshold on battery: serve");
        let v = run.at(5, battery(38));
        assert!(v.pause);
        assert_eq!(v.reason, "Paused: on battery at 38 %, below 50 %");
        // Charging on battery is impossible, but a reading can wobble around the threshold.
        let v = run.at(30, battery(52));
        assert!(v.pause, "52 % is within the margin: {v:?}");
        assert_eq!(v.reason, "Paused: on battery at 52 %; resumes at 55 % or on the charger");
        assert!(run.at(30, battery(55)).pause, "looser, but not yet held for 20 s");
        assert!(!run.at(20, battery(55)).pause);
        // Unknown charge on battery: the pause the user asked for.
        let v = run.at(
            1,
            Readings {
                power: PowerReading { source: PowerSource::Battery, charge_percent: None },
                ..Readings::UNKNOWN
            },
        );
        assert!(v.pause && v.reason.contains("charge unknown"), "{v:?}");
        let never = PowerSettings { on_battery: OnBattery::Never, ..Default::default() };
        assert!(!Run::new(never).at(0, battery(3)).pause);
    }

    #[test]
    fn the_user_at_the_keyboard_gets_fewer_slots_then_all_after_the_idle_time() {
        let mut run = Run::new(PowerSettings::default());
        let v = run.at(0, idle(mains(), 3));
        assert_eq!((v.rule, v.pause, v.slots, v.code), (Rule::UserActive, false, 1, "user_active"));
        assert_eq!(v.reason, "Yielding: you are using this Mac — 1 of 4 slots");
        // Idle for 4 min: still active (5 min is the default).
        assert_eq!(run.at(240, idle(mains(), 240)).slots, 1);
        // Five minutes idle, then held for 20 s more.
        assert_eq!(run.at(60, idle(mains(), 300)).slots, 1);
        let v = run.at(20, idle(mains(), 320));
        assert_eq!((v.rule, v.slots), (Rule::None, 4));
        // A key press: back to one slot at once.
        assert_eq!(run.at(1, idle(mains(), 0)).slots, 1);
        // Unknown activity never yields.
        let mut run = Run::new(PowerSettings::default());
        assert_eq!(run.at(0, mains()).slots, 4);
        // `pause` instead of `yield`; `ignore`.
        let mut run = Run::new(PowerSettings { user_active: OnUserActive::Pause, ..Default::default() });
        let v = run.at(0, idle(mains(), 10));
        assert!(v.pause && v.reason.starts_with("Paused: you are using this Mac"), "{v:?}");
        let mut run = Run::new(PowerSettings { user_active: OnUserActive::Ignore, ..Default::default() });
        assert_eq!(run.at(0, idle(mains(), 10)).slots, 4);
        let mut run = Run::new(PowerSettings { yield_slots: 9, ..Default::default() });
        assert_eq!(run.at(0, idle(mains(), 10)).slots, 4, "yield slots never exceed the slots offered");
    }

    #[test]
    fn heat_backs_off_to_one_slot_then_pauses_at_critical() {
        let mut run = Run::new(PowerSettings::default());
        assert_eq!(run.at(0, hot(mains(), ThermalLevel::Fair)).slots, 4);
        let v = run.at(5, hot(mains(), ThermalLevel::Serious));
        assert_eq!((v.rule, v.slots, v.code), (Rule::Thermal, 1, "thermal_throttled"));
        assert_eq!(v.reason, "Backing off: thermal state serious — 1 of 4 slots");
        let v = run.at(5, hot(mains(), ThermalLevel::Critical));
        assert!(v.pause && v.rule == Rule::Thermal, "{v:?}");
        // Cooling: critical → serious is looser; it waits 20 s, and so on down.
        assert!(run.at(5, hot(mains(), ThermalLevel::Serious)).pause);
        let v = run.at(20, hot(mains(), ThermalLevel::Serious));
        assert_eq!((v.pause, v.slots), (false, 1));
        assert_eq!(run.at(5, hot(mains(), ThermalLevel::Nominal)).slots, 1);
        assert_eq!(run.at(20, hot(mains(), ThermalLevel::Nominal)).slots, 4);
        let mut run = Run::new(PowerSettings { thermal: OnThermal::Ignore, ..Default::default() });
        assert!(!run.at(0, hot(mains(), ThermalLevel::Critical)).pause);
    }

    #[test]
    fn the_strictest_rule_wins_and_names_itself() {
        let mut run = Run::new(PowerSettings::default());
        // Hot and busy user: both say one slot; thermal is named.
        let v = run.at(0, idle(hot(mains(), ThermalLevel::Serious), 1));
        assert_eq!((v.rule, v.slots), (Rule::Thermal, 1));
        // Battery beats everything.
        let v = run.at(1, idle(hot(battery(20), ThermalLevel::Critical), 1));
        assert_eq!(v.rule, Rule::Battery);
    }

    #[test]
    fn a_flapping_input_changes_the_verdict_once_not_every_flap() {
        let mut run = Run::new(PowerSettings::default());
        let mut effects = vec![run.at(0, mains())];
        // The power source flips every second for two minutes.
        for i in 0..120 {
            let r = if i % 2 == 0 { battery(80) } else { mains() };
            let v = run.at(1, r);
            if !v.same_effect(effects.last().unwrap()) {
                effects.push(v);
            }
        }
        assert_eq!(effects.len(), 2, "one pause, held while it flaps: {effects:?}");
        // It settles on mains: one resume, 20 s later.
        for _ in 0..25 {
            let v = run.at(1, mains());
            if !v.same_effect(effects.last().unwrap()) {
                effects.push(v);
            }
        }
        assert_eq!(effects.len(), 3);
        assert!(!effects[2].pause);
        // Keyboard activity that comes and goes every 30 s (below 5 min idle) never flaps slots.
        let mut run = Run::new(PowerSettings::default());
        let first = run.at(0, idle(mains(), 0));
        for i in 0..20 {
            let v = run.at(15, idle(mains(), if i % 2 == 0 { 15 } else { 0 }));
            assert!(v.same_effect(&first), "{v:?}");
        }
    }

    #[test]
    fn outside_the_schedule_is_a_pause_that_names_the_windows() {
        let windows =
            vec![ScheduleWindow { days: vec![Day::Sat], start: "22:00".into(), end: "07:00".into() }];
        let settings = PowerSettings { schedule: windows, ..Default::default() };
        let mut policy = Policy::new(Duration::ZERO);
        let t = Instant::now();
        // 2026-12-05 is a Saturday.
        let v = policy.evaluate(&settings, &mains(), date(2026, 12, 5).at(21, 0, 0, 0), t, 2);
        assert_eq!((v.rule, v.pause, v.code), (Rule::Schedule, true, "outside_schedule"));
        assert_eq!(v.reason, "Paused: outside your schedule (Sat 22:00–07:00)");
        let v = policy.evaluate(&settings, &mains(), date(2026, 12, 6).at(6, 0, 0, 0), t, 2);
        assert!(!v.pause, "Sunday 06:00 is inside Saturday's window");
        let v = policy.evaluate(&settings, &mains(), date(2026, 12, 6).at(7, 0, 0, 0), t, 2);
        assert!(v.pause);
    }
}
