//! The pool's in-memory record of finished requests: what `/v1/usage` and the earnings endpoint
//! report. It forgets everything on restart, which is fine for a local test peer.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hearth_protocol::{EndStatus, Usage};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, Time};

use crate::credits::{credits, earns, Credits, RateCard, RateRow, TokenCounts};

#[derive(Debug, Clone)]
struct Entry {
    provider_id: String,
    model: String,
    usage: Usage,
    credits: Credits,
    at: OffsetDateTime,
}

/// Everything recorded so far.
#[derive(Debug, Default)]
pub(crate) struct UsageLog {
    entries: Vec<Entry>,
    /// Failed requests per provider: `error_*` ends, timeouts, requests lost to a disconnect.
    faults: HashMap<String, u64>,
}

/// `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub by_provider: BTreeMap<String, ProviderUsage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderUsage {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The provider's share, in credits.
    pub credits: u64,
}

/// `GET /providers/{provider_id}/earnings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Earnings {
    pub provider_id: String,
    pub total_credits: u64,
    /// Since Monday 00:00 UTC of the current week.
    pub current_window_credits: u64,
    /// The local pool never pays out.
    pub last_payout_ready: Option<serde_json::Value>,
    pub provider_share_bps: u64,
    pub models_served: Vec<String>,
    pub rate_card_excerpt: BTreeMap<String, RateRow>,
    pub fault_count: u64,
}

impl UsageLog {
    /// Records an end frame; failures are recorded with zero credits and counted as faults.
    pub(crate) fn record(
        &mut self,
        card: &RateCard,
        provider_id: &str,
        model: &str,
        status: EndStatus,
        usage: Usage,
    ) {
        let credits = if earns(status) {
            let tokens = TokenCounts {
                uncached_prompt: usage.prompt_tokens,
                cached_prompt: 0,
                completion: usage.completion_tokens,
            };
            credits(&card.row_for(model), tokens)
        } else {
            self.record_fault(provider_id);
            Credits::default()
        };
        self.entries.push(Entry {
            provider_id: provider_id.to_string(),
            model: model.to_string(),
            usage,
            credits,
            at: OffsetDateTime::now_utc(),
        });
    }

    pub(crate) fn record_fault(&mut self, provider_id: &str) {
        *self.faults.entry(provider_id.to_string()).or_default() += 1;
    }

    pub(crate) fn usage(&self) -> UsageSummary {
        let mut summary = UsageSummary {
            requests: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            by_provider: BTreeMap::new(),
        };
        for e in &self.entries {
            summary.requests += 1;
            summary.prompt_tokens += e.usage.prompt_tokens;
            summary.completion_tokens += e.usage.completion_tokens;
            let p = summary.by_provider.entry(e.provider_id.clone()).or_default();
            p.requests += 1;
            p.prompt_tokens += e.usage.prompt_tokens;
            p.completion_tokens += e.usage.completion_tokens;
            p.credits += e.credits.provider;
        }
        summary
    }

    pub(crate) fn earnings(&self, card: &RateCard, provider_id: &str, now: OffsetDateTime) -> Earnings {
        let window_start = week_start(now);
        let mine = || self.entries.iter().filter(|e| e.provider_id == provider_id);
        let models: BTreeSet<&str> = mine().map(|e| e.model.as_str()).collect();
        Earnings {
            provider_id: provider_id.to_string(),
            total_credits: mine().map(|e| e.credits.provider).sum(),
            current_window_credits: mine().filter(|e| e.at >= window_start).map(|e| e.credits.provider).sum(),
            last_payout_ready: None,
            provider_share_bps: card.default.provider_share_bps,
            models_served: models.iter().map(|m| m.to_string()).collect(),
            rate_card_excerpt: models
                .iter()
                .map(|m| (hearth_protocol::model_key(m), card.row_for(m)))
                .collect(),
            fault_count: self.faults.get(provider_id).copied().unwrap_or(0),
        }
    }

    /// Every model that earned or failed here, for the rate card's rows.
    pub(crate) fn models(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.model.as_str())
    }
}

/// Monday 00:00 UTC of the week containing `now`: the start of the current earnings window.
pub(crate) fn week_start(now: OffsetDateTime) -> OffsetDateTime {
    let now = now.to_offset(time::UtcOffset::UTC);
    let days = now.weekday().number_days_from_monday() as i64;
    (now - Duration::days(days)).replace_time(Time::MIDNIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn week_starts_on_monday_utc() {
        // 2026-11-26 is a Thursday.
        assert_eq!(week_start(datetime!(2026-11-26 15:30 UTC)), datetime!(2026-11-23 0:00 UTC));
        assert_eq!(week_start(datetime!(2026-11-23 0:00 UTC)), datetime!(2026-11-23 0:00 UTC));
        assert_eq!(week_start(datetime!(2026-11-29 23:59 UTC)), datetime!(2026-11-23 0:00 UTC));
    }

    #[test]
    fn errors_count_as_faults_and_earn_nothing() {
        let card = RateCard::default_for([]);
        let mut log = UsageLog::default();
        log.record(&card, "p1", "m-4bit", EndStatus::Complete, Usage::new(39, 1));
        log.record(&card, "p1", "m-4bit", EndStatus::ErrorInternal, Usage::new(100, 100));
        let e = log.earnings(&card, "p1", OffsetDateTime::now_utc());
        assert_eq!(e.total_credits, 18);
        assert_eq!(e.current_window_credits, 18);
        assert_eq!(e.fault_count, 1);
        assert_eq!(e.models_served, vec!["m-4bit".to_string()]);
        let u = log.usage();
        assert_eq!((u.requests, u.prompt_tokens, u.completion_tokens), (2, 139, 101));
        assert_eq!(u.by_provider["p1"].credits, 18);
    }
}
