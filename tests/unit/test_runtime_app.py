"""Runtime definitions: bad input is a typed error at definition or start (issue 10)."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import pytest

from tidings import Client, ConfigurationError, QueueNotFound, TopicNotFound
from tidings.runtime import App, BreakerPolicy, Retry, RetryPolicy
from tidings.runtime.loading import load_app
from tidings.runtime.payload import decoder_for
from tidings.runtime.runner import Runner
from tidings.runtime.testing import running


def test_handler_needs_exactly_one_source() -> None:
    app = App("a")
    with pytest.raises(ConfigurationError, match="exactly one"):
        app.handler()(lambda b: None)
    with pytest.raises(ConfigurationError, match="exactly one"):
        app.handler(topic="t", queue="q")(lambda b: None)


class Opaque:
    pass


def noop(b: bytes) -> None: ...


def test_payload_type_no_codec_can_build_is_refused_at_definition() -> None:
    app = App("a")

    def handle(payload: Opaque) -> None: ...

    with pytest.raises(ConfigurationError, match="no codec can build"):
        app.handler(topic="t")(handle)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(immediate=-1),
        lambda: RetryPolicy(delayed=-1),
        lambda: RetryPolicy(backoff=-1),
        lambda: RetryPolicy(backoff=10, backoff_max=1),
        lambda: RetryPolicy(on_exhausted="explode"),  # type: ignore[arg-type]
        lambda: Retry(-0.5),
        lambda: BreakerPolicy(ratio=0),
        lambda: BreakerPolicy(min_failures=0),
        lambda: BreakerPolicy(pause=0),
    ],
)
def test_invalid_policies_are_typed_errors(make: object) -> None:
    with pytest.raises(ConfigurationError):
        make()  # type: ignore[operator]


def test_bad_handler_options() -> None:
    app = App("a")
    for options in ({"concurrency": 0}, {"max_in_flight": 0}, {"ordering": "random"}):
        with pytest.raises(ConfigurationError):
            app.handler(topic="t", **options)(noop)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="invalid topic name"):
        app.handler(topic="bad name")(noop)
    with pytest.raises(ConfigurationError, match="invalid app name"):
        App("")


def test_duplicate_handler_and_bad_signatures() -> None:
    app = App("a")

    @app.handler(topic="t")
    def h(b: bytes) -> None: ...

    with pytest.raises(ConfigurationError, match="already has a handler"):
        app.handler(topic="t2", name="h")(lambda b: None)
    with pytest.raises(ConfigurationError, match="must take"):
        app.handler(topic="t", name="x")(lambda: None)
    with pytest.raises(ConfigurationError, match="list"):

        @app.handler(topic="t", batch=True, name="y")
        def y(b: bytes) -> None: ...


def test_middleware_must_match_the_handler_kind() -> None:
    app = App("a")

    def sync_mw(ctx: object, call_next: object) -> object:
        return call_next(ctx)  # type: ignore[operator]

    with pytest.raises(ConfigurationError, match="must be async"):

        @app.handler(topic="t", middleware=[sync_mw])
        async def h(b: bytes) -> None: ...


def test_start_refuses_missing_topic_or_queue_and_starts_nothing() -> None:
    app = App("a")
    app.handler(topic="nowhere")(noop)
    with Client("memory://") as client:
        runner = Runner(app, client=client)
        with pytest.raises(TopicNotFound):
            runner.start()
        assert runner.loops == {} and runner.state == "failed"
    app2 = App("b")
    app2.handler(queue="nowhere")(noop)
    with pytest.raises(QueueNotFound), running(app2):
        pass


@dataclasses.dataclass
class Point:
    x: int
    label: str
    weight: float = 1.0


def test_dataclass_payloads_are_checked() -> None:
    decode = decoder_for(Point)
    assert decode(b'{"x": 1, "label": "a"}') == Point(1, "a")
    from tidings import SerializationError

    for bad in (
        b"[1]",
        b'{"x": 1}',
        b'{"x": "1", "label": "a"}',
        b'{"x":1,"label":"a","z":0}',
        b"{",
    ):
        with pytest.raises(SerializationError):
            decode(bad)


def test_load_app_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rt_mod_ok.py").write_text(
        textwrap.dedent(
            """
            from tidings.runtime import App
            app = App("loaded")
            other = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_app("rt_mod_ok:app").name == "loaded"
    for bad, match in (
        ("rt_mod_ok", "module:attribute"),
        ("rt_mod_missing:app", "cannot import"),
        ("rt_mod_ok:other", "not a tidings.runtime.App"),
        ("rt_mod_ok:nothing", "nothing"),
    ):
        with pytest.raises(ConfigurationError, match=match):
            load_app(bad)
    sys.modules.pop("rt_mod_ok", None)
