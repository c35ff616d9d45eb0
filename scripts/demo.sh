#!/usr/bin/env bash
# Set up and run the main job on the embedded engine: create a topic,
# produce records with acks, consume them back in a consumer group.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DB=${TIDINGS_DEMO_DB:-$(mktemp -d)/demo.db}
export TIDINGS_URL="sqlite:///$DB"
T=.venv/bin/tidings
$T topics create bookings --partitions 3
seq 1 10 | sed 's/.*/{"booking":"b-&","state":"confirmed"}/' | $T produce bookings --key-field booking --print-acks
$T consume bookings --group billing --from beginning --max 10 --timeout 5
$T groups describe billing
echo "demo database: $DB"
