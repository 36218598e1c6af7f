// Unit tests of ui/src/money.ts, the dashboard's dollar formatting: the same edge cases as its Rust
// twin (src-tauri/ledger/src/money.rs), so the two stay in step. The module is compiled in memory
// (./load-ts.mjs; no test framework, no build step): `npm test`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { loadTs } from "./load-ts.mjs";

const { effectiveRate, formatCreditsUsd, formatUsd, usdForCredits } = await loadTs(new URL("../src/money.ts", import.meta.url));

test("zero is zero dollars", () => {
  assert.equal(formatUsd(0), "$0.00");
  assert.equal(formatUsd(-0), "$0.00");
  assert.equal(formatCreditsUsd(0, 1), "$0.00");
});

test("sub-cent amounts keep two significant digits", () => {
  assert.equal(formatCreditsUsd(2_345, 1), "$0.0023");
  assert.equal(formatCreditsUsd(18, 1), "$0.000018");
  assert.equal(formatCreditsUsd(1, 1), "$0.000001");
  assert.equal(formatCreditsUsd(2_000, 1), "$0.002");
  assert.equal(formatCreditsUsd(9_900, 1), "$0.0099");
  assert.equal(formatCreditsUsd(9_999, 1), "$0.01", "rounding up to a cent reads as cents");
  assert.equal(formatUsd(1e-15), "<$0.000000000001");
});

test("cents and large amounts have two decimals and grouping", () => {
  assert.equal(formatCreditsUsd(10_000, 1), "$0.01");
  assert.equal(formatCreditsUsd(215_000, 1), "$0.22");
  assert.equal(formatCreditsUsd(12_340_000, 1), "$12.34");
  assert.equal(formatUsd(999.999), "$1,000.00");
  assert.equal(formatUsd(1_234_567.891), "$1,234,567.89");
  assert.equal(formatUsd(100), "$100.00");
  assert.equal(formatCreditsUsd(125_000, 1), "$0.13", "ties round half up, as in Rust");
  assert.equal(formatCreditsUsd(2_250, 1), "$0.0023");
});

test("negatives carry a leading minus", () => {
  assert.equal(formatCreditsUsd(-2_345, 1), "-$0.0023");
  assert.equal(formatCreditsUsd(-12_340_000, 1), "-$12.34");
  assert.equal(formatUsd(-1_234.5), "-$1,234.50");
});

test("the card's rate converts, and a missing or nonsensical one is the protocol's $1 per million", () => {
  assert.equal(formatCreditsUsd(1_000_000, 2.5), "$2.50");
  for (const bad of [0, -3, NaN, null, undefined]) assert.equal(formatCreditsUsd(1_000_000, bad), "$1.00", String(bad));
  assert.equal(effectiveRate(0.5), 0.5);
  assert.equal(usdForCredits(20, 1), 0.00002);
  assert.equal(formatUsd(Infinity), "$?");
});
