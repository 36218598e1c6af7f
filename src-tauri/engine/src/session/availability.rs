//! [`Availability`]: what the app's power policy allows a running provider — a number of slots, or a
//! pause. A provider starts fully available; the app changes it through
//! [`crate::provider::Provider::set_availability`], and the session follows without reconnecting:
//! fewer slots go out as a `state_update` and in the heartbeat's capacity fields, a pause as a drain
//! that finishes every job held before the session closes.

/// What the provider may take on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    /// At most this many concurrent jobs (the slots offered cap it).
    pub slots: u32,
    /// Take no new work, finish what is held, then stay offline until lifted.
    pub pause: bool,
    /// The rule, as the `state_update` reason the coordinator sees (e.g. `on_battery`); `None`
    /// while no rule limits the provider.
    pub code: Option<&'static str>,
    /// The rule in words, for the status ("Paused: on battery at 38 %, below 50 %").
    pub reason: String,
}

impl Availability {
    /// No limit: every slot offered, no pause.
    pub fn full() -> Availability {
        Availability { slots: u32::MAX, pause: false, code: None, reason: String::new() }
    }
}

impl Default for Availability {
    fn default() -> Self {
        Availability::full()
    }
}
