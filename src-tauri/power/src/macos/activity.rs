//! Time since the user's last keyboard, mouse or trackpad event in this login session.

use std::time::Duration;

use objc2_core_graphics::{CGEventSource, CGEventSourceStateID, CGEventType};

use crate::probe::ActivityProbe;

/// `kCGAnyInputEventType`, `(CGEventType)(~0)` in C: the crate has no constant for it.
const ANY_INPUT_EVENT: CGEventType = CGEventType(u32::MAX);

pub(crate) struct EventSourceActivity;

impl ActivityProbe for EventSourceActivity {
    fn idle_for(&self) -> Option<Duration> {
        let seconds = CGEventSource::seconds_since_last_event_type(
            CGEventSourceStateID::CombinedSessionState,
            ANY_INPUT_EVENT,
        );
        // Negative or NaN would mean no answer, not a time.
        Duration::try_from_secs_f64(seconds).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_is_a_sane_duration_when_known() {
        if let Some(idle) = EventSourceActivity.idle_for() {
            // Less than ten years: a time, not a sentinel.
            assert!(idle < Duration::from_secs(10 * 365 * 24 * 3600), "{idle:?}");
        }
    }
}
