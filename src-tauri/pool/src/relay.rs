//! Buyer requests in flight: routing one to a provider, carrying the provider's frames back to the
//! buyer that waits for them, and cancelling when the buyer goes away.

use hearth_protocol::{
    nak_code, CancelRequest, CoordinatorMessage, Nak, Preflight, PreflightAck, ProviderState, ResponseChunk,
    ResponseEnd,
};
use tokio::sync::{mpsc, oneshot};

use crate::credits::{model_key, RateCard};
use crate::events::PoolEvent;
use crate::state::{ActiveRequest, Backlog, Failure, ProviderRow, RelayEvent, Shared};

/// `cancel_request` reason when a buyer falls too far behind its stream.
pub(crate) const RELAY_BUFFER_EXCEEDED: &str = "relay_buffer_exceeded";

/// Prompts estimated over this many tokens (body bytes / 4) get a `preflight` first.
pub(crate) const PREFLIGHT_THRESHOLD_TOKENS: u64 = 4096;

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteError {
    ModelNotFound(String),
    NoProvider(String),
}

/// A request placed on a provider: its id, where it went, and the stream of what comes back.
#[derive(Debug)]
pub(crate) struct Dispatch {
    pub request_id: String,
    pub provider_id: String,
    pub assigned_id: String,
    pub events: mpsc::UnboundedReceiver<RelayEvent>,
    /// Shared with the relay: report here what the client has been handed.
    pub backlog: Backlog,
}

/// Whether a provider row serves the model a buyer asked for (exactly, or by normalised key).
pub(crate) fn serves(row_model: &str, requested: &str) -> bool {
    row_model == requested || model_key(row_model) == model_key(requested)
}

impl Shared {
    /// Picks the least-loaded ready provider with a free slot for `model`, takes the slot, and
    /// registers the request under a fresh `req-<uuid>` id.
    pub(crate) fn route(&self, model: &str) -> Result<Dispatch, RouteError> {
        let mut reg = self.lock();
        let rows: Vec<&ProviderRow> = reg.providers.values().filter(|r| serves(&r.model_id, model)).collect();
        if rows.is_empty() {
            return Err(RouteError::ModelNotFound(model.to_string()));
        }
        // Least loaded first: most free slots, then fewest slots in use.
        let chosen = rows
            .iter()
            .filter(|r| r.link.is_some() && r.state == ProviderState::Ready && r.slots_free > 0)
            .max_by_key(|r| (r.slots_free, std::cmp::Reverse(r.slots_total.saturating_sub(r.slots_free))))
            .map(|r| (r.provider_id.clone(), r.assigned_id.clone()));
        let Some((provider_id, assigned_id)) = chosen else {
            return Err(RouteError::NoProvider(no_provider_message(model, &rows)));
        };
        if let Some(row) = reg.providers.get_mut(&provider_id) {
            row.slots_free -= 1;
        }
        reg.dispatched += 1;
        let order = reg.dispatched;
        let request_id = format!("req-{}", uuid::Uuid::new_v4());
        let (tx, events) = mpsc::unbounded_channel();
        let backlog = Backlog::default();
        reg.requests.insert(
            request_id.clone(),
            ActiveRequest {
                provider_id: provider_id.clone(),
                assigned_id: assigned_id.clone(),
                model: model.to_string(),
                buyer: Some(tx),
                backlog: backlog.clone(),
                preflight: None,
                sent: false,
                chunks: 0,
                order,
            },
        );
        Ok(Dispatch { request_id, provider_id, assigned_id, events, backlog })
    }

    /// Sends a frame about `request_id` to its provider; false if the request or session is gone.
    pub(crate) fn send_for(&self, request_id: &str, message: &CoordinatorMessage) -> bool {
        let mut reg = self.lock();
        let Some(req) = reg.requests.get(request_id) else { return false };
        let sent = reg.link_for(&req.provider_id, &req.assigned_id).is_some_and(|link| link.send(message));
        if sent && matches!(message, CoordinatorMessage::InferenceRequest(_)) {
            if let Some(req) = reg.requests.get_mut(request_id) {
                req.sent = true;
            }
        }
        sent
    }

