"""The producer: batching with linger, one ack per record resolved when durable.

``send`` only buffers: records go to an open *flight* per (topic, partition);
a sender thread appends whole flights through the engine, one transaction
per topic, and resolves each flight's future. An :class:`Ack` is a record's
index into its flight, so a record costs no future or lock of its own.
``send_batch`` skips the buffer and appends in the caller's thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from functools import partial
from itertools import accumulate
from operator import sub
from typing import Any, TypeVar, overload

from ..backoff import Backoff
from ..codecs import BYTES, Codec
from ..config import ProducerConfig, TopicConfig
from ..errors import BufferFull, EngineError, TidingsError, UnsupportedFeature
from ..message import EMPTY_HEADERS, Headers, RecordMetadata
from ..partitioner import PARTITIONERS
from ..ports.engine import Engine
from ..ports.log import AppendResult, PartitionedColumns, RecordColumns, TransactionalLog
from ..tracing import ENABLED as TRACING
from ..tracing import inject, inject_each

log = logging.getLogger("tidings.producer")
T = TypeVar("T")


class _Flight:
    """Records bound for one partition, appended together."""

    __slots__ = ("topic", "partition", "keys", "values", "headers", "nbytes", "held", "future")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.headers: list[Headers] = []
        self.nbytes = 0  # value bytes: what a batch's size limit counts
        self.held = 0  # value, key and header bytes: what the buffer bound counts
        self.future: Future[AppendResult] = Future()

    def columns(self) -> RecordColumns:
        keys = self.keys if any(k is not None for k in self.keys) else None
        headers = self.headers if any(self.headers) else None
        return RecordColumns(self.values, keys, headers)


class Ack:
    """A record's acknowledgement; ``result()`` blocks until it is durable."""

    __slots__ = ("_flight", "_index")

    def __init__(self, flight: _Flight, index: int) -> None:
        self._flight, self._index = flight, index

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """Where the record was stored; raises what the append raised."""
        r = self._flight.future.result(timeout)
        f = self._flight
        return RecordMetadata(f.topic, f.partition, _at(r.base_offset, self._index), r.timestamp)

    def done(self) -> bool:
        return self._flight.future.done()

    @property
    def future(self) -> Future[AppendResult]:
        """The flight's future (shared by every record of the batch)."""
        return self._flight.future


