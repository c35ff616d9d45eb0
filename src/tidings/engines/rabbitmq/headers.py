"""Our message headers on AMQP messages: what tidings adds, what RabbitMQ
adds, and the Q2 dead-letter headers (also translated from RabbitMQ's own
``x-death`` when RabbitMQ dead-lettered a message itself)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: How many deliveries a message had before it was moved (nack with delay).
PRIOR = "x-tidings-deliveries"
#: The Q2 delivery count, kept under our own name: RabbitMQ overwrites
#: ``x-delivery-count`` whenever a quorum queue redelivers the message.
DEAD_COUNT = "x-tidings-dead-count"
#: Names tidings' delay queues (see topology.delay_queue).
DELAY_INFIX = ".tidings-delay."
#: The message id tidings assigned (also the AMQP message_id).
ID = "x-tidings-id"
#: The FIFO group (Q4) a message was published with.
GROUP = "x-tidings-group"

_BROKER = ("x-delivery-count", "x-death", "x-first-death-queue", "x-first-death-reason",
           "x-first-death-exchange", "x-last-death-queue", "x-last-death-reason",
           "x-last-death-exchange")
_INTERNAL = (PRIOR, DEAD_COUNT, ID, GROUP)
_Q2 = ("x-original-queue", "x-dead-letter-reason", "x-last-error", "x-delivery-count",
       "x-dead-lettered-at")
#: RabbitMQ's x-death reasons -> ours.
_REASONS = {"rejected": "rejected", "expired": "expired", "maxlen": "maxlen",
            "delivery_limit": "max_deliveries"}


def deliveries(amqp: Mapping[str, Any]) -> int:
    """This delivery's number: earlier deliveries before a move, plus the
    returns a quorum queue counted (``x-delivery-count``), plus this one."""
    return int(amqp.get(PRIOR, 0) or 0) + int(amqp.get("x-delivery-count", 0) or 0) + 1


def visible(amqp: Mapping[str, Any]) -> dict[str, str]:
    """The headers a consumer sees: the user's and the Q2 ones, as strings."""
    out = {k: _text(v) for k, v in amqp.items() if k not in _BROKER and k not in _INTERNAL}
    if DEAD_COUNT in amqp:
        out["x-delivery-count"] = _text(amqp[DEAD_COUNT])
    elif "x-dead-letter-reason" not in out and _died_in_queue(amqp):
        out.update(_from_x_death(amqp["x-death"]))
    return out


def _died_in_queue(amqp: Mapping[str, Any]) -> bool:
    """True when RabbitMQ dead-lettered the message from a real queue (not
    from one of tidings' delay queues, which dead-letter when due)."""
    deaths = amqp.get("x-death") or []
    return bool(deaths) and DELAY_INFIX not in _text(deaths[0].get("queue", ""))


def carried(amqp: Mapping[str, Any]) -> dict[str, Any]:
    """The headers a message keeps when tidings republishes it (delays)."""
    return {k: v for k, v in amqp.items() if k not in _BROKER}


def _from_x_death(deaths: Any) -> dict[str, str]:
    """Q2 headers from RabbitMQ's newest ``x-death`` entry (a message RabbitMQ
    dead-lettered itself: TTL, max length, the delivery-limit backstop)."""
    if not deaths:
        return {}
    death = deaths[0]
    when = death.get("time")
    at = when.astimezone(UTC) if isinstance(when, datetime) else datetime.now(UTC)
    reason = _text(death.get("reason", ""))
    return {
        "x-original-queue": _owner(_text(death.get("queue", ""))),
        "x-dead-letter-reason": _REASONS.get(reason, reason),
        "x-last-error": "",
        "x-delivery-count": "0",
        "x-dead-lettered-at": at.isoformat(),
    }


#: Names a FIFO queue's lanes (see fifo.py): ``<queue>.tidings-fifo.<n>``.
LANE_INFIX = ".tidings-fifo."


def _owner(queue: str) -> str:
    """The queue a RabbitMQ queue stands for: a FIFO lane's queue, else itself."""
    return queue.rsplit(LANE_INFIX, 1)[0] if LANE_INFIX in queue else queue


def origin(amqp: Mapping[str, Any]) -> str:
    """The queue a dead letter came from ("" if unknown)."""
    if "x-original-queue" in amqp:
        return _text(amqp["x-original-queue"])
    return visible(amqp).get("x-original-queue", "")


# Dead-lettering order: RabbitMQ does not keep a queue's order for messages
# returned to it (browsing returns them), so dead letters carry a sequence
# (nanoseconds, strictly increasing per process) to be listed in order.
DEAD_SEQ = "x-dead-letter-seq"


class _Sequence:
    """Nanoseconds since the epoch, strictly increasing within the process."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


_next_seq = _Sequence()


def dead_letter(
    amqp: Mapping[str, Any], queue: str, reason: str, error: str, count: int
) -> dict[str, Any]:
    """The headers a message carries into its dead-letter queue (Q2)."""
    out = {k: v for k, v in amqp.items() if k not in _BROKER and k != PRIOR}
    out.update({
        "x-original-queue": queue,
        "x-dead-letter-reason": reason,
        "x-last-error": error,
        DEAD_COUNT: str(count),
        "x-dead-lettered-at": datetime.now(UTC).isoformat(),
        DEAD_SEQ: str(_next_seq()),
    })
    return out


def dead_letter_order(amqp: Mapping[str, Any]) -> int:
    """Sort key of a dead letter: its sequence, else (dead-lettered by
    RabbitMQ itself) the time in its ``x-death`` entry."""
    if DEAD_SEQ in amqp:
        return int(_text(amqp[DEAD_SEQ]))
    deaths = amqp.get("x-death")
    when = deaths[0].get("time") if deaths else None
    return int(when.timestamp() * 1e9) if isinstance(when, datetime) else 0


def redriven(amqp: Mapping[str, Any]) -> dict[str, Any]:
    """A dead letter's headers when it goes back to its queue: counters reset."""
    drop = (*_BROKER, *_Q2, PRIOR, DEAD_COUNT, DEAD_SEQ)
    return {k: v for k, v in amqp.items() if k not in drop}


def group(amqp: Mapping[str, Any]) -> str | None:
    value = amqp.get(GROUP)
    return None if value is None else _text(value)


def text(value: Any) -> str:
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
