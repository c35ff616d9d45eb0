#!/usr/bin/env bash
# The booking story on the embedded engine (`tidings demo`): a booking
# service with a transactional outbox, four services in their own consumer
# groups, a transient failure, a poison message parked and triaged, a
# service bootstrapped from the log, a returns queue with a dead-letter
# queue — then a summary whose counts are checked (exit code 1 if one fails).
# Needs only tidings itself (no extras): installed into .venv once, if
# .venv cannot import it yet. The databases are kept (in $TIDINGS_DEMO_DIR,
# else a new temporary directory) with commands to explore them; arguments
# go to `tidings demo` (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c 'import tidings' 2>/dev/null; then
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  echo "installing tidings into .venv (once)"
  .venv/bin/python -m pip install -q -e .
fi
DIR=${TIDINGS_DEMO_DIR:-$(mktemp -d)/booking}
.venv/bin/tidings demo --keep "$DIR" "$@"
echo "(tidings is .venv/bin/tidings: 'source .venv/bin/activate' puts it on PATH)"
