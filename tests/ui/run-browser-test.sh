#!/usr/bin/env bash
# Builds what the browser test needs and runs it: the UI bundle (ui/dist), the `hearth` binary,
# then tests/ui/browser.test.mjs and onboarding.test.mjs in Debian's headless Chromium. Screenshots land in artifacts/ui/.
# (scripts/test-ui.sh runs this suite and the window test, installing what is missing.)
#
# Needs Debian's `chromium` (apt-get install chromium) and Node.js with npm; playwright-core never
# downloads a browser here.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
(cd "$root/ui" && npm ci --no-audit --no-fund && npm run check && npm run build)
(cd "$root/tests/ui" && npm ci --no-audit --no-fund)
cargo build -p hearth-engine --bin hearth
export HEARTH_BIN="$CARGO_TARGET_DIR/debug/hearth"
export HEARTH_UI_DIR="$root/ui/dist"
cd "$root/tests/ui" && node --test --test-concurrency=1 browser.test.mjs onboarding.test.mjs
