//! Keep-awake through a logind idle inhibitor: the lock lasts as long as its file descriptor is open.

use std::sync::Arc;

use zbus::zvariant::OwnedFd;

use crate::probe::{AwakeGuard, KeepAwake};

use super::logind::{self, SystemBus};

pub(crate) struct LogindKeepAwake {
    bus: Arc<SystemBus>,
}

impl LogindKeepAwake {
    pub(crate) fn new(bus: Arc<SystemBus>) -> LogindKeepAwake {
        LogindKeepAwake { bus }
    }
}

/// Closing the descriptor (dropping the guard) is what releases the inhibitor; logind also drops it
/// if this process dies.
struct Inhibitor {
    _fd: OwnedFd,
}

impl AwakeGuard for Inhibitor {}

impl KeepAwake for LogindKeepAwake {
    /// An `idle` inhibitor in `block` mode, shown by `systemd-inhibit --list` as "Hearth" with `why`.
    fn hold(&self, why: &str) -> Result<Box<dyn AwakeGuard>, String> {
        let conn = self.bus.connection().map_err(|err| {
            format!("no system bus ({err}): cannot keep this machine awake; it may sleep while serving")
        })?;
        let inhibit = || -> zbus::Result<OwnedFd> {
            let manager = logind::proxy(&conn, logind::MANAGER_PATH, logind::MANAGER_IFACE)?;
            manager.call("Inhibit", &("idle", "Hearth", why, "block"))
        };
        match inhibit() {
            Ok(fd) => Ok(Box::new(Inhibitor { _fd: fd })),
            Err(err) => {
                self.bus.failed(&err);
                Err(format!(
                    "logind refused the idle inhibitor ({err}): this machine may sleep while serving"
                ))
            }
        }
    }
}
