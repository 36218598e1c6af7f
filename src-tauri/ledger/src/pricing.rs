//! Pricing a job the way the coordinator does, so the local estimate can be compared with what it
//! credits: its rate card, looked up by the coordinator's model key, and its formula (both the
//! protocol crate's: [`hearth_protocol::model_key`], [`hearth_protocol::earnings`], which the local
//! pool credits with too). The result is an *estimate*: the coordinator may
//! price differently (a newer card, its own token count, faults), which is why the ledger also keeps
//! what it actually credited.

use std::collections::BTreeMap;

use hearth_protocol::earnings::{price, Rates, TokenCounts};
use hearth_protocol::model_key;
use serde::{Deserialize, Deserializer, Serialize};

/// The `version` recorded for figures priced from [`RateCard::builtin`] (no card fetched yet).
pub const BUILTIN_RATE_CARD_VERSION: &str = "builtin-default";

const DEFAULT_PROMPT_RATE: i64 = 500_000;
const DEFAULT_CACHE_HIT_RATE: i64 = 500_000;
const DEFAULT_COMPLETION_RATE: i64 = 1_000_000;
const DEFAULT_SHARE_BPS: i64 = 9_000;
const DEFAULT_MULTIPLIER_PPM: i64 = 1_000_000;

/// One model's rates, as `/v1/rate-card` serves them. Rates are credits per million tokens.
/// A field the coordinator leaves out takes the protocol default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateRow {
    #[serde(default = "d_prompt")]
    pub prompt_rate_per_mtok: i64,
    #[serde(default = "d_cache")]
    pub prompt_cache_hit_rate_per_mtok: i64,
    #[serde(default = "d_completion")]
    pub completion_rate_per_mtok: i64,
    #[serde(default = "d_share")]
    pub provider_share_bps: i64,
    #[serde(default = "d_multiplier")]
    pub global_multiplier_ppm: i64,
}

fn d_prompt() -> i64 {
    DEFAULT_PROMPT_RATE
}
fn d_cache() -> i64 {
    DEFAULT_CACHE_HIT_RATE
}
fn d_completion() -> i64 {
    DEFAULT_COMPLETION_RATE
}
fn d_share() -> i64 {
    DEFAULT_SHARE_BPS
}
fn d_multiplier() -> i64 {
    DEFAULT_MULTIPLIER_PPM
}
fn d_usd_per_million() -> f64 {
    1.0
}

impl Default for RateRow {
    /// The protocol defaults: 500 000 / 500 000 / 1 000 000 credits per Mtok, 90 % share, ×1.
    fn default() -> Self {
        RateRow {
            prompt_rate_per_mtok: DEFAULT_PROMPT_RATE,
            prompt_cache_hit_rate_per_mtok: DEFAULT_CACHE_HIT_RATE,
            completion_rate_per_mtok: DEFAULT_COMPLETION_RATE,
            provider_share_bps: DEFAULT_SHARE_BPS,
            global_multiplier_ppm: DEFAULT_MULTIPLIER_PPM,
        }
    }
}

/// The coordinator's public rate card (`GET /v1/rate-card`). Fields it adds later (e.g.
/// `policy_version`, `generated_at`) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateCard {
    /// Stored with every estimate as the figure's source. The coordinator may send a string or a
    /// number; both are kept as text.
    #[serde(deserialize_with = "string_or_number")]
    pub version: String,
    #[serde(default = "d_usd_per_million")]
    pub usd_per_million_credits: f64,
    /// Keyed by model as the coordinator spells it; lookups normalise both sides.
    #[serde(default)]
    pub rows: BTreeMap<String, RateRow>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(match V::deserialize(d)? {
        V::S(s) => s,
        V::I(i) => i.to_string(),
        V::F(f) => f.to_string(),
    })
}

impl RateCard {
    /// The card used before any has been fetched: no rows, so every model prices at the protocol
    /// defaults, under the version [`BUILTIN_RATE_CARD_VERSION`].
    pub fn builtin() -> Self {
        RateCard {
            version: BUILTIN_RATE_CARD_VERSION.to_string(),
            usd_per_million_credits: 1.0,
            rows: BTreeMap::new(),
        }
    }