    /// Sends `preflight` and returns where its ack will arrive.
    pub(crate) fn begin_preflight(
        &self,
        request_id: &str,
        estimated_tokens: u64,
    ) -> Option<oneshot::Receiver<PreflightAck>> {
        let (tx, rx) = oneshot::channel();
        self.lock().requests.get_mut(request_id)?.preflight = Some(tx);
        let message =
            CoordinatorMessage::Preflight(Preflight { request_id: request_id.to_string(), estimated_tokens });
        self.send_for(request_id, &message).then_some(rx)
    }

    /// Drops a request that was never sent to the provider (preflight refused) and frees its slot.
    pub(crate) fn forget(&self, request_id: &str) {
        let mut reg = self.lock();
        if let Some(req) = reg.requests.remove(request_id) {
            reg.release_slot(&req.provider_id, &req.assigned_id);
        }
    }

    /// The buyer is gone (or timed out): tell the provider to stop. The entry stays until the
    /// provider's `cancelled` end arrives, so the usage so far is still recorded.
    pub(crate) fn abandon(&self, request_id: &str, reason: &str) {
        let mut reg = self.lock();
        let Some(req) = reg.requests.get_mut(request_id) else { return };
        if req.buyer.take().is_none() {
            return;
        }
        req.preflight = None;
        if !req.sent {
            drop(reg);
            self.forget(request_id);
            return;
        }
        let (provider_id, assigned_id) = (req.provider_id.clone(), req.assigned_id.clone());
        tracing::info!(%request_id, %provider_id, reason, "cancelling request");
        if let Some(link) = reg.link_for(&provider_id, &assigned_id) {
            link.send(&CoordinatorMessage::CancelRequest(CancelRequest {
                request_id: request_id.to_string(),
                reason: reason.to_string(),
            }));
        }
    }

    /// Routes a chunk to its buyer; chunks for requests this session does not own are dropped.
    /// A buyer that has fallen `relay_buffer_bytes` behind gets no more: the request is cancelled
    /// at the provider (`relay_buffer_exceeded`) and the buyer, once it reads again, is told why.
    pub(crate) fn on_chunk(&self, assigned_id: &str, chunk: ResponseChunk) {
        let mut reg = self.lock();
        let Some(req) = reg.requests.get_mut(&chunk.request_id).filter(|r| r.assigned_id == assigned_id)
        else {
            tracing::debug!(request_id = %chunk.request_id, "chunk for an unknown request dropped");
            return;
        };
        req.chunks += 1;
        let Some(buyer) = &req.buyer else { return };
        let limit = self.config.relay_buffer_bytes;
        if req.backlog.queued(chunk.data.len()) <= limit {
            let _ = buyer.send(RelayEvent::Chunk(chunk));
            return;
        }
        req.backlog.taken(chunk.data.len());
        let _ = buyer.send(RelayEvent::Failed(Failure::BufferExceeded(limit)));
        drop(reg);
        self.abandon(&chunk.request_id, RELAY_BUFFER_EXCEEDED);
    }

    /// Finishes a request: frees the slot, records usage, hands the end to the buyer.
    pub(crate) fn on_end(&self, assigned_id: &str, end: ResponseEnd) {
        let req = {
            let mut reg = self.lock();
            if reg.requests.get(&end.request_id).is_none_or(|r| r.assigned_id != assigned_id) {
                tracing::debug!(request_id = %end.request_id, "end for an unknown request dropped");
                return;
            }
            let Some(req) = reg.requests.remove(&end.request_id) else { return };
            reg.release_slot(&req.provider_id, &req.assigned_id);
            req
        };
        self.ledger().record(&RateCard::default_for([]), &req.provider_id, &req.model, end.status, end.usage);
        self.emit(PoolEvent::RequestEnded {
            request_id: end.request_id.clone(),
            provider_id: req.provider_id.clone(),
            status: end.status,
        });
        if let Some(buyer) = req.buyer {
            let _ = buyer.send(RelayEvent::End(end));
        }
    }

