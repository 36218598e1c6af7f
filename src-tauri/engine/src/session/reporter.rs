//! The state reporter: a task that tells the coordinator about capacity and flag changes with a
//! `state_update`, so the coordinator's view of free slots follows the provider's without waiting
//! for the next heartbeat.

use std::sync::Arc;
use std::time::Duration;

use hearth_protocol::ProviderMessage;

use super::shared::{SessionFlags, Shared};
use super::writer::Outbox;

/// Sends a `state_update` whenever the announced state, the free slots or the slots allowed change, coalescing bursts
/// over 20 ms like the reference provider.
///
/// After a model swap it first sends a heartbeat, the frame that carries `model_id`, then the state
/// (`model_loaded`): in that order the coordinator never sees the provider ready for the old model
/// while the new one serves. `heartbeat_interval` is the session's, for the heartbeat's window.
pub(super) async fn run(
    shared: Arc<Shared>,
    flags: Arc<SessionFlags>,
    outbox: Outbox,
    heartbeat_interval: Duration,
) {
    let mut flag_changes = flags.watch_changes();
    let mut capacity = shared.capacity_changes();
    let mut generation = shared.engine_generation();
    loop {
        tokio::select! {
            r = capacity.changed() => if r.is_err() { return },
            r = flag_changes.recv() => if r.is_none() { return },
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = (shared.state(&flags).0, shared.slots_free(), shared.slot_limit());
        shared.publish_phase(&flags);
        if shared.engine_generation() != generation {
            generation = shared.engine_generation();
            let beat = super::heartbeat::build(&shared, &flags, &shared.metrics, heartbeat_interval);
            if !outbox.send_priority(&ProviderMessage::Heartbeat(beat))
                || !shared.announce_state(&flags, &outbox, Some("model_loaded"))
            {
                return;
            }
            continue;
        }
        if flags.last_announced() != Some(now) && !shared.announce_state(&flags, &outbox, None) {
            return;
        }
    }
}
