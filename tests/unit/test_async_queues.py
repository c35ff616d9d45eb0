"""The asyncio face of the queue API behaves as the blocking one."""

from __future__ import annotations

import pytest

from tidings import AsyncClient, LeaseLost


async def test_async_publish_get_ack_and_dead_letter() -> None:
    """Q1/Q2/Q3 through AsyncClient on the memory engine."""
    async with AsyncClient("memory://") as client:
        await client.declare_queue("aq", dead_letter="aq.dlq", lease="0.2s")
        first = await client.publish("aq", b"one", idempotency_key="k")
        assert await client.publish("aq", b"one", idempotency_key="k") == first
        await client.publish_batch("aq", [b"two"])
        got = await client.get("aq", 5)
        assert [d.body for d in got] == [b"one", b"two"]
        await client.ack(got[0])
        await client.reject(got[1], reason="bad")
        (dead,) = await client.dead_letters("aq")
        assert dead.headers["x-dead-letter-reason"] == "rejected"
        assert await client.redrive("aq") == 1
        (again,) = await client.get("aq", wait=1)
        (late,) = await client.get("aq", wait=2)  # its lease ran out: redelivered
        assert late.id == again.id and late.delivery_count == 2
        with pytest.raises(LeaseLost):  # a stale receipt cannot settle the redelivery
            await client.ack(again)
        await client.ack(late)
        assert (await client.queue_stats("aq")).ready == 0
