//! Buyer requests in flight ([`Relay`]): placing one on a provider, carrying the provider's frames
//! back to the buyer that waits for them, and cancelling when the buyer goes away.
//!
//! Plain data with no lock of its own, like the [`Registry`] it places requests on: the pool keeps
//! both under one lock (see `state`), and every method that moves a slot takes the registry too.
//! Each request carries a tracing span (`relayed_request`, with its `request_id`) that the buyer's
//! side runs in and the relay's own log lines about it are written in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hearth_protocol::{
    nak_code, CancelRequest, CoordinatorMessage, Nak, Preflight, PreflightAck, ResponseChunk, ResponseEnd,
};
use tokio::sync::{mpsc, oneshot};

use crate::registry::{Registry, RouteError};

/// `cancel_request` reason when a buyer falls too far behind its stream.
pub(crate) const RELAY_BUFFER_EXCEEDED: &str = "relay_buffer_exceeded";

/// Prompts estimated over this many tokens (body bytes / 4) get a `preflight` first.
pub(crate) const PREFLIGHT_THRESHOLD_TOKENS: u64 = 4096;

/// Why a buyer's request failed before its end frame.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The provider's session ended.
    Disconnected,
    /// The provider refused the request with a `nak`.
    Refused(String),
    /// The buyer fell this many bytes behind the stream (the relay buffer's limit).
    BufferExceeded(usize),
}

/// What a waiting buyer receives, in order.
#[derive(Debug)]
pub(crate) enum RelayEvent {
    Chunk(ResponseChunk),
    End(ResponseEnd),
    Failed(Failure),
}