    /// Parses the `/v1/rate-card` JSON body.
    pub fn from_json(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The row that prices `model`: the row whose normalised key equals the normalised model, else
    /// a catch-all row keyed `default` or `*` if the card has one, else the protocol defaults.
    /// (A model the card does not list is still served and paid; the defaults are our best guess.)
    pub fn row_for(&self, model: &str) -> RateRow {
        let wanted = model_key(model);
        if let Some(row) = self.rows.get(&wanted) {
            return *row;
        }
        if let Some((_, row)) = self.rows.iter().find(|(k, _)| model_key(k) == wanted) {
            return *row;
        }
        self.rows.get("default").or_else(|| self.rows.get("*")).copied().unwrap_or_default()
    }
}

impl Default for RateCard {
    fn default() -> Self {
        RateCard::builtin()
    }
}

/// The provider's share, in credits, of a job with this usage, priced from `card`.
///
/// `prompt_tokens` is the whole prompt as the end frame's `usage.prompt_tokens` reports it
/// (OpenAI convention: cached tokens included); `cached_prompt_tokens` of it were cache hits and
/// price at the cache-hit rate (clamped to `prompt_tokens`). The protocol's end frame carries no
/// cached count today, so callers normally pass 0.
pub fn estimate_provider_credits(
    card: &RateCard,
    model: &str,
    prompt_tokens: u64,
    cached_prompt_tokens: u64,
    completion_tokens: u64,
) -> i64 {
    let row = card.row_for(model);
    // A negative rate on a card is nonsense; it prices as zero rather than as a refund.
    let rate = |r: i64| u64::try_from(r).unwrap_or(0);
    let rates = Rates {
        prompt_per_mtok: rate(row.prompt_rate_per_mtok),
        cache_hit_per_mtok: rate(row.prompt_cache_hit_rate_per_mtok),
        completion_per_mtok: rate(row.completion_rate_per_mtok),
        provider_share_bps: rate(row.provider_share_bps),
        multiplier_ppm: rate(row.global_multiplier_ppm),
    };
    let cached = cached_prompt_tokens.min(prompt_tokens);
    let tokens = TokenCounts {
        uncached_prompt: prompt_tokens - cached,
        cached_prompt: cached,
        completion: completion_tokens,
    };
    i64::try_from(price(&rates, tokens).1).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card_with(model: &str, row: RateRow) -> RateCard {
        let mut c = RateCard::builtin();
        c.version = "test-1".into();
        c.rows.insert(model.into(), row);
        c
    }

    #[test]
    fn default_card_one_million_prompt_tokens() {
        // gross = 1e6 × 500_000 × 1e6 / 1e12 = 500_000; provider = 500_000 × 0.9 = 450_000.
        let c = RateCard::builtin();
        assert_eq!(estimate_provider_credits(&c, "any", 1_000_000, 0, 0), 450_000);
        // completion: 1e6 × 1_000_000 → gross 1_000_000 → 900_000.
        assert_eq!(estimate_provider_credits(&c, "any", 0, 0, 1_000_000), 900_000);
    }

    #[test]
    fn gross_tie_rounds_to_even() {
        let c = RateCard::builtin();
        // The PROTOCOL.md example end frame: 39 prompt + 1 completion.
        // 39×500_000 + 1×1_000_000 = 20_500_000 → gross 20.5 → 20 (even); provider 18.0 → 18.
        assert_eq!(estimate_provider_credits(&c, "m", 39, 0, 1), 18);
        // 41 + 1: 21_500_000 → 21.5 → 22; provider 19.8 → 20.
        assert_eq!(estimate_provider_credits(&c, "m", 41, 0, 1), 20);
        // 1 prompt: 0.5 → 0.
        assert_eq!(estimate_provider_credits(&c, "m", 1, 0, 0), 0);
        // 3 prompt: 1.5 → 2; provider 1.8 → 2.
        assert_eq!(estimate_provider_credits(&c, "m", 3, 0, 0), 2);
    }

    #[test]
    fn provider_share_tie_rounds_to_even() {
        let c = RateCard::builtin();
        // 10 prompt → gross 5; 5 × 9000 / 10_000 = 4.5 → 4.
        assert_eq!(estimate_provider_credits(&c, "m", 10, 0, 0), 4);
        // 30 prompt → gross 15; 13.5 → 14.
        assert_eq!(estimate_provider_credits(&c, "m", 30, 0, 0), 14);
        // 50 prompt → gross 25; 22.5 → 22.
        assert_eq!(estimate_provider_credits(&c, "m", 50, 0, 0), 22);
    }

    #[test]
    fn cached_tokens_multiplier_and_share_from_the_card() {
        let row = RateRow {
            prompt_rate_per_mtok: 500_000,
            prompt_cache_hit_rate_per_mtok: 250_000,
            completion_rate_per_mtok: 2_000_000,
            provider_share_bps: 5_000,
            global_multiplier_ppm: 2_000_000,
        };
        let c = card_with("mlx-community/Qwen2.5-0.5B-Instruct-4bit", row);
        // prompt 4 of which 2 cached, completion 1:
        // 2×500_000 + 2×250_000 + 1×2_000_000 = 3_500_000; ×2e6/1e12 = 7 → gross 7;
        // provider = 7 × 0.5 = 3.5 → 4 (even).
        assert_eq!(estimate_provider_credits(&c, "qwen2.5-0.5b-instruct", 4, 2, 1), 4);
        // cached is clamped to prompt: 2 prompt "10 cached" → 2×250_000 = 500_000 ×2 /1e6 = 1;
        // provider 0.5 → 0.
        assert_eq!(estimate_provider_credits(&c, "Qwen2.5-0.5B-Instruct-8bit", 2, 10, 0), 0);
        // 3 prompt uncached: 1_500_000 × 2 = 3 → provider 1.5 → 2.
        assert_eq!(estimate_provider_credits(&c, "qwen2.5-0.5b-instruct", 3, 0, 0), 2);
    }

    #[test]
    fn huge_usage_does_not_overflow() {
        let c = RateCard::builtin();
        let v = estimate_provider_credits(&c, "m", u32::MAX as u64 * 1000, 0, u32::MAX as u64 * 1000);
        // (4_294_967_295_000 × 1.5e6) / 1e6 = 6_442_450_942_500 gross → ×0.9 = 5_798_205_848_250.
        assert_eq!(v, 5_798_205_848_250);
    }

    #[test]
    fn rate_card_parses_the_coordinator_shape_and_falls_back() {
        let body = r#"{
            "version": "2026-05-01",
            "policy_version": 3,
            "generated_at": "2026-05-01T00:00:00Z",
            "usd_per_million_credits": 1.0,
            "rows": {
                "llama-3.2-3b-instruct": {
                    "prompt_rate_per_mtok": 100000,
                    "prompt_cache_hit_rate_per_mtok": 50000,
                    "completion_rate_per_mtok": 200000,
                    "provider_share_bps": 8000,
                    "global_multiplier_ppm": 1000000
                },
                "default": { "prompt_rate_per_mtok": 1000000 }
            }
        }"#;
        let c = RateCard::from_json(body).unwrap();
        assert_eq!(c.version, "2026-05-01");
        let r = c.row_for("mlx-community/Llama-3.2-3B-Instruct-4bit");
        assert_eq!(r.prompt_rate_per_mtok, 100_000);
        assert_eq!(r.provider_share_bps, 8_000);
        // Unknown model → the card's `default` row, missing fields at protocol defaults.
        let d = c.row_for("something-else");
        assert_eq!(d.prompt_rate_per_mtok, 1_000_000);
        assert_eq!(d.completion_rate_per_mtok, 1_000_000);
        assert_eq!(d.provider_share_bps, 9_000);
        // 10 prompt + 10 completion on the llama row: 1_000_000 + 2_000_000 = 3 gross; ×0.8 = 2.4 → 2.
        assert_eq!(estimate_provider_credits(&c, "Llama-3.2-3B-Instruct-8bit", 10, 0, 10), 2);

        let numeric = RateCard::from_json(r#"{"version": 7, "rows": {}}"#).unwrap();
        assert_eq!(numeric.version, "7");
        assert_eq!(numeric.row_for("x"), RateRow::default());
    }
}
