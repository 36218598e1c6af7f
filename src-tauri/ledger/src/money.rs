//! Credits as people read them: dollars.
//!
//! The coordinator prices in integer credits; its rate card says what a million of them are worth
//! (`usd_per_million_credits`, 1.0 unless the card says otherwise). Every place that shows credits
//! (the CLI, the tray, the CSV export) shows dollars beside them through this one module, so the
//! figures cannot disagree. The web UI has its twin in `ui/src/money.ts`, which follows the same
//! rules and is tested against the same edge cases.

/// Credits per dollar unit of the rate card's `usd_per_million_credits`.
const CREDITS_PER_RATE_UNIT: f64 = 1_000_000.0;

/// The rate to convert with: the card's, unless it is not a positive finite number. A card that
/// names no rate, a zero from a `Default` snapshot, or nonsense is read as the protocol's own
/// "10^6 credits = $1", since showing every job as worth $0.00 would be a lie of its own.
pub fn effective_rate(usd_per_million_credits: f64) -> f64 {
    if usd_per_million_credits.is_finite() && usd_per_million_credits > 0.0 {
        usd_per_million_credits
    } else {
        1.0
    }
}

/// What `credits` are worth in dollars at `usd_per_million_credits` (see [`effective_rate`]).
pub fn usd_for_credits(credits: i64, usd_per_million_credits: f64) -> f64 {
    credits as f64 * effective_rate(usd_per_million_credits) / CREDITS_PER_RATE_UNIT
}

/// Sub-cent amounts keep this many significant digits ("$0.0023"), so a day of small jobs does not
/// read as "$0.00".
const SUB_CENT_SIGNIFICANT: i32 = 2;
/// No amount is shown with more decimals than this; anything smaller is "<$0.000000000001".
const MAX_DECIMALS: i32 = 12;

/// A dollar amount for people: `$12.34` and `$1,234.56` from a cent up (two decimals, thousands
/// grouped), `$0.0023` or `$0.000018` below a cent (two significant digits, trailing zeros
/// dropped), `$0.00` for exactly zero, and a leading `-` for negatives (the estimate-minus-credited
/// gap can be either sign).
pub fn format_usd(usd: f64) -> String {
    if !usd.is_finite() {
        return "$?".to_string();
    }
    let sign = if usd < 0.0 { "-" } else { "" };
    let abs = usd.abs();
    if abs == 0.0 {
        return "$0.00".to_string();
    }
    // Rounding is done here as "scale, round half away from zero, print the integer" rather than
    // by the formatter's own precision (which rounds ties to even): the TypeScript twin does the
    // same float operations, so both sides print the same text for the same amount.
    if abs < 0.01 {
        // Two significant digits: 0.002345 has its first digit at 10^-3, so 4 decimals.
        let first_digit = abs.log10().floor() as i32;
        let decimals = SUB_CENT_SIGNIFICANT - 1 - first_digit;
        if decimals > MAX_DECIMALS {
            return format!("{sign}<$0.{}1", "0".repeat(MAX_DECIMALS as usize - 1));
        }
        let scaled = (abs * pow10(decimals)).round();
        // Rounding can carry up to a whole cent (0.009999 → 0.010): then it is a cent amount.
        if scaled < pow10(decimals - 2) {
            let digits = format!("{:0width$}", scaled as u64, width = decimals as usize);
            return format!("{sign}$0.{}", digits.trim_end_matches('0'));
        }
    }
    let cents = (abs * 100.0).round() as u64;
    format!("{sign}${}.{:02}", group_thousands(&(cents / 100).to_string()), cents % 100)
}

/// 10^n by repeated multiplication (exact for the n used here), as the TypeScript twin computes it.
fn pow10(n: i32) -> f64 {
    (0..n).fold(1.0, |acc, _| acc * 10.0)
}

/// `credits` as dollars at `usd_per_million_credits`, formatted by [`format_usd`].
pub fn format_credits_usd(credits: i64, usd_per_million_credits: f64) -> String {
    format_usd(usd_for_credits(credits, usd_per_million_credits))
}

