#!/usr/bin/env bash
# Set up, then run every check CI runs: ruff, mypy --strict, the layering contract, the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
scripts/typecheck.sh
exec .venv/bin/pytest "$@"
