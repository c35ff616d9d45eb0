"""RabbitMQ through pika: a durable classic queue, persistent messages.

pika's blocking channel waits for each publisher confirm on its own, which
would measure one round trip per message; a transaction per batch of 100
gives the same guarantee (the broker has the batch on disk when
``tx_commit`` returns) at batch granularity, so that is what is timed.
Consumption acks each batch with one ``multiple`` ack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika  # type: ignore[import-untyped]

HOST, PORT = "127.0.0.1", 5672
PERSISTENT = pika.BasicProperties(delivery_mode=2)


class RabbitSession:
    def __init__(self, name: str) -> None:
        credentials = pika.PlainCredentials("guest", "guest")
        params = pika.ConnectionParameters(HOST, PORT, credentials=credentials, socket_timeout=3)
        self.conn = pika.BlockingConnection(params)
        self.queue = name
        self.pub = self.conn.channel()
        self.pub.queue_declare(name, durable=True)
        self.pub.tx_select()
        self.sub = self.conn.channel()
        self.sub.basic_qos(prefetch_count=1_000)
        self._messages: Iterator[Any] | None = None

    def append(self, values: list[bytes]) -> None:
        for v in values:
            self.pub.basic_publish("", self.queue, v, PERSISTENT)
        self.pub.tx_commit()

    def consume(self, max_records: int) -> int:
        if self._messages is None:
            self._messages = self.sub.consume(self.queue, inactivity_timeout=5)
        last, n = None, 0
        for method, _props, _body in self._messages:
            if method is None:  # inactivity timeout
                break
            last, n = method.delivery_tag, n + 1
            if n >= max_records:
                break
        if last is not None:
            self.sub.basic_ack(last, multiple=True)
        return n

    def close(self) -> None:
        try:
            self.sub.cancel()
            self.pub.queue_delete(self.queue)
        finally:
            self.conn.close()


def open_session(name: str) -> RabbitSession:
    return RabbitSession(name)
