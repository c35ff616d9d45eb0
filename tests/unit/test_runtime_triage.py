"""Triage of failed events through the Python API (R3; issue 10)."""

from __future__ import annotations

from typing import Any

import pytest

from tidings import AlreadyResolved, Client, ConfigurationError, FailedEventNotFound
from tidings.ports.failed import FailedFilter
from tidings.runtime import App, RetryPolicy
from tidings.runtime.testing import RunningApp, running
from tidings.runtime.triage import FailedEvents

NO_RETRY = RetryPolicy(immediate=0, delayed=0)


def make_app(fixed: set[bytes], seen: list[bytes]) -> App:
    app = App("triage")

    @app.handler(topic="events", policy=NO_RETRY)
    def on_event(payload: bytes) -> None:
        if payload.startswith(b"bad") and payload not in fixed:
            raise ValueError(f"cannot handle {payload!r}")
        seen.append(payload)

    @app.handler(queue="jobs", policy=NO_RETRY)
    def on_job(payload: bytes) -> None:
        if payload.startswith(b"bad") and payload not in fixed:
            raise LookupError("job failed")
        seen.append(payload)

    return app


def prepare(client: Client) -> None:
    client.create_topic("events", partitions=2)
    client.declare_queue("jobs")


def park_some(r: RunningApp, n_topic: int, n_queue: int) -> list[Any]:
    for i in range(n_topic):
        r.client.produce("events", b"bad-t%d" % i, key=f"k{i}", headers={"h": "v"})
    for i in range(n_queue):
        r.client.publish("jobs", b"bad-q%d" % i)
    r.wait_until(lambda: len(r.failed.find()) == n_topic + n_queue)
    # topic events first, each side in publish order (handlers run concurrently)
    return sorted(r.failed.find(), key=lambda e: (e.source != "topic", e.payload))


def test_list_filter_group_and_show() -> None:
    seen: list[bytes] = []
    with running(make_app(set(), seen), prepare=prepare) as r:
        events = park_some(r, 3, 2)
        f = r.failed
        assert len(f.find(FailedFilter(topic="events"))) == 3
        assert len(f.find(FailedFilter(queue="jobs"))) == 2
        assert len(f.find(FailedFilter(handler="on_job", exception_type="LookupError"))) == 2
        assert f.find(FailedFilter(app="other")) == []
        assert f.find(FailedFilter(since_ms=events[-1].failed_at + 60_000)) == []
        groups = {(g.exception_type, g.events) for g in f.groups()}
        assert groups == {("ValueError", 3), ("LookupError", 2)}
        g = next(g for g in f.groups() if g.exception_type == "ValueError")
        assert "on_event" in g.call_site and g.first_seen <= g.last_seen
        shown = f.show(events[0].id)
        assert shown.payload == events[0].payload and shown.headers == {"h": "v"}


def test_discard_republish_replay_round_trip_and_actions_recorded() -> None:
    seen: list[bytes] = []
    fixed: set[bytes] = set()
    app = make_app(fixed, seen)
    with running(app, prepare=prepare) as r:
        t0, t1, t2, q0 = park_some(r, 3, 1)
        f = FailedEvents(r.client, actor="alice")
        assert f.discard(t0.id)[0].outcome == "ok"
        fixed.add(t1.payload)
        (rep,) = f.republish(t1.id)
        assert rep.outcome == "ok" and rep.detail.startswith("events/")
        r.wait_until(lambda: t1.payload in seen)  # the runner handled the republished record
        fixed.add(q0.payload)
        assert f.republish(q0.id)[0].outcome == "ok"
        r.wait_until(lambda: q0.payload in seen)
        (again,) = f.replay(t2.id, app)  # still broken: parked again, not looped
        assert again.outcome == "failed" and again.parked_again is not None
        new = f.show(again.parked_again)
        assert new.replay_count == 1 and new.status == "parked" and len(new.history) == 2
        fixed.add(t2.payload)
        assert f.replay(new.id, app)[0].outcome == "ok"
        assert seen.count(t2.payload) == 1
        statuses = {e.id: e.status for e in f.find(FailedFilter(status=None))}
        assert statuses == {t0.id: "discarded", t1.id: "republished", t2.id: "replayed",
                            q0.id: "republished", new.id: "replayed"}  # fmt: skip
        actions = f.actions()
        assert [(a.event_id, a.action, a.outcome) for a in actions] == [
            (t0.id, "discard", "ok"), (t1.id, "republish", "ok"), (q0.id, "republish", "ok"),
            (t2.id, "replay", "failed"), (new.id, "replay", "ok"),
        ]  # fmt: skip
        assert {a.actor for a in actions} == {"alice"}
        assert f.show(t0.id).resolved_by == "alice"


