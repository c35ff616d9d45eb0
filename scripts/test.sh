#!/usr/bin/env bash
# Set up and run every check: lint, types, and the test suite with every
# engine required (a missing service fails instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TIDINGS_REQUIRE_ENGINES=${TIDINGS_REQUIRE_ENGINES:-memory,sqlite,postgresql,rabbitmq}
.venv/bin/ruff check src tests examples
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