    pub(crate) fn on_preflight_ack(&self, assigned_id: &str, ack: PreflightAck) {
        let mut reg = self.lock();
        let waiter = reg
            .requests
            .get_mut(&ack.request_id)
            .filter(|r| r.assigned_id == assigned_id)
            .and_then(|r| r.preflight.take());
        if let Some(waiter) = waiter {
            let _ = waiter.send(ack);
        }
    }

    /// A provider refused one of our frames. A refused `inference_request` (e.g.
    /// `duplicate_request_id`) fails the buyer's request; a refused `preflight` counts as a
    /// rejection. The nak names only the frame type, so the request is the one whose id the message
    /// mentions, else the newest one of that session still waiting for its first chunk.
    pub(crate) fn on_provider_nak(&self, assigned_id: &str, nak: &Nak) {
        let about_request =
            nak.in_reply_to == "inference_request" || nak.error.code == nak_code::DUPLICATE_REQUEST_ID;
        let about_preflight = nak.in_reply_to == "preflight";
        if !about_request && !about_preflight {
            return;
        }
        let mut reg = self.lock();
        let candidates = reg.requests.iter().filter(|(_, r)| {
            r.assigned_id == assigned_id
                && r.buyer.is_some()
                && if about_preflight { r.preflight.is_some() } else { r.sent && r.chunks == 0 }
        });
        let named = candidates.clone().find(|(id, _)| nak.error.message.contains(id.as_str()));
        let Some(id) = named.or_else(|| candidates.max_by_key(|(_, r)| r.order)).map(|(id, _)| id.clone())
        else {
            return;
        };
        if about_preflight {
            // Dropping the waiter's sender reads as a rejection on the buyer's side.
            if let Some(r) = reg.requests.get_mut(&id) {
                r.preflight = None;
            }
            return;
        }
        if let Some(req) = reg.requests.remove(&id) {
            reg.release_slot(&req.provider_id, &req.assigned_id);
            if let Some(buyer) = req.buyer {
                let _ = buyer.send(RelayEvent::Failed(Failure::Refused(format!(
                    "the provider refused the request: {} ({})",
                    nak.error.message, nak.error.code
                ))));
            }
        }
    }

    /// Whether the session has requests in flight; the liveness check is suspended while it does.
    pub(crate) fn has_active(&self, assigned_id: &str) -> bool {
        self.lock().requests.values().any(|r| r.assigned_id == assigned_id)
    }

    /// Pool shutdown: tell providers to stop everything in flight.
    pub(crate) fn cancel_all(&self, reason: &str) {
        let ids: Vec<String> = self.lock().requests.keys().cloned().collect();
        for id in ids {
            self.abandon(&id, reason);
        }
    }
}

fn no_provider_message(model: &str, rows: &[&ProviderRow]) -> String {
    let count = |f: &dyn Fn(&ProviderRow) -> bool| rows.iter().filter(|r| f(r)).count();
    let busy = count(&|r| {
        r.link.is_some()
            && (r.state == ProviderState::Busy || (r.state == ProviderState::Ready && r.slots_free == 0))
    });
    let ready = count(&|r| r.link.is_some() && r.state == ProviderState::Ready && r.slots_free > 0);
    let mut message = format!("no provider is ready for model {model} ({busy} busy, {ready} ready");
    for (state, label) in [
        (ProviderState::Degraded, "degraded"),
        (ProviderState::Draining, "draining"),
        (ProviderState::Unavailable, "unavailable"),
    ] {
        let n = count(&|r| r.state == state);
        if n > 0 {
            message.push_str(&format!(", {n} {label}"));
        }
    }
    message.push(')');
    message
}
