#!/usr/bin/env bash
# Called by scripts/test: make sure a headless browser exists for the status page's screenshot
# test (tests/e2e/test_report_cli.py). Quiet and quick when chromium is there. Else, as root on
# Debian/Ubuntu, installs the distribution's `chromium` package. Anywhere else it says so and
# goes on: that one test is then skipped with a clear message (a browser is a nice-to-have
# check of the page's looks; the page itself is tested by parsing its HTML).
# ESCAPIA_ICAL_SKIP_CHROMIUM=1 skips the install on purpose.
set -uo pipefail

find_chromium() {
  for name in chromium chromium-browser; do command -v "$name" 2>/dev/null && return 0; done
  return 1
}

[ "${ESCAPIA_ICAL_SKIP_CHROMIUM:-}" = 1 ] && exit 0
find_chromium >/dev/null && exit 0

skip() { echo "scripts/test: no chromium ($1): the status page screenshot test is skipped." >&2; exit 0; }

[ "$(id -u)" = 0 ] || skip "not root, so it cannot be installed here; Debian: sudo apt-get install chromium"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine"

echo "scripts/test: installing chromium (Debian package) for the status page screenshot test" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  skip "apt-get install chromium failed (output above)"
fi
find_chromium >/dev/null || skip "apt-get installed chromium but no chromium binary was found"
