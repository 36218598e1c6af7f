//! Time since the user's last input, from logind's idle hint.
//!
//! logind knows it only as well as the session tells it: a graphical session's idle hint is set by
//! the desktop (GNOME, KDE and most screen lockers do; a bare window manager may never), a text
//! session's comes from its terminal's last input.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

use crate::probe::ActivityProbe;

use super::logind::{self, SystemBus};

const SESSION_IFACE: &str = "org.freedesktop.login1.Session";
const USER_IFACE: &str = "org.freedesktop.login1.User";

pub(crate) struct LogindActivity {
    bus: Arc<SystemBus>,
}

impl LogindActivity {
    pub(crate) fn new(bus: Arc<SystemBus>) -> LogindActivity {
        LogindActivity { bus }
    }
}

impl ActivityProbe for LogindActivity {
    /// `None` without a system bus, without logind, or without a session of this user.
    fn idle_for(&self) -> Option<Duration> {
        let conn = self.bus.connection().ok()?;
        match idle_for(&conn) {
            Ok(idle) => idle,
            Err(err) => {
                tracing::debug!(%err, "logind: cannot read the idle hint");
                self.bus.failed(&err);
                None
            }
        }
    }
}

/// The idle hint of the first of these that answers: the session this process runs in (`auto`
/// also resolves to the user's display session for a process outside any, on newer logind; `self`
/// is the older name), the user's display session, then the whole machine (every session idle).
fn idle_for(conn: &Connection) -> zbus::Result<Option<Duration>> {
    let mut last_err = None;
    for path in ["/org/freedesktop/login1/session/auto", "/org/freedesktop/login1/session/self"] {
        match hint(conn, path, SESSION_IFACE) {
            Ok(idle) => return Ok(idle),
            Err(err) => last_err = Some(err),
        }
    }
    if let Ok(display) = display_session(conn) {
        if let Ok(idle) = hint(conn, display.as_str(), SESSION_IFACE) {
            return Ok(idle);
        }
    }
    match hint(conn, logind::MANAGER_PATH, logind::MANAGER_IFACE) {
        Ok(idle) => Ok(idle),
        // The error of the first try says most about why (no logind, no session).
        Err(err) => Err(last_err.unwrap_or(err)),
    }
}

/// The user's graphical session (`Display` is `("", "/")` when there is none).
fn display_session(conn: &Connection) -> zbus::Result<OwnedObjectPath> {
    let user = logind::proxy(conn, "/org/freedesktop/login1/user/self", USER_IFACE)?;
    let (id, path): (String, OwnedObjectPath) = user.get_property("Display")?;
    if id.is_empty() {
        return Err(zbus::Error::Failure("this user has no display session".into()));
    }
    Ok(path)
}

/// Session and Manager objects name their idle properties alike.
fn hint(conn: &Connection, path: &str, iface: &str) -> zbus::Result<Option<Duration>> {
    let object = logind::proxy(conn, path, iface)?;
    if !object.get_property::<bool>("IdleHint")? {
        return Ok(Some(Duration::ZERO));
    }
    // The monotonic stamp is immune to the wall clock being set; the realtime one is the fallback
    // for a logind that leaves it 0.
    let monotonic = object.get_property::<u64>("IdleSinceHintMonotonic").unwrap_or(0);
    if monotonic > 0 {
        if let Some(now) = monotonic_now_us() {
            return Ok(Some(Duration::from_micros(now.saturating_sub(monotonic))));
        }
    }
    let realtime = object.get_property::<u64>("IdleSinceHint").unwrap_or(0);
    if realtime > 0 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        return Ok(Some(Duration::from_micros(now.saturating_sub(realtime))));
    }
    // Idle, since no one knows when: better unknown than a made-up duration.
    Ok(None)
}

/// CLOCK_MONOTONIC in µs, logind's clock for `IdleSinceHintMonotonic`.
fn monotonic_now_us() -> Option<u64> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (rc == 0).then(|| now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_reads_and_moves_forward() {
        let first = monotonic_now_us().expect("CLOCK_MONOTONIC");
        std::thread::sleep(Duration::from_millis(5));
        let second = monotonic_now_us().expect("CLOCK_MONOTONIC");
        assert!(first > 0);
        assert!(second >= first + 4_000, "{first} then {second}");
    }
}
