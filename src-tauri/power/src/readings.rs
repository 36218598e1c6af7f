//! What the probes read: the shared vocabulary of the probes and the policy.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the machine's power comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerSource {
    /// A charger or mains (also a desktop with no battery).
    External,
    Battery,
    /// No probe, or nothing it could read.
    Unknown,
}

/// The power source and, with a battery, its charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerReading {
    pub source: PowerSource,
    /// 0–100; `None` without a battery or when it cannot be read.
    pub charge_percent: Option<u8>,
}

impl PowerReading {
    pub const UNKNOWN: PowerReading = PowerReading { source: PowerSource::Unknown, charge_percent: None };
}

/// macOS's four thermal states (`ProcessInfo.thermalState`); Linux thermal zones map onto them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThermalLevel {
    Nominal,
    Fair,
    Serious,
    Critical,
}

impl ThermalLevel {
    pub fn name(self) -> &'static str {
        match self {
            ThermalLevel::Nominal => "nominal",
            ThermalLevel::Fair => "fair",
            ThermalLevel::Serious => "serious",
            ThermalLevel::Critical => "critical",
        }
    }
}

/// One reading of every probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readings {
    pub power: PowerReading,
    /// `None`: no thermal probe on this machine.
    pub thermal: Option<ThermalLevel>,
    /// Time since the last keyboard or mouse input; `None`: unknown (no probe, no session).
    pub idle_for: Option<Duration>,
}

impl Readings {
    pub const UNKNOWN: Readings = Readings { power: PowerReading::UNKNOWN, thermal: None, idle_for: None };
}
