"""The RabbitMQ node with a TLS 1.3 listener of the amqps:// tests, driven through
``scripts/rabbitmq-tls`` (ibtls@localhost on 127.0.0.1:5691, or ``$ISOBRIDGE_TLS_BROKER_PORT``;
mutual TLS required), never the shared broker on 5672.

:func:`start_tls_broker` starts it once per session (the ``tls_broker`` fixture of
tests/conftest.py); a node that already runs (``scripts/rabbitmq-tls up`` by hand) is used and
left running. Its certificates are ``isobridge certs dev``'s, in ``<dir>/certs``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.tls import client_context
from routing.amqps import BrokerTls

__all__ = ["TlsBroker", "start_tls_broker"]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rabbitmq-tls"


class TlsBroker:
    """Where the TLS node listens and the certificates it trusts and presents."""

    def __init__(self, started_here: bool) -> None:
        self.started_here = started_here
        self.port = int(os.environ.get("ISOBRIDGE_TLS_BROKER_PORT", "5691"))
        self.directory = Path(
            os.environ.get("ISOBRIDGE_TLS_BROKER_DIR", "/var/tmp/isobridge-tls-broker")
        )
        self.certs = self.directory / "certs"
        self.url = f"amqps://guest:guest@localhost:{self.port}/%2F"

    def tls(self, *, external: bool = False) -> BrokerTls:
        """The hub's settings for this broker: its CA, the hub's client certificate."""
        context = client_context(
            self.certs / "ca.crt", self.certs / "hub-client.crt", self.certs / "hub-client.key"
        )
        return BrokerTls(context, external=external)

    def run(self, *args: str, timeout: float = 240) -> str:
        """``scripts/rabbitmq-tls ARGS``; its stdout, or RuntimeError with its output."""
        result = subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=_script_environment(),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"scripts/rabbitmq-tls {' '.join(args)} exited {result.returncode}:"
                f" {result.stderr.strip()[-2000:]}"
            )
        return result.stdout


def _script_environment() -> dict[str, str]:
    # The certificates are made by `isobridge certs dev` with this interpreter (cryptography).
    return {**os.environ, "ISOBRIDGE_PYTHON": sys.executable}


def start_tls_broker() -> TlsBroker:
    """The running TLS node: started by the script (some 20 s on two cores), or skipped with
    the reason where it cannot start (a failure under CI)."""
    reason = ""
    if shutil.which("rabbitmq-server") is None and not Path("/usr/sbin/rabbitmq-server").exists():
        reason = "rabbitmq-server is not installed (apt-get install -y rabbitmq-server)"
    else:
        started = time.monotonic()
        result = subprocess.run(
            [str(SCRIPT), "up"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=_script_environment(),
        )
        if result.returncode == 0:
            broker = TlsBroker(started_here="already runs" not in result.stderr)
            print(f"rabbitmq TLS node up in {time.monotonic() - started:.0f} s: {broker.url}")
            return broker
        reason = f"scripts/rabbitmq-tls up failed: {result.stderr.strip()[-1500:]}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
