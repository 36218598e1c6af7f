#!/usr/bin/env bash
# CI extras that do not belong in `cargo test`: a short fuzz run of every cargo-fuzz target.
#
#   scripts/ci-extra.sh [SECONDS_PER_TARGET]     (default 60; env FUZZ_SECONDS works too)
#
# Installs cargo-fuzz if it is missing (scripts/fuzz.sh does that), builds the targets with
# RUSTC_BOOTSTRAP=1 on the stable toolchain, runs each for the given time and fails on any crash;
# the crashing input is left under fuzz/artifacts/<target>/ — turn it into a regression test in the
# crate that owns the code. The fuzz build has its own target directory
# ($CARGO_TARGET_DIR/fuzz), so it never invalidates the normal test build.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
export PATH="$HOME/.cargo/bin:$PATH"
started=$(date +%s)
bash scripts/fuzz.sh "$seconds"
echo "ci-extra: fuzzing took $(( $(date +%s) - started )) s in total"
