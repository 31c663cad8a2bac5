"""A RabbitMQ node of the chaos tests' own, to stop, restart and kill -9 at will.

Never the shared broker on 5672: this node is ``isobridge-chaos-<pid>@localhost`` on the
first free port from 5673 (or ``$ISOBRIDGE_CHAOS_PORT``), with its database and logs in a
temporary directory and no plugins. As root it runs as the ``rabbitmq`` user (Debian's
package layout); otherwise as the current user with a home (and Erlang cookie) of its own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["ChaosNode"]

_BIN_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin", "/usr/bin")


def _tool(name: str) -> str:
    for directory in _BIN_DIRS:
        path = Path(directory) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install rabbitmq-server")
    return found


class ChaosNode:
    """One RabbitMQ node: ``start``, ``stop_app`` / ``start_app``, ``kill9``, ``stop``."""

    def __init__(self, port: int | None = None) -> None:
        chosen = port or int(os.environ.get("ISOBRIDGE_CHAOS_PORT", "0"))
        self.port = chosen or _free_port_pair()
        self.name = f"isobridge-chaos-{os.getpid()}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self._base = Path(tempfile.mkdtemp(prefix="isobridge-chaos-"))
        self._as_rabbitmq = os.geteuid() == 0 and _has_user("rabbitmq")
        home = Path("/var/lib/rabbitmq") if self._as_rabbitmq else self._base / "home"
        home.mkdir(exist_ok=True)
        (self._base / "enabled_plugins").write_text("[].\n")
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + 20000),
            "RABBITMQ_MNESIA_BASE": str(self._base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self._base / "log"),
            "RABBITMQ_PID_FILE": str(self._base / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self._base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self._base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self._base / "advanced.config"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": _scripts_erl_args(),
        }
        if self._as_rabbitmq:
            shutil.chown(self._base, "rabbitmq", "rabbitmq")
            for child in self._base.iterdir():
                shutil.chown(child, "rabbitmq", "rabbitmq")

    def _run(self, tool: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        command = [_tool(tool), *args]
        if self._as_rabbitmq:
            command = ["runuser", "-u", "rabbitmq", "--", *command]
        return subprocess.run(
            command,
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self._env["HOME"],
        )

    def _ctl(self, *args: str, timeout: float = 90) -> None:
        result = self._run("rabbitmqctl", "-n", self.name, *args, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr or result.stdout}")

    def start(self) -> None:
        if _port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken: set ISOBRIDGE_CHAOS_PORT")
        result = self._run("rabbitmq-server", "-detached")
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmq-server did not start: {result.stderr or result.stdout}")
        self._await_port()

    def _await_port(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            attempt = self._run("rabbitmqctl", "-n", self.name, "await_startup", "--timeout", "30")
            if attempt.returncode == 0 and _port_open(self.port):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {self.name} did not start (logs: {self._base / 'log'})")
            time.sleep(0.5)

    def stop_app(self) -> None:
        self._ctl("stop_app")

    def start_app(self) -> None:
        self._ctl("start_app")
        self._await_port()

    def set_memory_watermark(self, fraction: float) -> None:
        """0 raises a memory alarm at once: the broker blocks every publishing connection."""
        self._ctl("set_vm_memory_high_watermark", str(fraction))

    def freeze(self) -> None:
        """SIGSTOP the node's Erlang VM: it stops confirming (and everything else) at once,
        so what is on the wire stays unconfirmed until :meth:`kill9`."""
        os.kill(int((self._base / "node.pid").read_text().strip()), signal.SIGSTOP)

    def kill9(self) -> None:
        """SIGKILL the node's Erlang VM: no clean shutdown at all."""
        pid = int((self._base / "node.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        # epmd forgets the name once the VM's connection to it is gone.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            names = subprocess.run(
                [_tool("epmd") if shutil.which("epmd") else "epmd", "-names"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if self.name.partition("@")[0] not in names:
                break
            time.sleep(0.1)

    def restart_after_kill(self) -> None:
        """Start the node again on the same database after :meth:`kill9`."""
        result = self._run("rabbitmq-server", "-detached")
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmq-server did not start: {result.stderr or result.stdout}")
        self._await_port()

    def stop(self) -> None:
        """Stop the node (kill it if it does not stop) and remove its files."""
        try:
            self._ctl("stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pid_file = self._base / "node.pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        shutil.rmtree(self._base, ignore_errors=True)


def _free_port_pair() -> int:
    """A port from 5673 up that is free, and whose distribution port (+20000) is free too."""
    for port in range(5673, 5773):
        if not _port_open(port) and not _port_open(port + 20000):
            return port
    raise RuntimeError("no free port for the chaos node in 5673-5772")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True


def _scripts_erl_args() -> str:
    """The Erlang flags every RabbitMQ node of ``scripts/`` starts with
    (``IB_RABBITMQ_ERL_ARGS`` in ``scripts/lib.sh``): this node is one more on the machine."""
    lib = Path(__file__).resolve().parents[2] / "scripts" / "lib.sh"
    found = re.search(r'^IB_RABBITMQ_ERL_ARGS="([^"]*)"$', lib.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"IB_RABBITMQ_ERL_ARGS is not set in {lib}")
    return found.group(1)