/// A dollar figure for machines (the CSV): fixed-point, no exponent, no grouping, rounded to
/// 10^-10 $ so float noise (`0.000022000000000000003`) does not leak out ("0.00002", "12.5", "0").
pub fn usd_plain(usd: f64) -> String {
    if !usd.is_finite() {
        return String::new();
    }
    // Display for f64 never uses an exponent and prints the shortest text that reads back.
    let rounded = (usd * 1e10).round() / 1e10;
    match rounded.to_string().as_str() {
        "-0" => "0".to_string(),
        t => t.to_string(),
    }
}

/// "1234567" → "1,234,567".
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    // The first group is what is left over after whole groups of three.
    let first = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        n => n,
    };
    out.push_str(&digits[..first]);
    for group in digits.as_bytes()[first..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_zero_dollars() {
        assert_eq!(format_usd(0.0), "$0.00");
        assert_eq!(format_usd(-0.0), "$0.00");
        assert_eq!(format_credits_usd(0, 1.0), "$0.00");
    }

    #[test]
    fn sub_cent_amounts_keep_two_significant_digits() {
        // 2345 credits at the default rate: $0.002345.
        assert_eq!(format_credits_usd(2_345, 1.0), "$0.0023");
        assert_eq!(format_credits_usd(18, 1.0), "$0.000018");
        assert_eq!(format_credits_usd(1, 1.0), "$0.000001");
        // Trailing zeros of the significant digits are dropped.
        assert_eq!(format_credits_usd(2_000, 1.0), "$0.002");
        assert_eq!(format_credits_usd(9_900, 1.0), "$0.0099");
        // Rounding up to a cent reads as cents, not "$0.010".
        assert_eq!(format_credits_usd(9_999, 1.0), "$0.01");
        assert_eq!(format_usd(1e-15), "<$0.000000000001");
    }

    #[test]
    fn cents_and_large_amounts_have_two_decimals_and_grouping() {
        assert_eq!(format_credits_usd(10_000, 1.0), "$0.01");
        assert_eq!(format_credits_usd(215_000, 1.0), "$0.22");
        assert_eq!(format_credits_usd(12_340_000, 1.0), "$12.34");
        assert_eq!(format_usd(999.999), "$1,000.00");
        assert_eq!(format_usd(1_234_567.891), "$1,234,567.89");
        assert_eq!(format_usd(100.0), "$100.00");
        // Ties round half up, as people do (and as the TypeScript twin does).
        assert_eq!(format_credits_usd(125_000, 1.0), "$0.13");
        assert_eq!(format_credits_usd(2_250, 1.0), "$0.0023");
    }

    #[test]
    fn negatives_carry_a_leading_minus() {
        assert_eq!(format_credits_usd(-2_345, 1.0), "-$0.0023");
        assert_eq!(format_credits_usd(-12_340_000, 1.0), "-$12.34");
        assert_eq!(format_usd(-1_234.5), "-$1,234.50");
    }

    #[test]
    fn the_cards_rate_converts_and_nonsense_falls_back_to_one() {
        assert_eq!(format_credits_usd(1_000_000, 2.5), "$2.50");
        assert_eq!(format_credits_usd(1_000_000, 0.0), "$1.00");
        assert_eq!(format_credits_usd(1_000_000, -3.0), "$1.00");
        assert_eq!(format_credits_usd(1_000_000, f64::NAN), "$1.00");
        assert_eq!(effective_rate(0.5), 0.5);
        assert_eq!(format_usd(f64::INFINITY), "$?");
    }

    #[test]
    fn plain_usd_is_fixed_point_and_trimmed() {
        assert_eq!(usd_plain(usd_for_credits(20, 1.0)), "0.00002");
        assert_eq!(usd_plain(12.5), "12.5");
        assert_eq!(usd_plain(0.0), "0");
        assert_eq!(usd_plain(-0.0), "0");
        assert_eq!(usd_plain(usd_for_credits(-3, 1.0)), "-0.000003");
        assert_eq!(usd_plain(usd_for_credits(5_798_205_848_250, 1.0)), "5798205.84825");
        assert_eq!(usd_plain(usd_for_credits(20, 1.1)), "0.000022");
    }
}
