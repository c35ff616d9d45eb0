"""Where a consumer starts: many partitions of a topic are resolved with
one description of the topic, not one per partition."""

from __future__ import annotations

import pytest

from tidings import Client, TopicPartition


@pytest.mark.parametrize("start", ["beginning", "end"])
def test_taking_many_partitions_describes_each_topic_once(
    start: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client("memory://")
    client.create_topic("a", partitions=300)
    client.create_topic("b", partitions=3)
    client.producer().send_batch("a", [b"x", b"y"], partition=7)
    log = client.engine.log
    described: list[str] = []
    real = log.describe_partitions

    def counted(topic: str):  # type: ignore[no-untyped-def]
        described.append(topic)
        return real(topic)

    monkeypatch.setattr(log, "describe_partitions", counted)
    with client.consumer(["a", "b"], start=start) as consumer:  # type: ignore[arg-type]
        assert len(consumer.assignment()) == 303
        got = consumer.poll(timeout=0.2)
        position = consumer.position(TopicPartition("a", 7))
    assert sorted(described) == ["a", "b"]
    assert [r.value for r in got] == ([b"x", b"y"] if start == "beginning" else [])
    assert position == 2
    client.close()
