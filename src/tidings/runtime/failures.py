"""Turning a failure into a :class:`FailedEvent` (R3): bounded traceback,
call site, attempt history, redacted headers, where the message came from."""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from ..message import Delivery, Record
from ..ports.failed import FailedEvent
from .outcomes import Reject

#: Header names (lower case) whose values never reach a failed event; names
#: containing one of DENY_PARTS are redacted too.
DENY_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
DENY_PARTS = ("token", "secret", "password", "api-key", "apikey")
REDACTED = "[redacted]"
REPLAY_HEADER = "x-tidings-replay-count"
FAILED_ID_HEADER = "x-tidings-failed-id"
PUBLISHER_HEADERS = ("x-tidings-publisher", "publisher", "x-publisher", "source")
MAX_TRACEBACK = 8000
MAX_HISTORY = 20
_TIDINGS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = socket.gethostname()


def redact(headers: Mapping[str, str], deny: frozenset[str] = DENY_HEADERS) -> dict[str, str]:
    """Headers with deny-listed values replaced by ``[redacted]``."""
    out = {}
    for name, value in headers.items():
        low = name.lower()
        secret = low in deny or any(part in low for part in DENY_PARTS)
        out[name] = REDACTED if secret else value
    return out


def describe(exc: BaseException | Reject) -> tuple[str, str, str, str]:
    """(exception type, message, bounded traceback, call site)."""
    if isinstance(exc, Reject):
        return "Reject", exc.reason, "", "handler returned Reject"
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK:  # keep the end: the innermost frames say most
        text = "…" + text[-MAX_TRACEBACK:]
    return kind, str(exc)[:2000], text, call_site(exc)


def call_site(exc: BaseException) -> str:
    """The innermost frame outside tidings itself: where the handler failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if not os.path.abspath(f.filename).startswith(_TIDINGS_DIR)]
    if not (ours or frames):
        return "unknown"
    frame = (ours or frames)[-1]
    return f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"


def history_entry(exc: BaseException | Reject) -> dict[str, Any]:
    kind, message, _, _ = describe(exc) if isinstance(exc, Reject) else _short(exc)
    return {"at": int(time.time() * 1000), "exception_type": kind, "message": message[:200]}


def _short(exc: BaseException) -> tuple[str, str, str, str]:
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    return kind, str(exc), "", ""


def failed_event(  # noqa: PLR0913 - every R3 field comes from somewhere
    app: str,
    handler: str,
    group: str | None,
    message: Record | Delivery,
    exc: BaseException | Reject,
    attempts: int,
    history: Sequence[Mapping[str, Any]],
    *,
    blocks_key: bool = False,
    blocked_by: int | None = None,
) -> FailedEvent:
    kind, text, tb, site = describe(exc)
    headers = dict(message.headers)
    common: dict[str, Any] = {
        "app": app, "handler": handler, "host": HOST, "failed_at": int(time.time() * 1000),
        "exception_type": kind, "exception_message": text, "traceback": tb,
        "call_site": site, "attempts": attempts, "history": tuple(history)[-MAX_HISTORY:],
        "headers": redact(headers), "publisher": _publisher(headers),
        "replay_count": _int(headers.get(REPLAY_HEADER)), "blocks_key": blocks_key,
        "blocked_by": blocked_by,
    }  # fmt: skip
    if isinstance(message, Record):
        return FailedEvent(
            **common, source="topic", payload=message.value, key=message.key,
            topic=message.topic, partition=message.partition, offset=message.offset, group=group,
        )  # fmt: skip
    key = None if message.group is None else message.group.encode()
    return FailedEvent(
        **common, source="queue", payload=message.body, key=key, queue=message.queue,
        message_id=message.id,
    )  # fmt: skip


def _publisher(headers: Mapping[str, str]) -> str | None:
    for name in PUBLISHER_HEADERS:
        if name in headers:
            return headers[name]
    return None


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0
