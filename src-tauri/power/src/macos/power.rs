//! Power source and charge from IOKit's power-source snapshot (what the menu-bar battery shows).

use std::ffi::CStr;

use objc2_core_foundation::{CFArray, CFBoolean, CFDictionary, CFNumber, CFRetained, CFString, CFType};
use objc2_io_kit::{
    kIOPMACPowerKey, kIOPMBatteryPowerKey, kIOPMUPSPowerKey, kIOPSBatteryPowerValue, kIOPSCurrentCapacityKey,
    kIOPSInternalBatteryType, kIOPSIsPresentKey, kIOPSMaxCapacityKey, kIOPSPowerSourceStateKey, kIOPSTypeKey,
    IOPSCopyPowerSourcesInfo, IOPSCopyPowerSourcesList, IOPSGetPowerSourceDescription,
    IOPSGetProvidingPowerSourceType,
};

use crate::probe::PowerProbe;
use crate::readings::{PowerReading, PowerSource};

pub(crate) struct IoKitPower;

struct Battery {
    on_battery: bool,
    current: i64,
    max: i64,
}

impl PowerProbe for IoKitPower {
    fn power(&self) -> PowerReading {
        let Some(snapshot) = IOPSCopyPowerSourcesInfo() else { return PowerReading::UNKNOWN };
        let snapshot: &CFType = &snapshot;
        let batteries = internal_batteries(snapshot);
        // SAFETY: `snapshot` is the live blob IOPSCopyPowerSourcesInfo returned.
        let providing = unsafe { IOPSGetProvidingPowerSourceType(Some(snapshot)) }.map(|s| s.to_string());
        let source = match providing.as_deref() {
            Some(s) if is(s, kIOPMACPowerKey) => PowerSource::External,
            // A UPS feeding a desktop Mac means the mains are out: treated like the battery.
            Some(s) if is(s, kIOPMBatteryPowerKey) || is(s, kIOPMUPSPowerKey) => PowerSource::Battery,
            _ if batteries.iter().any(|b| b.on_battery) => PowerSource::Battery,
            // Batteries on AC, or none at all and no answer: a desktop Mac, on mains.
            _ => PowerSource::External,
        };
        let (current, max) = batteries.iter().fold((0, 0), |(c, m), b| (c + b.current, m + b.max));
        let charge_percent =
            (max > 0).then(|| (current as f64 * 100.0 / max as f64).round().clamp(0.0, 100.0) as u8);
        PowerReading { source, charge_percent }
    }
}

/// The present internal batteries with their capacities (IOKit scales them to 0–100 of `max`).
fn internal_batteries(snapshot: &CFType) -> Vec<Battery> {
    // SAFETY: `snapshot` is the live blob IOPSCopyPowerSourcesInfo returned.
    let Some(list) = (unsafe { IOPSCopyPowerSourcesList(Some(snapshot)) }) else { return Vec::new() };
    // SAFETY: the list holds power-source handles, CF objects of some type, as CFType describes.
    let list: CFRetained<CFArray<CFType>> = unsafe { CFRetained::cast_unchecked(list) };
    let mut batteries = Vec::new();
    for source in list.iter() {
        // SAFETY: `source` is one of this snapshot's handles, and the snapshot outlives the call.
        let Some(desc) = (unsafe { IOPSGetPowerSourceDescription(Some(snapshot), Some(&*source)) }) else {
            continue;
        };
        // SAFETY: a description maps the CFString keys of IOPSKeys.h to CF values.
        let desc: CFRetained<CFDictionary<CFString, CFType>> = unsafe { CFRetained::cast_unchecked(desc) };
        let value = |key: &CStr| desc.get(&CFString::from_str(&key.to_string_lossy()));
        let text = |key: &CStr| value(key).and_then(|v| v.downcast::<CFString>().ok()).map(|s| s.to_string());
        let number =
            |key: &CStr| value(key).and_then(|v| v.downcast::<CFNumber>().ok()).and_then(|n| n.as_i64());

        if !text(kIOPSTypeKey).is_some_and(|t| is(&t, kIOPSInternalBatteryType)) {
            continue;
        }
        let present =
            value(kIOPSIsPresentKey).and_then(|v| v.downcast::<CFBoolean>().ok()).is_none_or(|b| b.as_bool());
        let (Some(current), Some(max)) = (number(kIOPSCurrentCapacityKey), number(kIOPSMaxCapacityKey))
        else {
            continue;
        };
        if !present || max <= 0 {
            continue;
        }
        let on_battery = text(kIOPSPowerSourceStateKey).is_some_and(|s| is(&s, kIOPSBatteryPowerValue));
        batteries.push(Battery { on_battery, current: current.clamp(0, max), max });
    }
    batteries
}

fn is(value: &str, constant: &CStr) -> bool {
    value.as_bytes() == constant.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_power_reading_is_sane() {
        let reading = IoKitPower.power();
        if let Some(charge) = reading.charge_percent {
            assert!(charge <= 100, "{reading:?}");
        }
        // IOKit answers on every Mac; only a failed snapshot reads unknown.
        assert_ne!(reading.source, PowerSource::Unknown, "{reading:?}");
    }
}
