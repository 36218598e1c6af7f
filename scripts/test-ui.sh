#!/usr/bin/env bash
# The UI tests, the way CI runs them: installs what is missing (Debian packages, npm modules,
# tauri-driver), builds the web bundle, `hearth` and the app with the bundle embedded, then runs
#   tests/ui/browser.test.mjs (and onboarding.test.mjs: first launch against a hub stand-in)
#                              Debian's Chromium (headless, playwright-core) against the UI that a
#                              real `hearth serve` serves, on a real local pool;
#   tests/ui/window.test.mjs   the Tauri app in a WebKitGTK window under Xvfb, over WebDriver
#                              (tauri-driver + WebKitWebDriver), with trayer as the tray host.
# The last line of output is `N passed, N failed`; the exit status is non-zero on any failure.
# Screenshots and the idle footprint go to artifacts/ui/ (HEARTH_ARTIFACTS_DIR overrides).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hearth-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export PATH="$HOME/.cargo/bin:$PATH"
export HEARTH_ARTIFACTS_DIR="${HEARTH_ARTIFACTS_DIR:-$root/artifacts/ui}"
mkdir -p "$HEARTH_ARTIFACTS_DIR"

# What compiling the shell crate (hearth-app) needs; .ci/run installs the same list, since
# `cargo test --workspace` compiles it too.
build_pkgs=(pkg-config libssl-dev libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev)
# What running the tests needs: the browser, an X server and its tools, a tray host, a D-Bus
# session, the WebKit WebDriver, `import` for a whole-screen screenshot, and Node.js.
run_pkgs=(chromium xvfb x11-utils xdotool trayer dbus-x11 webkit2gtk-driver imagemagick)

missing=()
for p in "${build_pkgs[@]}" "${run_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian (its npm then is no Debian package): ask for the
# commands, not the packages.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || { echo "could not install ${missing[*]}"; echo "0 passed, 1 failed"; exit 1; }
fi
if ! command -v tauri-driver >/dev/null 2>&1; then
  echo "== cargo install tauri-driver"
  cargo install tauri-driver --locked || { echo "could not install tauri-driver"; echo "0 passed, 1 failed"; exit 1; }
fi

passed=0
failed=0
# Counts one suite's results from its TAP summary; a suite that never reported counts as 1 failure.
tally() {
  local log="$1" p f
  p="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)"
  f="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)"
  if [ -z "$p" ] || [ -z "$f" ]; then
    echo "(no test summary in $log: counted as one failure)"
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + p))
  failed=$((failed + f))
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

echo "== building the web UI, hearth and the app"
build_ok=1
# The bundle must exist before `hearth` is built: the binary embeds it. scripts/test.sh builds it
# first (before its cargo tests) and says so with HEARTH_UI_BUILT=1.
if [ "${HEARTH_UI_BUILT:-}" = 1 ]; then
  (cd ui && npm run check) || build_ok=0
else
  (cd ui && npm ci --no-audit --no-fund && npm run check && npm run build) || build_ok=0
fi
(cd tests/ui && npm ci --no-audit --no-fund) || build_ok=0
# Strictly one after the other: two cargo builds at once only fight over the target dir's lock.
if [ $build_ok = 1 ]; then
  cargo build -p hearth-engine --bin hearth || build_ok=0
fi
if [ $build_ok = 1 ]; then
  cargo build -p hearth-app --features custom-protocol || build_ok=0
fi
if [ $build_ok = 0 ]; then
  echo "the build failed"
  failed=1
  finish
fi
export HEARTH_BIN="$CARGO_TARGET_DIR/debug/hearth"
export HEARTH_APP_BIN="$CARGO_TARGET_DIR/debug/hearth-app"
export HEARTH_UI_DIR="$root/ui/dist"

logs="$(mktemp -d /tmp/hearth-ui-tests.XXXXXX)"
echo "== browser test (Chromium, headless)"
(cd tests/ui && node --test --test-concurrency=1 --test-reporter=tap browser.test.mjs onboarding.test.mjs) 2>&1 | tee "$logs/browser.tap"
tally "$logs/browser.tap"

echo "== window test (Tauri app under Xvfb)"
HEARTH_TEST_REPORTER=tap bash tests/ui/run-window-test.sh 2>&1 | tee "$logs/window.tap"
tally "$logs/window.tap"

finish
