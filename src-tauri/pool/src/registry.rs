//! Provider rows: admitting a session, applying what it reports, and what happens when it ends.

use std::sync::Arc;

use hearth_protocol::{Heartbeat, Hello, ProviderState, StateUpdate};

use crate::events::PoolEvent;
use crate::state::{Failure, ProviderRow, RelayEvent, SessionLink, Shared};

/// The coordinator clamps a provider's announced concurrency to this.
pub(crate) const MAX_CONCURRENCY: u32 = 8;

impl Shared {
    /// Takes (or takes over) the row for `hello.provider_id`. Returns the link of a session this one
    /// replaces, which the caller closes.
    pub(crate) fn admit(&self, hello: &Hello, assigned_id: &str, link: SessionLink) -> Option<SessionLink> {
        let slots = hello.max_concurrency.clamp(1, MAX_CONCURRENCY);
        let row = ProviderRow {
            provider_id: hello.provider_id.clone(),
            assigned_id: assigned_id.to_string(),
            model_id: hello.model_id.clone(),
            state: ProviderState::Ready,
            slots_free: slots,
            slots_total: slots,
            max_context_tokens: hello.max_context_tokens,
            connected_unix: unix_now(),
            link: Some(link),
        };
        self.lock().providers.insert(hello.provider_id.clone(), row).and_then(|old| old.link)
    }

    /// Runs `f` on the row if `assigned_id` is still its session (frames from a replaced session
    /// must not overwrite the new one's state).
    fn with_row(&self, provider_id: &str, assigned_id: &str, f: impl FnOnce(&mut ProviderRow)) {
        let mut reg = self.lock();
        if let Some(row) = reg.providers.get_mut(provider_id) {
            if row.assigned_id == assigned_id && row.link.is_some() {
                f(row);
            }
        }
    }

    pub(crate) fn apply_heartbeat(&self, provider_id: &str, assigned_id: &str, hb: &Heartbeat) {
        self.with_row(provider_id, assigned_id, |row| {
            apply_state(row, hb.status);
            row.slots_total = hb.slots_total;
            row.slots_free = hb.slots_free.min(hb.slots_total);
            row.model_id.clone_from(&hb.model_id);
            row.max_context_tokens = hb.max_context_tokens;
        });
    }

    pub(crate) fn apply_state_update(&self, provider_id: &str, assigned_id: &str, update: &StateUpdate) {
        self.with_row(provider_id, assigned_id, |row| {
            apply_state(row, update.state);
            let m = &update.metrics_snapshot;
            row.slots_total = m.slots_total;
            row.slots_free = m.slots_free.min(m.slots_total);
        });
    }

    pub(crate) fn set_draining(&self, provider_id: &str, assigned_id: &str) {
        self.with_row(provider_id, assigned_id, |row| row.state = ProviderState::Draining);
    }

    /// Marks the row unavailable (if this session still owns it), fails every request the session
    /// carried, and removes the row after the grace period unless a reconnect took it over.
    pub(crate) fn session_ended(self: &Arc<Self>, provider_id: &str, assigned_id: &str, reason: &str) {
        let lost = {
            let mut reg = self.lock();
            if let Some(row) = reg.providers.get_mut(provider_id) {
                if row.assigned_id == assigned_id {
                    row.link = None;
                    row.state = ProviderState::Unavailable;
                    row.slots_free = 0;
                }
            }
            let ids: Vec<String> = reg
                .requests
                .iter()
                .filter(|(_, r)| r.assigned_id == assigned_id)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter().filter_map(|id| reg.requests.remove(&id)).collect::<Vec<_>>()
        };
        for request in lost {
            if request.sent {
                self.ledger().record_fault(provider_id);
            }
            if let Some(buyer) = request.buyer {
                let _ = buyer.send(RelayEvent::Failed(Failure::Disconnected));
            }
        }
        self.emit(PoolEvent::ProviderDisconnected {
            provider_id: provider_id.to_string(),
            assigned_id: assigned_id.to_string(),
            reason: reason.to_string(),
        });
        let shared = Arc::clone(self);
        let (provider_id, assigned_id) = (provider_id.to_string(), assigned_id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(shared.config.disconnect_grace).await;
            let removed = {
                let mut reg = shared.lock();
                let stale = reg
                    .providers
                    .get(&provider_id)
                    .is_some_and(|row| row.assigned_id == assigned_id && row.link.is_none());
                stale && reg.providers.remove(&provider_id).is_some()
            };
            if removed {
                tracing::info!(%provider_id, "disconnect grace over; provider row removed");
                shared.emit(PoolEvent::ProviderRemoved { provider_id });
            }
        });
    }

    /// Links of every live session, for drain and shutdown.
    pub(crate) fn live_links(&self) -> Vec<SessionLink> {
        self.lock().providers.values().filter_map(|row| row.link.clone()).collect()
    }
}

/// A provider reports its own state, but never `unavailable`: only the pool sets that.
fn apply_state(row: &mut ProviderRow, reported: ProviderState) {
    if reported != ProviderState::Unavailable {
        row.state = reported;
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
