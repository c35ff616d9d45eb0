"""Throwaway PostgreSQL servers on loopback: one server alone (the restart
tests) or a primary + synchronous streaming standby (the failover tests).

Everything lives in one temporary directory (data directories, logs, the
unix socket directory) and listens on 127.0.0.1 only, on free ports: the
machine's own PostgreSQL is never touched. The server refuses to run as
root, so when we are root every server program runs as the ``postgres`` OS
user (``runuser``).

Replication is synchronous (``synchronous_standby_names`` names the
standby, ``synchronous_commit=on``), and :meth:`PgPair.start` waits until
``pg_stat_replication`` reports the standby as ``sync``: only then is a
commit the client saw acknowledged also on the standby, so
"acknowledged ⇒ survives the failover" holds.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STANDBY_NAME = "tidings_standby"
_OS_USER = "postgres"
_PROGRAMS = ("initdb", "pg_ctl", "pg_basebackup", "postgres", "psql")


class ClusterError(RuntimeError):
    """The throwaway cluster could not be built, started or changed."""


def find_bindir() -> Path:
    """The PostgreSQL server programs: ``TIDINGS_PG_BINDIR``, else the newest
    ``/usr/lib/postgresql/N/bin``, else ``pg_config --bindir``. Raises
    :class:`ClusterError` saying what is missing."""
    candidates: list[Path] = []
    if os.environ.get("TIDINGS_PG_BINDIR"):  # explicit: only there
        candidates.append(Path(os.environ["TIDINGS_PG_BINDIR"]))
    else:
        versions = glob.glob("/usr/lib/postgresql/*/bin")
        candidates += [Path(p) for p in sorted(versions, key=_version_key, reverse=True)]
    pg_config = shutil.which("pg_config")
    if pg_config and not candidates:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    for bindir in candidates:
        if all((bindir / p).is_file() for p in _PROGRAMS):
            return bindir
    raise ClusterError(
        "the PostgreSQL server programs (" + ", ".join(_PROGRAMS) + ") were not found in "
        f"{[str(c) for c in candidates] or 'any /usr/lib/postgresql/N/bin'}; install the "
        "server package (apt-get install postgresql) or set TIDINGS_PG_BINDIR"
    )


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """One throwaway server (no standby), for the restart tests. Use as a
    context manager, or call :meth:`start` and (always) :meth:`destroy`. The
    helpers below are shared with :class:`PgPair`."""

    bindir: Path = field(default_factory=find_bindir)
    root: Path = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
        self.port = free_port()

    @property
    def data_dir(self) -> Path:
        return self.root / "primary"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, **options: str) -> str:
        """A tidings URL for this server."""
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres" + (
            f"?{query}" if query else ""
        )

    def start(self) -> None:
        """initdb the server and start it."""
        self._prepare_root()
        self._initdb(self.data_dir, {})
        self._pg_ctl_start(self.data_dir)

    def restart(self, mode: str = "fast") -> None:
        """Restart the server (``pg_ctl restart -m MODE``): every connection
        is cut, the server is back on the same port when this returns."""
        log = self.root / f"{self.data_dir.name}.log"
        self._run(
            "pg_ctl", "restart", "-D", str(self.data_dir), "-m", mode,
            "-l", str(log), "-w", "-t", "30",
        )  # fmt: skip

    def destroy(self) -> None:
        """Stop the server (immediately) and remove everything."""
        self._stop_all(self.data_dir)

    def __enter__(self) -> PgServer:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def sql(self, port: int, query: str) -> str:
        """Run one query with psql over the unix socket; its output, trimmed."""
        out = self._run(
            "psql", "-X", "-A", "-t", "-h", str(self.socket_dir), "-p", str(port),
            "-U", "postgres", "-d", "postgres", "-c", query,
        )  # fmt: skip
        return out.strip()

    # ---- helpers shared with PgPair ------------------------------------------------
    def _prepare_root(self) -> None:
        owner = self._owner()
        if owner is not None:
            os.chown(self.root, owner[0], owner[1])
        self.socket_dir.mkdir()
        if owner is not None:
            os.chown(self.socket_dir, owner[0], owner[1])

    def _initdb(self, data: Path, settings: dict[str, str]) -> None:
        self._run(
            "initdb", "-D", str(data), "--auth=trust", "-U", "postgres", "--no-sync",
            "--no-instructions", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        base = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
        }
        self._append_conf(data / "postgresql.conf", base | settings)

    def _stop_all(self, *datas: Path) -> None:
        for data in datas:
            if (data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl_start(self, data: Path) -> None:
        log = self.root / f"{data.name}.log"
        self._run("pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", "30")

    def _append_conf(self, path: Path, settings: dict[str, str]) -> None:
        with path.open("a") as f:
            f.write("\n# tests/faults/pgcluster.py\n")
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _owner(self) -> tuple[int, int] | None:
        """(uid, gid) to run the servers as, or None to run them as ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(_OS_USER)
        except KeyError:
            raise ClusterError(
                f"running as root, and there is no {_OS_USER!r} OS user to run PostgreSQL as"
            ) from None
        return pw.pw_uid, pw.pw_gid

    def _run(self, program: str, *args: str, check: bool = True) -> str:
        cmd = [str(self.bindir / program), *args]
        if self._owner() is not None:
            cmd = ["runuser", "-u", _OS_USER, "--", *cmd]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, check=False, cwd=self.root
        )
        if check and done.returncode != 0:
            raise ClusterError(
                f"{program} {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n"
                f"primary log:\n{self._tail('primary.log')}\n"
                f"standby log:\n{self._tail('standby.log')}"
            )
        return done.stdout

    def _tail(self, name: str, lines: int = 15) -> str:
        path = self.root / name
        if not path.exists():
            return "(none)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class PgPair(PgServer):
    """A primary and its synchronous standby. Use as a context manager, or
    call :meth:`start` and (always) :meth:`destroy`."""

    standby_port: int = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.standby_port = free_port()
        while self.standby_port == self.port:
            self.standby_port = free_port()

    # ---- paths and URLs ---------------------------------------------------------
    @property
    def primary_port(self) -> int:
        return self.port

    @property
    def primary_dir(self) -> Path:
        return self.data_dir

    @property
    def standby_dir(self) -> Path:
        return self.root / "standby"

    def url(self, *ports: int, **options: str) -> str:
        """A tidings URL for the given ports (default: primary then standby)."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in ports or (self.primary_port, self.standby_port))
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"postgresql://postgres@{hosts}/postgres" + (f"?{query}" if query else "")

    # ---- lifecycle ----------------------------------------------------------------
    def start(self, sync_timeout_s: float = 20.0) -> None:
        """initdb the primary, start it, clone the standby with pg_basebackup,
        start it and wait until it replicates synchronously."""
        self._prepare_root()
        self._initdb(
            self.primary_dir,
            {
                "wal_level": "replica",
                "max_wal_senders": "5",
                "hot_standby": "on",
                "synchronous_commit": "on",
                "synchronous_standby_names": f"'{STANDBY_NAME}'",
                "wal_sender_timeout": "5s",
                "wal_receiver_status_interval": "1s",
            },
        )
        self._ensure_replication_hba()
        self._pg_ctl_start(self.primary_dir)
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
            "-D", str(self.standby_dir), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        # Appended after pg_basebackup's own lines, so these win: the standby's
        # port, a name the primary's synchronous_standby_names matches, and no
        # synchronous standby of its own once promoted (else every commit on
        # the promoted server would wait forever for a standby that is not there).
        self._append_conf(
            self.standby_dir / "postgresql.auto.conf",
            {
                "port": str(self.standby_port),
                "primary_conninfo": (
                    f"'host=127.0.0.1 port={self.primary_port} user=postgres "
                    f"application_name={STANDBY_NAME}'"
                ),
                "synchronous_standby_names": "''",
            },
        )
        if not (self.standby_dir / "standby.signal").exists():
            raise ClusterError("pg_basebackup -R wrote no standby.signal")
        self._pg_ctl_start(self.standby_dir)
        self._wait_sync(sync_timeout_s)

    def kill_primary(self) -> None:
        """Stop the primary the way a crash would (``-m immediate``: no
        checkpoint, connections cut)."""
        self._run("pg_ctl", "stop", "-D", str(self.primary_dir), "-m", "immediate", "-w")

    def promote(self) -> None:
        """Promote the standby and wait until it accepts writes."""
        self._run("pg_ctl", "promote", "-D", str(self.standby_dir), "-w", "-t", "30")
        deadline = time.monotonic() + 15
        while self.sql(self.standby_port, "SELECT pg_is_in_recovery()") != "f":
            if time.monotonic() > deadline:
                raise ClusterError("the promoted standby is still in recovery after 15 s")
            time.sleep(0.05)

    def destroy(self) -> None:
        """Stop both servers (immediately) and remove everything."""
        self._stop_all(self.standby_dir, self.primary_dir)

    def __enter__(self) -> PgPair:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    # ---- queries ---------------------------------------------------------------------
    def sync_state(self) -> str:
        """The standby's ``sync_state`` as the primary reports it ('' if absent)."""
        return self.sql(
            self.primary_port,
            f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'",
        )

    # ---- helpers ---------------------------------------------------------------------
    def _wait_sync(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        state = ""
        while state != "sync":
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the standby did not become a synchronous standby within {timeout_s:.0f}s "
                    f"(sync_state={state!r}); standby log:\n{self._tail('standby.log')}"
                )
            time.sleep(0.05)
            state = self.sync_state()

    def _ensure_replication_hba(self) -> None:
        hba = self.primary_dir / "pg_hba.conf"
        lines = [ln.split() for ln in hba.read_text().splitlines() if not ln.startswith("#")]
        if not any(ln[:2] == ["host", "replication"] and "127.0.0.1/32" in ln for ln in lines):
            with hba.open("a") as f:
                f.write("host replication all 127.0.0.1/32 trust\n")
