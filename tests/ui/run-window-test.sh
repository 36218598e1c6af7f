#!/usr/bin/env bash
# Runs window.test.mjs in a throwaway desktop: Xvfb, a D-Bus session bus (notifications, the tray's
# StatusNotifier fallback) and trayer as the tray host. Expects the app already built with the UI
# embedded (scripts/test-ui.sh does it): cargo build -p hearth-app --features custom-protocol.
set -euo pipefail
cd "$(dirname "$0")"
# Xvfb picks a free display itself and writes its number to fd 3: other workers on this machine
# may have their own X servers running.
displayfile="$(mktemp)"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$displayfile" >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -f "$displayfile"' EXIT
for _ in $(seq 100); do [ -s "$displayfile" ] && break; sleep 0.1; done
[ -s "$displayfile" ] || { echo "Xvfb did not start" >&2; exit 1; }
export DISPLAY=":$(head -n 1 "$displayfile")"
# WebKitGTK derives navigator.language from LANG; a bare "C" (CI shells) is not a valid language
# tag and Intl constructors (uPlot makes one at load) throw on it.
case "${LANG:-C}" in C|C.*|POSIX) export LANG=en_US.UTF-8 ;; esac
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
export HEARTH_TEST_REPORTER="${HEARTH_TEST_REPORTER:-spec}"
dbus-run-session -- bash -c '
  trayer --edge top --align right --widthtype request --height 28 --SetDockType true --transparent false >/dev/null 2>&1 &
  trap "kill $! 2>/dev/null || true" EXIT
  sleep 1
  node --test --test-concurrency=1 --test-reporter="$HEARTH_TEST_REPORTER" window.test.mjs
'
