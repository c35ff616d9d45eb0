"""RabbitMQ's refusals as tidings errors that say what to do.

A refused declaration closes its channel with a reply text such as
``PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'jobs' in
vhost '/': received none but current is the value '5' of type 'byte'``; the
argument is read out of it and named with the tidings setting it maps."""

from __future__ import annotations

import re

import aiormq

from ...errors import AlreadyExists, ConfigurationError, RecordTooLarge, TidingsError

#: RabbitMQ's default ``max_message_size`` (3.8+): bodies above it close the
#: channel. tidings refuses them before sending (the main channel holds leases).
MAX_MESSAGE_BYTES = 128 << 20

#: The x-arguments tidings sets, and the setting each comes from.
_SETTINGS = {
    "x-queue-type": "the queue type (tidings declares quorum queues)",
    "x-delivery-limit": "max_deliveries",
    "x-dead-letter-exchange": "dead_letter (tidings dead-letters through the default exchange)",
    "x-dead-letter-routing-key": "dead_letter",
    "x-message-ttl": "ttl",
    "x-max-length": "max_length",
    "x-overflow": "overflow",
}

_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for (?P<what>\w+) '(?P<name>[^']*)'.*?: "
    r"received (?P<ours>.*?) but current is (?P<theirs>.*)$"
)


def declare_refused(exc: aiormq.exceptions.ChannelClosed, kind: str, name: str) -> TidingsError:
    """The error for a refused declaration of queue or exchange ``name``."""
    text = str(exc)
    if isinstance(exc, aiormq.exceptions.ChannelAccessRefused):
        return ConfigurationError(
            f"RabbitMQ refused to declare {kind} {name!r} ({text}): grant this user "
            "configure, write and read permissions on the vhost for it (rabbitmqctl "
            "set_permissions), or use another vhost"
        )
    found = _INEQUIVALENT.search(text)
    if found is not None:
        arg = found["arg"]
        setting = _SETTINGS.get(arg, "a setting tidings does not use")
        return AlreadyExists(
            f"{kind} {name!r} exists in RabbitMQ with other arguments: {arg} "
            f"({setting}) is {found['theirs']} there, tidings asked for {found['ours']}. "
            "It was declared by another tool or with other settings: declare it with "
            "matching settings, or delete it first"
        )
    return AlreadyExists(
        f"RabbitMQ refused to declare {kind} {name!r} ({text}): it exists with other "
        "arguments (declared by someone else?); delete it or use its settings"
    )


def too_large(size: int, queue: str) -> RecordTooLarge:
    return RecordTooLarge(
        f"message of {size} bytes to {queue!r} is over RabbitMQ's max_message_size "
        f"({MAX_MESSAGE_BYTES} bytes by default): send a reference to the payload instead"
    )


def check_body_limit(max_body_bytes: int) -> None:
    """Refuse a queue whose max_body_bytes RabbitMQ would not accept."""
    if max_body_bytes > MAX_MESSAGE_BYTES:
        raise ConfigurationError(
            f"max_body_bytes {max_body_bytes} is over RabbitMQ's max_message_size "
            f"({MAX_MESSAGE_BYTES} bytes): choose at most that"
        )