/// Bytes of response relayed to one buyer and not yet taken by them: the relay adds a chunk's size
/// when it queues the chunk, the buyer's side subtracts it once the bytes are handed to the client
/// connection. The channel between them is unbounded so a session never waits on a buyer; this
/// count is what bounds it instead.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    /// Counts `bytes` more as queued; returns the new total.
    pub(crate) fn queued(&self, bytes: usize) -> usize {
        self.0.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    /// `bytes` left the pool for the client.
    pub(crate) fn taken(&self, bytes: usize) {
        self.0.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A request dispatched to a provider and not yet ended.
#[derive(Debug)]
pub(crate) struct ActiveRequest {
    pub provider_id: String,
    pub assigned_id: String,
    pub model: String,
    /// `None` once the buyer is gone (cancelled); the entry then only waits for the end frame so the
    /// usage so far is still recorded.
    pub buyer: Option<mpsc::UnboundedSender<RelayEvent>>,
    /// What this buyer has been sent and has not taken yet; bounded by `relay_buffer_bytes`.
    pub backlog: Backlog,
    pub preflight: Option<oneshot::Sender<PreflightAck>>,
    /// Whether `inference_request` was written (before that, cancelling needs no frame).
    pub sent: bool,
    pub chunks: u64,
    /// Dispatch order, to attribute a `nak` that does not name its request.
    pub order: u64,
    /// The request's span, for log lines written from other tasks (a session, the shutdown).
    pub span: tracing::Span,
}

impl ActiveRequest {
    /// Hands `event` to the buyer, if one still waits.
    pub(crate) fn tell(self, event: RelayEvent) {
        if let Some(buyer) = self.buyer {
            let _ = buyer.send(event);
        }
    }
}

/// A request placed on a provider: its id, where it went, and the stream of what comes back.
#[derive(Debug)]
pub(crate) struct Dispatch {
    pub request_id: String,
    pub provider_id: String,
    pub assigned_id: String,
    pub events: mpsc::UnboundedReceiver<RelayEvent>,
    /// PoolState with the relay: report here what the client has been handed.
    pub backlog: Backlog,
    /// `relayed_request`: the buyer's side of the request runs in it.
    pub span: tracing::Span,
}

/// Every request in flight, keyed by request id.
#[derive(Debug, Default)]
pub(crate) struct Relay {
    requests: HashMap<String, ActiveRequest>,
    /// How many requests were ever dispatched: the next one's `order`.
    dispatched: u64,
}

impl Relay {
    /// Takes a slot on the least-loaded ready provider for `model` and registers the request under
    /// a fresh `req-<uuid>` id.
    pub(crate) fn route(&mut self, providers: &mut Registry, model: &str) -> Result<Dispatch, RouteError> {
        let (provider_id, assigned_id) = providers.claim_slot(model)?;
        self.dispatched += 1;
        let order = self.dispatched;
        let request_id = format!("req-{}", uuid::Uuid::new_v4());
        let span = tracing::info_span!("relayed_request", %request_id, %provider_id);
        let (tx, events) = mpsc::unbounded_channel();
        let backlog = Backlog::default();
        self.requests.insert(
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
                span: span.clone(),
            },
        );
        Ok(Dispatch { request_id, provider_id, assigned_id, events, backlog, span })
    }

    /// Sends a frame about `request_id` to its provider; false if the request or session is gone.
    pub(crate) fn send_for(
        &mut self,
        providers: &Registry,
        request_id: &str,
        message: &CoordinatorMessage,
    ) -> bool {
        let Some(req) = self.requests.get_mut(request_id) else { return false };
        let sent =
            providers.link_for(&req.provider_id, &req.assigned_id).is_some_and(|link| link.send(message));
        if sent && matches!(message, CoordinatorMessage::InferenceRequest(_)) {
            req.sent = true;
        }
        sent
    }

    /// Sends `preflight` and returns where its ack will arrive.
    pub(crate) fn begin_preflight(
        &mut self,
        providers: &Registry,
        request_id: &str,
        estimated_tokens: u64,
    ) -> Option<oneshot::Receiver<PreflightAck>> {
        let (tx, rx) = oneshot::channel();
        self.requests.get_mut(request_id)?.preflight = Some(tx);
        let message =
            CoordinatorMessage::Preflight(Preflight { request_id: request_id.to_string(), estimated_tokens });
        self.send_for(providers, request_id, &message).then_some(rx)
    }

    /// Drops a request that was never sent to the provider (preflight refused) and frees its slot.
    pub(crate) fn forget(&mut self, providers: &mut Registry, request_id: &str) {
        if let Some(req) = self.requests.remove(request_id) {
            providers.release_slot(&req.provider_id, &req.assigned_id);
        }
    }

    /// The buyer is gone (or timed out): tell the provider to stop. The entry stays until the
    /// provider's `cancelled` end arrives, so the usage so far is still recorded.
    pub(crate) fn abandon(&mut self, providers: &mut Registry, request_id: &str, reason: &str) {
        let Some(req) = self.requests.get_mut(request_id) else { return };
        if req.buyer.take().is_none() {
            return;
        }
        req.preflight = None;
        if !req.sent {
            self.forget(providers, request_id);
            return;
        }
        req.span.in_scope(|| tracing::info!(reason, "cancelling request"));
        if let Some(link) = providers.link_for(&req.provider_id, &req.assigned_id) {
            link.send(&CoordinatorMessage::CancelRequest(CancelRequest {
                request_id: request_id.to_string(),
                reason: reason.to_string(),
            }));
        }
    }

    /// Routes a chunk to its buyer; chunks for requests session `assigned_id` does not own are
    /// dropped. A buyer that has fallen `limit` bytes behind gets no more: the request is cancelled
    /// at the provider (`relay_buffer_exceeded`) and the buyer, once it reads again, is told why.
    pub(crate) fn on_chunk(
        &mut self,
        providers: &mut Registry,
        assigned_id: &str,
        chunk: ResponseChunk,
        limit: usize,
    ) {
        let Some(req) = self.requests.get_mut(&chunk.request_id).filter(|r| r.assigned_id == assigned_id)
        else {
            tracing::debug!(request_id = %chunk.request_id, "chunk for an unknown request dropped");
            return;
        };
        req.chunks += 1;
        let Some(buyer) = &req.buyer else { return };
        if req.backlog.queued(chunk.data.len()) <= limit {
            let _ = buyer.send(RelayEvent::Chunk(chunk));
            return;
        }
        req.backlog.taken(chunk.data.len());
        let _ = buyer.send(RelayEvent::Failed(Failure::BufferExceeded(limit)));
        self.abandon(providers, &chunk.request_id, RELAY_BUFFER_EXCEEDED);
    }

    /// Takes the request an end frame of session `assigned_id` finishes and frees its slot; the
    /// caller records it and hands the end to the buyer.
    pub(crate) fn finish(
        &mut self,
        providers: &mut Registry,
        assigned_id: &str,
        request_id: &str,
    ) -> Option<ActiveRequest> {
        if self.requests.get(request_id).is_none_or(|r| r.assigned_id != assigned_id) {
            tracing::debug!(%request_id, "end for an unknown request dropped");
            return None;
        }
        let req = self.requests.remove(request_id)?;
        providers.release_slot(&req.provider_id, &req.assigned_id);
        Some(req)
    }

    pub(crate) fn on_preflight_ack(&mut self, assigned_id: &str, ack: PreflightAck) {
        let waiter = self
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
    pub(crate) fn on_provider_nak(&mut self, providers: &mut Registry, assigned_id: &str, nak: &Nak) {
        let about_request =
            nak.in_reply_to == "inference_request" || nak.error.code == nak_code::DUPLICATE_REQUEST_ID;
        let about_preflight = nak.in_reply_to == "preflight";
        if !about_request && !about_preflight {
            return;
        }
        let candidates = self.requests.iter().filter(|(_, r)| {
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
            if let Some(r) = self.requests.get_mut(&id) {
                r.preflight = None;
            }
            return;
        }
        if let Some(req) = self.requests.remove(&id) {
            providers.release_slot(&req.provider_id, &req.assigned_id);
            req.tell(RelayEvent::Failed(Failure::Refused(format!(
                "the provider refused the request: {} ({})",
                nak.error.message, nak.error.code
            ))));
        }
    }

    /// Whether the session has requests in flight; the liveness check is suspended while it does.
    pub(crate) fn has_active(&self, assigned_id: &str) -> bool {
        self.requests.values().any(|r| r.assigned_id == assigned_id)
    }

    /// How many requests session `assigned_id` carries, for the status document.
    pub(crate) fn active_on(&self, assigned_id: &str) -> usize {
        self.requests.values().filter(|r| r.assigned_id == assigned_id).count()
    }

    /// Takes every request session `assigned_id` carried (it ended); the caller fails them.
    pub(crate) fn take_session(&mut self, assigned_id: &str) -> Vec<ActiveRequest> {
        let ids: Vec<String> = self
            .requests
            .iter()
            .filter(|(_, r)| r.assigned_id == assigned_id)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter().filter_map(|id| self.requests.remove(&id)).collect()
    }

    /// Pool shutdown: tell providers to stop everything in flight.
    pub(crate) fn cancel_all(&mut self, providers: &mut Registry, reason: &str) {
        let ids: Vec<String> = self.requests.keys().cloned().collect();
        for id in ids {
            self.abandon(providers, &id, reason);
        }
    }
}
