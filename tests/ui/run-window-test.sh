#!/usr/bin/env bash
# Runs window.test.mjs in a throwaway desktop: Xvfb, a D-Bus session bus (notifications, the tray's
# StatusNotifier fallback) and trayer as the tray host.
set -euo pipefail
cd "$(dirname "$0")"
display=":${HEARTH_XVFB_DISPLAY:-97}"
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
export DISPLAY="$display"
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
exec dbus-run-session -- bash -c '
  trayer --edge top --align right --widthtype request --height 28 --SetDockType true --transparent false >/dev/null 2>&1 &
  trap "kill $! 2>/dev/null || true" EXIT
  sleep 1
  node --test --test-concurrency=1 window.test.mjs
'
