"""A throwaway PostgreSQL primary with a synchronous streaming standby on
loopback, for failover tests. Runs the server binaries as the ``postgres``
OS user (the server refuses root) in a temporary directory; never touches
the system cluster."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are needed for the "
            "failover tests: apt-get install postgresql"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandbyPair:
    """``start()`` a primary and a synchronous standby; ``fail_over()``
    kills the primary (immediate stop, like a crash) and promotes the
    standby; ``stop()`` removes both."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="tidings-pgha-"))
        self.user = pwd.getpwnam("postgres")
        os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.primary, self.standby = self.root / "primary", self.root / "standby"
        self.ports = (_free_port(), _free_port())

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"

    def dsn(self, which: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports[which]}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = ["runuser", "-u", "postgres", "--", str(self.bin / args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr or done.stdout}")

    def _configure(self, data: Path, port: int, extra: str) -> None:
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{self.root}'\nshared_buffers = 32MB\n"
                f"max_connections = 60\nwal_level = replica\nmax_wal_senders = 5\n"
                f"hot_standby = on\n{extra}"
            )

    def start(self) -> None:
        self._run("initdb", "-D", str(self.primary), "-U", "postgres", "--auth=trust", "--no-sync")
        # Synchronous replication: a commit returns once the standby has the
        # WAL, so what a client saw acknowledged survives the failover.
        self._configure(self.primary, self.ports[0], "synchronous_standby_names = '*'\n")
        self._pg_ctl(self.primary, "start")
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.ports[0]), "-U", "postgres"),
            *("-D", str(self.standby), "-R", "-X", "stream", "--no-sync"),
        )
        # Once promoted it has no standby of its own: it must not wait for one.
        self._configure(self.standby, self.ports[1], "synchronous_standby_names = ''\n")
        self._pg_ctl(self.standby, "start")
        self._wait_for_sync()

    def _pg_ctl(self, data: Path, action: str, *more: str) -> None:
        self._run("pg_ctl", "-D", str(data), "-l", str(data) + ".log", "-w", action, *more)

    def _wait_for_sync(self, patience: float = 30) -> None:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            with psycopg.connect(self.dsn(0), autocommit=True) as conn:
                rows = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchall()
            if ("sync",) in rows:
                return
            time.sleep(0.1)
        raise RuntimeError("the standby never became a synchronous standby")

    def fail_over(self) -> tuple[float, float]:
        """Crash the primary, promote the standby; return when the primary
        was gone (``time.monotonic()``) and when the standby was promoted."""
        self._pg_ctl(self.primary, "stop", "-m", "immediate")
        gone = time.monotonic()
        self._pg_ctl(self.standby, "promote")
        return gone, time.monotonic()

    def stop(self) -> None:
        for data in (self.primary, self.standby):
            if (data / "postmaster.pid").exists():
                try:
                    self._pg_ctl(data, "stop", "-m", "immediate")
                except RuntimeError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)
