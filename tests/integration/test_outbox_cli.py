"""``tidings outbox migrate|status|cleanup|redispatch`` and ``tidings relay``
end to end (SQLite), and the relay's idle behaviour."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from conftest import Cli
from tidings import Client
from tidings.outbox import Outbox, Relay, migrate


def _events(path: Path, n: int, destination: str = "topic:cli-t") -> list[int]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    ids = [Outbox("orders").add(conn, destination, f"e{i}", key="k") for i in range(n)]
    conn.execute("COMMIT")
    conn.close()
    return ids


def test_cli_migrate_relay_status_cleanup_redispatch(cli: Cli, tmp_path: Path) -> None:
    app, bus = f"sqlite:///{tmp_path / 'app.db'}", f"sqlite:///{tmp_path / 'bus.db'}"
    code, out, _ = cli(
        bus, "outbox", "migrate", "--db", app, "--outbox", "orders", "--shards", "2", "--json"
    )
    assert code == 0 and json.loads(out) == {
        "db": app,
        "schema_version": 1,
        "outbox": "orders",
        "shards": 2,
    }
    with Client(bus) as client:
        client.create_topic("cli-t")
    ids = _events(tmp_path / "app.db", 3)
    code, out, _ = cli(bus, "outbox", "status", "--db", app, "--json")
    rows = [json.loads(x) for x in out.splitlines()]
    assert sum(r["pending"] for r in rows if r["outbox"] == "orders") == 3
    code, out, _ = cli(bus, "relay", "--db", app, "--outbox", "orders", "--drain", "--json")
    assert code == 0 and json.loads(out) == {"forwarded": 3}
    code, out, _ = cli(bus, "outbox", "status", "--db", app)
    assert code == 0 and out.splitlines()[0].split()[:4] == ["outbox", "shard", "pending", "lag_s"]
    code, out, _ = cli(
        bus,
        "outbox",
        "redispatch",
        "--db",
        app,
        "--outbox",
        "orders",
        "--from-id",
        str(ids[0]),
        "--to-id",
        str(ids[1]),
        "--json",
    )
    assert code == 0 and json.loads(out) == {"redispatched": 2}
    code, _, err = cli(
        bus,
        "outbox",
        "redispatch",
        "--db",
        app,
        "--outbox",
        "orders",
        "--from-id",
        "9",
        "--to-id",
        "1",
    )
    assert code == 2 and "swap the bounds" in err
    code, _, err = cli(
        bus,
        "outbox",
        "redispatch",
        "--db",
        app,
        "--outbox",
        "orders",
        "--from-id",
        "500",
        "--to-id",
        "900",
    )
    assert code == 1 and "EmptyRange" in err
    assert cli(bus, "relay", "--db", app, "--outbox", "orders", "--drain")[0] == 0
    code, out, _ = cli(bus, "outbox", "cleanup", "--db", app, "--older-than", "0s", "--json")
    assert code == 0 and json.loads(out) == {"deleted": 5}
    with Client(bus) as client:
        values = [r.value for r in client.engine.log.read("cli-t", 0, 0, 100)]
    assert values == [b"e0", b"e1", b"e2", b"e0", b"e1"]


def test_cli_relay_against_a_database_without_an_outbox_fails_clearly(
    cli: Cli, tmp_path: Path
) -> None:
    app = f"sqlite:///{tmp_path / 'not-an-app.db'}"
    code, _, err = cli(f"sqlite:///{tmp_path / 'bus.db'}", "relay", "--db", app, "--drain")
    assert code == 1 and "tidings outbox migrate" in err


def test_an_idle_relay_waits_instead_of_spinning(tmp_path: Path) -> None:
    """A relay holding a healthy, empty shard reads again only on a change
    or a lease renewal: a handful of reads in half a second, not thousands."""
    app = f"sqlite:///{tmp_path / 'app.db'}"
    migrate(app, {"orders": 1})
    relay = Relay(app, "memory://", outbox="orders")
    reads = []
    original = relay.store.read
    relay.store.read = lambda *a: reads.append(a) or original(*a)  # type: ignore[method-assign]
    stop = threading.Event()
    runner = threading.Thread(target=relay.run, args=(stop,))
    runner.start()
    time.sleep(0.5)
    stop.set()
    runner.join(5)
    relay.close()
    assert 1 <= len(reads) <= 10, len(reads)


@pytest.mark.parametrize("argv", [["outbox", "status"], ["relay"]])
def test_db_is_required(cli: Cli, tmp_path: Path, argv: list[str]) -> None:
    code, _, err = cli(f"sqlite:///{tmp_path / 'bus.db'}", *argv)
    assert code == 2 and "required: --db" in err


def test_a_relay_pointed_at_a_missing_file_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    code, _, err = cli(f"sqlite:///{tmp_path / 'bus.db'}", "relay", "--db", f"sqlite:///{missing}")
    assert code == 1 and "no such database file" in err
    assert not missing.exists()
