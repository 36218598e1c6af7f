//! The thermal state macOS itself reports, the very four levels [`ThermalLevel`] names.

use objc2_foundation::{NSProcessInfo, NSProcessInfoThermalState};

use crate::probe::ThermalProbe;
use crate::readings::ThermalLevel;

pub(crate) struct ProcessInfoThermal;

impl ThermalProbe for ProcessInfoThermal {
    fn thermal(&self) -> Option<ThermalLevel> {
        let state = NSProcessInfo::processInfo().thermalState();
        // A state added by a later macOS is not guessed at: no reading, which never pauses.
        if state == NSProcessInfoThermalState::Nominal {
            Some(ThermalLevel::Nominal)
        } else if state == NSProcessInfoThermalState::Fair {
            Some(ThermalLevel::Fair)
        } else if state == NSProcessInfoThermalState::Serious {
            Some(ThermalLevel::Serious)
        } else if state == NSProcessInfoThermalState::Critical {
            Some(ThermalLevel::Critical)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macos_always_reports_a_thermal_state() {
        assert!(ProcessInfoThermal.thermal().is_some());
    }
}
