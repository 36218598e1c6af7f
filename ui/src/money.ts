// Credits as people read them: dollars. The twin of src-tauri/ledger/src/money.rs (which the CLI,
// the tray and the CSV export use): same rules, same float operations, so the dashboard and
// `hearth status` print the same text for the same amount. No imports, so its unit test
// (ui/tests/money.test.mjs) loads it alone.

/** Sub-cent amounts keep this many significant digits ("$0.0023"), so small days do not read "$0.00". */
const SUB_CENT_SIGNIFICANT = 2;
/** No amount is shown with more decimals; anything smaller is "<$0.000000000001". */
const MAX_DECIMALS = 12;

/**
 * The rate to convert with: the card's `usd_per_million_credits`, unless it is not a positive
 * finite number (absent, 0 from an old snapshot, nonsense): then the protocol's 10^6 credits = $1.
 */
export function effectiveRate(usdPerMillionCredits: number | null | undefined): number {
  return typeof usdPerMillionCredits === "number" && Number.isFinite(usdPerMillionCredits) && usdPerMillionCredits > 0
    ? usdPerMillionCredits
    : 1;
}

/** What `credits` are worth in dollars at the card's rate. */
export function usdForCredits(credits: number, usdPerMillionCredits: number | null | undefined): number {
  return (credits * effectiveRate(usdPerMillionCredits)) / 1_000_000;
}

/** 10^n by repeated multiplication, as the Rust twin computes it. */
function pow10(n: number): number {
  let v = 1;
  for (let i = 0; i < n; i++) v *= 10;
  return v;
}

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * A dollar amount for people: "$12.34" and "$1,234.56" from a cent up, "$0.0023" or "$0.000018"
 * below a cent (two significant digits, trailing zeros dropped), "$0.00" for zero, a leading "-"
 * for negatives (the estimated-minus-credited gap has either sign).
 */
export function formatUsd(usd: number): string {
  if (!Number.isFinite(usd)) return "$?";
  const sign = usd < 0 ? "-" : "";
  const abs = Math.abs(usd);
  if (abs === 0) return "$0.00";
  // Scale, round half up (Math.round on a non-negative number is Rust's f64::round), print the
  // integer: the formatter's own rounding differs between
  // languages (ties to even in Rust, up in toFixed), this does not.
  if (abs < 0.01) {
    const firstDigit = Math.floor(Math.log10(abs));
    const decimals = SUB_CENT_SIGNIFICANT - 1 - firstDigit;
    if (decimals > MAX_DECIMALS) return `${sign}<$0.${"0".repeat(MAX_DECIMALS - 1)}1`;
    const scaled = Math.round(abs * pow10(decimals));
    // Rounding can carry up to a whole cent (0.009999 → 0.010): then it is a cent amount.
    if (scaled < pow10(decimals - 2)) {
      const digits = String(scaled).padStart(decimals, "0");
      return `${sign}$0.${digits.replace(/0+$/, "")}`;
    }
  }
  const cents = Math.round(abs * 100);
  const whole = Math.floor(cents / 100);
  const frac = String(cents % 100).padStart(2, "0");
  return `${sign}$${groupThousands(String(whole))}.${frac}`;
}

/** `credits` as dollars at the card's rate, formatted by {@link formatUsd}. */
export function formatCreditsUsd(credits: number, usdPerMillionCredits: number | null | undefined): string {
  return formatUsd(usdForCredits(credits, usdPerMillionCredits));
}
