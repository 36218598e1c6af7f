//! Power source and charge from `<sysfs>/class/power_supply`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::probe::PowerProbe;
use crate::readings::{PowerReading, PowerSource};

use super::{read_attr, read_int, sysfs_root};

/// Reads `class/power_supply` afresh at every call: the kernel rewrites those files in place, and
/// so do the checks that drive a fake tree.
pub(crate) struct SysfsPower {
    root: Option<PathBuf>,
}

impl SysfsPower {
    /// The root named by `HEARTH_SYSFS_ROOT` at each read, else `/sys`.
    pub(crate) fn from_env() -> SysfsPower {
        SysfsPower { root: None }
    }

    #[cfg(test)]
    pub(crate) fn at(root: impl Into<PathBuf>) -> SysfsPower {
        SysfsPower { root: Some(root.into()) }
    }
}

impl PowerProbe for SysfsPower {
    fn power(&self) -> PowerReading {
        let dir = sysfs_root(self.root.as_deref()).join("class/power_supply");
        match fs::read_dir(&dir) {
            Ok(entries) => {
                let supplies: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
                Supplies::read(&supplies).reading()
            }
            // No power_supply class at all (a container, an odd kernel): nothing to go on.
            Err(_) => PowerReading::UNKNOWN,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Charging,
    Discharging,
    /// `Full` or `Not charging`: held on external power (a charge threshold, or simply full).
    Held,
    Unknown,
}

#[derive(Debug)]
struct Battery {
    status: Status,
    percent: Option<f64>,
    /// `energy_now`/`energy_full` (µWh), to weigh several batteries by their size.
    energy: Option<(i64, i64)>,
}

impl Battery {
    /// `None` for a battery that is not this machine's own (a mouse's, a keyboard's) or an empty bay.
    fn read(dir: &Path) -> Option<Battery> {
        if read_attr(&dir.join("scope")).as_deref() == Some("Device") {
            return None;
        }
        if read_int(&dir.join("present")) == Some(0) {
            return None;
        }
        let status = match read_attr(&dir.join("status")).as_deref() {
            Some("Charging") => Status::Charging,
            Some("Discharging") => Status::Discharging,
            Some("Full") | Some("Not charging") => Status::Held,
            _ => Status::Unknown,
        };
        let pair = |now: &str, full: &str| match (read_int(&dir.join(now)), read_int(&dir.join(full))) {
            (Some(now), Some(full)) if now >= 0 && full > 0 => Some((now, full)),
            _ => None,
        };
        let energy = pair("energy_now", "energy_full");
        let percent = read_int(&dir.join("capacity"))
            .map(|c| c.clamp(0, 100) as f64)
            .or_else(|| energy.or_else(|| pair("charge_now", "charge_full")).map(ratio_percent));
        Some(Battery { status, percent, energy })
    }
}

fn ratio_percent((now, full): (i64, i64)) -> f64 {
    (now as f64 * 100.0 / full as f64).clamp(0.0, 100.0)
}

#[derive(Debug, Default)]
struct Supplies {
    /// A mains, USB or wireless charger reports at all (online or not).
    charger_seen: bool,
    charger_online: bool,
    batteries: Vec<Battery>,
}

impl Supplies {
    fn read(dirs: &[PathBuf]) -> Supplies {
        let mut supplies = Supplies::default();
        for dir in dirs {
            let Some(kind) = read_attr(&dir.join("type")) else { continue };
            match kind.as_str() {
                "Battery" => supplies.batteries.extend(Battery::read(dir)),
                // USB covers the USB_C, USB_PD, … types of older kernels too.
                k if k == "Mains" || k == "Wireless" || k.starts_with("USB") => {
                    supplies.charger_seen = true;
                    supplies.charger_online |= read_int(&dir.join("online")) == Some(1);
                }
                // A UPS feeding a desktop, or a kind this code does not know: it says nothing about
                // whether this machine runs on its own battery.
                _ => {}
            }
        }
        supplies
    }

    fn reading(&self) -> PowerReading {
        if self.batteries.is_empty() {
            // The class exists but holds no battery of ours: a desktop, on mains by definition.
            return PowerReading { source: PowerSource::External, charge_percent: None };
        }
        let any = |status: Status| self.batteries.iter().any(|b| b.status == status);
        let source = if self.charger_online || any(Status::Charging) {
            PowerSource::External
        } else if any(Status::Discharging) {
            // Checked before `Held`: with two batteries, the idle one says `Not charging` while the
            // other one discharges.
            PowerSource::Battery
        } else if self.charger_seen {
            // Every charger says it is offline: the battery feeds the machine even if its status
            // still says `Full` (it lags a little after unplugging).
            PowerSource::Battery
        } else if any(Status::Held) {
            PowerSource::External
        } else {
            PowerSource::Unknown
        };
        PowerReading { source, charge_percent: self.charge() }
    }

    /// Several batteries: their energy summed when every one reports it (a big and a small battery
    /// do not weigh the same), else the mean of their percentages.
    fn charge(&self) -> Option<u8> {
        let percent = if self.batteries.len() > 1 && self.batteries.iter().all(|b| b.energy.is_some()) {
            let (now, full) = self
                .batteries
                .iter()
                .filter_map(|b| b.energy)
                .fold((0, 0), |(now, full), (n, f)| (now + n, full + f));
            ratio_percent((now, full))
        } else {
            let known: Vec<f64> = self.batteries.iter().filter_map(|b| b.percent).collect();
            if known.is_empty() {
                return None;
            }
            known.iter().sum::<f64>() / known.len() as f64
        };
        Some(percent.round().clamp(0.0, 100.0) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::fake_sysfs::Tree;

    const AC: &str = "class/power_supply/AC";
    const BAT0: &str = "class/power_supply/BAT0";
    const BAT1: &str = "class/power_supply/BAT1";

    fn read(tree: &Tree) -> PowerReading {
        SysfsPower::at(tree.root()).power()
    }

    fn reading(source: PowerSource, charge: Option<u8>) -> PowerReading {
        PowerReading { source, charge_percent: charge }
    }

    fn battery(tree: &Tree, dir: &str, status: &str, capacity: &str) {
        tree.node(dir, &[("type", "Battery"), ("present", "1"), ("status", status), ("capacity", capacity)]);
    }

    #[test]
    fn discharging_laptop_reads_battery_with_its_charge() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "0")]);
        battery(&tree, BAT0, "Discharging", "15");
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(15)));
    }

    #[test]
    fn discharging_without_any_charger_entry_reads_battery() {
        let tree = Tree::new();
        battery(&tree, BAT0, "Discharging", "15");
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(15)));
    }

    #[test]
    fn charging_reads_external_with_the_charge() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "1")]);
        battery(&tree, BAT0, "Charging", "42");
        assert_eq!(read(&tree), reading(PowerSource::External, Some(42)));
    }

    #[test]
    fn full_and_not_charging_read_external() {
        for status in ["Full", "Not charging"] {
            let tree = Tree::new();
            tree.node(AC, &[("type", "Mains"), ("online", "1")]);
            battery(&tree, BAT0, status, "100");
            assert_eq!(read(&tree), reading(PowerSource::External, Some(100)), "status {status}");

            // Without a charger entry the battery's own word is all there is.
            let tree = Tree::new();
            battery(&tree, BAT0, status, "80");
            assert_eq!(read(&tree), reading(PowerSource::External, Some(80)), "status {status}, no AC");
        }
    }

    #[test]
    fn an_offline_charger_outweighs_a_stale_full_status() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "0")]);
        battery(&tree, BAT0, "Full", "100");
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(100)));
    }

    #[test]
    fn an_online_usb_charger_reads_external_even_while_the_battery_drains() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "0")]);
        tree.node("class/power_supply/ucsi-source-psy-USBC000:001", &[("type", "USB"), ("online", "1")]);
        battery(&tree, BAT0, "Discharging", "60");
        assert_eq!(read(&tree), reading(PowerSource::External, Some(60)));
    }

    #[test]
    fn desktop_without_battery_reads_external_without_charge() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "1")]);
        assert_eq!(read(&tree), reading(PowerSource::External, None));

        let empty = Tree::new();
        empty.node("class/power_supply", &[]);
        assert_eq!(read(&empty), reading(PowerSource::External, None));
    }

    #[test]
    fn missing_power_supply_class_reads_unknown() {
        let tree = Tree::new();
        tree.node("class/thermal", &[]);
        assert_eq!(read(&tree), PowerReading::UNKNOWN);

        let nowhere = SysfsPower::at(tree.root().join("does-not-exist")).power();
        assert_eq!(nowhere, PowerReading::UNKNOWN);
    }

    #[test]
    fn a_mouse_battery_is_not_the_machines() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "1")]);
        tree.node(
            "class/power_supply/hidpp_battery_0",
            &[("type", "Battery"), ("scope", "Device"), ("status", "Discharging"), ("capacity", "5")],
        );
        assert_eq!(read(&tree), reading(PowerSource::External, None));

        // Alone, a discharging device battery still leaves a desktop on mains.
        let tree = Tree::new();
        tree.node(
            "class/power_supply/hid-00:11:22:33:44:55-battery",
            &[("type", "Battery"), ("scope", "Device"), ("status", "Discharging"), ("capacity", "5")],
        );
        assert_eq!(read(&tree), reading(PowerSource::External, None));
    }

    #[test]
    fn an_empty_battery_bay_is_ignored() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "0")]);
        battery(&tree, BAT0, "Discharging", "70");
        tree.node(BAT1, &[("type", "Battery"), ("present", "0")]);
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(70)));
    }

    #[test]
    fn charge_from_energy_or_charge_counters_without_capacity() {
        let tree = Tree::new();
        tree.node(
            BAT0,
            &[
                ("type", "Battery"),
                ("status", "Discharging"),
                ("energy_now", "25000000"),
                ("energy_full", "50000000"),
            ],
        );
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(50)));

        let tree = Tree::new();
        tree.node(
            BAT0,
            &[
                ("type", "Battery"),
                ("status", "Discharging"),
                ("charge_now", "1000000"),
                ("charge_full", "4000000"),
            ],
        );
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(25)));

        // Nothing to compute a charge from.
        let tree = Tree::new();
        tree.node(BAT0, &[("type", "Battery"), ("status", "Discharging")]);
        assert_eq!(read(&tree), reading(PowerSource::Battery, None));
    }

    #[test]
    fn capacity_out_of_range_is_clamped() {
        let tree = Tree::new();
        battery(&tree, BAT0, "Charging", "104");
        assert_eq!(read(&tree), reading(PowerSource::External, Some(100)));

        let tree = Tree::new();
        battery(&tree, BAT0, "Discharging", "-3");
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(0)));
    }

    #[test]
    fn two_batteries_weigh_by_energy_and_one_discharging_means_battery() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "0")]);
        // A big internal battery idle at 90 % while a small external one discharges at 30 %.
        tree.node(
            BAT0,
            &[
                ("type", "Battery"),
                ("status", "Not charging"),
                ("capacity", "90"),
                ("energy_now", "45000000"),
                ("energy_full", "50000000"),
            ],
        );
        tree.node(
            BAT1,
            &[
                ("type", "Battery"),
                ("status", "Discharging"),
                ("capacity", "30"),
                ("energy_now", "7500000"),
                ("energy_full", "25000000"),
            ],
        );
        // (45 + 7.5) / (50 + 25) = 70 %.
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(70)));
    }

    #[test]
    fn two_batteries_without_energy_average_their_capacity() {
        let tree = Tree::new();
        battery(&tree, BAT0, "Discharging", "40");
        battery(&tree, BAT1, "Unknown", "61");
        assert_eq!(read(&tree), reading(PowerSource::Battery, Some(51)));
    }

    #[test]
    fn a_battery_of_unknown_status_without_chargers_reads_unknown() {
        let tree = Tree::new();
        battery(&tree, BAT0, "Unknown", "55");
        assert_eq!(read(&tree), reading(PowerSource::Unknown, Some(55)));
    }

    #[test]
    fn files_are_read_again_at_every_call() {
        let tree = Tree::new();
        tree.node(AC, &[("type", "Mains"), ("online", "1")]);
        battery(&tree, BAT0, "Charging", "50");
        let probe = SysfsPower::at(tree.root());
        assert_eq!(probe.power(), reading(PowerSource::External, Some(50)));

        tree.node(AC, &[("online", "0")]);
        tree.node(BAT0, &[("status", "Discharging"), ("capacity", "49")]);
        assert_eq!(probe.power(), reading(PowerSource::Battery, Some(49)));
    }
}
