"""The hub's Prometheus metrics, scraped over HTTP from a real hub.

A running :class:`hub.service.HubService` (memory and a real RabbitMQ) with ``[metrics]``,
an ISO 8583 client built on py8583 (not our adapter), a real ``mainframe_sim`` core: the
exposition, read with prometheus_client's own parser, must have moved by exactly the traffic
sent; a malformed message is a decode error, an unroutable one a dead-letter, a killed core
an open circuit breaker; no card number anywhere. The transport's retries and dead-letters
run through a real memory transport; the console's snapshot through a real registry.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from canonical_model.messages import CanonicalMessage, Identifiers, MessageFunction, MessageKind
from canonical_model.pan import find_clear_pans
from hub.breaker import CircuitBreaker
from hub.config_file import load_config
from hub.service import HubService
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from observability.metrics import (
    HubMetrics,
    multiprocess_registry,
    parse_listen,
    snapshot,
    throughput,
    worker_exited,
)
from routing.memory import MemoryTransport
from routing.transport import Delivery, Destination, Outcome, RetryPolicy, Topology
from tests.hub.test_edge import Client, _build, _parse
from tests.hub.test_service import OFF_US_PAN, PAN, _purchase
from tests.mainframe_sim.samples import ANNA
from tests.routing.conftest import amqp_url, hub_namespace, require_broker
from tests.support import on_event_loop

RULES = """
[fallback]
dead_letter = "no rule for this card"

[[rule]]
name = "visa"
destination = "core"
bin = ["400000-499999"]
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(address: tuple[str, int]) -> tuple[str, Samples]:
    """``GET /metrics``: the text and its samples, parsed by prometheus_client."""
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name{labels}``; 0 when the series is absent (a counter never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def _config(tmp_path: Path, mainframe_port: int, transport: str, namespace: str) -> Path:
    (tmp_path / "routes.toml").write_text(RULES)
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\ntenant = "bank-a"\n'
        f'[routing]\ntransport = "{transport}"\nrules = "routes.toml"\n'
        f'namespace = "{namespace}"\n'
        '[[listeners]]\nname = "pos"\nport = 0\nrequest_timeout = 5.0\n'
        f"[mainframe]\nport = {mainframe_port}\ntimeout = 2.0\nconnections = 1\n"
        "failure_threshold = 2\nreset_after = 60.0\n"
        '[metrics]\nlisten = "127.0.0.1:0"\n'
    )
    return path


def _malformed(stan: int) -> bytes:
    """A 0200 whose MTI is readable and whose amount is not a number; no card number, so
    nothing is tokenized before the adapter gives up."""
    fields = {3: "000000", 4: "000000000100", 11: f"{stan:06d}", 41: "TERM0001", 49: "978"}
    return _build("0200", fields).replace(b"000000000100", b"00000000010X")


