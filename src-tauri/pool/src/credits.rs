//! What the local pool credits a provider: the `/v1/rate-card` it serves and the coordinator's
//! earnings formula applied to each request. The formula and the model key are the protocol
//! crate's ([`hearth_protocol::earnings`], [`hearth_protocol::model_key`]), the same the provider's
//! ledger estimates with, so the two agree to the credit.

use std::collections::BTreeMap;

pub use hearth_protocol::earnings::TokenCounts;
use hearth_protocol::earnings::{price, Rates};
use hearth_protocol::{model_key, EndStatus};
use serde::{Deserialize, Serialize};

/// 10^6 credits are one US dollar at the default conversion.
pub const CREDITS_PER_USD: u64 = 1_000_000;

/// One model's prices, credits per million tokens, as `/v1/rate-card` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateRow {
    pub prompt_rate_per_mtok: u64,
    pub prompt_cache_hit_rate_per_mtok: u64,
    pub completion_rate_per_mtok: u64,
    pub provider_share_bps: u64,
    pub global_multiplier_ppm: u64,
}

impl Default for RateRow {
    /// The coordinator's default card: $0.50 / $0.50 / $1.00 per million tokens, 90 % to providers.
    fn default() -> Self {
        Self {
            prompt_rate_per_mtok: 500_000,
            prompt_cache_hit_rate_per_mtok: 500_000,
            completion_rate_per_mtok: 1_000_000,
            provider_share_bps: 9_000,
            global_multiplier_ppm: 1_000_000,
        }
    }
}

/// The `/v1/rate-card` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateCard {
    pub version: String,
    pub usd_per_million_credits: f64,
    /// The row used for models without their own row.
    pub default: RateRow,
    /// Keyed by [`model_key`].
    pub rows: BTreeMap<String, RateRow>,
}

impl RateCard {
    /// A card with the default row for each of `models`.
    pub fn default_for<'a>(models: impl IntoIterator<Item = &'a str>) -> Self {
        let rows = models.into_iter().map(|m| (model_key(m), RateRow::default())).collect();
        Self {
            version: "local-default-1".into(),
            usd_per_million_credits: 1.0,
            default: RateRow::default(),
            rows,
        }
    }

    pub fn row_for(&self, model: &str) -> RateRow {
        self.rows.get(&model_key(model)).copied().unwrap_or(self.default)
    }
}

/// What one request earned: `gross` = `provider` + `operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Credits {
    pub gross: u64,
    pub provider: u64,
    pub operator: u64,
}

/// Whether a request that ended with `status` is paid at all: failures earn nothing.
pub fn earns(status: EndStatus) -> bool {
    matches!(status, EndStatus::Complete | EndStatus::Cancelled)
}

/// What `row` pays for `tokens`, split between the provider and the operator.
pub fn credits(row: &RateRow, tokens: TokenCounts) -> Credits {
    let rates = Rates {
        prompt_per_mtok: row.prompt_rate_per_mtok,
        cache_hit_per_mtok: row.prompt_cache_hit_rate_per_mtok,
        completion_per_mtok: row.completion_rate_per_mtok,
        provider_share_bps: row.provider_share_bps,
        multiplier_ppm: row.global_multiplier_ppm,
    };
    let (gross, provider) = price(&rates, tokens);
    Credits { gross, provider, operator: gross - provider }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(prompt: u64, completion: u64) -> TokenCounts {
        TokenCounts { uncached_prompt: prompt, cached_prompt: 0, completion }
    }

    #[test]
    fn default_card_prices_a_million_tokens_in_dollars() {
        let c = credits(&RateRow::default(), tokens(1_000_000, 1_000_000));
        assert_eq!(c.gross, 1_500_000);
        assert_eq!(c.provider, 1_350_000);
        assert_eq!(c.operator, 150_000);
    }

    #[test]
    fn small_requests_round_half_even() {
        let row = RateRow::default();
        // 1 prompt token = 0.5 credit: a tie, rounds to 0.
        assert_eq!(credits(&row, tokens(1, 0)).gross, 0);
        // 3 prompt tokens = 1.5 credits: a tie, rounds to 2.
        assert_eq!(credits(&row, tokens(3, 0)).gross, 2);
        // 5 prompt tokens = 2.5 credits: rounds to 2.
        assert_eq!(credits(&row, tokens(5, 0)).gross, 2);
        // 39 prompt + 1 completion = 20.5 credits -> 20; provider 18.
        let c = credits(&row, tokens(39, 1));
        assert_eq!((c.gross, c.provider, c.operator), (20, 18, 2));
        // gross 25 -> provider 22.5 -> 22 (even); gross 35 -> 31.5 -> 32.
        assert_eq!(credits(&row, tokens(0, 25)).provider, 22);
        assert_eq!(credits(&row, tokens(0, 35)).provider, 32);
    }

    #[test]
    fn cached_prompt_tokens_use_the_cache_rate_and_multiplier_applies() {
        let row = RateRow {
            prompt_cache_hit_rate_per_mtok: 100_000,
            global_multiplier_ppm: 2_000_000,
            ..RateRow::default()
        };
        let c = credits(&row, TokenCounts { uncached_prompt: 1_000, cached_prompt: 10_000, completion: 0 });
        // (1000·500000 + 10000·100000)·2 / 10^6 = 3000
        assert_eq!(c.gross, 3_000);
        assert_eq!(c.provider, 2_700);
    }

    #[test]
    fn failures_earn_nothing() {
        assert!(earns(EndStatus::Complete));
        assert!(earns(EndStatus::Cancelled));
        for s in [
            EndStatus::ErrorInternal,
            EndStatus::ErrorQueueFull,
            EndStatus::ErrorContextExceeded,
            EndStatus::ErrorModelNotLoaded,
            EndStatus::ProviderTimeout,
        ] {
            assert!(!earns(s), "{s:?}");
        }
    }

    #[test]
    fn card_falls_back_to_the_default_row() {
        let card = RateCard::default_for(["mlx-community/Tiny-4bit"]);
        assert!(card.rows.contains_key("tiny"));
        assert_eq!(card.row_for("other"), RateRow::default());
    }
}
