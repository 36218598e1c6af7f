//! The older production coordinator's write-deadline hazard, reproduced on purpose.
//!
//! That coordinator set an absolute write deadline (now + 10 s) only when it wrote a *text* frame and
//! never cleared it. When a provider's control PING arrived, the library answered with a PONG under
//! that stale deadline; once the link had been idle for longer than the timeout the PONG write failed
//! with `i/o timeout` and the session was torn down. Providers must survive this by keeping alive
//! with text heartbeats and never pinging; `strict` mode lets tests prove they do.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The absolute deadline of the next write, as the old coordinator kept it.
#[derive(Debug)]
pub(crate) struct StaleDeadline {
    deadline: Mutex<Instant>,
    timeout: Duration,
}

/// Why a strict session is torn down when its auto-pong "fails".
pub(crate) const PONG_TIMEOUT_REASON: &str = "pong write: i/o timeout (stale write deadline)";

impl StaleDeadline {
    /// Before any text frame is written the deadline counts from the handshake.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { deadline: Mutex::new(Instant::now() + timeout), timeout }
    }

    /// Armed when (and only when) a text frame is written.
    pub(crate) fn arm(&self) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now() + self.timeout;
    }

    /// Whether a control frame written now would miss the deadline.
    pub(crate) fn expired(&self) -> bool {
        Instant::now() > *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_writes_rearm_the_deadline() {
        let d = StaleDeadline::new(Duration::from_millis(20));
        assert!(!d.expired());
        std::thread::sleep(Duration::from_millis(30));
        assert!(d.expired());
        d.arm();
        assert!(!d.expired());
    }
}
