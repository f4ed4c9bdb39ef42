#!/usr/bin/env bash
# Installs what is needed, then runs the daemon on its embedded defaults (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
exec .venv/bin/quantumvault run "$@"
