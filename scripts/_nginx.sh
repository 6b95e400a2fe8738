#!/usr/bin/env bash
# Called by scripts/test: make sure an nginx binary exists for tests/e2e/test_nginx.py, which
# serves feeds through config/nginx.conf.example. Quiet and quick when nginx is there. Else,
# as root on Debian/Ubuntu, installs the distribution's `nginx` package (on Debian 12 that is
# the package holding the binary; nginx-light/-core are meta-packages adding modules on top).
# Anywhere else it fails with what to do: the nginx test must not be skipped silently.
# ESCAPIA_ICAL_SKIP_NGINX=1 skips the check (and the test) on purpose.
set -euo pipefail

find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }

[ "${ESCAPIA_ICAL_SKIP_NGINX:-}" = 1 ] && exit 0
find_nginx >/dev/null && exit 0

fail() {
  echo "scripts/test: nginx is needed by tests/e2e/test_nginx.py and is not installed: $1." >&2
  echo "  Install it (Debian/Ubuntu: sudo apt-get install nginx), or run as root to let" \
       "scripts/test install it, or set ESCAPIA_ICAL_SKIP_NGINX=1 to skip that test." >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "not root, so it cannot be installed here"
command -v apt-get >/dev/null 2>&1 || fail "no apt-get on this machine"

echo "scripts/test: installing nginx (Debian package) for the nginx integration test" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx; } >"$log" 2>&1; then
  cat "$log" >&2
  fail "apt-get install nginx failed (output above)"
fi
find_nginx >/dev/null || fail "apt-get installed nginx but no nginx binary was found"
