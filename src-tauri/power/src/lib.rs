//! Power and presence: should this machine serve right now, and with how many slots?
//!
//! * [`readings`]: what the probes report (power source and charge, thermal level, idle time), the
//!   types every module here shares.
//! * [`probe`]: one trait per probe ([`PowerProbe`], [`ThermalProbe`], [`ActivityProbe`],
//!   [`KeepAwake`]), [`Probes`] bundling them, and [`fake`] ones for tests.
//! * `linux` / `macos`: the real probes of each OS (sysfs and logind; IOKit, `NSProcessInfo`,
//!   CoreGraphics and power assertions).
//! * [`schedule`]: whether a local time falls in the user's schedule windows.
//! * [`policy`]: [`Policy`], the one place the readings and the settings become a [`Verdict`]
//!   (serve with N slots, or pause) with the rule and its reason in words, with hysteresis.

pub mod fake;
pub mod policy;
pub mod probe;
pub mod readings;
pub mod schedule;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;

pub use policy::{Policy, Rule, Verdict};
pub use probe::{ActivityProbe, AwakeGuard, KeepAwake, PowerProbe, Probes, ThermalProbe};
pub use readings::{PowerReading, PowerSource, Readings, ThermalLevel};

/// The environment variable naming another sysfs root for the Linux probes (tests, checks).
pub const SYSFS_ROOT_ENV: &str = "HEARTH_SYSFS_ROOT";
