//! The system-bus connection the logind probes share: made on first use, kept while it works, and
//! after a failure not tried again for a while, so a machine without a system bus (a container, a
//! minimal server) costs one failed connect per [`RETRY_AFTER`] rather than one per poll.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use zbus::blocking::{Connection, Proxy};
use zbus::proxy::CacheProperties;

pub(crate) const LOGIN1: &str = "org.freedesktop.login1";
pub(crate) const MANAGER_PATH: &str = "/org/freedesktop/login1";
pub(crate) const MANAGER_IFACE: &str = "org.freedesktop.login1.Manager";

/// How long a failed connect is remembered.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(30);
/// A logind that does not answer must not hold up the poll that asked.
const METHOD_TIMEOUT: Duration = Duration::from_secs(2);

enum State {
    Untried,
    Up(Connection),
    /// The connect failed at that instant, for that reason.
    Down(Instant, String),
}

pub(crate) struct SystemBus {
    state: Mutex<State>,
}

impl SystemBus {
    pub(crate) fn new() -> SystemBus {
        SystemBus { state: Mutex::new(State::Untried) }
    }

    /// The shared connection, or why there is none.
    pub(crate) fn connection(&self) -> Result<Connection, String> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*state {
            State::Up(conn) => return Ok(conn.clone()),
            State::Down(at, why) if at.elapsed() < RETRY_AFTER => return Err(why.clone()),
            _ => {}
        }
        // Connecting under the lock: a second caller waits for this attempt instead of making its own.
        match connect() {
            Ok(conn) => {
                *state = State::Up(conn.clone());
                Ok(conn)
            }
            Err(why) => {
                tracing::debug!(%why, "logind probes: no system bus");
                *state = State::Down(Instant::now(), why.clone());
                Err(why)
            }
        }
    }

    /// After a call failed for want of a working connection: the next call connects again (after
    /// the usual wait), rather than reusing a dead one forever.
    pub(crate) fn failed(&self, err: &zbus::Error) {
        if matches!(err, zbus::Error::InputOutput(_) | zbus::Error::Handshake(_)) {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *state = State::Down(Instant::now(), format!("the system bus connection failed: {err}"));
        }
    }
}

fn connect() -> Result<Connection, String> {
    zbus::blocking::connection::Builder::system()
        .and_then(|builder| builder.method_timeout(METHOD_TIMEOUT).build())
        .map_err(|err| format!("cannot connect to the system bus: {err}"))
}

/// A proxy without a property cache: logind's idle hint changes under us, and a cache would need
/// the change signals this poller never waits for.
pub(crate) fn proxy<'a>(conn: &Connection, path: &'a str, iface: &'a str) -> zbus::Result<Proxy<'a>> {
    zbus::blocking::proxy::Builder::<Proxy<'a>>::new(conn)
        .destination(LOGIN1)?
        .path(path)?
        .interface(iface)?
        .cache_properties(CacheProperties::No)
        .build()
}
