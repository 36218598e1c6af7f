//! The coordinator's earnings formula (PROTOCOL.md, "Earnings"), in exact integers with banker's
//! rounding — once, for the local pool's crediting and the ledger's estimates alike:
//!
//! ```text
//! gross    = rhe((uncached_prompt × prompt_rate + cached_prompt × cache_rate
//!                 + completion × completion_rate) × multiplier_ppm / 10^12)
//! provider = rhe(gross × share_bps / 10^4)
//! ```
//!
//! No floats anywhere: a float would drift from the coordinator's figure on ties.

/// One model's prices: credits per million tokens, the provider's share and the multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub prompt_per_mtok: u64,
    pub cache_hit_per_mtok: u64,
    pub completion_per_mtok: u64,
    pub provider_share_bps: u64,
    pub multiplier_ppm: u64,
}

/// A request's tokens, split the way the card prices them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenCounts {
    pub uncached_prompt: u64,
    pub cached_prompt: u64,
    pub completion: u64,
}

/// What one request earns, in credits: `(gross, provider)`; the operator keeps the difference.
pub fn price(rates: &Rates, tokens: TokenCounts) -> (u64, u64) {
    let weighted = tokens.uncached_prompt as u128 * rates.prompt_per_mtok as u128
        + tokens.cached_prompt as u128 * rates.cache_hit_per_mtok as u128
        + tokens.completion as u128 * rates.completion_per_mtok as u128;
    let gross = div_round_half_even(weighted * rates.multiplier_ppm as u128, 1_000_000 * 1_000_000);
    let provider = div_round_half_even(gross * rates.provider_share_bps as u128, 10_000);
    let gross = u64::try_from(gross).unwrap_or(u64::MAX);
    (gross, u64::try_from(provider).unwrap_or(u64::MAX).min(gross))
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

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Rates = Rates {
        prompt_per_mtok: 500_000,
        cache_hit_per_mtok: 500_000,
        completion_per_mtok: 1_000_000,
        provider_share_bps: 9_000,
        multiplier_ppm: 1_000_000,
    };

    #[test]
    fn ties_go_to_even() {
        for (n, d, q) in
            [(5, 2, 2), (7, 2, 4), (1, 2, 0), (3, 2, 2), (11, 4, 3), (9, 4, 2), (0, 7, 0), (25, 10, 2)]
        {
            assert_eq!(div_round_half_even(n, d), q, "{n}/{d}");
        }
    }

    #[test]
    fn the_default_card_prices_a_request() {
        // 1000 prompt + 500 completion: 0.5 + 0.5 = 1000 credits gross, 900 to the provider.
        let t = TokenCounts { uncached_prompt: 1000, cached_prompt: 0, completion: 500 };
        assert_eq!(price(&DEFAULT, t), (1000, 900));
        // 1 completion token: 1 credit gross; 0.9 rounds to 1.
        assert_eq!(price(&DEFAULT, TokenCounts { completion: 1, ..Default::default() }), (1, 1));
        // 3 prompt tokens: 1.5 → 2 gross; 1.8 → 2.
        assert_eq!(price(&DEFAULT, TokenCounts { uncached_prompt: 3, ..Default::default() }), (2, 2));
    }
}