@pytest.mark.parametrize("transport", ["memory", "amqp"])
def test_a_real_hub_counts_exactly_the_traffic_it_served(tmp_path: Path, transport: str) -> None:
    url = "memory://"
    if transport == "amqp":
        url = amqp_url()
        require_broker(url)

    @on_event_loop
    async def scenario(namespace: str) -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, port = await server.start("127.0.0.1", 0)
        config = load_config(_config(tmp_path, port, url, namespace), environ={})
        try:
            async with HubService(config) as service:
                assert service.metrics_server is not None
                address = service.metrics_server.address
                client = await Client.connect(service.edges[0].port)
                for stan in range(1, 6):
                    await client.send(_purchase(stan, 100 + stan, ANNA))
                    assert _parse(await client.receive())[1][39] == "00"
                await client.send(_purchase(6, 100, ANNA, pan=OFF_US_PAN))
                assert _parse(await client.receive())[1][39] == "92"
                await client.send(_malformed(7))
                assert _parse(await client.receive())[1][39] == "30"
                text, served = await asyncio.to_thread(scrape, address)

                await server.close()  # the core goes away: two failures open the breaker
                codes = []
                for stan in range(8, 11):
                    await client.send(_purchase(stan, 100, ANNA))
                    codes.append(_parse(await client.receive())[1][39])
                killed_text, killed = await asyncio.to_thread(scrape, address)
                await client.close()
        finally:
            await server.close()
            ledger.close()

        adapter = {"adapter": "iso8583:ascii"}
        request = {**adapter, "message_type": "financial.request"}
        response = {**adapter, "message_type": "financial.response"}
        assert value(served, "isobridge_adapter_decode_total", **request) == 6
        assert value(served, "isobridge_adapter_decode_errors_total", **adapter) == 1
        assert value(served, "isobridge_adapter_decode_seconds_count", **adapter) == 7
        assert value(served, "isobridge_adapter_encode_total", **response) == 6
        assert value(served, "isobridge_adapter_encode_errors_total", **adapter) == 0
        assert (
            value(served, "isobridge_destination_dead_letters_total", destination="unroutable") == 1
        )
        assert value(served, "isobridge_destination_retries_total", destination="core") == 0
        assert (
            value(served, "isobridge_vault_operations_total", operation="tokenize", outcome="ok")
            == 6
        )
        assert value(served, "isobridge_vault_operation_seconds_count", operation="tokenize") == 6
        assert value(served, "isobridge_edge_request_seconds_count", listener="pos") == 7
        assert value(served, "isobridge_edge_in_flight", listener="pos") == 0
        assert value(served, "isobridge_edge_connections", listener="pos") == 1
        assert value(served, "isobridge_edge_connections_accepted_total", listener="pos") == 1
        assert value(served, "isobridge_circuit_breaker_state", breaker="mainframe") == 0
        assert value(served, "isobridge_transport_up") == 1
        assert ("isobridge_destination_queue_depth", frozenset({("destination", "core")})) in served
        depth = value(
            served, "isobridge_destination_dead_letter_queue_depth", destination="unroutable"
        )
        assert depth == 1  # the namespace's own unroutable queue

        assert codes == ["91", "91", "91"]
        assert value(killed, "isobridge_circuit_breaker_state", breaker="mainframe") == 2
        assert value(killed, "isobridge_circuit_breaker_opened_total", breaker="mainframe") == 1
        assert value(killed, "isobridge_adapter_decode_total", **request) == 9
        assert value(killed, "isobridge_edge_request_seconds_count", listener="pos") == 10

        for exposition, samples in ((text, served), (killed_text, killed)):
            assert PAN not in exposition and OFF_US_PAN not in exposition
            # Sample values are floats whose digits may pass Luhn by chance: scan the labels.
            labels = " ".join(v for _, pairs in samples for _, v in pairs)
            assert labels and not find_clear_pans(labels)

    with hub_namespace(url, rules=RULES) as namespace:
        scenario(namespace)


def test_retries_and_dead_letters_of_a_real_transport_are_counted_per_destination() -> None:
    metrics = HubMetrics()
    topology = Topology((Destination("core", ("financial.#",), retry=RetryPolicy((5,), 3)),))
    attempts: list[int] = []
    done = threading.Event()

    def always_fails(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        attempts.extend(d.attempt for d in deliveries)
        if len(attempts) == 3:
            done.set()
        return [Outcome.retry("core busy")] * len(deliveries)

    message = CanonicalMessage(
        MessageKind.FINANCIAL, MessageFunction.REQUEST, "acme", Identifiers("m-1")
    )
    with MemoryTransport("memory://", topology, observer=metrics) as transport:
        consumer = transport.consume("core", always_fails)
        transport.publish(message)
        assert done.wait(10)
        deadline = time.monotonic() + 10
        while not transport.dead_letters("core") and time.monotonic() < deadline:
            time.sleep(0.01)
        consumer.stop()
        transport.publish(message, "statement.request.acme")  # no queue is bound
        parked = len(transport.dead_letters("core"))
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }
    assert attempts == [1, 2, 3] and parked == 1
    assert value(samples, "isobridge_destination_retries_total", destination="core") == 2
    assert value(samples, "isobridge_destination_dead_letters_total", destination="core") == 1
    assert value(samples, "isobridge_destination_dead_letters_total", destination="unroutable") == 1


