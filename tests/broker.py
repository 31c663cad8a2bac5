"""The tests' names on the shared development RabbitMQ (127.0.0.1:5672), and their removal.

Other people use that broker (the benchmarks' ``bench-e2e-*`` namespaces among them), and the
quorum queues a test leaves behind pile up until the broker stops answering. So a test that
declares queues or exchanges there

- takes their names (or the prefix of their names) from :func:`own_name`, which records
  them for the session's check, and
- deletes them when it ends, passed or not: :func:`delete_queues`, or for a routing topology
  ``tests.routing.conftest.delete_topology`` and ``hub_namespace`` (which are built on it).

At the end of the session ``tests/conftest.py`` asks the broker (``rabbitmqctl``) for queues
under the recorded names: it deletes those left over and fails the run, naming the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

import pika

from routing.amqp import node_parameters
from routing.amqps import BrokerTls

__all__ = [
    "amqp_url",
    "delete_queues",
    "leftover_queues",
    "own_name",
    "owned_names",
    "with_dead_letters",
]

AMQP_URL_ENV = "ISOBRIDGE_TEST_AMQP_URL"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

_OWNED: dict[str, str] = {}


def amqp_url() -> str:
    """The development broker (``$ISOBRIDGE_TEST_AMQP_URL`` to use another)."""
    return os.environ.get(AMQP_URL_ENV, DEFAULT_AMQP_URL)


def own_name(stem: str, length: int = 8) -> str:
    """``<stem>.<random hex>`` (``t<hex>`` for the stem ``t``), recorded as this test's own:
    the queues named so, or prefixed ``<name>.``, are the test's to delete."""
    token = uuid.uuid4().hex[:length]
    name = f"{stem}{token}" if stem == "t" else f"{stem}.{token}"
    test = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)").rsplit(" ", 1)[0]
    _OWNED[name] = test
    return name


def owned_names() -> dict[str, str]:
    """The names :func:`own_name` gave in this process, each with the test it gave it to."""
    return dict(_OWNED)


def delete_queues(
    url: str, queues: Iterable[str], exchanges: Iterable[str] = (), tls: BrokerTls | None = None
) -> None:
    """Delete ``queues`` and then ``exchanges`` at ``url`` (a missing one is no error)."""
    connection = pika.BlockingConnection(node_parameters(url, tls))
    try:
        channel = connection.channel()
        for queue in dict.fromkeys(queues):
            channel.queue_delete(queue)
        for exchange in dict.fromkeys(exchanges):
            channel.exchange_delete(exchange)
    finally:
        connection.close()


def with_dead_letters(*queues: str) -> list[str]:
    """``queues`` and their dead-letter queues (``<queue>.dlq``), as the hub's clearing
    queues and the mainframe's MQ pair declare them."""
    return [name for queue in queues for name in (queue, f"{queue}.dlq")]


def _is_local_node(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme == "amqp"
        and parts.hostname in ("127.0.0.1", "localhost")
        and (parts.port or 5672) == 5672
        and parts.path in ("", "/", "/%2F", "/%2f")
    )


def leftover_queues(url: str, owned: dict[str, str]) -> dict[str, str] | None:
    """The queues of the local node called one of the ``owned`` names or prefixed
    ``<name>.``, each with the test that ``owned`` gives for its name; None when that cannot
    be known (another broker than the local node's default vhost, no ``rabbitmqctl``, or it
    did not answer within 30 s)."""
    rabbitmqctl = shutil.which("rabbitmqctl", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    timeout = shutil.which("timeout")
    if not owned or not _is_local_node(url) or rabbitmqctl is None or timeout is None:
        return None
    # rabbitmqctl can hang on a struggling node, and only SIGKILL ends it then.
    command = [timeout, "-s", "KILL", "30", rabbitmqctl, "list_queues", "name", "-q"]
    try:
        listed = subprocess.run(
            [*command, "--no-table-headers"], capture_output=True, text=True, timeout=40
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    leftover = {}
    for queue in (line.strip() for line in listed.stdout.splitlines()):
        stem = queue
        while stem and stem not in owned:
            stem = stem.rpartition(".")[0]
        if stem:
            leftover[queue] = owned[stem]
    return leftover
