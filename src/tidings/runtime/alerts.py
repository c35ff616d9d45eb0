"""Alerts: a callable, or a webhook URL that gets the alert as a JSON POST.

Kinds: ``parked`` (a message became a failed event), ``paused`` (a
partition stayed paused past the App's ``alert_pause_after``),
``key_blocked``, ``blocked`` (a never-skip handler is stuck on a message),
``breaker_open``. An alert never blocks or breaks message handling: a
failing hook or webhook is logged and forgotten.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tidings.runtime")
AlertHook = Callable[[dict[str, Any]], None]


class Alerts:
    """Sends alerts to a hook (called in the handler's thread) or POSTs them
    to a webhook URL (from a background thread)."""

    def __init__(self, target: AlertHook | str | None) -> None:
        self.target = target

    def send(self, kind: str, app: str, handler: str, **fields: Any) -> None:
        if self.target is None:
            return
        alert = {"kind": kind, "app": app, "handler": handler, "at": time.time(), **fields}
        if isinstance(self.target, str):
            threading.Thread(target=self._post, args=(self.target, alert), daemon=True).start()
            return
        try:
            self.target(alert)
        except Exception as exc:  # an alert hook must not break handling
            log.warning("alert hook failed on %s: %s", kind, exc)

    @staticmethod
    def _post(url: str, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, default=str).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                pass
        except OSError as exc:
            log.warning("alert webhook %s failed on %s: %s", url, alert["kind"], exc)