def test_republished_event_that_fails_again_is_parked_with_its_replay_count() -> None:
    seen: list[bytes] = []
    with running(make_app(set(), seen), prepare=prepare) as r:
        (event,) = park_some(r, 1, 0)
        r.failed.republish(event.id)
        r.wait_until(lambda: len(r.failed.find()) == 1 and r.failed.find()[0].id != event.id)
        (again,) = r.failed.find()
        assert again.replay_count == 1 and again.payload == event.payload
        assert again.headers["x-tidings-failed-id"] == str(event.id)


def test_unknown_or_resolved_ids_are_typed_errors_and_nothing_is_half_applied() -> None:
    seen: list[bytes] = []
    app = make_app(set(), seen)
    with running(app, prepare=prepare) as r:
        a, b = park_some(r, 2, 0)
        f = r.failed
        with pytest.raises(FailedEventNotFound):
            f.discard(9999)
        with pytest.raises(FailedEventNotFound):
            f.discard([a.id, 9999])
        assert f.show(a.id).status == "parked"  # the valid id was not touched
        f.discard(a.id)
        with pytest.raises(AlreadyResolved):
            f.republish([b.id, a.id])
        with pytest.raises(AlreadyResolved):
            f.replay(a.id, app)
        assert f.show(b.id).status == "parked"
        assert [x.event_id for x in f.actions()] == [a.id]
        with pytest.raises(ConfigurationError, match="does not have"):
            f.replay(b.id, App("elsewhere"))


def test_bulk_by_filter_and_dry_run() -> None:
    seen: list[bytes] = []
    with running(make_app(set(), seen), prepare=prepare) as r:
        park_some(r, 3, 2)
        f = r.failed
        dry = f.discard(FailedFilter(exception_type="ValueError"), dry_run=True)
        assert [d.outcome for d in dry] == ["dry-run"] * 3
        assert len(f.find()) == 5 and f.actions() == []
        done = f.discard(FailedFilter(exception_type="ValueError"))
        assert [d.outcome for d in done] == ["ok"] * 3
        assert {e.exception_type for e in f.find()} == {"LookupError"}


def test_replay_and_republish_use_the_original_record_by_offset() -> None:
    """Redacted headers stay out of the failed event, but re-processing in
    place reads the original record (by offset) with its real headers."""
    seen: list[str] = []
    app = App("auth")
    fixed: set[str] = set()

    @app.handler(topic="events", policy=NO_RETRY)
    def on_event(payload: bytes, ctx: Any) -> None:
        token = ctx.message.headers["Authorization"]
        if token not in fixed:
            raise PermissionError("token not accepted yet")
        seen.append(token)

    with running(app, prepare=lambda c: c.create_topic("events")) as r:
        r.client.produce("events", b"x", headers={"Authorization": "Bearer t0k3n"})
        r.wait_until(lambda: len(r.failed.find()) == 1)
        (event,) = r.failed.find()
        assert event.headers["Authorization"] == "[redacted]"
        fixed.add("Bearer t0k3n")
        assert r.failed.replay(event.id, app)[0].outcome == "ok"
        assert seen == ["Bearer t0k3n"]
