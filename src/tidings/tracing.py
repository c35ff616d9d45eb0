"""OpenTelemetry trace context carried in message headers (extra ``[otel]``).

When ``opentelemetry`` is importable and a span is current, producers
(``Producer.send``/``send_batch``, ``Client.produce``/``publish``/
``publish_batch``, their async twins, and ``Outbox.add``, whose relay
forwards the headers as stored) add the W3C ``traceparent`` and
``tracestate`` headers, unless the caller set ``traceparent`` already. The
runtime reads them back and runs each handler call in a span
``"<app>.<handler> process"`` whose parent is the producer's span.

The only module that imports opentelemetry (ruff bans it elsewhere): it is
imported once, here; without it every function is a no-op that costs a
global lookup.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .message import Headers, Record

try:
    from opentelemetry import trace as _trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the [otel] extra is not installed
    _trace = None  # type: ignore[assignment]

ENABLED = _trace is not None
TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator() if ENABLED else None
_NO_OP = (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider) if ENABLED else ()
# (checked at, a tracer provider is configured): asking OpenTelemetry costs
# about a microsecond, too much per record, so the answer is kept a second.
_state: list[Any] = [float("-inf"), False]


def refresh() -> bool:
    """Look again whether a tracer provider is configured (otherwise done
    at most once a second, and whenever a runtime handler starts); True if
    one is. Call it right after configuring OpenTelemetry."""
    _state[0] = time.monotonic()
    _state[1] = ENABLED and not isinstance(_trace.get_tracer_provider(), _NO_OP)
    return bool(_state[1])


def active() -> bool:
    """True when opentelemetry is installed and a tracer provider is set."""
    if time.monotonic() - _state[0] >= 1.0:
        return refresh()
    return bool(_state[1])


def inject(headers: Headers | None) -> Headers | None:
    """``headers`` with the current span's ``traceparent``/``tracestate``
    added; unchanged without opentelemetry, without a current span, or when
    the caller set ``traceparent`` themselves."""
    if _W3C is None or (headers and TRACEPARENT in headers) or not active():
        return headers
    if not _trace.get_current_span().get_span_context().is_valid:
        return headers
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return {**headers, **carrier} if headers else carrier


def inject_each(headers: Sequence[Headers] | None, n: int) -> Sequence[Headers] | None:
    """:func:`inject` for ``n`` records' headers (``None``: none given)."""
    if _W3C is None or not active() or not _trace.get_current_span().get_span_context().is_valid:
        return headers
    if headers is None:
        one = inject(None)
        return [one] * n if one else None
    return [inject(h) or {} for h in headers]


def traced(
    app: str, handler: str, is_async: bool, call: Callable[[Any], Any]
) -> Callable[..., Any]:
    """``call`` (the runtime's handler call, a message or a batch) run in a
    consumer span per call, child of the producer's span; ``call`` itself
    without opentelemetry."""
    if not ENABLED:
        return call
    tracer = _trace.get_tracer("tidings")
    name = f"{app}.{handler} process"
    refresh()

    def run(m: Any) -> Any:
        if not active():  # installed but not configured: the plain call
            return call(m)
        with _span(tracer, name, m):
            return call(m)

    async def arun(m: Any) -> Any:
        if not active():
            return await call(m)
        with _span(tracer, name, m):
            return await call(m)

    return functools.wraps(call)(arun if is_async else run)


@contextmanager
def _span(tracer: Any, name: str, m: Any) -> Iterator[Any]:
    batch = m if isinstance(m, list) else None
    first = batch[0] if batch else m
    parent = _W3C.extract(first.headers) if _W3C is not None else None
    links = []
    if batch and len(batch) > 1:  # a batch: one span, linked to every producer span
        links = [_trace.Link(c) for c in _contexts(batch[1:])]
    with tracer.start_as_current_span(
        name, context=parent, kind=_trace.SpanKind.CONSUMER, links=links,
        attributes=_attributes(first, len(batch) if batch else 1),
    ) as span:  # fmt: skip
        yield span


def _contexts(messages: list[Any]) -> list[Any]:
    out = []
    for m in messages:
        ctx = _trace.get_current_span(_W3C.extract(m.headers)).get_span_context()  # type: ignore[union-attr]
        if ctx.is_valid:
            out.append(ctx)
    return out


def _attributes(m: Any, count: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {"messaging.system": "tidings", "messaging.operation": "process"}
    if isinstance(m, Record):
        attrs["messaging.destination.name"] = m.topic
        attrs["messaging.destination.partition.id"] = str(m.partition)
        attrs["messaging.tidings.offset"] = m.offset
    else:
        attrs["messaging.destination.name"] = m.queue
        attrs["messaging.message.id"] = str(m.id)
    if count > 1:
        attrs["messaging.batch.message_count"] = count
    return attrs
