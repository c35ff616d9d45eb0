"""A throwaway three-node RabbitMQ cluster on loopback, for failover tests.

Each node has its own name (``tfoN-<pid>@localhost``), AMQP and distribution
ports (free ones from 5673 and 25680 up: never the shared node's 5672/25672),
data, log, config and (empty) plugins files under one temporary directory,
and the same Erlang cookie (HOME points there). The nodes are started with
the server script directly (not the /usr/sbin wrapper, which would switch to
the rabbitmq user and its home) in a session of their own, so stopping one
kills its process group: the beam and its helper processes, nothing else.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
BOOT_S = 120  # three nodes booting at once on a loaded 2-core machine


class ClusterError(RuntimeError):
    """The cluster could not be started (the message says which step failed)."""


def installed() -> bool:
    return Path(SERVER).exists() and Path(CTL).exists()


@dataclass
class Node:
    name: str
    port: int
    dist_port: int
    stream_port: int = 0  # 0: the stream plugin is off
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Cluster:
    """Three nodes; :meth:`start` boots and joins them, :meth:`stop` kills
    every node still running (by its process group) and removes the files."""

    def __init__(self, root: Path, size: int = 3, streams: bool = False) -> None:
        self.root = root
        self._cookie = secrets.token_hex(16)
        tag = f"{os.getpid()}{secrets.token_hex(2)}"
        ports = _free_ports(5673, size)
        dist = _free_ports(25680, size)
        # Stream ports from 5600 up: never the shared node's 5552.
        streaming = _free_ports(5600, size) if streams else [0] * size
        self.nodes = [
            Node(f"tfo{i + 1}-{tag}@localhost", ports[i], dist[i], streaming[i])
            for i in range(size)
        ]

    def url(self, first: int = 0, user: str = "guest", password: str = "guest") -> str:
        """Every node, from node ``first`` on (the order a client tries them)."""
        order = self.nodes[first:] + self.nodes[:first]
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in order)
        url = f"amqp://{user}:{password}@{hosts}/"
        if order[0].stream_port:
            url += "?stream_port=" + ",".join(str(n.stream_port) for n in order)
        return url

    # ---- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        (self.root / ".erlang.cookie").write_text(self._cookie)
        (self.root / ".erlang.cookie").chmod(0o400)
        for node in self.nodes:
            self._spawn(node)
        deadline = time.monotonic() + BOOT_S
        for node in self.nodes:
            self._await(node, deadline)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self._ctl(node, "stop_app")
            self._ctl(node, "join_cluster", first.name)
            self._ctl(node, "start_app", timeout=BOOT_S)
        running = self._ctl(first, "eval", "length(rabbit_nodes:all_running()).")
        if running.strip() != str(len(self.nodes)):
            raise ClusterError(f"cluster formed with {running.strip()} nodes running")

    def _spawn(self, node: Node) -> None:
        base = self.root / node.name.split("@")[0]
        base.mkdir(exist_ok=True)  # a restart keeps its data: it rejoins the cluster
        plugins, streams = "", ""
        if node.stream_port:  # its own stream port, advertised as such
            plugins = "rabbitmq_stream"
            streams = (
                f"stream.listeners.tcp.1 = 127.0.0.1:{node.stream_port}\n"
                "stream.advertised_host = 127.0.0.1\n"
                f"stream.advertised_port = {node.stream_port}\n"
            )
        (base / "enabled_plugins").write_text(f"[{plugins}].\n")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{node.port}\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = info\n" + streams
        )
        (base / "env.conf").write_text("")  # not /etc/rabbitmq/rabbitmq-env.conf
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(base / "env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        with open(base / "stdout.log", "wb") as out:
            node.process = subprocess.Popen(
                [SERVER],
                env=env,
                cwd=base,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
            )

    def _await(self, node: Node, deadline: float) -> None:
        """Until the node's AMQP port answers (it opens last in the boot),
        and its stream port if it has one."""
        while not _listening(node.port) or (node.stream_port and not _listening(node.stream_port)):
            if not node.alive:
                raise ClusterError(f"node {node.name} exited while booting:\n{self._tail(node)}")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"node {node.name} did not open port {node.port} within {BOOT_S}s:\n"
                    f"{self._tail(node)}"
                )
            time.sleep(0.25)

    def _tail(self, node: Node) -> str:
        log = self.root / node.name.split("@")[0] / "stdout.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no output)"

    def restart(self, node: Node) -> None:
        """Start a killed node again; it rejoins with its data. Returns once
        its AMQP port answers."""
        self._spawn(node)
        self._await(node, time.monotonic() + BOOT_S)

    def kill(self, node: Node) -> None:
        """kill -9 the node (its process group): a crash, not a shutdown."""
        if node.process is None or node.process.poll() is not None:
            return
        try:
            os.killpg(node.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        node.process.wait(10)

    def stop(self) -> None:
        for node in self.nodes:
            self.kill(node)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- questions --------------------------------------------------------------
    def leader(self, queue: str) -> Node:
        """The node leading the quorum queue ``queue`` (asked of a live node)."""
        asked = next(n for n in self.nodes if n.alive)
        out = self._ctl(asked, "list_queues", "-q", "--no-table-headers", "name", "leader")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return next(n for n in self.nodes if n.name == parts[1])
        raise ClusterError(f"queue {queue!r} has no leader in: {out!r}")

    def diagnose(self) -> str:
        """Queues and channels as a live node sees them (for failure messages)."""
        asked = next(n for n in self.nodes if n.alive)
        out = []
        for args in (
            ("list_queues", "name", "messages_ready", "messages_unacknowledged", "consumers"),
            ("list_channels", "pid", "messages_unacknowledged", "consumer_count"),
            ("list_consumers", "channel_pid", "consumer_tag", "prefetch_count"),
        ):
            try:
                out.append(self._ctl(asked, *args))
            except ClusterError as exc:
                out.append(str(exc))
        return "\n".join(out)

    def _ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        if not node.alive:
            raise ClusterError(f"node {node.name} exited; its output ends:\n{self._tail(node)}")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "none.conf"),
        }
        command = [CTL, "-n", node.name, *args]
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, timeout=timeout + 30, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{' '.join(args)} on {node.name} hung for {timeout}s") from exc
        if done.returncode != 0:
            raise ClusterError(
                f"rabbitmqctl {' '.join(args)} on {node.name} failed: "
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode()


def _free_ports(start: int, count: int) -> list[int]:
    """``count`` ports from ``start`` up that nothing listens on now."""
    found: list[int] = []
    port = start
    while len(found) < count:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                found.append(port)
            except OSError:
                pass
        port += 1
    return found


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def booted(prefix: str, streams: bool = False) -> Iterator[Cluster]:
    """A module fixture's body: three nodes booted and joined (with the
    stream plugin when ``streams``), every node killed at the end even on
    failure. Fails (never skips) when the server is missing or will not boot."""
    if not installed():
        pytest.fail("rabbitmq-server is not installed: the failover test needs it (no skip)")
    cluster = Cluster(Path(tempfile.mkdtemp(prefix=prefix)), streams=streams)
    try:
        started = time.monotonic()
        try:
            cluster.start()
        except ClusterError as exc:
            pytest.fail(f"the throwaway 3-node RabbitMQ cluster did not boot: {exc}")
        print(f"\ncluster booted in {time.monotonic() - started:.1f}s: {cluster.url()}")
        yield cluster
    finally:
        cluster.stop()
