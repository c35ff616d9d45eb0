"""The shared clock of the PostgreSQL engine (engines/sql/clock.py): the
offset to the database's clock is measured at open and again after
``recheck_s``; a failed re-measure keeps the last offset."""

from __future__ import annotations

import time

import pytest

from tidings.engines.sql.clock import DbClock, LocalClock


def test_local_clock_is_this_hosts() -> None:
    assert LocalClock().offset_s() == 0.0
    assert abs(LocalClock().now_ms() - time.time() * 1000) < 50


def test_offset_is_measured_at_open_and_rechecked(monkeypatch: pytest.MonkeyPatch) -> None:
    server = {"ahead": 50.0, "fail": False}
    mono = [1000.0]

    def read() -> float:
        if server["fail"]:
            raise ConnectionError("server down")
        return time.time() + server["ahead"]

    monkeypatch.setattr(time, "monotonic", lambda: mono[0])
    clock = DbClock(read, recheck_s=10.0)
    assert clock.offset_s() == pytest.approx(50.0, abs=0.05)
    assert clock.now_ms() / 1000 == pytest.approx(time.time() + 50.0, abs=0.05)

    server["ahead"] = 10.0  # the server's clock was stepped
    mono[0] += 5.0
    assert clock.offset_s() == pytest.approx(50.0, abs=0.05)  # not rechecked yet
    mono[0] += 6.0
    assert clock.offset_s() == pytest.approx(10.0, abs=0.05)

    server.update(ahead=-3.0, fail=True)
    mono[0] += 11.0
    assert clock.offset_s() == pytest.approx(10.0, abs=0.05)  # kept while unreachable
    server["fail"] = False
    mono[0] += 0.5
    assert clock.offset_s() == pytest.approx(10.0, abs=0.05)  # retried after 1 s only
    mono[0] += 0.6
    assert clock.offset_s() == pytest.approx(-3.0, abs=0.05)
