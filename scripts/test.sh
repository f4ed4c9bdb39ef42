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
exec .venv/bin/python -m pytest "$@"
