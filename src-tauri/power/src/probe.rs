//! The probes, one trait each, so the policy and the app can run against fakes, and [`Probes`]:
//! the set an app uses, [`Probes::system`] for this OS.

use std::sync::Arc;
use std::time::Duration;

use crate::readings::{PowerReading, Readings, ThermalLevel};

/// The power source and charge.
pub trait PowerProbe: Send + Sync {
    fn power(&self) -> PowerReading;
}

/// The thermal level; `None` when this machine has no probe.
pub trait ThermalProbe: Send + Sync {
    fn thermal(&self) -> Option<ThermalLevel>;
}

/// Time since the user's last input; `None` when it cannot be known (no display session).
pub trait ActivityProbe: Send + Sync {
    fn idle_for(&self) -> Option<Duration>;
}

/// Held while the machine serves; dropping it lets the machine sleep again.
pub trait AwakeGuard: Send {}

/// Keeps the machine from idle-sleeping while it serves.
pub trait KeepAwake: Send + Sync {
    /// Takes the hold, saying why (shown by the OS, e.g. `pmset -g assertions`). An error says
    /// why the OS refused; serving goes on without the hold.
    fn hold(&self, why: &str) -> Result<Box<dyn AwakeGuard>, String>;
}

/// Every probe an app reads, behind `Arc`s so a test can keep a handle on its fakes.
#[derive(Clone)]
pub struct Probes {
    pub power: Arc<dyn PowerProbe>,
    pub thermal: Arc<dyn ThermalProbe>,
    pub activity: Arc<dyn ActivityProbe>,
    pub keep_awake: Arc<dyn KeepAwake>,
}

impl Probes {
    /// Reads every probe once. Probes read files or ask the OS: call from a blocking context.
    pub fn read(&self) -> Readings {
        Readings {
            power: self.power.power(),
            thermal: self.thermal.thermal(),
            idle_for: self.activity.idle_for(),
        }
    }

    /// The real probes of this OS. On Linux the sysfs root is `/sys` unless `HEARTH_SYSFS_ROOT`
    /// names another. Where an OS has no probe, it reads as unknown (which never pauses).
    pub fn system() -> Probes {
        #[cfg(target_os = "linux")]
        {
            crate::linux::probes()
        }
        #[cfg(target_os = "macos")]
        {
            crate::macos::probes()
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            crate::fake::FakeProbes::default().probes()
        }
    }
}
