"""A handler as the runtime calls it: decoded payload, middleware, context.

Middleware are plain functions ``mw(ctx, call_next) -> result`` that wrap
the call (``async def`` for async handlers); the first listed is the
outermost. A handler takes the payload, and optionally the
:class:`HandlerContext` as its second parameter.
"""

from __future__ import annotations

import functools
import inspect
import operator
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigurationError
from ..message import Delivery, Record
from .payload import Decoder, decoder_for
from .policy import Policies

Message = Record | Delivery
Middleware = Callable[["HandlerContext", Callable[["HandlerContext"], Any]], Any]
Ordering = Literal["partition", "key"]


@dataclass
class HandlerContext:
    """What a handler (or middleware) may want besides the payload:
    the ``message`` (a Record or a Delivery, or a list of them for batch
    handlers), the handler's ``name``, and ``connection`` (the open
    transaction on your database when the handler has an inbox)."""

    message: Any
    payload: Any
    name: str
    connection: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def body_of(m: Message) -> bytes | None:
    return m.value if isinstance(m, Record) else m.body


def key_of(m: Message) -> bytes | None:
    """What orders and blocks messages: a record's key, a delivery's FIFO group."""
    if isinstance(m, Record):
        return m.key
    return None if m.group is None else m.group.encode()


@dataclass(frozen=True)
class HandlerSpec:
    """One decorated handler, validated at definition."""

    name: str
    fn: Callable[..., Any]
    topic: str | None
    queue: str | None
    group: str | None
    batch: bool
    concurrency: int
    ordering: Ordering
    policies: Policies
    middleware: tuple[Middleware, ...]
    start: Any
    max_in_flight: int
    inbox: Any
    is_async: bool
    takes_ctx: bool
    decode: Decoder
    group_config: Any = None
    max_processing: float | None = None
    transaction: Any = None  # connect() to the engine's database (transaction.py)

    @property
    def source(self) -> str:
        return f"topic {self.topic}" if self.topic else f"queue {self.queue}"


def inspect_handler(fn: Callable[..., Any], batch: bool) -> tuple[bool, bool, Decoder]:
    """(is_async, takes_ctx, decoder) of a handler function; raises
    ConfigurationError for a signature the runtime cannot call."""
    params = list(inspect.signature(fn).parameters.values())
    if not 1 <= len(params) <= 2:
        raise ConfigurationError(
            f"handler {fn.__name__} must take (payload) or (payload, ctx), "
            f"it takes {len(params)} parameters"
        )
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError) as exc:
        raise ConfigurationError(
            f"cannot resolve the annotations of handler {fn.__name__}: {exc}"
        ) from exc
    annotation = hints.get(params[0].name, inspect.Parameter.empty)
    if batch:
        annotation = _item_type(fn.__name__, annotation)
    return inspect.iscoroutinefunction(fn), len(params) == 2, decoder_for(annotation)


def _item_type(name: str, annotation: Any) -> Any:
    if annotation is inspect.Parameter.empty:
        return annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) not in (list, Sequence) or len(args) != 1:
        raise ConfigurationError(
            f"batch handler {name} takes a list[...] of payloads, not {annotation!r}"
        )
    return args[0]


def check_middleware(spec_name: str, middleware: Sequence[Any], is_async: bool) -> None:
    for mw in middleware:
        if not callable(mw):
            raise ConfigurationError(f"middleware {mw!r} of {spec_name} is not callable")
        if inspect.iscoroutinefunction(mw) != is_async:
            kind = "async" if is_async else "plain (sync)"
            raise ConfigurationError(
                f"middleware {getattr(mw, '__name__', mw)} of {spec_name} must be {kind} "
                "like its handler"
            )


def make_call(spec: HandlerSpec, tx: Any = None) -> Callable[[Any], Any]:
    """``call(message_or_list) -> handler result`` (a coroutine for async
    handlers). Without context or middleware, a bytes handler is called
    with the body directly: the per-record hot path. ``tx``: the
    :class:`~.transaction.EngineTransaction` of a ``transaction=`` handler."""
    fn, decode = spec.fn, spec.decode
    if spec.takes_ctx or spec.middleware or spec.inbox or tx is not None:
        return _with_context(spec, tx)
    # Record.value / Delivery.body by index: the hot path makes no call per
    # message beyond the handler's own (and the decoder's, unless bytes).
    at = 4 if spec.topic is not None else 2
    raw = decode.__name__ == "_raw"
    if spec.batch:
        body = operator.itemgetter(at)
        if raw:
            return lambda ms: fn(list(map(body, ms)))
        return lambda ms: fn([decode(m[at]) for m in ms])
    if raw:
        return lambda m: fn(m[at])
    return lambda m: fn(decode(m[at]))


def _layer(mw: Middleware, call_next: Callable[[HandlerContext], Any], ctx: HandlerContext) -> Any:
    return mw(ctx, call_next)


def _with_context(spec: HandlerSpec, tx: Any) -> Callable[[Any], Any]:
    fn, decode = spec.fn, spec.decode

    def core(ctx: HandlerContext) -> Any:
        return fn(ctx.payload, ctx) if spec.takes_ctx else fn(ctx.payload)

    chain: Callable[[HandlerContext], Any] = core
    layers = list(spec.middleware)
    if spec.inbox is not None:
        layers.append(spec.inbox.middleware(spec.name, spec.is_async))
    if tx is not None:
        layers.append(tx.middleware(spec.is_async))
    for mw in reversed(layers):
        chain = functools.partial(_layer, mw, chain)

    def call(m: Any) -> Any:
        payload = [decode(body_of(x)) for x in m] if spec.batch else decode(body_of(m))
        return chain(HandlerContext(m, payload, spec.name))

    return call
