//! The pool as buyers and dashboards see it: the `/v1/status` document, built from the provider
//! rows and the requests in flight.

use std::collections::BTreeMap;

use hearth_protocol::ProviderState;
use serde::{Deserialize, Serialize};

use crate::registry::Registry;
use crate::relay::Relay;

/// `GET /v1/status` (the gateway's shape, plus a `providers` list for tests and tools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// `up` (a provider is ready), `degraded` (providers connected, none ready, some busy or
    /// degraded), `idle` (no ready provider otherwise) or `down` (the pool is shutting down).
    pub status: String,
    pub pool: PoolCounts,
    pub models: Vec<ModelStatus>,
    pub providers: Vec<ProviderStatus>,
}

/// Provider rows by state; `degraded` includes `busy`, as the gateway counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCounts {
    pub total_providers: usize,
    pub ready: usize,
    pub degraded: usize,
    pub draining: usize,
    pub unavailable: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStatus {
    pub id: String,
    pub provider_count: usize,
    pub ready_provider_count: usize,
    pub total_slots: u64,
    pub slots_free: u64,
    pub max_context_tokens: u64,
    pub available: bool,
    /// `available`, `no_awake_provider` or `no_free_slots`.
    pub availability: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStatus {
    pub provider_id: String,
    pub assigned_id: String,
    pub model_id: String,
    pub state: ProviderState,
    pub connected: bool,
    pub slots_free: u32,
    pub slots_total: u32,
    pub active_requests: usize,
}

pub const AVAILABLE: &str = "available";
pub const NO_AWAKE_PROVIDER: &str = "no_awake_provider";
pub const NO_FREE_SLOTS: &str = "no_free_slots";

/// The document for the provider rows and the requests they carry (`down` while `shutting_down`).
pub(crate) fn build(registry: &Registry, relay: &Relay, shutting_down: bool) -> PoolStatus {
    let mut pool = PoolCounts { total_providers: registry.len(), ..PoolCounts::default() };
    let mut models: BTreeMap<&str, ModelStatus> = BTreeMap::new();
    let mut awake: BTreeMap<&str, usize> = BTreeMap::new();
    let mut providers = Vec::new();
    for row in registry.rows() {
        match row.state {
            ProviderState::Ready => pool.ready += 1,
            ProviderState::Busy | ProviderState::Degraded => pool.degraded += 1,
            ProviderState::Draining => pool.draining += 1,
            ProviderState::Unavailable => pool.unavailable += 1,
        }
        let m = models.entry(&row.model_id).or_insert_with(|| ModelStatus {
            id: row.model_id.clone(),
            provider_count: 0,
            ready_provider_count: 0,
            total_slots: 0,
            slots_free: 0,
            max_context_tokens: 0,
            available: false,
            availability: String::new(),
        });
        m.provider_count += 1;
        m.max_context_tokens = m.max_context_tokens.max(row.max_context_tokens);
        if row.link.is_some() {
            m.total_slots += u64::from(row.slots_total);
            if row.state == ProviderState::Ready {
                m.ready_provider_count += 1;
                m.slots_free += u64::from(row.slots_free);
            }
            if matches!(row.state, ProviderState::Ready | ProviderState::Busy) {
                *awake.entry(&row.model_id).or_default() += 1;
            }
        }
        providers.push(ProviderStatus {
            provider_id: row.provider_id.clone(),
            assigned_id: row.assigned_id.clone(),
            model_id: row.model_id.clone(),
            state: row.state,
            connected: row.link.is_some(),
            slots_free: row.slots_free,
            slots_total: row.slots_total,
            active_requests: relay.active_on(&row.assigned_id),
        });
    }
    for (id, m) in models.iter_mut() {
        let availability = if awake.get(id).copied().unwrap_or(0) == 0 {
            NO_AWAKE_PROVIDER
        } else if m.slots_free == 0 {
            NO_FREE_SLOTS
        } else {
            AVAILABLE
        };
        m.available = availability == AVAILABLE;
        m.availability = availability.to_string();
    }
    providers.sort_by(|a, b| a.provider_id.cmp(&b.provider_id));
    let connected = providers.iter().filter(|p| p.connected).count();
    let status = if shutting_down {
        "down"
    } else if pool.ready > 0 {
        "up"
    } else if connected > 0 && pool.degraded > 0 {
        "degraded"
    } else {
        "idle"
    };
    PoolStatus { status: status.to_string(), pool, models: models.into_values().collect(), providers }
}
