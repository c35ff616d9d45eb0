"""The amqp:// engine's emulations beyond the conformance suite: dedup and
exchange catalogs shared by several processes (here: several engines, each
its own connection), release, and bad input (RabbitMQ on 127.0.0.1:5672)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import aio_pika
import pytest
from rabbit_clients import AMQP
from rabbit_clients import open_client as _open

from tidings import (
    AccessRefused,
    AlreadyExists,
    Client,
    ConfigurationError,
    QueueNotFound,
    RecordTooLarge,
)
from tidings.config import QueueConfig
from tidings.engines.rabbitmq import refusals
from tidings.testing.pytest_plugin import require_engine, service_reachable

pytestmark = pytest.mark.engine("rabbitmq")


@pytest.fixture
def name() -> str:
    return f"rmqf-{uuid.uuid4().hex[:10]}"


def _raw(*calls: tuple[str, str]) -> None:
    """Declare or delete with a plain AMQP client (someone else's tool)."""

    async def run() -> None:
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            for what, target in calls:
                if what == "classic":
                    await channel.declare_queue(target, durable=True, arguments={"x-max-length": 5})
                elif what == "topic-exchange":
                    await channel.declare_exchange(target, "topic", durable=True)
                elif what == "delete-queue":
                    await channel.queue_delete(target)
                elif what == "delete-exchange":
                    await channel.exchange_delete(target)

    asyncio.run(run())


# ---- dedup (Q3) ---------------------------------------------------------------
def test_dedup_holds_across_concurrent_processes(clients: list[Client], name: str) -> None:
    """Three engines (three connections) publish the same 15 keys at once:
    each key is stored once and every publisher gets its original id."""
    publishers = [_open(clients) for _ in range(3)]
    publishers[0].declare_queue(name)
    results: list[dict[str, int]] = [{} for _ in publishers]

    def publish(i: int) -> None:
        for k in range(15):
            key = f"order-{k}"
            results[i][key] = publishers[i].publish(name, key.encode(), idempotency_key=key)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[0] == results[1] == results[2] and len(results[0]) == 15
    got = publishers[0].get(name, 100)
    assert sorted(d.body for d in got) == sorted(f"order-{k}".encode() for k in range(15))
    assert {d.body.decode(): d.id for d in got} == results[0]


def test_dedup_survives_the_publisher(clients: list[Client], name: str) -> None:
    """Q3: the keys live in RabbitMQ (a stream), not in the process: a new
    client within the window gets the original id and stores nothing; keys
    repeated within one batch are stored once."""
    first = _open(clients)
    first.declare_queue(name)
    ids = first.publish_batch(name, [b"a", b"a-again", b"b"], idempotency_keys=["a", "a", "b"])
    assert ids[0] == ids[1] != ids[2]
    first.engine.close()  # nothing deleted: the queue and its stream stay
    clients.remove(first)
    second = _open(clients)
    second.queue(name)
    assert second.publish(name, b"a", idempotency_key="a") == ids[0]
    assert second.queue_stats(name).ready == 2


# ---- exchanges (Q6) -------------------------------------------------------------
def test_bindings_made_by_several_processes_at_once_are_all_kept(
    clients: list[Client], name: str
) -> None:
    """The catalog of an exchange is changed under a lock: two engines
    binding six queues each at the same time lose none of them, and a third
    engine routes to all twelve."""
    a, b, c = (_open(clients) for _ in range(3))
    a.declare_exchange(name, "fanout")
    queues = {client: [f"{name}-{i}-{n}" for n in range(6)] for i, client in enumerate((a, b))}

    def bind_all(client: Client) -> None:
        for queue in queues[client]:
            client.declare_queue(queue)
            client.bind(name, queue)

    threads = [threading.Thread(target=bind_all, args=(x,)) for x in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everyone = sorted(queues[a] + queues[b])
    routed = c.publish_to(name, b"hello")
    assert sorted(routed) == everyone and len(set(routed.values())) == 1
    assert all(b.queue_stats(q).ready == 1 for q in everyone)


def test_publish_to_a_queue_deleted_behind_tidings_is_returned(
    clients: list[Client], name: str
) -> None:
    """Unroutable: every exchange publish is mandatory. A bound queue deleted
    by another tool (RabbitMQ drops its bindings) makes the message come
    back: QueueNotFound, stored nowhere."""
    client = _open(clients)
    client.declare_queue(name)
    client.declare_exchange(name + "-x", "direct")
    client.bind(name + "-x", name, "k")
    _raw(("delete-queue", name))
    with pytest.raises(QueueNotFound, match="bind it again"):
        client.publish_to(name + "-x", b"m", "k")
    assert client.publish_to(name + "-x", b"m", "other") == {}


def test_exchange_bad_input(clients: list[Client], name: str) -> None:
    """An unknown kind is refused before RabbitMQ sees it (RabbitMQ would
    close the whole connection); an exchange someone declared with another
    type is AlreadyExists naming it, and tidings records nothing for it."""
    client = _open(clients)
    with pytest.raises(ConfigurationError, match="kind"):
        client.declare_exchange(name, "headers")
    client.declare_queue(name)
    client.publish(name, b"still connected")
    _raw(("topic-exchange", name + "-x"))
    try:
        with pytest.raises(AlreadyExists, match="type"):
            client.declare_exchange(name + "-x", "fanout")
        with pytest.raises(LookupError):
            client.bind(name + "-x", name)
    finally:
        _raw(("delete-exchange", name + "-x"))
    client.declare_exchange(name + "-x", "direct")
    with pytest.raises(AlreadyExists, match="kind 'direct'"):
        client.declare_exchange(name + "-x", "topic")
    with pytest.raises(QueueNotFound):
        client.bind(name + "-x", name + "-missing", "k")


# ---- release --------------------------------------------------------------------
def test_release_keeps_id_and_headers_and_counts_nothing(
    clients: list[Client], name: str
) -> None:
    """release is a republish carrying the delivery count minus this delivery:
    same id and headers, and the message is not dead-lettered at max_deliveries=1."""
    client = _open(clients)
    client.declare_queue(name, max_deliveries=1)
    client.publish(name, b"x", headers={"trace": "t1"})
    (first,) = client.get(name)
    for _ in range(3):
        (d,) = client.get(name, wait=2) or [first]
        assert client.release(d) == 1
    (again,) = client.get(name, wait=2)
    assert (again.id, again.headers["trace"], again.delivery_count) == (first.id, "t1", 1)
    client.ack(again)
    assert client.dead_letters(name) == []


# ---- bad input ----------------------------------------------------------------
def test_queue_declared_elsewhere_names_the_argument(clients: list[Client], name: str) -> None:
    """406 PRECONDITION_FAILED becomes AlreadyExists naming the RabbitMQ
    argument and the tidings setting; the other tool's queue is untouched and
    tidings records nothing."""
    _raw(("classic", name))
    try:
        client = _open(clients)
        with pytest.raises(AlreadyExists, match=r"other arguments: x-[a-z-]+ \("):
            client.declare_queue(name)
        with pytest.raises(LookupError):
            client.queue(name)
    finally:
        _raw(("delete-queue", name))


def test_oversized_messages_are_refused_before_sending(
    clients: list[Client], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_body_bytes above RabbitMQ's max_message_size is refused at declare;
    a server that refuses a size tidings let through (a lower limit than the
    default) gives RecordTooLarge, and the engine goes on."""
    client = _open(clients)
    too_big = QueueConfig(name, max_body_bytes=refusals.MAX_MESSAGE_BYTES + 1)
    with pytest.raises(ConfigurationError, match="max_message_size"):
        client.engine.queues.declare(too_big)
    monkeypatch.setattr(refusals, "MAX_MESSAGE_BYTES", 256 << 20)
    monkeypatch.setattr("tidings.engines.rabbitmq.checks.MAX_MESSAGE_BYTES", 256 << 20)
    client.engine.queues.declare(QueueConfig(name, max_body_bytes=200 << 20))
    with pytest.raises(RecordTooLarge, match="max_message_size"):
        client.publish(name, b"x" * ((128 << 20) + 1))
    client.publish(name, b"small")
    assert [d.body for d in client.get(name, 5, wait=2)] == [b"small"]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def restricted_user() -> Iterator[str]:
    """A throwaway user that may not configure anything on ``/``."""
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("needs rabbitmqctl to create a user")
    user = f"tidings-{uuid.uuid4().hex[:8]}"
    try:
        _rabbitmqctl("add_user", user, "secret")
    except (subprocess.CalledProcessError, PermissionError) as exc:
        pytest.skip(f"cannot create a RabbitMQ user here: {exc}")
    try:
        _rabbitmqctl("set_permissions", "-p", "/", user, "^$", ".*", ".*")
        yield user
    finally:
        _rabbitmqctl("delete_user", user)


def test_permissions_refused_are_typed(restricted_user: str, name: str) -> None:
    """ACCESS_REFUSED at declare is a ConfigurationError saying to grant
    permissions; a vhost the user may not open is AccessRefused (a
    ConfigurationError too: retrying does not help)."""
    with Client(f"amqp://{restricted_user}:secret@127.0.0.1:5672/") as client:
        with pytest.raises(ConfigurationError, match="set_permissions"):
            client.declare_queue(name)
        with pytest.raises(ConfigurationError, match="set_permissions"):
            client.declare_exchange(name, "fanout")
    with pytest.raises(AccessRefused, match="allowed on this vhost"):
        Client(f"amqp://{restricted_user}:secret@127.0.0.1:5672/{name}")


# ---- FIFO groups (Q4) -------------------------------------------------------------
def test_fifo_group_is_held_across_processes(clients: list[Client], name: str) -> None:
    """Q4 across engines: while one engine holds a group's head, another gets
    the other group's head only; when the holder dies without acking,
    RabbitMQ frees the lane and the head comes back first, counted."""
    holder, other = _open(clients), _open(clients)
    holder.declare_queue(name, fifo=True)
    for body, group in [(b"a1", "a"), (b"a2", "a"), (b"b1", "b"), (b"b2", "b")]:
        holder.publish(name, body, group=group)
    heads = {d.group: d for d in holder.get(name, 10)}
    assert {g: d.body for g, d in heads.items()} == {"a": b"a1", "b": b"b1"}
    assert other.get(name, 10) == []  # both groups have a head in flight elsewhere
    holder.ack(heads["b"])
    assert [d.body for d in other.get(name, 10)] == [b"b2"]
    holder.engine.close()  # dies holding a1: RabbitMQ frees its lane and returns it
    clients.remove(holder)
    (again,) = other.get(name, 10, wait=3)
    assert (again.body, again.delivery_count, again.redelivered) == (b"a1", 2, True)
    other.ack(again)
    assert [d.body for d in other.get(name, 10)] == [b"a2"]


def test_fifo_nack_with_delay_keeps_the_group_in_order(clients: list[Client], name: str) -> None:
    """Q4/Q5: a head nacked with a delay blocks its group until due and then
    comes back before the messages behind it; ungrouped messages flow."""
    client = _open(clients)
    client.declare_queue(name, fifo=True)
    client.publish(name, b"g1", group="g")
    client.publish(name, b"g2", group="g")
    client.publish(name, b"free")
    first = client.get(name, 10)
    assert sorted(d.body for d in first) == [b"free", b"g1"]
    client.ack([d for d in first if d.group is None])
    client.nack([d for d in first if d.group == "g"], delay="0.3s")
    assert client.get(name, 10) == []
    (back,) = client.get(name, 10, wait=3)
    assert (back.body, back.delivery_count) == (b"g1", 2)
    client.nack(back)  # a plain nack: back to the head (a nack would queue it behind g2)
    (back,) = client.get(name, 10)
    assert (back.body, back.delivery_count) == (b"g1", 3)
    client.ack(back)
    assert [d.body for d in client.get(name, 10, wait=2)] == [b"g2"]


def test_fifo_expired_lease_comes_back_first(clients: list[Client], name: str) -> None:
    """Q1/Q4: a head whose lease ran out is its group's next delivery again."""
    client = _open(clients)
    client.declare_queue(name, fifo=True, lease="0.2s")
    for body in (b"1", b"2", b"3"):
        client.publish(name, body, group="g")
    (first,) = client.get(name, 10)
    (again,) = client.get(name, 10, wait=3)
    assert first.body == again.body == b"1" and again.delivery_count == 2
    client.ack(again)
    assert [d.body for d in client.get(name, 10)] == [b"2"]


def test_exchange_deleted_behind_tidings(clients: list[Client], name: str) -> None:
    """An exchange deleted by another tool: publish_to says to declare it
    again (nothing stored, the engine goes on); declaring it again heals it,
    and the dropped bindings are reported until bound again."""
    client = _open(clients)
    client.declare_queue(name)
    client.declare_exchange(name + "-x", "fanout")
    client.bind(name + "-x", name)
    _raw(("delete-exchange", name + "-x"))
    with pytest.raises(LookupError, match="declare it again"):
        client.publish_to(name + "-x", b"lost?")
    client.declare_exchange(name + "-x", "fanout")
    with pytest.raises(QueueNotFound, match="bind it again"):
        client.publish_to(name + "-x", b"lost?")
    client.bind(name + "-x", name)
    assert list(client.publish_to(name + "-x", b"kept")) == [name]
    assert [d.body for d in client.get(name, 5)] == [b"kept"]


def test_fifo_expired_message_is_a_dead_letter_of_its_queue(
    clients: list[Client], name: str
) -> None:
    """Q5 on a FIFO queue: RabbitMQ expires the message in its lane; the dead
    letter names the queue (not the lane) and is browsed with the queue's."""
    client = _open(clients)
    client.declare_queue(name, fifo=True, ttl="0.2s")
    client.publish(name, b"stale", group="g")
    time.sleep(0.4)
    assert client.get(name, 10) == []
    (dead,) = client.dead_letters(name)
    assert (dead.body, dead.headers["x-original-queue"]) == (b"stale", name)
    assert dead.headers["x-dead-letter-reason"] == "expired"


def test_fifo_declare_refused_half_way_leaves_nothing(clients: list[Client], name: str) -> None:
    """A lane that exists with other arguments: AlreadyExists, and the queue
    and its settings are gone again (nothing half-declared)."""
    _raw(("classic", f"{name}.tidings-fifo.3"))
    try:
        client = _open(clients)
        with pytest.raises(AlreadyExists, match="other arguments"):
            client.declare_queue(name, fifo=True)
        with pytest.raises(LookupError):
            client.queue(name)
    finally:
        _raw(("delete-queue", f"{name}.tidings-fifo.3"))
