"""A PostgreSQL server of the tests' own (``scripts/postgresql-instance``: Debian's cluster
``<version>/isotest`` on 127.0.0.1, port ``$ISOBRIDGE_OWN_PG_PORT`` or 5439), which a test may
stop and restart: the shared server on 5432 serves other tests at the same time and is never
touched.

:func:`start_own_postgres` starts it once per session (the ``own_postgres`` fixture of
tests/conftest.py); one that already runs is used and left running.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["OwnPostgres", "start_own_postgres"]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgresql-instance"


class OwnPostgres:
    """Restart, stop and start the tests' own PostgreSQL server."""

    def __init__(self, url: str, started_here: bool) -> None:
        self.url = url
        self.started_here = started_here

    def run(self, *args: str, timeout: float = 120) -> str:
        """``scripts/postgresql-instance ARGS``; its stdout, or RuntimeError with its output."""
        result = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"scripts/postgresql-instance {' '.join(args)} exited {result.returncode}:"
                f" {result.stderr.strip()[-2000:]}"
            )
        return result.stdout

    def restart(self) -> None:
        """Restart the server (fast: every session is cut off)."""
        self.run("restart")

    def running(self) -> bool:
        return " online " in self.run("status")


def start_own_postgres() -> OwnPostgres:
    """The running server: created and started by the script (about 10 s the first time),
    or skipped with the reason where it cannot be (a failure under CI)."""
    if os.geteuid() != 0:
        reason = "the tests' own PostgreSQL is created as root (scripts/postgresql-instance)"
    else:
        status = subprocess.run(
            [str(SCRIPT), "status"], capture_output=True, text=True, timeout=60, check=False
        )
        started = time.monotonic()
        result = subprocess.run(
            [str(SCRIPT), "up"], capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode == 0:
            server = OwnPostgres(
                result.stdout.strip().splitlines()[-1], " online " not in status.stdout
            )
            print(f"own PostgreSQL up in {time.monotonic() - started:.0f} s: {server.url}")
            return server
        reason = f"scripts/postgresql-instance up failed: {result.stderr.strip()[-1500:]}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
