//! The macOS probes: IOKit power sources, `NSProcessInfo`'s thermal state, CoreGraphics' time since
//! the last input event, and an IOKit power assertion to keep the Mac awake. Each is a thin call
//! into the OS; the OS does the reading.

mod activity;
mod keep_awake;
mod power;
mod thermal;

use std::sync::Arc;

use crate::probe::Probes;

pub(crate) fn probes() -> Probes {
    Probes {
        power: Arc::new(power::IoKitPower),
        thermal: Arc::new(thermal::ProcessInfoThermal),
        activity: Arc::new(activity::EventSourceActivity),
        keep_awake: Arc::new(keep_awake::PowerAssertion),
    }
}
