"""The three-node RabbitMQ cluster of the scale-out tests, driven through
``scripts/rabbitmq-cluster`` (nodes ib1, ib2, ib3 @localhost on 127.0.0.1:5681-5683, or from
``$ISOBRIDGE_CLUSTER_PORT``), never the shared broker on 5672.

:func:`start_cluster` starts it once per session (the ``rabbit_cluster`` fixture of
tests/conftest.py); a cluster that already runs (``scripts/rabbitmq-cluster up`` by hand) is
used and left running. Each test starts and ends with three running, reachable nodes
(:meth:`RabbitCluster.heal`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["NODES", "RabbitCluster", "start_cluster"]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rabbitmq-cluster"
NODES = ("ib1", "ib2", "ib3")


class RabbitCluster:
    """Kill, freeze, block and restart the nodes of the running cluster."""

    def __init__(self, started_here: bool) -> None:
        self.started_here = started_here
        self.base_port = int(os.environ.get("ISOBRIDGE_CLUSTER_PORT", "5681"))
        self.directory = Path(os.environ.get("ISOBRIDGE_CLUSTER_DIR", "/var/tmp/isobridge-cluster"))
        self.ports = {node: self.base_port + i for i, node in enumerate(NODES)}
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports.values())
        self.url = f"amqp://guest:guest@{hosts}/%2F"

    def node_url(self, node: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.ports[node]}/%2F"

    def node_at(self, port: int) -> str:
        """The node that listens on ``port``."""
        return next(node for node, p in self.ports.items() if p == port)

    def run(self, *args: str, timeout: float = 240) -> str:
        """``scripts/rabbitmq-cluster ARGS``; its stdout, or RuntimeError with its output."""
        result = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"scripts/rabbitmq-cluster {' '.join(args)} exited {result.returncode}:"
                f" {result.stderr.strip()[-2000:]}"
            )
        return result.stdout

    def kill(self, node: str) -> None:
        self.run("kill", node)

    def restart(self, node: str) -> None:
        self.run("restart", node)

    def stop_app(self, node: str) -> None:
        self.run("stop-app", node)

    def block(self, node: str) -> None:
        self.run("block", node)

    def unblock(self, node: str) -> None:
        self.run("unblock", node)

    def freeze(self, node: str) -> None:
        """SIGSTOP the node's Erlang VM: what is on the wire to it stays unconfirmed."""
        os.kill(self._pid(node), signal.SIGSTOP)

    def _pid(self, node: str) -> int:
        return int((self.directory / node / "node.pid").read_text().strip())

    def running(self) -> dict[str, bool]:
        """Whether each node's VM runs (not frozen) and its AMQP port answers (no rabbitmqctl:
        each call of it starts an Erlang VM, seconds on a busy machine)."""
        return {node: self._alive(node) and _port_open(self.ports[node]) for node in NODES}

    def _alive(self, node: str) -> bool:
        try:
            stat = Path(f"/proc/{self._pid(node)}/stat").read_text()
        except (OSError, ValueError):
            return False
        return stat.rpartition(")")[2].split()[0] not in ("T", "Z")  # not stopped, not a zombie

    def ctl(self, node: str, *args: str) -> str:
        return self.run("ctl", node, "-q", *args, timeout=120)

    def quorum_members(self, queue: str) -> list[str]:
        """The nodes that hold a member of quorum queue ``queue``."""
        for line in self.ctl("ib1", "list_queues", "name", "members").splitlines():
            name, _, members = line.partition("\t")
            if name == queue:
                return sorted(m.strip() for m in members.strip("[] ").split(",") if m.strip())
        raise AssertionError(f"no queue {queue!r} on the cluster")

    def heal(self) -> None:
        """Every node running and reachable again (after a test killed, froze or blocked one)."""
        for node in NODES:
            self.unblock(node)
        for node, running in self.running().items():
            if not running:
                with contextlib.suppress(OSError, ValueError):  # no such process
                    os.kill(self._pid(node), signal.SIGCONT)
                self.restart(node)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 2).close()
    except OSError:
        return False
    return True


def start_cluster() -> RabbitCluster:
    """The running cluster: started by the script (about 40 s on two cores), or skipped with
    the reason where it cannot start (a failure under CI)."""
    reason = ""
    if shutil.which("rabbitmq-server") is None and not Path("/usr/sbin/rabbitmq-server").exists():
        reason = "rabbitmq-server is not installed (apt-get install -y rabbitmq-server)"
    else:
        started = time.monotonic()
        result = subprocess.run(
            [str(SCRIPT), "up"], capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode == 0:
            cluster = RabbitCluster(started_here="already runs" not in result.stderr)
            print(f"rabbitmq cluster up in {time.monotonic() - started:.0f} s: {cluster.url}")
            return cluster
        reason = f"scripts/rabbitmq-cluster up failed: {result.stderr.strip()[-1500:]}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
