//! Waiting for a condition: one [`poll_until`] that returns the first value satisfying it, or
//! panics saying what it waited for and the last value it saw.
//!
//! Why one helper, and why it panics: a poll loop that gives up quietly (returning the last value,
//! or `false` for the caller to check) lets a test go on as if the condition had held, so a later
//! "this did not happen" assertion can pass only because the thing never started. Every wait in the
//! suites goes through here, so a timeout always fails the test and always says why.
//!
//! ```no_run
//! # async fn example(pool: &hearth_pool::Pool) {
//! use std::time::Duration;
//! use hearth_testkit::poll::poll_until;
//!
//! let status = poll_until(
//!     "one provider ready",
//!     Duration::from_secs(5),
//!     || async { pool.snapshot() },
//!     |s| s.pool.ready == 1,
//! )
//! .await;
//! # }
//! ```
//!
//! A synchronous probe returns `std::future::ready(value)`. Where a failure should also show
//! something only known at that moment (a process's log), use [`try_poll_until`] and
//! [`TimedOut::fail`].

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`poll_until`] sleeps between probes: short enough that the latencies tests measure
/// with it (a fault noticed, a provider back) are within a few tens of milliseconds of the truth,
/// long enough not to busy the two cores the suites run on.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Probes until `done` holds for the probed value and returns that value; panics after `timeout`
/// with `what` and the last value seen.
///
/// `what` names the condition in words ("the provider is ready again"), because a closure cannot
/// describe itself in a panic message. The probe runs at least once, even with a zero timeout.
pub async fn poll_until<T, Fut>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Fut,
    done: impl FnMut(&T) -> bool,
) -> T
where
    T: Debug,
    Fut: Future<Output = T>,
{
    match try_poll_until(what, timeout, probe, done).await {
        Ok(value) => value,
        Err(timed_out) => timed_out.fail(""),
    }
}

/// Like [`poll_until`], but hands the timeout back so the caller can add context before failing:
/// `try_poll_until(..).await.unwrap_or_else(|t| t.fail(proc.log_text()))`.
pub async fn try_poll_until<T, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Fut,
    mut done: impl FnMut(&T) -> bool,
) -> Result<T, TimedOut<T>>
where
    Fut: Future<Output = T>,
{
    let started = Instant::now();
    loop {
        let value = probe().await;
        if done(&value) {
            return Ok(value);
        }
        if started.elapsed() >= timeout {
            return Err(TimedOut { what: what.to_string(), waited: started.elapsed(), last: value });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A condition that did not hold in time: what was awaited, for how long, and the last value seen.
#[derive(Debug)]
pub struct TimedOut<T> {
    pub what: String,
    pub waited: Duration,
    pub last: T,
}

impl<T: Debug> TimedOut<T> {
    /// Fails the test: panics with what was awaited, the last value seen and `context` (for
    /// instance the tail of a process's log; empty for none).
    pub fn fail(self, context: impl Display) -> ! {
        let context = context.to_string();
        let context = if context.is_empty() { String::new() } else { format!("\n{context}") };
        panic!(
            "timed out after {:.1?} waiting for {}; last value seen:\n{:#?}{context}",
            self.waited, self.what, self.last
        )
    }
}
