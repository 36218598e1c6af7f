//! `Probes::system()` on Linux reads the sysfs tree `HEARTH_SYSFS_ROOT` names, at every read: a check
//! can switch the tree, or rewrite its files, while the process runs. Its own test binary, because
//! the variable is process-wide.
#![cfg(target_os = "linux")]

use std::fs;
use std::path::Path;

use hearth_power::{PowerReading, PowerSource, Probes, ThermalLevel, SYSFS_ROOT_ENV};

fn write(root: &Path, dir: &str, attrs: &[(&str, &str)]) {
    let node = root.join(dir);
    fs::create_dir_all(&node).unwrap();
    for (name, value) in attrs {
        fs::write(node.join(name), format!("{value}\n")).unwrap();
    }
}

#[test]
fn system_probes_follow_the_sysfs_root_variable() {
    let laptop = tempfile::tempdir().unwrap();
    write(laptop.path(), "class/power_supply/AC", &[("type", "Mains"), ("online", "0")]);
    write(
        laptop.path(),
        "class/power_supply/BAT0",
        &[("type", "Battery"), ("status", "Discharging"), ("capacity", "15")],
    );
    write(laptop.path(), "class/thermal/thermal_zone0", &[("type", "x86_pkg_temp"), ("temp", "55000")]);

    std::env::set_var(SYSFS_ROOT_ENV, laptop.path());
    let probes = Probes::system();
    assert_eq!(probes.power.power(), PowerReading { source: PowerSource::Battery, charge_percent: Some(15) });
    assert_eq!(probes.thermal.thermal(), Some(ThermalLevel::Nominal));

    // The same tree rewritten in place: plugged in, and hotter.
    write(laptop.path(), "class/power_supply/AC", &[("online", "1")]);
    write(laptop.path(), "class/power_supply/BAT0", &[("status", "Charging"), ("capacity", "16")]);
    write(laptop.path(), "class/thermal/thermal_zone0", &[("temp", "91000")]);
    assert_eq!(
        probes.power.power(),
        PowerReading { source: PowerSource::External, charge_percent: Some(16) }
    );
    assert_eq!(probes.thermal.thermal(), Some(ThermalLevel::Serious));

    // Another tree entirely, for the same probes: a bare directory has no probes at all.
    let bare = tempfile::tempdir().unwrap();
    std::env::set_var(SYSFS_ROOT_ENV, bare.path());
    assert_eq!(probes.power.power(), PowerReading::UNKNOWN);
    assert_eq!(probes.thermal.thermal(), None);

    std::env::remove_var(SYSFS_ROOT_ENV);
}
