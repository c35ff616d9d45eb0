"""A relay as a real process, for the outbox fault tests to kill and freeze.

python outbox_worker.py APP_URL ENGINE_URL OWNER LEASE_S BATCH
Runs until SIGTERM; logs (INFO) to stderr, e.g. when it is fenced.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from tidings.outbox import Relay


def main(app_url: str, engine_url: str, owner: str, lease_s: str, batch: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Relay(
        app_url, engine_url, owner=owner, lease_s=float(lease_s), batch_size=int(batch)
    ) as relay:
        relay.run(stop)


if __name__ == "__main__":
    main(*sys.argv[1:])
