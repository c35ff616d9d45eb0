#!/usr/bin/env bash
# Create .venv and install tidings with everything its tests and benchmarks
# use (extras dev and peers). Installs once: again only when pyproject.toml
# changes (.venv/.tidings-setup records what was installed for which one).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.tidings-setup
WANT="dev,peers $(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev,peers]'
  echo "$WANT" > "$STAMP"
fi