def test_a_breaker_is_followed_through_every_state() -> None:
    now = [0.0]
    metrics = HubMetrics()
    breaker = CircuitBreaker("core", failure_threshold=1, reset_after=5.0, clock=lambda: now[0])
    metrics.watch_breaker(breaker)

    def state() -> float | None:
        return metrics.registry.get_sample_value(
            "isobridge_circuit_breaker_state", {"breaker": "core"}
        )

    assert state() == 0
    breaker.record_failure()
    assert state() == 2
    now[0] = 5.0
    assert breaker.allow()  # the probe: half-open from now on
    assert state() == 1
    breaker.record_success()
    assert state() == 0
    assert (
        metrics.registry.get_sample_value(
            "isobridge_circuit_breaker_opened_total", {"breaker": "core"}
        )
        == 1
    )


def test_the_console_snapshot_gives_throughput_and_latency() -> None:
    metrics = HubMetrics()
    edge = metrics.edge("pos")
    clock = [100.0]
    before = snapshot(metrics.registry, now=lambda: clock[0])
    for latency in [0.002] * 90 + [0.2] * 10:
        edge.request_started()
        edge.request_finished(latency)
    edge.request_started()  # one still in flight
    clock[0] = 110.0
    after = snapshot(metrics.registry, now=lambda: clock[0])
    assert (after.requests, after.in_flight) == (100, 1)
    assert throughput(before, after) == 10.0
    p50 = after.latency_quantile(0.5, since=before)
    p99 = after.latency_quantile(0.99, since=before)
    assert p50 is not None and 0.001 < p50 <= 0.0025  # the bucket holding 0.002
    assert p99 is not None and 0.1 < p99 <= 0.25  # the bucket holding 0.2
    assert before.latency_quantile(0.5) is None


def test_the_multiprocess_registry_sums_the_value_files(tmp_path: Path) -> None:
    """The files of two processes (as the workers write them) summed; the supervisor's
    registry, read without any process of its own writing."""
    import subprocess
    import sys

    program = (
        "from observability.metrics import HubMetrics\n"
        "m = HubMetrics()\n"
        "m.dead_lettered('core')\n"
        "m.edge('pos').connection_opened()\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(root)}
    pids = []
    for _ in range(2):
        process = subprocess.Popen([sys.executable, "-c", program], env=env, cwd=root)
        assert process.wait(60) == 0
        pids.append(process.pid)
    registry = multiprocess_registry(tmp_path)
    dead = ("isobridge_destination_dead_letters_total", {"destination": "core"})
    connections = ("isobridge_edge_connections", {"listener": "pos"})
    assert registry.get_sample_value(*dead) == 2
    assert registry.get_sample_value(*connections) == 2
    worker_exited(pids[0], tmp_path)  # the supervisor saw it exit: its gauges go
    assert registry.get_sample_value(*dead) == 2  # its counters stay
    assert registry.get_sample_value(*connections) == 1


def test_listen_addresses() -> None:
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", "host:", "host:99999", "host:x"):
        with pytest.raises(ValueError, match=r"host:port|outside"):
            parse_listen(bad)


def test_the_registry_is_one_per_hub() -> None:
    first, second = HubMetrics(), HubMetrics(CollectorRegistry())
    first.dead_lettered("core")
    assert second.registry.get_sample_value(
        "isobridge_destination_dead_letters_total", {"destination": "core"}
    ) in (None, 0.0)


def test_a_metrics_address_in_use_is_named() -> None:
    import socket

    from observability.metrics import serve_metrics

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"metrics on 127.0.0.1:{port}: Address already in use"):
            serve_metrics(f"127.0.0.1:{port}", CollectorRegistry())
