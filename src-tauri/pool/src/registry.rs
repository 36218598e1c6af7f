//! The provider rows ([`Registry`]): admitting a session, applying what it reports, choosing a
//! provider for a buyer's model, and marking a row when its session ends.
//!
//! Plain data with no lock of its own: the pool keeps it beside the requests in flight under one
//! lock (see `state`), so a request and the slot it holds always change together.

use std::collections::{BTreeMap, HashMap};

use hearth_protocol::{Heartbeat, Hello, ProviderState, StateUpdate};

use crate::link::SessionLink;
use hearth_protocol::model_key;

/// The coordinator clamps a provider's announced concurrency to this.
pub(crate) const MAX_CONCURRENCY: u32 = 8;

/// One provider as the pool sees it. The row outlives its session by the disconnect grace.
#[derive(Debug)]
pub(crate) struct ProviderRow {
    pub provider_id: String,
    /// The current (or last) session's id; stale sessions are told apart by it.
    pub assigned_id: String,
    pub model_id: String,
    pub state: ProviderState,
    pub slots_free: u32,
    pub slots_total: u32,
    pub max_context_tokens: u64,
    pub connected_unix: u64,
    /// `None` while disconnected (in grace).
    pub link: Option<SessionLink>,
    /// An in-band rekey is in progress: no new dispatch until it commits (production's rule).
    pub rekeying: bool,
}

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteError {
    ModelNotFound(String),
    NoProvider(String),
}

/// Every provider row, keyed by provider id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    rows: HashMap<String, ProviderRow>,
}

