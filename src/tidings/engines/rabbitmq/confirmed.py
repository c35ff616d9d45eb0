"""One persistent publish on a confirming channel, through aiormq directly.

aio-pika's ``Message`` sets some fifteen attributes through a guarded
``__setattr__`` and then rebuilds the same properties aiormq sends; for
tidings' 256-byte messages that was ~12% of the portal loop's CPU while
publishing (issue 12). The frames sent are the ones aio-pika sends for
``link.persistent(...)`` published with ``mandatory=True``.
"""

from __future__ import annotations

from typing import Any

from aio_pika.abc import AbstractChannel
from pamqp.commands import Basic

PERSISTENT = 2  # delivery_mode


async def publish(
    channel: AbstractChannel, queue: str, body: bytes, headers: dict[str, Any], id: int
) -> None:
    """Publish to ``queue`` by the default exchange and wait for the confirm.
    Raises aiormq's PublishError (returned: no such queue) or DeliveryError
    (nacked), as aio-pika does on a channel opened with on_return_raises."""
    raw = await channel.get_underlay_channel()
    properties = Basic.Properties(
        headers=headers, message_id=str(id), delivery_mode=PERSISTENT
    )
    await raw.basic_publish(body, routing_key=queue, properties=properties, mandatory=True)
