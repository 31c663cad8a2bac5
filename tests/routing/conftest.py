"""Fixtures of the routing tests: both transports, on a topology of their own per test.

The amqp transport runs against the RabbitMQ that ``scripts/test`` starts on 127.0.0.1:5672
(``$ISOBRIDGE_TEST_AMQP_URL`` to use another). Each test declares its own exchanges and queues
under a unique prefix and deletes them afterwards, so tests never see each other's messages
(nor other users' of that broker).

The inbox and outbox tests run on SQLite (a file) and PostgreSQL (a schema each): PostgreSQL
comes from ``ISOBRIDGE_TEST_POSTGRES_URL`` as in ``tests/vault/conftest.py``; each test gets
a fresh schema of its own (``r_<hex>``), so it never meets the vault's tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, create_engine, text

from canonical_model.messages import CanonicalMessage, Identifiers, MessageFunction, MessageKind
from canonical_model.money import Money
from hub.config import Settings
from hub.config_file import HubConfig, RoutingConfig
from hub.service import HubService
from routing.amqps import BrokerTls
from routing.store import create_engine as routing_engine
from routing.store import upgrade
from routing.transport import Destination, RetryPolicy, Topology, Transport, open_transport
from tests.broker import amqp_url as amqp_url  # re-exported: the tests import it from here
from tests.broker import delete_queues, own_name
from tests.support import postgres_url

TENANT = "acme"
T = TypeVar("T")


def require_broker(url: str) -> None:
    """Fail (not skip) when the broker is not there: scripts/test starts it."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2).close()
    except OSError as exc:
        pytest.fail(f"no RabbitMQ at {parts.hostname}:{parts.port} ({exc}); run ./scripts/test")


def make_topology(**destination_options: object) -> Topology:
    """A topology under a fresh prefix: destination ``core`` (financial.*) and ``ledger``."""
    return make_topology_named(own_name("t", 10), **destination_options)


def make_topology_named(prefix: str, **destination_options: object) -> Topology:
    """:func:`make_topology` under a given prefix (another process's view of it)."""
    fast = RetryPolicy((50, 100), max_attempts=3)
    core = Destination("core", ("financial.#", "authorization.#"), retry=fast)
    core = replace(core, **destination_options)  # type: ignore[arg-type]
    ledger = Destination("ledger", ("credit_transfer.#",), retry=fast)
    return Topology(
        (core, ledger),
        exchange=f"{prefix}.canonical",
        dead_letter_exchange=f"{prefix}.dlx",
        prefix=prefix,
    )


def topology_queues(topology: Topology) -> list[str]:
    """Every queue ``topology`` declares: each destination's, its dead-letter queue and its
    retry (delay tier) queues, and the unroutable parking queue."""
    queues = [topology.unroutable_queue]
    for dest in topology.destinations:
        queues += [topology.queue(dest.name), topology.dead_letter_queue(dest.name)]
        queues += [topology.retry_queue(dest.name, d) for d in dict.fromkeys(dest.retry.delays_ms)]
    return queues


def delete_topology(
    url: str,
    topology: Topology,
    extra_queues: tuple[str, ...] = (),
    tls: BrokerTls | None = None,
) -> None:
    """Remove every queue and exchange of ``topology`` from the broker."""
    delete_queues(
        url,
        [*topology_queues(topology), *extra_queues],
        (topology.exchange, topology.dead_letter_exchange),
        tls,
    )


def message(number: int, kind: MessageKind = MessageKind.FINANCIAL) -> CanonicalMessage:
    return CanonicalMessage(
        kind,
        MessageFunction.REQUEST,
        TENANT,
        Identifiers(f"m-{number}"),
        amount=Money.of(f"{number}.00", "EUR"),
    )


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "it") -> None:
    """Wait for ``condition``; fail the test after ``timeout`` seconds (never hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


class Recorder:
    """A thread-safe list of what handlers saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[object] = []

    def add(self, item: object) -> None:
        with self.lock:
            self.items.append(item)

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)

    def snapshot(self) -> list[object]:
        with self.lock:
            return list(self.items)


def open_started(url: str, topology: Topology, **options: object) -> Transport:
    transport = open_transport(url, topology, **options)
    transport.start(timeout=20)
    return transport


