//! Drain: stop taking work, let in-flight jobs finish up to the deadline, cancel the rest, report,
//! close with "going away". It runs as its own task: the handler keeps reading and answering the
//! whole time (new requests are refused with a reason).

use std::sync::Arc;
use std::time::Duration;

use hearth_protocol::close::GOING_AWAY;
use hearth_protocol::{DrainPhase, DrainStatus, ProviderMessage};

use super::relay::Relay;
use super::shared::{SessionFlags, Shared};
use super::writer::Outbox;

/// How long a pause lets held jobs run: past the coordinator's own 900 s request timeout, so a
/// pause never cuts a job the coordinator still waits for.
pub(super) const PAUSE_DRAIN_LIMIT: Duration = Duration::from_secs(960);

/// Drains, letting in-flight jobs run for up to `deadline` (the drain timeout when stopping or
/// asked by the coordinator; [`PAUSE_DRAIN_LIMIT`] for a power-policy pause).
pub(super) async fn run(
    shared: Arc<Shared>,
    flags: Arc<SessionFlags>,
    relay: Arc<Relay>,
    outbox: Outbox,
    deadline: Duration,
) {
    shared.announce_state(&flags, &outbox, None);
    let inflight = relay.inflight() as u32;
    let estimate = if inflight > 0 { deadline.min(shared.config.drain_timeout).as_secs() } else { 0 };
    for phase in [DrainPhase::Starting, DrainPhase::InProgress] {
        outbox.send_priority(&ProviderMessage::DrainStatus(DrainStatus {
            phase,
            inflight_requests: inflight,
            estimated_drain_seconds: estimate,
        }));
    }
    let left = relay.wait_idle(deadline).await;
    if left > 0 {
        tracing::warn!(left, "drain deadline passed; cancelling the remaining requests");
        relay.cancel_all("drain deadline passed");
        relay.wait_idle(Duration::from_secs(5)).await;
    }
    // In the bulk lane, behind every end frame the jobs queued.
    outbox.send(&ProviderMessage::DrainStatus(DrainStatus {
        phase: DrainPhase::Complete,
        inflight_requests: 0,
        estimated_drain_seconds: 0,
    }));
    outbox.close_after_pending(GOING_AWAY, "drained");
}
