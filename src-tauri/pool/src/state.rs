//! [`PoolState`]: one running pool's parts and the operations sessions and buyer handlers call on it.
//!
//! The parts keep their own logic: the provider rows in `registry`, the requests in flight in
//! `relay`, the record of finished requests in `usage_log`, the status document in `status`. Rows and
//! requests sit together under one lock (a request and the slot it holds change together); the
//! usage log has its own. Each method here takes the table for one synchronous step, hands the work to
//! the part that owns it, then records or announces the outcome; no method holds the table and the
//! usage log at once.
//!
//! A plain `std::sync::Mutex` is enough: every critical section is a few map operations and
//! channel sends, and no lock is ever held across an `.await` (the table is only reached inside a
//! synchronous closure). Sessions and buyer handlers talk to each other only through this table and
//! unbounded channels, so neither can block the other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use hearth_protocol::{
    CoordinatorMessage, Heartbeat, Hello, Nak, PreflightAck, ResponseChunk, ResponseEnd, StateUpdate,
};
use tokio::sync::{broadcast, oneshot};
use tracing::Instrument;

use crate::config::PoolConfig;
use crate::credits::RateCard;
use crate::events::PoolEvent;
use crate::link::SessionLink;
use crate::registry::{Registry, RouteError};
use crate::relay::{Dispatch, Failure, Relay, RelayEvent};
use crate::status::{self, PoolStatus};
use crate::usage_log::UsageLog;

/// What the one lock guards.
#[derive(Debug, Default)]
struct Table {
    providers: Registry,
    requests: Relay,
}

pub(crate) struct PoolState {
    pub config: PoolConfig,
    pub started: Instant,
    table: Mutex<Table>,
    usage_log: Mutex<UsageLog>,
    pub events: broadcast::Sender<PoolEvent>,
    pub shutting_down: AtomicBool,
}

