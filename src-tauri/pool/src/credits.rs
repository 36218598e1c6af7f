//! The earnings formula of the production coordinator, in integers, with banker's rounding.
//!
//! Kept apart from the ledger so it can be checked by itself: the provider's own ledger estimates
//! with the same numbers, and the two must agree to the credit.

use std::collections::BTreeMap;

use hearth_protocol::EndStatus;
use serde::{Deserialize, Serialize};

/// 10^6 credits are one US dollar at the default conversion.
pub const CREDITS_PER_USD: u64 = 1_000_000;
const PPM: u128 = 1_000_000;
const MTOK: u128 = 1_000_000;
const BPS: u128 = 10_000;

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

/// Tokens of one request, split the way the card prices them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenCounts {
    pub uncached_prompt: u64,
    pub cached_prompt: u64,
    pub completion: u64,
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

/// gross = rhe((uncached·prompt + cached·cache + completion·completion_rate) · multiplier_ppm / 10^12);
/// provider = rhe(gross · share_bps / 10^4); operator = gross − provider.
pub fn credits(row: &RateRow, tokens: TokenCounts) -> Credits {
    let weighted = tokens.uncached_prompt as u128 * row.prompt_rate_per_mtok as u128
        + tokens.cached_prompt as u128 * row.prompt_cache_hit_rate_per_mtok as u128
        + tokens.completion as u128 * row.completion_rate_per_mtok as u128;
    let gross = div_round_half_even(weighted * row.global_multiplier_ppm as u128, PPM * MTOK);
    let provider = div_round_half_even(gross * row.provider_share_bps as u128, BPS);
    let gross = u64::try_from(gross).unwrap_or(u64::MAX);
    let provider = u64::try_from(provider).unwrap_or(u64::MAX).min(gross);
    Credits { gross, provider, operator: gross - provider }
}

/// `num / den` rounded to the nearest integer, ties to the even one (what Go's big.Rat path does).
pub fn div_round_half_even(num: u128, den: u128) -> u128 {
    assert!(den > 0, "division by zero in the earnings formula");
    let (q, r) = (num / den, num % den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
    }
}

/// Normalised model key: lowercase, without namespace (`mlx-community/`) or quantisation suffix.
pub fn model_key(model: &str) -> String {
    const QUANT_SUFFIXES: &[&str] = &["-mxfp4-q8", "-mxfp4", "-3bit", "-4bit", "-6bit", "-8bit"];
    let lower = model.trim().to_ascii_lowercase();
    let mut key = lower.rsplit('/').next().unwrap_or(&lower).to_string();
    while let Some(stripped) = QUANT_SUFFIXES.iter().find_map(|s| key.strip_suffix(s)) {
        key = stripped.to_string();
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(prompt: u64, completion: u64) -> TokenCounts {
        TokenCounts { uncached_prompt: prompt, cached_prompt: 0, completion }
    }

    #[test]
    fn rounding_ties_go_to_even() {
        assert_eq!(div_round_half_even(5, 2), 2); // 2.5
        assert_eq!(div_round_half_even(7, 2), 4); // 3.5
        assert_eq!(div_round_half_even(1, 2), 0); // 0.5
        assert_eq!(div_round_half_even(3, 2), 2); // 1.5
        assert_eq!(div_round_half_even(11, 4), 3); // 2.75
        assert_eq!(div_round_half_even(9, 4), 2); // 2.25
        assert_eq!(div_round_half_even(0, 7), 0);
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
    fn model_keys_are_normalised() {
        assert_eq!(model_key("mlx-community/Llama-3.2-3B-Instruct-4bit"), "llama-3.2-3b-instruct");
        assert_eq!(model_key("Qwen2.5-7B-Instruct-8bit"), "qwen2.5-7b-instruct");
        assert_eq!(model_key("openai/gpt-oss-20b-mxfp4-q8"), "gpt-oss-20b");
        assert_eq!(model_key("tiny-llama"), "tiny-llama");
    }

    #[test]
    fn card_falls_back_to_the_default_row() {
        let card = RateCard::default_for(["mlx-community/Tiny-4bit"]);
        assert!(card.rows.contains_key("tiny"));
        assert_eq!(card.row_for("other"), RateRow::default());
    }
}
