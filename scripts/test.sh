#!/usr/bin/env bash
# Installs what is needed, then runs the linter and the whole test suite (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh test
# promtool (Debian's `prometheus` package) checks the alert rules: only the binary, into .venv/bin,
# so that no Prometheus server gets installed or started on the machine.
if ! command -v promtool >/dev/null 2>&1 && [ ! -x .venv/bin/promtool ]; then
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -qq
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq prometheus && dpkg-deb -x prometheus_*.deb root)
  install -m 0755 "$tmp"/root/usr/bin/promtool .venv/bin/promtool
  rm -rf "$tmp"
fi
.venv/bin/ruff check .
.venv/bin/mypy  # type checks: setup.cfg [mypy] says what, and where strictly
# The suite mostly waits (slots, auctions, timeouts), so it runs as two pytest sessions side by
# side, each with its own embedded PostgreSQL: the tests that run whole daemons (end to end,
# crashes), and everything else (mostly the operator CLI). Options (-q, -k, ...) go to both;
# with a test path or node id it is one session, as asked. Each session's output is shown whole.
for arg in "$@"; do
  [[ "$arg" == -* ]] || exec .venv/bin/python -m pytest "$@"
done
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
daemons=(tests/e2e tests/test_crash_recovery*.py tests/test_daemon*.py)
.venv/bin/python -m pytest "$@" "${daemons[@]}" > "$logs/daemons.log" 2>&1 &
first=$!
.venv/bin/python -m pytest "$@" "${daemons[@]/#/--ignore=}" > "$logs/rest.log" 2>&1 &
second=$!
status=0
wait "$first" || status=$?
cat "$logs/daemons.log"
wait "$second" || status=$?
cat "$logs/rest.log"
exit "$status"
