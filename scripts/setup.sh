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
# The RabbitMQ engine's consistent-hash exchanges (and, later, its logs on
# streams) need these plugins on the local RabbitMQ. Enabling is idempotent
# and online; skipped where RabbitMQ is not installed or not ours to manage.
if command -v rabbitmq-plugins >/dev/null 2>&1; then
  rabbitmq-plugins enable --quiet rabbitmq_stream rabbitmq_consistent_hash_exchange >/dev/null 2>&1 \
    || echo "setup: could not enable RabbitMQ plugins (not root?); amqp:// tests may fail" >&2
fi
