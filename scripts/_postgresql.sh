#!/usr/bin/env bash
# Called by scripts/test: make sure PostgreSQL's server binaries exist for the tests of the
# PostgreSQL state store (tests/unit/pg_server.py starts a throwaway server on loopback).
# Quiet and quick when they are there. Else, as root on Debian/Ubuntu, installs the
# distribution's `postgresql` package (its own cluster is not used, nor started here).
# Where it cannot be installed, says so: those tests are then skipped, each saying why.
# ESCAPIA_ICAL_SKIP_POSTGRESQL=1 skips the check on purpose.
set -euo pipefail

found() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; }

[ "${ESCAPIA_ICAL_SKIP_POSTGRESQL:-}" = 1 ] && exit 0
found && exit 0

skip() {
  echo "scripts/test: PostgreSQL is not installed ($1): the PostgreSQL store tests will be skipped." \
       "Install it (Debian/Ubuntu: sudo apt-get install postgresql) to run them." >&2
  exit 0
}

[ "$(id -u)" = 0 ] || skip "not root, so it cannot be installed here"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine"

echo "scripts/test: installing PostgreSQL (Debian package) for the PostgreSQL store tests" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# policy-rc.d: the package must not start its own cluster (tests start their own servers)
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1; fi
status=0
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql; } >"$log" 2>&1 || status=$?
[ "$made_policy" = 1 ] && rm -f "$policy"
if [ "$status" != 0 ]; then
  cat "$log" >&2
  skip "apt-get install postgresql failed (output above)"
fi
found || skip "apt-get installed postgresql but no server binaries were found"
