//! The Linux probes: sysfs for the power supply and the thermal zones, logind on the system bus for
//! the user's idle time and the idle inhibitor.

mod activity;
mod keep_awake;
mod logind;
mod power;
mod thermal;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::probe::Probes;

pub(crate) use activity::LogindActivity;
pub(crate) use keep_awake::LogindKeepAwake;
pub(crate) use power::SysfsPower;
pub(crate) use thermal::SysfsThermal;

/// The real probes. The two logind probes share one system-bus connection.
pub(crate) fn probes() -> Probes {
    let bus = Arc::new(logind::SystemBus::new());
    Probes {
        power: Arc::new(SysfsPower::from_env()),
        thermal: Arc::new(SysfsThermal::from_env()),
        activity: Arc::new(LogindActivity::new(bus.clone())),
        keep_awake: Arc::new(LogindKeepAwake::new(bus)),
    }
}

/// The sysfs root: `fixed` when a test gave one, else `HEARTH_SYSFS_ROOT` or `/sys`. The variable
/// is read at every call because a check may point a running process at another tree.
fn sysfs_root(fixed: Option<&Path>) -> PathBuf {
    match fixed {
        Some(root) => root.to_path_buf(),
        None => match std::env::var_os(crate::SYSFS_ROOT_ENV) {
            Some(root) if !root.is_empty() => PathBuf::from(root),
            _ => PathBuf::from("/sys"),
        },
    }
}

/// A sysfs attribute without its trailing newline; `None` when missing, unreadable or empty.
fn read_attr(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn read_int(path: &Path) -> Option<i64> {
    read_attr(path)?.parse().ok()
}

/// A fake sysfs tree for the tests: attributes written as the kernel shows them, newline included.
#[cfg(test)]
pub(crate) mod fake_sysfs {
    use std::fs;
    use std::path::{Path, PathBuf};

    pub(crate) struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        pub(crate) fn new() -> Tree {
            Tree { dir: tempfile::tempdir().expect("temp dir") }
        }

        pub(crate) fn root(&self) -> &Path {
            self.dir.path()
        }

        /// Writes `attrs` into `<root>/<dir>/`, creating it.
        pub(crate) fn node(&self, dir: &str, attrs: &[(&str, &str)]) -> PathBuf {
            let node = self.dir.path().join(dir);
            fs::create_dir_all(&node).expect("create node");
            for (name, value) in attrs {
                fs::write(node.join(name), format!("{value}\n")).expect("write attribute");
            }
            node
        }
    }
}
