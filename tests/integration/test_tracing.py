"""OpenTelemetry trace context from producer to handler (issue 10, extra
``[otel]``), with the SDK's in-memory exporter: the handler's span is a child
of the producer's span, for topics and queues, sync and async, and
exceptions are recorded on it."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from tidings import AsyncClient, Client, tracing
from tidings.outbox import Outbox, Relay, migrate
from tidings.runtime import App, RetryPolicy
from tidings.runtime.testing import running

EXPORTER = InMemorySpanExporter()
tracer = trace.get_tracer("tests")
ONCE = RetryPolicy(immediate=0, delayed=0)


@pytest.fixture(autouse=True, scope="module")
def provider() -> Iterator[None]:
    """An SDK tracer provider for this module only: the global is put back
    afterwards (as opentelemetry's own test utilities do), so other tests
    run with tracing off."""
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(sdk)
    assert tracing.refresh()
    yield
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    assert not tracing.refresh()


@pytest.fixture(autouse=True)
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def _named(name: str) -> list[ReadableSpan]:
    return [s for s in EXPORTER.get_finished_spans() if s.name == name]


def _is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and child.context is not None
    assert parent.context is not None
    return (child.parent.trace_id, child.parent.span_id) == (
        parent.context.trace_id,
        parent.context.span_id,
    )


def test_producer_headers_carry_the_current_span() -> None:
    """W3C traceparent/tracestate added while a span is current; none
    without one; a caller's own traceparent is kept."""
    with Client("memory://") as client:
        client.create_topic("t")
        client.produce("t", b"none")
        with tracer.start_as_current_span("send") as span:
            client.produce("t", b"traced")
            client.produce("t", b"own", headers={"traceparent": "mine"})
            with client.producer() as producer:
                producer.send_batch("t", [b"batch"])
        records = client.engine.log.read("t", 0, 0, 10)
    want = _ids(span)  # type: ignore[arg-type]
    assert "traceparent" not in records[0].headers
    assert _ids_in(records[1].headers) == want
    assert records[2].headers["traceparent"] == "mine"
    assert _ids_in(records[3].headers) == want


@pytest.mark.parametrize("source", ["topic", "queue"])
def test_the_handler_span_is_a_child_of_the_producer_span(source: str) -> None:
    app = App("traced")
    seen: list[bytes] = []

    if source == "topic":

        @app.handler(topic="orders")
        def on_order(payload: bytes) -> None:
            seen.append(payload)

    else:

        @app.handler(queue="orders")
        def on_order(payload: bytes) -> None:
            seen.append(payload)

    def prepare(client: Client) -> None:
        if source == "topic":
            client.create_topic("orders")
        else:
            client.declare_queue("orders")

    with running(app, prepare=prepare) as r:
        with tracer.start_as_current_span("checkout", kind=SpanKind.PRODUCER):
            if source == "topic":
                r.client.produce("orders", b"o1")
            else:
                r.client.publish("orders", b"o1")
        r.wait_until(lambda: _named("traced.on_order process"))
    (producer,) = _named("checkout")
    (handler,) = _named("traced.on_order process")
    assert _is_child(handler, producer)
    assert handler.kind == SpanKind.CONSUMER
    attrs = dict(handler.attributes or {})
    assert attrs["messaging.system"] == "tidings"
    assert attrs["messaging.destination.name"] == "orders"
    if source == "topic":
        assert (attrs["messaging.destination.partition.id"], attrs["messaging.tidings.offset"]) == (
            "0",
            0,
        )
    else:
        assert attrs["messaging.message.id"] == "1"


def test_an_async_handler_span_records_the_exception() -> None:
    app = App("traced")

    @app.handler(topic="orders", policy=ONCE)
    async def on_order(payload: bytes) -> None:
        await asyncio.sleep(0)
        raise ValueError("card declined")

    with running(app, prepare=lambda c: c.create_topic("orders")) as r:
        with tracer.start_as_current_span("checkout"):
            r.client.produce("orders", b"o1")
        r.wait_until(lambda: _named("traced.on_order process"))
    (producer,) = _named("checkout")
    handler = _named("traced.on_order process")[0]
    assert _is_child(handler, producer)
    assert handler.status.status_code == StatusCode.ERROR
    assert [e.name for e in handler.events] == ["exception"]
    assert (handler.events[0].attributes or {})["exception.type"] == "ValueError"


def test_async_clients_inject_in_the_callers_context() -> None:
    """The async client hops to worker threads: the context is taken before."""

    sync = Client("memory://")
    sync.create_topic("t")
    sync.declare_queue("q")

    async def main() -> None:
        async with AsyncClient(engine=sync.engine) as client:
            with tracer.start_as_current_span("send"):
                await client.produce("t", b"x")
                await client.publish("q", b"y")
                await client.publish_batch("q", [b"z"])

    asyncio.run(main())
    (span,) = _named("send")
    (record,) = sync.engine.log.read("t", 0, 0, 1)
    deliveries = sync.get("q", 2)
    sync.close()
    want = _ids(span)
    assert _ids_in(record.headers) == want
    assert [_ids_in(d.headers) for d in deliveries] == [want, want]


def _ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def _ids_in(headers: Mapping[str, str]) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C traceparent header."""
    version, trace_id, span_id, _flags = headers["traceparent"].split("-")
    assert version == "00"
    return trace_id, span_id


def test_an_outbox_event_carries_the_span_that_wrote_it(tmp_path: Path) -> None:
    """The outbox row keeps the writer's trace context and the relay
    forwards it, so a consumer's span is a child of the transaction that
    recorded the event, as with a direct publish."""
    app_url = f"sqlite:///{tmp_path}/app.db"
    migrate(app_url)
    conn = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    with Client(f"sqlite:///{tmp_path}/bus.db") as client:
        client.create_topic("orders")
        conn.execute("BEGIN")
        with tracer.start_as_current_span("place order") as span:
            Outbox().add(conn, "topic:orders", b"traced", key="o-1")
        Outbox().add(conn, "topic:orders", b"untraced", key="o-2")
        conn.execute("COMMIT")
        with Relay(app_url, client) as relay:
            assert relay.run(until_idle=True) == 2
        traced, untraced = client.engine.log.read("orders", 0, 0, 10)
    conn.close()
    assert _ids_in(traced.headers) == _ids(span)  # type: ignore[arg-type]
    assert "traceparent" not in untraced.headers


def test_without_opentelemetry_nothing_is_added_and_handlers_run() -> None:
    """The core has no hard dependency: with opentelemetry unimportable,
    tracing is off and costs nothing."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from tidings import tracing, Client\n"
        "assert not tracing.ENABLED\n"
        "c = Client('memory://'); c.create_topic('t'); c.produce('t', b'x')\n"
        "assert dict(c.engine.log.read('t', 0, 0, 1)[0].headers) == {}\n"
        "f = lambda m: m\n"
        "assert tracing.traced('a', 'h', False, f) is f\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_nothing_is_traced_while_no_tracer_provider_is_set() -> None:
    """opentelemetry installed but not configured: no headers, no spans."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    saved, trace._TRACER_PROVIDER = trace._TRACER_PROVIDER, None
    try:
        assert not tracing.refresh()
        with Client("memory://") as client:
            client.create_topic("t")
            with tracer.start_as_current_span("send"):
                client.produce("t", b"x")
            assert dict(client.engine.log.read("t", 0, 0, 1)[0].headers) == {}
    finally:
        trace._TRACER_PROVIDER = saved
        assert tracing.refresh()
