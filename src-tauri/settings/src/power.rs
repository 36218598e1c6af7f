//! The power policy's settings: the `[power]` table of `settings.toml`. What each rule does is the
//! policy's business (`hearth-power`); this file only says what a user can write and checks it.

use serde::{Deserialize, Serialize};

/// What to do on battery power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBattery {
    /// Pause whenever the machine runs on battery.
    #[default]
    Pause,
    /// Pause on battery only when the charge is below `battery_threshold_percent`.
    PauseBelow,
    /// Keep serving on battery.
    Never,
}

/// What to do when the machine runs hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnThermal {
    /// One slot at `serious`, pause at `critical`.
    #[default]
    BackOff,
    Ignore,
}

/// What to do while someone uses the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUserActive {
    /// Serve with `yield_slots` while the user is active, every slot after `idle_minutes` idle.
    #[default]
    Yield,
    /// Pause while the user is active; serve after `idle_minutes` idle.
    Pause,
    Ignore,
}

/// A day of the week, as written in a schedule window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri, Day::Sat, Day::Sun];

    /// Monday = 0 … Sunday = 6.
    pub fn index(self) -> usize {
        Day::ALL.iter().position(|d| *d == self).unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][self.index()]
    }
}

/// When serving is allowed: on `days`, from `start` to `end` local time ("HH:MM"). An `end` at or
/// before `start` wraps past midnight into the next day (`22:00`–`07:00`); `days` name the day a
/// window starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindow {
    pub days: Vec<Day>,
    pub start: String,
    pub end: String,
}

impl ScheduleWindow {
    /// `start` and `end` as minutes after midnight, once both are valid "HH:MM".
    pub fn minutes(&self) -> Option<(u16, u16)> {
        Some((parse_hh_mm(&self.start)?, parse_hh_mm(&self.end)?))
    }
}

/// "HH:MM" (00:00–23:59, or 24:00 for an end) as minutes after midnight.
pub fn parse_hh_mm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// The `[power]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PowerSettings {
    pub on_battery: OnBattery,
    /// With `on_battery = "pause_below"`: pause on battery below this charge (0–100).
    pub battery_threshold_percent: u8,
    pub thermal: OnThermal,
    pub user_active: OnUserActive,
    /// Slots offered while the user is active (with `user_active = "yield"`); at least 1.
    pub yield_slots: u32,
    /// Minutes without keyboard or mouse input after which the user counts as away (1–1440).
    pub idle_minutes: u32,
    /// When serving is allowed; empty: any time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<ScheduleWindow>,
}

impl Default for PowerSettings {
    fn default() -> Self {
        PowerSettings {
            on_battery: OnBattery::Pause,
            battery_threshold_percent: 50,
            thermal: OnThermal::BackOff,
            user_active: OnUserActive::Yield,
            yield_slots: 1,
            idle_minutes: 5,
            schedule: Vec::new(),
        }
    }
}

impl PowerSettings {
    /// Every problem, as (field under `power.`, message saying what to write instead).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.battery_threshold_percent > 100 {
            out.push((
                "power.battery_threshold_percent".into(),
                format!(
                    "{} is not a percentage: write a number from 0 to 100",
                    self.battery_threshold_percent
                ),
            ));
        }
        if self.yield_slots == 0 {
            out.push((
                "power.yield_slots".into(),
                "must be at least 1 (to stop serving while you work, set user_active = \"pause\")".into(),
            ));
        }
        if !(1..=1440).contains(&self.idle_minutes) {
            out.push((
                "power.idle_minutes".into(),
                format!("{} is out of range: write 1 to 1440 minutes", self.idle_minutes),
            ));
        }
        for (i, w) in self.schedule.iter().enumerate() {
            let field = format!("power.schedule[{i}]");
            if w.days.is_empty() {
                out.push((
                    format!("{field}.days"),
                    "a window needs at least one day, e.g. [\"mon\", \"fri\"]".into(),
                ));
            }
            for (name, value) in [("start", &w.start), ("end", &w.end)] {
                match parse_hh_mm(value) {
                    None => out.push((
                        format!("{field}.{name}"),
                        format!("{value:?} is not a time: write 24-hour \"HH:MM\", e.g. \"22:00\""),
                    )),
                    Some(m) if name == "start" && m == 24 * 60 => out.push((
                        format!("{field}.start"),
                        "a window cannot start at 24:00: write \"00:00\"".into(),
                    )),
                    Some(_) => {}
                }
            }
            if w.start == w.end && parse_hh_mm(&w.start).is_some() {
                out.push((
                    format!("{field}.end"),
                    "start and end are equal: for a whole day write \"00:00\" to \"24:00\"".into(),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::Settings;

    fn fields(toml: &str) -> Vec<String> {
        match Settings::from_toml_str(&format!("provider_id = \"p\"\n{toml}")) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|e| format!("{}: {}", e.field, e.message)).collect(),
        }
    }

    #[test]
    fn a_full_power_table_round_trips() {
        let text =
            "[power]\non_battery = \"pause_below\"\nbattery_threshold_percent = 30\nthermal = \"ignore\"\n\
                    user_active = \"pause\"\nyield_slots = 2\nidle_minutes = 10\n\
                    [[power.schedule]]\ndays = [\"sat\", \"sun\"]\nstart = \"22:00\"\nend = \"07:00\"\n";
        let s = Settings::from_toml_str(&format!("provider_id = \"p\"\n{text}")).unwrap();
        assert_eq!(s.power.on_battery, super::OnBattery::PauseBelow);
        assert_eq!(s.power.battery_threshold_percent, 30);
        assert_eq!(s.power.schedule[0].minutes(), Some((22 * 60, 7 * 60)));
        assert_eq!(Settings::from_toml_str(&s.to_toml_string()).unwrap(), s);
    }

    #[test]
    fn bad_power_settings_name_the_field_and_the_fix() {
        let e = fields("[power]\nbattery_threshold_percent = 140\n");
        assert!(e[0].starts_with("power.battery_threshold_percent: 140 is not a percentage"), "{e:?}");
        let e = fields("[power]\nbattery_threshold_percent = -5\n");
        assert!(e[0].contains("battery_threshold_percent"), "{e:?}");
        let e = fields("[[power.schedule]]\ndays = []\nstart = \"09:00\"\nend = \"17:00\"\n");
        assert!(e[0].starts_with("power.schedule[0].days: a window needs at least one day"), "{e:?}");
        let e = fields("[[power.schedule]]\ndays = [\"mon\"]\nstart = \"9am\"\nend = \"25:00\"\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("\"9am\" is not a time") && e[1].contains("\"25:00\" is not a time"), "{e:?}");
        let e = fields("[power]\non_battery = \"sometimes\"\n");
        assert!(
            e[0].contains("on_battery") && e[0].contains("pause_below"),
            "an unknown rule names the choices: {e:?}"
        );
        let e = fields("[power]\nuser_active = \"nap\"\n");
        assert!(e[0].contains("user_active") && e[0].contains("yield"), "{e:?}");
        let e = fields("[power]\nyield_slots = 0\nidle_minutes = 0\n");
        assert_eq!(e.len(), 2, "{e:?}");
        let e = fields("[[power.schedule]]\ndays = [\"funday\"]\nstart = \"09:00\"\nend = \"17:00\"\n");
        assert!(e[0].contains("funday"), "{e:?}");
        assert!(
            fields("[[power.schedule]]\ndays = [\"mon\"]\nstart = \"00:00\"\nend = \"24:00\"\n").is_empty()
        );
    }
}
