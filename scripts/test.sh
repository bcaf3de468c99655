#!/usr/bin/env bash
# Installs everything the tests need (Python packages, Debian chromium for the browser tests)
# and runs the whole test suite. Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements-dev.txt
python3 -m pip install -q --no-deps -e .
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium not found and apt-get unavailable; browser tests will fail" >&2
  fi
fi
# This script installs chromium, so the browser tests must run: they fail, not skip, without it.
export HMSA_REQUIRE_BROWSER="${HMSA_REQUIRE_BROWSER:-1}"
set +e
python3 -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
