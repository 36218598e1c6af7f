//! The thermal level from `<sysfs>/class/thermal/thermal_zone*`: each zone's temperature against its
//! own trip points where it has them, and the worst zone wins.

use std::fs;
use std::path::{Path, PathBuf};

use crate::probe::ThermalProbe;
use crate::readings::ThermalLevel;

use super::{read_attr, read_int, sysfs_root};

/// Thresholds (m°C) for Fair, Serious and Critical where a zone has no trip point of its own.
const FIXED: [i64; 3] = [80_000, 90_000, 100_000];
/// Where a zone gives a lower trip but not the next one up, that one is put this far above it.
const STEP: i64 = 10_000;
/// Readings outside (0, 150] °C are firmware placeholders (`acpitz` at 0, -273 °C, 255 °C), not heat.
const PLAUSIBLE_MAX: i64 = 150_000;

/// Reads the zones afresh at every call, like [`super::SysfsPower`].
pub(crate) struct SysfsThermal {
    root: Option<PathBuf>,
}

impl SysfsThermal {
    /// The root named by `HEARTH_SYSFS_ROOT` at each read, else `/sys`.
    pub(crate) fn from_env() -> SysfsThermal {
        SysfsThermal { root: None }
    }

    #[cfg(test)]
    pub(crate) fn at(root: impl Into<PathBuf>) -> SysfsThermal {
        SysfsThermal { root: Some(root.into()) }
    }
}

impl ThermalProbe for SysfsThermal {
    /// `None` when no zone gives a plausible temperature: this machine has no thermal probe.
    fn thermal(&self) -> Option<ThermalLevel> {
        let dir = sysfs_root(self.root.as_deref()).join("class/thermal");
        fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("thermal_zone"))
            .filter_map(|entry| zone_level(&entry.path()))
            .max()
    }
}

fn plausible(milli_celsius: i64) -> bool {
    milli_celsius > 0 && milli_celsius <= PLAUSIBLE_MAX
}

fn zone_level(zone: &Path) -> Option<ThermalLevel> {
    let temp = read_int(&zone.join("temp")).filter(|t| plausible(*t))?;
    let [fair, serious, critical] = thresholds(trips(zone));
    Some(if temp >= critical {
        ThermalLevel::Critical
    } else if temp >= serious {
        ThermalLevel::Serious
    } else if temp >= fair {
        ThermalLevel::Fair
    } else {
        ThermalLevel::Nominal
    })
}

/// The zone's lowest plausible `passive`, `hot` and `critical` trips (m°C). `active` trips are fan
/// stages, often set at 40–60 °C: reaching one is normal running, not heat to back off from.
fn trips(zone: &Path) -> [Option<i64>; 3] {
    let mut found = [None; 3];
    let Ok(entries) = fs::read_dir(zone) else { return found };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(n) = name.strip_prefix("trip_point_").and_then(|rest| rest.strip_suffix("_type")) else {
            continue;
        };
        let slot = match read_attr(&entry.path()).as_deref() {
            Some("passive") => 0,
            Some("hot") => 1,
            Some("critical") => 2,
            _ => continue,
        };
        let Some(temp) = read_int(&zone.join(format!("trip_point_{n}_temp"))).filter(|t| plausible(*t))
        else {
            continue;
        };
        found[slot] = Some(found[slot].map_or(temp, |t: i64| t.min(temp)));
    }
    found
}