impl Registry {
    /// Takes (or takes over) the row for `hello.provider_id`. Returns the link of a session this one
    /// replaces, which the caller closes.
    pub(crate) fn admit(
        &mut self,
        hello: &Hello,
        assigned_id: &str,
        link: SessionLink,
    ) -> Option<SessionLink> {
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
            rekeying: false,
        };
        self.rows.insert(hello.provider_id.clone(), row).and_then(|old| old.link)
    }

    /// Runs `f` on the row if `assigned_id` is still its session (frames from a replaced session
    /// must not overwrite the new one's state).
    fn with_row(&mut self, provider_id: &str, assigned_id: &str, f: impl FnOnce(&mut ProviderRow)) {
        if let Some(row) = self.rows.get_mut(provider_id) {
            if row.assigned_id == assigned_id && row.link.is_some() {
                f(row);
            }
        }
    }

    pub(crate) fn apply_heartbeat(&mut self, provider_id: &str, assigned_id: &str, hb: &Heartbeat) {
        self.with_row(provider_id, assigned_id, |row| {
            apply_state(row, hb.status);
            row.slots_total = hb.slots_total;
            row.slots_free = hb.slots_free.min(hb.slots_total);
            row.model_id.clone_from(&hb.model_id);
            row.max_context_tokens = hb.max_context_tokens;
        });
    }

    pub(crate) fn apply_state_update(&mut self, provider_id: &str, assigned_id: &str, update: &StateUpdate) {
        self.with_row(provider_id, assigned_id, |row| {
            apply_state(row, update.state);
            let m = &update.metrics_snapshot;
            row.slots_total = m.slots_total;
            row.slots_free = m.slots_free.min(m.slots_total);
        });
    }

    pub(crate) fn set_draining(&mut self, provider_id: &str, assigned_id: &str) {
        self.with_row(provider_id, assigned_id, |row| row.state = ProviderState::Draining);
    }

    /// The session `assigned_id` ended: its row (if it still owns it) stays, unavailable and
    /// unlinked, for the disconnect grace.
    pub(crate) fn disconnect(&mut self, provider_id: &str, assigned_id: &str) {
        if let Some(row) = self.rows.get_mut(provider_id) {
            if row.assigned_id == assigned_id {
                row.link = None;
                row.state = ProviderState::Unavailable;
                row.slots_free = 0;
            }
        }
    }

    /// Removes the row once its grace is over, unless a reconnect took it over; true if removed.
    pub(crate) fn remove_if_stale(&mut self, provider_id: &str, assigned_id: &str) -> bool {
        let stale = self
            .rows
            .get(provider_id)
            .is_some_and(|row| row.assigned_id == assigned_id && row.link.is_none());
        stale && self.rows.remove(provider_id).is_some()
    }

    /// Picks the least-loaded ready provider with a free slot for `model` and takes the slot.
    /// Returns the chosen row's provider id and session id.
    pub(crate) fn claim_slot(&mut self, model: &str) -> Result<(String, String), RouteError> {
        let rows: Vec<&ProviderRow> = self.rows.values().filter(|r| serves(&r.model_id, model)).collect();
        if rows.is_empty() {
            return Err(RouteError::ModelNotFound(model.to_string()));
        }
        // Least loaded first: most free slots, then fewest slots in use.
        let chosen = rows
            .iter()
            .filter(|r| {
                r.link.is_some() && !r.rekeying && r.state == ProviderState::Ready && r.slots_free > 0
            })
            .max_by_key(|r| (r.slots_free, std::cmp::Reverse(r.slots_total.saturating_sub(r.slots_free))))
            .map(|r| (r.provider_id.clone(), r.assigned_id.clone()));
        let Some((provider_id, assigned_id)) = chosen else {
            return Err(RouteError::NoProvider(no_provider_message(model, &rows)));
        };
        if let Some(row) = self.rows.get_mut(&provider_id) {
            row.slots_free -= 1;
        }
        Ok((provider_id, assigned_id))
    }

    /// Holds (or releases) new dispatches to a session while it rekeys.
    pub(crate) fn set_rekeying(&mut self, provider_id: &str, assigned_id: &str, rekeying: bool) {
        self.with_row(provider_id, assigned_id, |row| row.rekeying = rekeying);
    }

    /// Whether a provider for `model` is only waiting out a rekey (a dispatch should wait, not fail).
    pub(crate) fn rekeying_serves(&self, model: &str) -> bool {
        self.rows.values().any(|r| r.rekeying && r.link.is_some() && serves(&r.model_id, model))
    }

    /// Gives back the slot a finished request held (the provider's own updates overwrite it anyway).
    pub(crate) fn release_slot(&mut self, provider_id: &str, assigned_id: &str) {
        if let Some(row) = self.rows.get_mut(provider_id).filter(|r| r.assigned_id == assigned_id) {
            if row.link.is_some() {
                row.slots_free = (row.slots_free + 1).min(row.slots_total);
            }
        }
    }

    /// The live link of the session that owns a request, if that session is still current.
    pub(crate) fn link_for(&self, provider_id: &str, assigned_id: &str) -> Option<&SessionLink> {
        self.rows
            .get(provider_id)
            .filter(|row| row.assigned_id == assigned_id)
            .and_then(|row| row.link.as_ref())
    }

    /// Links of every live session, for drain and shutdown.
    pub(crate) fn live_links(&self) -> Vec<SessionLink> {
        self.rows.values().filter_map(|row| row.link.clone()).collect()
    }

    pub(crate) fn rows(&self) -> impl Iterator<Item = &ProviderRow> {
        self.rows.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Rows whose provider says it is ready (connected or not), for `/healthz`.
    pub(crate) fn ready_count(&self) -> usize {
        self.rows.values().filter(|r| r.state == ProviderState::Ready).count()
    }

    /// Every model some row serves (one entry per row), for the rate card.
    pub(crate) fn model_ids(&self) -> Vec<String> {
        self.rows.values().map(|r| r.model_id.clone()).collect()
    }

    /// Models of connected providers, each with the earliest connect time (unix seconds) of a
    /// provider serving it, for `/v1/models`.
    pub(crate) fn connected_models(&self) -> BTreeMap<String, u64> {
        let mut models: BTreeMap<String, u64> = BTreeMap::new();
        for row in self.rows.values().filter(|r| r.link.is_some()) {
            let created = models.entry(row.model_id.clone()).or_insert(row.connected_unix);
            *created = (*created).min(row.connected_unix);
        }
        models
    }
}

/// Whether a provider row serves the model a buyer asked for (exactly, or by normalised key).
fn serves(row_model: &str, requested: &str) -> bool {
    row_model == requested || model_key(row_model) == model_key(requested)
}

/// A provider reports its own state, but never `unavailable`: only the pool sets that.
fn apply_state(row: &mut ProviderRow, reported: ProviderState) {
    if reported != ProviderState::Unavailable {
        row.state = reported;
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

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
