#!/usr/bin/env bash
# Installs what is needed, then runs the linter and the whole test suite (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
