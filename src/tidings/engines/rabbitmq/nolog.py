"""The log side of the RabbitMQ engine in phase 1: not there yet (logs on
RabbitMQ streams come next). Every call raises UnsupportedFeature."""

from __future__ import annotations

from typing import Any, NoReturn

from ...errors import UnsupportedFeature

_WHY = (
    "the amqp:// engine has no log side yet (topics on RabbitMQ streams come in a "
    "later release): use its queues, or a sqlite:// or postgresql:// URL for topics"
)


def _unsupported(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise UnsupportedFeature(_WHY)


class NoLog:
    """Implements LogEngine by refusing every call with UnsupportedFeature."""

    create_topic = delete_topic = get_topic = list_topics = staticmethod(_unsupported)
    add_partitions = describe_partitions = append = read = staticmethod(_unsupported)
    offset_for_time = group_transition = commit = committed = staticmethod(_unsupported)
    list_groups = load_group = delete_group = staticmethod(_unsupported)
    enforce_retention = compact = append_in = staticmethod(_unsupported)