/// The Fair, Serious and Critical thresholds: each given trip as is; a missing one from [`FIXED`],
/// kept above the level below it and no higher than the next given trip, so the levels stay in order
/// (a zone with only a critical trip at 128 °C still turns Serious at 90 °C).
fn thresholds(given: [Option<i64>; 3]) -> [i64; 3] {
    let mut out = FIXED;
    for level in 0..3 {
        if let Some(trip) = given[level] {
            out[level] = trip;
            continue;
        }
        let mut value = FIXED[level];
        if level > 0 && value <= out[level - 1] {
            value = out[level - 1] + STEP;
        }
        if let Some(above) = given[level + 1..].iter().flatten().min() {
            value = value.min(*above);
        }
        out[level] = value;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::fake_sysfs::Tree;

    fn zone(tree: &Tree, n: usize, celsius: f64, trips: &[(&str, f64)]) {
        let temp = ((celsius * 1000.0) as i64).to_string();
        tree.node(&format!("class/thermal/thermal_zone{n}"), &[("type", "x86_pkg_temp"), ("temp", &temp)]);
        for (i, (kind, at)) in trips.iter().enumerate() {
            let at = ((at * 1000.0) as i64).to_string();
            tree.node(
                &format!("class/thermal/thermal_zone{n}"),
                &[(&format!("trip_point_{i}_type"), kind), (&format!("trip_point_{i}_temp"), &at)],
            );
        }
    }

    fn level_of(celsius: f64, trips: &[(&str, f64)]) -> Option<ThermalLevel> {
        let tree = Tree::new();
        zone(&tree, 0, celsius, trips);
        SysfsThermal::at(tree.root()).thermal()
    }

    #[test]
    fn fixed_thresholds_without_trip_points() {
        assert_eq!(level_of(45.0, &[]), Some(ThermalLevel::Nominal));
        assert_eq!(level_of(79.9, &[]), Some(ThermalLevel::Nominal));
        assert_eq!(level_of(80.0, &[]), Some(ThermalLevel::Fair));
        assert_eq!(level_of(92.0, &[]), Some(ThermalLevel::Serious));
        assert_eq!(level_of(100.0, &[]), Some(ThermalLevel::Critical));
    }

    #[test]
    fn the_zones_own_trip_points_decide() {
        let trips = [("active", 50.0), ("passive", 70.0), ("hot", 85.0), ("critical", 95.0)];
        // Past the fan's active trip is still nominal.
        assert_eq!(level_of(60.0, &trips), Some(ThermalLevel::Nominal));
        assert_eq!(level_of(72.0, &trips), Some(ThermalLevel::Fair));
        assert_eq!(level_of(88.0, &trips), Some(ThermalLevel::Serious));
        assert_eq!(level_of(96.0, &trips), Some(ThermalLevel::Critical));
    }

    #[test]
    fn missing_trips_fall_back_in_order() {
        // Only a critical trip, as `acpitz` often has: the fixed Fair and Serious still apply.
        let crit_only = [("critical", 128.0)];
        assert_eq!(level_of(85.0, &crit_only), Some(ThermalLevel::Fair));
        assert_eq!(level_of(95.0, &crit_only), Some(ThermalLevel::Serious));
        assert_eq!(level_of(110.0, &crit_only), Some(ThermalLevel::Serious));
        assert_eq!(level_of(128.0, &crit_only), Some(ThermalLevel::Critical));

        // A low critical trip caps the fixed thresholds below it.
        let low_crit = [("critical", 85.0)];
        assert_eq!(level_of(82.0, &low_crit), Some(ThermalLevel::Fair));
        assert_eq!(level_of(86.0, &low_crit), Some(ThermalLevel::Critical));

        // A passive trip above the fixed Serious pushes Serious and Critical up after it.
        let high_passive = [("passive", 95.0)];
        assert_eq!(level_of(92.0, &high_passive), Some(ThermalLevel::Nominal));
        assert_eq!(level_of(96.0, &high_passive), Some(ThermalLevel::Fair));
        assert_eq!(level_of(106.0, &high_passive), Some(ThermalLevel::Serious));
        assert_eq!(level_of(116.0, &high_passive), Some(ThermalLevel::Critical));
    }

    #[test]
    fn implausible_trip_points_are_ignored() {
        let trips = [("passive", 0.0), ("critical", 255.0)];
        assert_eq!(level_of(85.0, &trips), Some(ThermalLevel::Fair));
        assert_eq!(level_of(101.0, &trips), Some(ThermalLevel::Critical));
    }

    #[test]
    fn the_worst_zone_wins_and_absurd_zones_are_ignored() {
        let tree = Tree::new();
        zone(&tree, 0, 41.0, &[]);
        zone(&tree, 1, 86.0, &[("passive", 85.0), ("critical", 105.0)]);
        zone(&tree, 2, 62.0, &[]);
        // `acpitz` placeholders: 0 °C, -273 °C, and one far beyond anything real.
        tree.node("class/thermal/thermal_zone3", &[("type", "acpitz"), ("temp", "0")]);
        tree.node("class/thermal/thermal_zone4", &[("type", "acpitz"), ("temp", "-273000")]);
        tree.node("class/thermal/thermal_zone5", &[("type", "acpitz"), ("temp", "255000")]);
        // A zone whose temp cannot be read (a wifi card that is down), and a cooling device.
        tree.node("class/thermal/thermal_zone6", &[("type", "iwlwifi_1")]);
        tree.node("class/thermal/cooling_device0", &[("type", "Processor"), ("cur_state", "0")]);
        assert_eq!(SysfsThermal::at(tree.root()).thermal(), Some(ThermalLevel::Fair));

        zone(&tree, 2, 101.0, &[]);
        assert_eq!(SysfsThermal::at(tree.root()).thermal(), Some(ThermalLevel::Critical));
    }

    #[test]
    fn only_absurd_zones_read_as_no_probe() {
        let tree = Tree::new();
        tree.node("class/thermal/thermal_zone0", &[("type", "acpitz"), ("temp", "0")]);
        tree.node("class/thermal/thermal_zone1", &[("type", "acpitz"), ("temp", "-273000")]);
        assert_eq!(SysfsThermal::at(tree.root()).thermal(), None);
    }

    #[test]
    fn no_thermal_class_or_no_zones_read_as_no_probe() {
        let tree = Tree::new();
        tree.node("class/power_supply", &[]);
        assert_eq!(SysfsThermal::at(tree.root()).thermal(), None);

        tree.node("class/thermal/cooling_device0", &[("type", "Fan")]);
        assert_eq!(SysfsThermal::at(tree.root()).thermal(), None);
    }

    #[test]
    fn temperatures_are_read_again_at_every_call() {
        let tree = Tree::new();
        zone(&tree, 0, 50.0, &[]);
        let probe = SysfsThermal::at(tree.root());
        assert_eq!(probe.thermal(), Some(ThermalLevel::Nominal));
        tree.node("class/thermal/thermal_zone0", &[("temp", "93000")]);
        assert_eq!(probe.thermal(), Some(ThermalLevel::Serious));
    }
}