impl PoolState {
    pub(crate) fn new(config: PoolConfig) -> Self {
        Self {
            config,
            started: Instant::now(),
            table: Mutex::new(Table::default()),
            usage_log: Mutex::new(UsageLog::default()),
            events: broadcast::channel(4096).0,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the rows and the requests under the table's lock; a panic elsewhere must not
    /// wedge the pool, so poisoning is ignored.
    fn with_table<T>(&self, f: impl FnOnce(&mut Registry, &mut Relay) -> T) -> T {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let Table { providers, requests } = &mut *table;
        f(providers, requests)
    }

    /// The record of finished requests (poisoning ignored, as for the table).
    pub(crate) fn usage_log(&self) -> MutexGuard<'_, UsageLog> {
        self.usage_log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: PoolEvent) {
        let _ = self.events.send(event);
    }

    // Provider sessions.

    /// Takes (or takes over) the row for `hello.provider_id`; returns the link of a session this
    /// one replaces, which the caller closes.
    pub(crate) fn admit(&self, hello: &Hello, assigned_id: &str, link: SessionLink) -> Option<SessionLink> {
        self.with_table(|providers, _| providers.admit(hello, assigned_id, link))
    }

    pub(crate) fn apply_heartbeat(&self, provider_id: &str, assigned_id: &str, hb: &Heartbeat) {
        self.with_table(|providers, _| providers.apply_heartbeat(provider_id, assigned_id, hb));
    }

    pub(crate) fn apply_state_update(&self, provider_id: &str, assigned_id: &str, update: &StateUpdate) {
        self.with_table(|providers, _| providers.apply_state_update(provider_id, assigned_id, update));
    }

    pub(crate) fn set_draining(&self, provider_id: &str, assigned_id: &str) {
        self.with_table(|providers, _| providers.set_draining(provider_id, assigned_id));
    }

    /// Whether the session has requests in flight; the liveness check is suspended while it does.
    pub(crate) fn set_rekeying(&self, provider_id: &str, assigned_id: &str, rekeying: bool) {
        self.with_table(|providers, _| providers.set_rekeying(provider_id, assigned_id, rekeying));
    }

    pub(crate) fn rekeying_serves(&self, model: &str) -> bool {
        self.with_table(|providers, _| providers.rekeying_serves(model))
    }

    pub(crate) fn has_active(&self, assigned_id: &str) -> bool {
        self.with_table(|_, requests| requests.has_active(assigned_id))
    }

    /// Marks the row unavailable (if this session still owns it), fails every request the session
    /// carried, and removes the row after the grace period unless a reconnect took it over. Called
    /// in the session's span, which the grace timer keeps.
    pub(crate) fn session_ended(self: &Arc<Self>, provider_id: &str, assigned_id: &str, reason: &str) {
        let lost = self.with_table(|providers, requests| {
            providers.disconnect(provider_id, assigned_id);
            requests.take_session(assigned_id)
        });
        for request in lost {
            if request.sent {
                self.usage_log().record_fault(provider_id);
            }
            request.tell(RelayEvent::Failed(Failure::Disconnected));
        }
        self.emit(PoolEvent::ProviderDisconnected {
            provider_id: provider_id.to_string(),
            assigned_id: assigned_id.to_string(),
            reason: reason.to_string(),
        });
        let shared = Arc::clone(self);
        let (provider_id, assigned_id) = (provider_id.to_string(), assigned_id.to_string());
        tokio::spawn(
            async move {
                tokio::time::sleep(shared.config.disconnect_grace).await;
                let removed =
                    shared.with_table(|providers, _| providers.remove_if_stale(&provider_id, &assigned_id));
                if removed {
                    tracing::info!("disconnect grace over; provider row removed");
                    shared.emit(PoolEvent::ProviderRemoved { provider_id });
                }
            }
            .in_current_span(),
        );
    }

    /// Links of every live session, for drain and shutdown.
    pub(crate) fn live_links(&self) -> Vec<SessionLink> {
        self.with_table(|providers, _| providers.live_links())
    }

    // Requests, from the buyer's side.

    /// Places a buyer's request for `model` on a provider.
    pub(crate) fn route(&self, model: &str) -> Result<Dispatch, RouteError> {
        self.with_table(|providers, requests| requests.route(providers, model))
    }

    /// Sends a frame about `request_id` to its provider; false if the request or session is gone.
    pub(crate) fn send_for(&self, request_id: &str, message: &CoordinatorMessage) -> bool {
        self.with_table(|providers, requests| requests.send_for(providers, request_id, message))
    }

    /// Sends `preflight` and returns where its ack will arrive.
    pub(crate) fn begin_preflight(
        &self,
        request_id: &str,
        estimated_tokens: u64,
    ) -> Option<oneshot::Receiver<PreflightAck>> {
        self.with_table(|providers, requests| {
            requests.begin_preflight(providers, request_id, estimated_tokens)
        })
    }

    /// Drops a request that was never sent to the provider (preflight refused) and frees its slot.
    pub(crate) fn forget(&self, request_id: &str) {
        self.with_table(|providers, requests| requests.forget(providers, request_id));
    }

    /// The buyer is gone: tell the provider to stop (the entry stays until its end frame).
    pub(crate) fn abandon(&self, request_id: &str, reason: &str) {
        self.with_table(|providers, requests| requests.abandon(providers, request_id, reason));
    }

    /// The buyer's deadline passed: cancel the request and count it as the provider's fault.
    pub(crate) fn time_out(&self, request_id: &str, provider_id: &str) {
        self.abandon(request_id, "timeout");
        self.usage_log().record_fault(provider_id);
    }

    /// Pool shutdown: tell providers to stop everything in flight.
    pub(crate) fn cancel_all(&self, reason: &str) {
        self.with_table(|providers, requests| requests.cancel_all(providers, reason));
    }

    // Requests, from the provider's side.

    pub(crate) fn on_chunk(&self, assigned_id: &str, chunk: ResponseChunk) {
        let limit = self.config.relay_buffer_bytes;
        self.with_table(|providers, requests| requests.on_chunk(providers, assigned_id, chunk, limit));
    }

    /// Finishes a request: frees the slot, records usage, hands the end to the buyer.
    pub(crate) fn on_end(&self, assigned_id: &str, end: ResponseEnd) {
        let Some(req) =
            self.with_table(|providers, requests| requests.finish(providers, assigned_id, &end.request_id))
        else {
            return;
        };
        self.usage_log().record(
            &RateCard::default_for([]),
            &req.provider_id,
            &req.model,
            end.status,
            end.usage,
        );
        self.emit(PoolEvent::RequestEnded {
            request_id: end.request_id.clone(),
            provider_id: req.provider_id.clone(),
            status: end.status,
        });
        req.tell(RelayEvent::End(end));
    }

    pub(crate) fn on_preflight_ack(&self, assigned_id: &str, ack: PreflightAck) {
        self.with_table(|_, requests| requests.on_preflight_ack(assigned_id, ack));
    }

    pub(crate) fn on_provider_nak(&self, assigned_id: &str, nak: &Nak) {
        self.with_table(|providers, requests| requests.on_provider_nak(providers, assigned_id, nak));
    }

    // Views.

    /// What `GET /v1/status` returns.
    pub(crate) fn snapshot(&self) -> PoolStatus {
        self.with_table(|providers, requests| {
            status::build(providers, requests, self.shutting_down.load(Ordering::Relaxed))
        })
    }

    /// Models of connected providers with the earliest connect time of each, for `/v1/models`.
    pub(crate) fn connected_models(&self) -> BTreeMap<String, u64> {
        self.with_table(|providers, _| providers.connected_models())
    }

    /// Provider rows in all and rows whose provider is ready, for `/healthz`.
    pub(crate) fn provider_counts(&self) -> (usize, usize) {
        self.with_table(|providers, _| (providers.len(), providers.ready_count()))
    }

    /// The default card, with a row for every model the pool knows of.
    pub(crate) fn rate_card(&self) -> RateCard {
        let mut models = self.with_table(|providers, _| providers.model_ids());
        models.extend(self.usage_log().models().map(str::to_string));
        RateCard::default_for(models.iter().map(String::as_str))
    }
}
