"""Every test runs with its own hub state directory, never the user's; at the end of the
session, no queue a test named on the development broker may be left (tests/broker.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pika.exceptions import AMQPError

from tests.broker import amqp_url, delete_queues, leftover_queues, owned_names
from tests.cluster import RabbitCluster, start_cluster
from tests.own_postgres import OwnPostgres, start_own_postgres
from tests.tls_broker import TlsBroker, start_tls_broker

_SETTINGS = (
    "ISOBRIDGE_VAULT_URL",
    "ISOBRIDGE_MASTER_KEYS",
    "ISOBRIDGE_KEY_FILE",
    "ISOBRIDGE_TOKEN_MODE",
    "ISOBRIDGE_JOURNAL_URL",
    "ISOBRIDGE_STORE_URL",
)


SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The shared reference data (official XSD samples, NIST vectors) sits beside the clone
    (``../shared``); without it the tests that check against it cannot run, so say so."""
    if not SHARED.is_dir():
        raise pytest.UsageError(
            f"the tests read the shared reference data at {SHARED} (../shared beside the clone)"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The queues the session's tests named (tests/broker.py) and left on the development
    broker: deleted, and the run failed, naming the tests (one ``rabbitmqctl`` call, made
    only when a test named queues there)."""
    url = amqp_url()
    leftover = leftover_queues(url, owned_names())
    if not leftover:
        return
    queues, tests = sorted(leftover), sorted(set(leftover.values()))
    try:
        delete_queues(url, queues)
        deleted = "now deleted"
    except (AMQPError, OSError) as exc:
        deleted = f"not deleted: {exc!r}"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [
        f"{len(queues)} queue(s) the tests named were left on the broker ({deleted}): "
        + ", ".join(queues[:8])
        + (" ..." if len(queues) > 8 else ""),
        "left by " + ", ".join(tests) + " (tests/broker.py: delete what a test declares)",
    ]
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "queues left on the broker", red=True)
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print("\n".join(lines))
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def isolated_hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ISOBRIDGE_HOME`` in the test's temporary directory; no other hub setting inherited."""
    home = tmp_path / "isobridge-home"
    monkeypatch.setenv("ISOBRIDGE_HOME", str(home))
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    """The three-node RabbitMQ cluster of the scale-out tests (tests/cluster.py), stopped at
    the end unless it ran before the session; ``ISOBRIDGE_KEEP_CLUSTER=1`` keeps it."""
    cluster = start_cluster()
    yield cluster
    if cluster.started_here and not os.environ.get("ISOBRIDGE_KEEP_CLUSTER"):
        cluster.run("down")


@pytest.fixture
def cluster(rabbit_cluster: RabbitCluster) -> Iterator[RabbitCluster]:
    """The cluster with its three nodes running and reachable, before and after the test."""
    rabbit_cluster.heal()
    yield rabbit_cluster
    rabbit_cluster.heal()


@pytest.fixture(scope="session")
def tls_broker() -> Iterator[TlsBroker]:
    """The RabbitMQ node with a TLS 1.3 listener of the amqps:// tests (tests/tls_broker.py),
    stopped at the end unless it ran before the session; ``ISOBRIDGE_KEEP_TLS_BROKER=1``
    keeps it."""
    broker = start_tls_broker()
    yield broker
    if broker.started_here and not os.environ.get("ISOBRIDGE_KEEP_TLS_BROKER"):
        broker.run("down")


@pytest.fixture(scope="session")
def own_postgres() -> Iterator[OwnPostgres]:
    """The tests' own PostgreSQL server (tests/own_postgres.py), which a test may restart;
    stopped and deleted at the end unless it ran before the session (or
    ``ISOBRIDGE_KEEP_OWN_PG=1``)."""
    server = start_own_postgres()
    yield server
    if server.started_here and not os.environ.get("ISOBRIDGE_KEEP_OWN_PG"):
        server.run("down")
