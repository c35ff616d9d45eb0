"""Topic administration and bad input (nothing stored on error)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..client.client import Client
from ..errors import (
    AlreadyExists,
    ConfigurationError,
    PartitionNotFound,
    TopicNotFound,
)
from ..message import TopicPartition
from ._base import ContractBase, check_acked, read_all


class TopicContract(ContractBase):
    def test_create_list_describe_delete(self, client: Client, topic: str) -> None:
        """Topics: a created topic is listed and described with its settings
        and empty partitions; once deleted it is gone."""
        config = client.create_topic(topic, partitions=3, retention="7d", compact=True)
        assert config.partitions == 3
        assert topic in [t.name for t in client.topics()]
        stored = client.topic(topic)
        assert (stored.partitions, stored.retention_s, stored.compact) == (3, 7 * 86400, True)
        infos = client.partitions(topic)
        assert [(i.partition, i.first_offset, i.next_offset) for i in infos] == [
            (0, 0, 0),
            (1, 0, 0),
            (2, 0, 0),
        ]
        client.delete_topic(topic)
        assert topic not in [t.name for t in client.topics()]
        with pytest.raises(TopicNotFound):
            client.topic(topic)

    def test_delete_then_recreate_starts_empty(self, client: Client, topic: str) -> None:
        """Topics: a topic re-created under a deleted one's name has none of its records."""
        client.create_topic(topic)
        client.produce(topic, b"old")
        client.delete_topic(topic)
        client.create_topic(topic)
        assert read_all(client, topic, 0) == []
        check_acked(client, [client.produce(topic, b"new").offset], [0])

    def test_delete_forgets_committed_offsets(self, client: Client, topic: str) -> None:
        """Topics: deleting a topic drops the offsets groups committed on it,
        so a topic re-created under the name is read from the start option."""
        client.create_topic(topic)
        client.producer().send_batch(topic, [b"x"] * 3)
        client.reset_offsets("g-" + topic[-40:], topic, "end")
        client.delete_topic(topic)
        assert TopicPartition(topic, 0) not in client.engine.groups.committed("g-" + topic[-40:])

    def test_add_partitions(self, client: Client, topic: str) -> None:
        """Topics: partitions can be added (never removed); existing ones keep
        their records and new ones are writable at once."""
        client.create_topic(topic, partitions=1)
        client.produce(topic, b"a")
        client.add_partitions(topic, 3)
        assert client.topic(topic).partitions == 3
        assert [i.next_offset for i in client.partitions(topic)] == [1, 0, 0]
        check_acked(client, [client.produce(topic, b"b", partition=2).offset], [0])
        with pytest.raises(ConfigurationError):
            client.add_partitions(topic, 2)
        assert client.topic(topic).partitions == 3

    @pytest.mark.parametrize("name", ["", "has space", "-dash-first", "x" * 250, "a/b", "ü"])
    def test_invalid_topic_name_is_refused(self, client: Client, name: str) -> None:
        """Bad input: an invalid topic name raises ConfigurationError and creates nothing."""
        before = [t.name for t in client.topics()]
        with pytest.raises(ConfigurationError, match="invalid topic name"):
            client.create_topic(name)
        assert [t.name for t in client.topics()] == before

    def test_create_twice_is_refused(self, client: Client, topic: str) -> None:
        """Bad input: creating an existing topic raises AlreadyExists and
        leaves the original settings and records untouched."""
        client.create_topic(topic, partitions=2)
        client.produce(topic, b"kept", partition=1)
        with pytest.raises(AlreadyExists):
            client.create_topic(topic, partitions=5)
        assert client.topic(topic).partitions == 2
        assert [r.value for r in read_all(client, topic, 1)] == [b"kept"]

    def test_unknown_topic_raises_topic_not_found(self, client: Client, topic: str) -> None:
        """Bad input: every operation on a missing topic raises TopicNotFound
        and nothing is created implicitly."""
        log = client.engine.log
        calls: list[Callable[[], object]] = [
            lambda: client.produce(topic, b"x"),
            lambda: client.topic(topic),
            lambda: client.partitions(topic),
            lambda: client.delete_topic(topic),
            lambda: client.add_partitions(topic, 2),
            lambda: client.consumer(topic),
            lambda: log.read(topic, 0, 0, 10),
            lambda: client.producer().send_batch(topic, [b"x"]),
        ]
        for call in calls:
            with pytest.raises(TopicNotFound):
                call()
        assert topic not in [t.name for t in client.topics()]

    def test_unknown_partition_raises_partition_not_found(self, client: Client, topic: str) -> None:
        """Bad input: a partition out of range raises PartitionNotFound and
        nothing is stored in any partition."""
        client.create_topic(topic, partitions=2)
        with pytest.raises(PartitionNotFound):
            client.produce(topic, b"x", partition=2)
        with pytest.raises(PartitionNotFound):
            client.producer().send_batch(topic, [b"x", b"y"], partition=-1)
        with pytest.raises(PartitionNotFound):
            client.engine.log.read(topic, 7, 0, 10)
        with pytest.raises(PartitionNotFound):
            client.consumer(topic, assign=[TopicPartition(topic, 9)], start="beginning")
        assert [i.next_offset for i in client.partitions(topic)] == [0, 0]
