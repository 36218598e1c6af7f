//! The shapes the UI reads: what the coordinator said it credited ([`CreditedSnapshot`]) and the
//! aggregates over the ledger. Every money figure says in its name where it came from:
//! `estimated_*` is our rate-card estimate, `credited_*` is what the coordinator reported. Plain data
//! with no access to the ledger, so the ledger can build these without the two importing each other.

use serde::{Deserialize, Serialize};

/// What the coordinator's earnings endpoint said at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditedSnapshot {
    /// When we fetched it (unix ms).
    pub fetched_at: i64,
    /// `total_credits`: everything credited to the provider id, all time.
    pub total_credits: i64,
    /// `current_window_credits`: this week's (from Monday 00:00 UTC).
    pub current_window_credits: i64,
    /// The URL it came from (no token in it: the token goes in a header).
    pub source_url: String,
}

/// Totals over one period, bucketed by a job's `ended_at`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodTotals {
    /// Every recorded job, whatever its outcome.
    pub jobs: u64,
    /// Tokens over all jobs (work done, paid or not).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Sum of per-job rate-card estimates (only `complete` and `cancelled` contribute).
    pub estimated_credits: i64,
    /// Jobs cut by a disconnect: served work the coordinator dropped, earning nothing.
    pub lost_jobs: u64,
    /// Jobs that ended with an error status (earning nothing).
    pub error_jobs: u64,
}

/// One model's totals over a period (the "earnings by model" table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTotals {
    /// As the job recorded it (the id the provider announced).
    pub model_id: String,
    #[serde(flatten)]
    pub totals: PeriodTotals,
}

/// What the coordinator last said it credited, and how far our estimate is from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditedView {
    /// The newest snapshot from `/providers/{id}/earnings`.
    pub latest: CreditedSnapshot,
    /// `total.estimated_credits − latest.total_credits`. Positive: we expect more than has been
    /// credited (not yet settled, priced differently, or never paid). It is only meaningful when the
    /// ledger covers the provider id's whole history (the coordinator's total includes jobs served
    /// by other installs using the same id, or before this ledger existed).
    pub estimated_minus_credited: i64,
}

/// The earnings panel: local estimates by period, plus the coordinator's credited figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarningsSummary {
    /// The `now` the summary was computed for (unix ms).
    pub now_unix_ms: i64,
    /// Start of "today": midnight UTC of `now` (the coordinator's windows are UTC too).
    pub today_start_unix_ms: i64,
    /// Jobs that ended since `today_start_unix_ms`.
    pub today: PeriodTotals,
    /// Jobs that ended in the rolling 7 × 24 h before `now`.
    pub last_7_days: PeriodTotals,
    /// Jobs that ended in the rolling 30 × 24 h before `now`.
    #[serde(default)]
    pub last_30_days: PeriodTotals,
    /// Everything in the ledger.
    pub total: PeriodTotals,
    /// `None` until the earnings endpoint has been polled successfully once.
    pub credited: Option<CreditedView>,
}

/// One UTC hour of a chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBucket {
    pub hour_start_unix_ms: i64,
    pub jobs: u64,
    /// Prompt plus completion tokens.
    pub tokens: u64,
    pub estimated_credits: i64,
}
