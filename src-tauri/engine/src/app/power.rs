//! Is this machine on battery? Behind a trait so the app can be tested with a fake, and so the macOS
//! probe (IOKit power sources) can be added without touching the supervisor.

/// Answers whether the machine runs on battery power right now.
pub trait PowerSource: Send + Sync {
    /// `Some(true)` on battery, `Some(false)` on external power, `None` when it cannot tell (no
    /// battery, or no probe on this platform). `None` never pauses the provider.
    fn on_battery(&self) -> Option<bool>;
}

/// The probe for this platform. There is none yet (Linux desktops and servers are treated as
/// always plugged in; the macOS IOKit probe is future work), so it always answers `None`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemPower;

impl PowerSource for SystemPower {
    fn on_battery(&self) -> Option<bool> {
        None
    }
}