class LoopThread:
    """An asyncio event loop on a thread of its own, as the hub runs one: a transport started
    on it with ``start_async`` does its I/O there, and the test drives it from outside."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[object, object, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def open_started_on_loop(
    url: str, topology: Topology, loop: LoopThread, **options: object
) -> Transport:
    transport = open_transport(url, topology, **options)
    loop.run(transport.start_async(timeout=20))
    return transport


BACKENDS = ("memory", "amqp", "amqp-loop", "amqps", "amqps-loop")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every behaviour test runs against each backend (``amqp-loop``: the amqp transport
    doing its I/O on an event loop, driven through its blocking methods from outside;
    ``amqps``: over TLS 1.3 with the hub's client certificate, to the tests' TLS node)."""
    return str(request.param)


def broker_for(backend: str, request: pytest.FixtureRequest) -> tuple[str, BrokerTls | None]:
    """The URL of ``backend``'s broker and its TLS settings (the TLS node started on first
    use: tests/tls_broker.py)."""
    if backend == "memory":
        return "memory://", None
    if backend.startswith("amqps"):
        broker = request.getfixturevalue("tls_broker")
        return broker.url, broker.tls()
    url = amqp_url()
    require_broker(url)
    return url, None


@pytest.fixture
def topology() -> Topology:
    return make_topology()


@pytest.fixture
def transport_factory(
    backend: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[Topology], Transport]]:
    """Opens started transports of the backend; closes them and removes their topology."""
    url, tls = broker_for(backend, request)
    options: dict[str, object] = {"tls": tls} if tls is not None else {}
    opened: list[Transport] = []
    # Memory transports are per process: the same topology shares one broker object.
    shared: dict[Topology, Transport] = {}
    loop = LoopThread() if backend.endswith("-loop") else None

    def factory(topology: Topology) -> Transport:
        if backend == "memory" and topology in shared:
            return shared[topology]
        if loop is not None:
            transport = open_started_on_loop(url, topology, loop, **options)
        else:
            transport = open_started(url, topology, **options)
        opened.append(transport)
        shared[topology] = transport
        return transport

    try:
        yield factory
    finally:
        try:
            for transport in reversed(opened):
                transport.close()
            if loop is not None:
                loop.close()
        finally:
            if backend != "memory":
                for topology in {t.topology for t in opened}:
                    delete_topology(url, topology, tls=tls)


@pytest.fixture
def transport(transport_factory: Callable[[Topology], Transport], topology: Topology) -> Transport:
    return transport_factory(topology)


# -- databases of the inbox and outbox tests ---------------------------------------------

EngineFactory = Callable[[], Engine]


@pytest.fixture(params=["sqlite", "postgresql"])
def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineFactory]:
    """Builds engines on one migrated database (several may share it, like processes)."""
    engines: list[Engine] = []
    admin: Engine | None = None
    schema = f"r_{secrets.token_hex(6)}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'routing.db'}"
        options: dict[str, object] = {}
    else:
        url = postgres_url()
        admin = create_engine(url)
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        options = {"connect_args": {"options": f"-csearch_path={schema}"}}

    def build() -> Engine:
        engine = routing_engine(url, **options)
        engines.append(engine)
        return engine

    upgrade(build())
    try:
        yield build
    finally:
        for engine in engines:
            engine.dispose()
        if admin is not None:
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    """One engine on the test's migrated database."""
    return make_engine()


def hub_topology(namespace: str, rules: str | None = None, core_shards: int = 0) -> Topology:
    """The topology a hub declares in ``[routing] namespace`` with these route ``rules``
    (TOML text; None: the built-in ones) and ``core_shards``."""
    with tempfile.TemporaryDirectory(prefix="isobridge-rules-") as directory:
        path = None
        if rules is not None:
            path = Path(directory) / "routes.toml"
            path.write_text(rules)
        routing = RoutingConfig(
            "memory://", rules=path, namespace=namespace, core_shards=core_shards
        )
        return HubService(HubConfig(Settings.from_environment({}), routing=routing)).topology


@contextlib.contextmanager
def hub_namespace(
    url: str, tls: BrokerTls | None = None, *, rules: str | None = None, core_shards: int = 0
) -> Iterator[str]:
    """A ``[routing] namespace`` of one test's own on the shared broker (no other test's hub
    consumes its messages, and no message left over from another test reaches it), with the
    queues and exchanges deleted afterwards that a hub declares there with these route
    ``rules`` and ``core_shards`` (:func:`hub_topology`): give the ones the test's hubs run
    with, or the session's check (tests/broker.py) finds their queues left over."""
    namespace = own_name("t", 12)
    try:
        yield namespace
    finally:
        if url.startswith("amqp"):
            delete_topology(url, hub_topology(namespace, rules, core_shards), tls=tls)