class Producer:
    """Sends records to topics. Thread-safe; close it (or use ``with``).

    Raises from ``send``/``send_batch``: ``TopicNotFound``,
    ``PartitionNotFound``, ``RecordTooLarge``, ``SerializationError``;
    from ``send`` also ``BufferFull`` (see ``ProducerConfig.buffer_bytes``);
    from ``Ack.result``: whatever the append raised (``EngineError`` …).
    """

    def __init__(self, engine: Engine, config: ProducerConfig, codec: Codec[Any] = BYTES) -> None:
        self._engine = engine
        self._config = config
        self._codec = codec
        self._partition_of = PARTITIONERS[config.partitioner]
        self._topics: dict[str, TopicConfig] = {}
        self._sticky = itertools.count()
        self._open: dict[tuple[str, int], _Flight] = {}
        self._ready: list[_Flight] = []
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # wakes the sender thread
        self._room = threading.Condition(lock)  # wakes sends waiting for buffer room
        self._held = 0  # bytes of records sent and not yet stored or failed
        self._closed = False
        self._sender: threading.Thread | None = None

    # ---- routing ----------------------------------------------------------
    def _topic(self, name: str) -> TopicConfig:
        config = self._topics.get(name)
        if config is None:
            config = self._topics[name] = self._engine.log.get_topic(name)
        return config

    def _route(self, topic: str, key: bytes | None, partition: int | None) -> int:
        if partition is not None:
            return partition
        n = self._topic(topic).partitions
        if key is None:  # sticky: keyless records fill one partition per batch
            return next(self._sticky) // self._config.max_batch_records % n
        return self._partition_of(key, n)

    def _key(self, key: bytes | str | None) -> bytes | None:
        return key.encode() if isinstance(key, str) else key

    def prepare(self, topic: str) -> None:
        """Load ``topic``'s settings now (a read), so sends to it never read
        the engine. Raises TopicNotFound."""
        self._topic(topic)

    def held(self) -> int:
        """Bytes of records sent and not yet stored or failed."""
        return self._held

    def prepared(self, topic: str) -> bool:
        """True if a send to ``topic`` will not read the engine."""
        return topic in self._topics

    # ---- buffered send ----------------------------------------------------
    def send(
        self,
        topic: str,
        value: Any,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Ack:
        """Buffer one record; the returned :class:`Ack` resolves when durable.
        ``value=None`` sends a tombstone. While the buffer is full, waits up
        to ``max_block_s`` for room, then raises BufferFull."""
        return self.send_within(topic, value, key, headers, partition, self._config.max_block_s)

    def send_within(
        self,
        topic: str,
        value: Any,
        key: bytes | str | None,
        headers: Headers | None,
        partition: int | None,
        max_block_s: float,
    ) -> Ack:
        """:meth:`send`, waiting at most ``max_block_s`` for buffer room."""
        if TRACING:  # the current span's context travels with the record
            headers = inject(headers)
        data = None if value is None else self._codec.encode(value)
        k = self._key(key)
        p = self._route(topic, k, partition)
        held = len(data or b"") + len(k or b"") + (_header_bytes(headers) if headers else 0)
        with self._cond:
            self._ensure_open()
            if self._held and self._held + held > self._config.buffer_bytes:
                self._wait_for_room(held, max_block_s)
            flight = self._open.get((topic, p))
            if flight is None:
                flight = self._open[(topic, p)] = _Flight(topic, p)
            index = len(flight.values)
            flight.keys.append(k)
            flight.values.append(data)
            flight.headers.append(headers or EMPTY_HEADERS)
            flight.nbytes += len(data or b"")
            flight.held += held
            self._held += held
            if len(flight.values) >= self._config.max_batch_records or (
                flight.nbytes >= self._config.max_batch_bytes
            ):
                self._ready.append(self._open.pop((topic, p)))
            self._cond.notify()
        return Ack(flight, index)

    def _wait_for_room(self, held: int, max_block_s: float) -> None:
        """Called holding the lock; returns once ``held`` more bytes fit (or
        the buffer is empty: one record larger than it still goes alone)."""
        deadline = time.monotonic() + max_block_s
        limit = self._config.buffer_bytes
        self._cond.notify()  # make sure the sender is draining
        while self._held and self._held + held > limit:
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                raise BufferFull(
                    f"the producer buffer holds {self._held} of {limit} bytes and a "
                    f"{held}-byte record did not fit within max_block_s={max_block_s}: "
                    "records are sent faster than the engine stores them"
                )
            self._room.wait(left)

    def _ensure_open(self) -> None:
        if self._closed:
            raise TidingsError("the producer is closed")
        if self._sender is None:
            self._sender = threading.Thread(target=self._run, name="tidings-producer", daemon=True)
            self._sender.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._open and not self._closed:
                    self._cond.wait()
                if not self._ready and self._config.linger_s and not self._closed:
                    self._cond.wait(self._config.linger_s)
                flights = self._ready + list(self._open.values())
                self._ready, self._open = [], {}
                if not flights and self._closed:
                    return
            self._deliver(flights)

    def _deliver(self, flights: list[_Flight]) -> None:
        by_topic: dict[str, dict[int, list[_Flight]]] = {}
        for f in flights:
            by_topic.setdefault(f.topic, {}).setdefault(f.partition, []).append(f)
        outcomes: list[tuple[dict[int, list[_Flight]], dict[int, AppendResult] | BaseException]]
        outcomes = []
        try:
            for topic, parts in by_topic.items():
                columns = {p: _merged(fs) for p, fs in parts.items()}
                try:
                    results = self._retrying(partial(self._engine.log.append, topic, columns))
                except BaseException as exc:  # every record of the call fails alike
                    outcomes.append((parts, exc))
                else:
                    outcomes.append((parts, results))
        finally:
            # Room first, acks after: whoever awaited an ack (or flush) finds
            # the room of the stored records already given back.
            self._release(flights)
        for parts, outcome in outcomes:
            _settle(parts, outcome)

    def _release(self, flights: list[_Flight]) -> None:
        """Their records are stored or failed: give their buffer room back."""
        with self._cond:
            self._held -= sum(f.held for f in flights)
            self._room.notify_all()

    def _retrying(self, append: Callable[[], T]) -> T:
        """Retry retriable engine errors with backoff, up to retry_timeout_s."""
        deadline = time.monotonic() + self._config.retry_timeout_s
        backoff = Backoff(0.05, 1.0)
        while True:
            try:
                return append()
            except EngineError as exc:
                delay = backoff.next()
                if not exc.retriable or time.monotonic() + delay > deadline:
                    raise
                log.warning("append failed (%s); retrying in %.2fs", exc, delay)
                time.sleep(delay)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything sent so far is durable (or failed)."""
        with self._cond:
            pending = self._ready + list(self._open.values())
            self._cond.notify()
        for f in pending:
            f.future.exception(timeout)

    # ---- direct batch send -------------------------------------------------
    def send_batch(
        self,
        topic: str,
        values: Sequence[Any],
        keys: Sequence[bytes | str | None] | None = None,
        headers: Sequence[Headers] | None = None,
        partition: int | None = None,
        connection: Any = None,
    ) -> BatchMetadata:
        """Append many records now, in this thread, in one transaction; return
        each record's metadata in input order once all are durable.

        With ``connection`` (your own sqlite3 / psycopg connection to the same
        database, inside your open transaction) the records are written in
        *your* transaction: they exist iff you commit. Raises
        UnsupportedFeature on engines that are not SQL databases."""
        if TRACING:
            headers = inject_each(headers, len(values))
        encoded = self._encode_all(values)
        kb = None if keys is None else [self._key(k) for k in keys]
        if kb is not None and len(kb) != len(encoded):
            raise TidingsError(f"{len(kb)} keys for {len(encoded)} values")
        slots = self._partitions_for(topic, kb, len(encoded), partition)
        columns, order = _split(slots, encoded, kb, headers)
        if connection is None:
            results = self._retrying(lambda: self._append(topic, columns, None))
        else:  # in the caller's transaction: only the caller can retry it
            results = self._append(topic, columns, connection)
        return BatchMetadata(topic, slots, order, results)

    def _append(
        self, topic: str, columns: Mapping[int, RecordColumns], connection: Any
    ) -> Mapping[int, AppendResult]:
        log = self._engine.log
        if connection is None:
            return log.append(topic, columns)
        if not isinstance(log, TransactionalLog):
            raise UnsupportedFeature(
                f"{self._engine.url.split(':')[0]} cannot append in your transaction; "
                "use a SQL engine (sqlite, postgresql) or the outbox"
            )
        return log.append_in(connection, topic, columns)

    def _encode_all(self, values: Sequence[Any]) -> list[bytes | None]:
        if self._codec is BYTES and all(type(v) is bytes for v in values):
            return list(values)  # the hot path: nothing to encode
        encode = self._codec.encode
        return [None if v is None else encode(v) for v in values]

    def _partitions_for(
        self, topic: str, keys: list[bytes | None] | None, n: int, partition: int | None
    ) -> list[int]:
        if partition is not None:
            return [partition] * n
        count = self._topic(topic).partitions
        if keys is None:
            return [next(self._sticky) % count] * n
        fn, sticky = self._partition_of, next(self._sticky) % count
        return [sticky if k is None else fn(k, count) for k in keys]

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the sender thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._sender is not None:
            self._sender.join(timeout)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _header_bytes(headers: Headers) -> int:
    return sum(len(k) + len(v) for k, v in headers.items())


def _merged(flights: list[_Flight]) -> RecordColumns:
    """Several full flights for one partition become one stored batch."""
    if len(flights) == 1:
        return flights[0].columns()
    merged = _Flight(flights[0].topic, flights[0].partition)
    for f in flights:
        merged.keys += f.keys
        merged.values += f.values
        merged.headers += f.headers
    return merged.columns()


def _settle(
    parts: dict[int, list[_Flight]], outcome: dict[int, AppendResult] | BaseException
) -> None:
    for p, fs in parts.items():
        if isinstance(outcome, BaseException):
            for f in fs:
                f.future.set_exception(outcome)
        else:
            _resolve(fs, outcome[p])


def _resolve(flights: list[_Flight], result: AppendResult) -> None:
    base = result.base_offset
    for f in flights:
        n = len(f.values)
        f.future.set_result(AppendResult(base, n, result.timestamp))
        base = _at(base, n)


def _at(base: int | None, index: int) -> int | None:
    """The offset of record ``index`` of a batch stored at ``base``
    (``None``: the engine tells offsets only to readers)."""
    return None if base is None else base + index


def _split(
    slots: list[int],
    values: list[bytes | None],
    keys: list[bytes | None] | None,
    headers: Sequence[Headers] | None,
) -> tuple[Mapping[int, RecordColumns], list[int]]:
    """Group the columns by partition, in ascending partition order;
    ``order[i]`` is record i's index within its partition's batch.

    A stable sort of the record indexes by partition and C-level maps,
    kept flat (:class:`PartitionedColumns`): a loop per record and an
    object per partition cost 0.9 µs per record of a call spread over
    1,000 partitions."""
    if len(set(slots)) == 1:
        p = slots[0]
        return {p: RecordColumns(values, keys, headers)}, list(range(len(values)))
    counts = Counter(slots)
    by_partition = sorted(range(len(slots)), key=slots.__getitem__)
    partitions = sorted(counts)
    sizes = list(map(counts.__getitem__, partitions))
    columns = PartitionedColumns(
        partitions,
        sizes,
        list(map(values.__getitem__, by_partition)),
        None if keys is None else list(map(keys.__getitem__, by_partition)),
        None if headers is None else list(map(headers.__getitem__, by_partition)),
    )
    # Record i sits at rank[i] in the sorted order: its index in its batch
    # is that minus where its partition starts.
    starts = dict(zip(partitions, accumulate(sizes, initial=0)))
    rank = sorted(range(len(slots)), key=by_partition.__getitem__)
    return columns, list(map(sub, rank, map(starts.__getitem__, slots)))


class BatchMetadata(Sequence[RecordMetadata]):
    """Where each record of a ``send_batch`` call went, in input order.

    Computed on access from each partition's base offset, so acknowledging
    a million records does not build a million objects up front."""

    __slots__ = ("_order", "_results", "_slots", "_topic")

    def __init__(
        self, topic: str, slots: list[int], order: list[int], results: Mapping[int, AppendResult]
    ) -> None:
        self._topic, self._slots, self._order, self._results = topic, slots, order, results

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, i: int) -> RecordMetadata: ...
    @overload
    def __getitem__(self, i: slice) -> list[RecordMetadata]: ...
    def __getitem__(self, i: int | slice) -> RecordMetadata | list[RecordMetadata]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        p = self._slots[i]
        r = self._results[p]
        return RecordMetadata(self._topic, p, _at(r.base_offset, self._order[i]), r.timestamp)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are unhashable

    def __repr__(self) -> str:
        return f"BatchMetadata({list(self)!r})"
