#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60). A crash leaves its input in fuzz/artifacts/<target>/
# and fails the run; turn such an input into a regression test next to the code it broke.
#
# cargo-fuzz needs unstable compiler flags; RUSTC_BOOTSTRAP lets the stable toolchain (the only
# one this project's machines have) accept them for this build only.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}/fuzz"
for target in protocol_decode envelope_open settings_parse model_config; do
  echo "== fuzz $target for ${seconds}s"
  log="$(mktemp)"
  if ! cargo fuzz run --fuzz-dir fuzz "$target" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $target crashed; the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(Done|#[0-9]+ +DONE)' "$log" || tail -n 3 "$log"
  rm -f "$log"
done
echo "fuzz: all targets ran ${seconds}s without a crash"
