#!/usr/bin/env bash
# The main job on the embedded engine: create a topic, produce records with
# acks, consume them back in a consumer group, describe the group.
# Needs only tidings itself (no extras): installed into .venv once, if
# .venv cannot import it yet.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c 'import tidings' 2>/dev/null; then
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  echo "installing tidings into .venv (once)"
  .venv/bin/python -m pip install -q -e .
fi
DB=${TIDINGS_DEMO_DB:-$(mktemp -d)/demo.db}
export TIDINGS_URL="sqlite:///$DB"
T=.venv/bin/tidings
$T topics create bookings --partitions 3
seq 1 10 | sed 's/.*/{"booking":"b-&","state":"confirmed"}/' | $T produce bookings --key-field booking --print-acks
$T consume bookings --group billing --from beginning --max 10 --timeout 5
$T groups describe billing
echo "demo database: $DB"
