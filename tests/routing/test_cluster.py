"""The amqp transport on a three-node RabbitMQ cluster (tests/cluster.py): quorum queues with
a member on every node, a stream of messages that goes on while the node the transport is
connected to is killed -9 (in both I/O modes) or cut off from its clients, and the order of a
single-active-consumer destination kept across two instances when the active one dies. Each
ends with every message applied exactly once through the inbox (tests/routing/effects.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from routing.amqp import AmqpTransport
from routing.transport import (
    Consumer,
    Delivery,
    Outcome,
    Outgoing,
    PublishNackedError,
    PublishTimeoutError,
)
from routing.wire import encode
from tests.cluster import NODES, RabbitCluster
from tests.routing.conftest import LoopThread, delete_topology, make_topology, message, wait_until
from tests.routing.effects import EffectStore

REPO_ROOT = Path(__file__).resolve().parents[2]
TOTAL = 4_000
BATCH = 50


def _iptables_works() -> bool:
    """Root, iptables installed, and allowed to change the rules here (a container may lack
    the capability)."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return False
    probe = subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True, check=False)
    return probe.returncode == 0


# A partition is iptables dropping every packet of the node's AMQP port where that works;
# elsewhere the node's RabbitMQ application is stopped instead (the test id says which).
PARTITION = "iptables" if _iptables_works() else "stop_app"


def test_quorum_queues_have_a_member_on_every_node(cluster: RabbitCluster) -> None:
    topology = make_topology()
    transport = AmqpTransport(cluster.url, topology, quorum_group_size=len(NODES))
    try:
        transport.start(timeout=30)
        for name in (topology.queue("core"), topology.dead_letter_queue("core")):
            assert cluster.quorum_members(name) == [f"{node}@localhost" for node in NODES]
    finally:
        transport.close()
        delete_topology(cluster.node_url("ib1"), topology)


def _publish(transport: AmqpTransport, faulted: threading.Event, errors: list[str]) -> None:
    """TOTAL messages in paced batches, like an outbox relay: a batch not confirmed in time,
    or nacked still after the transport's own retries, is published again (the inbox drops
    the duplicates). After the first half it waits until
    the fault has happened, so that part of the stream goes out after it."""
    try:
        for start in range(0, TOTAL, BATCH):
            if start == TOTAL // 2:
                faulted.wait(timeout=120)
            batch = [
                Outgoing(encode(message(i)), "financial.request.acme")
                for i in range(start, start + BATCH)
            ]
            for _ in range(10):
                try:
                    transport.publish_batch(batch, timeout=30)
                    break
                except (PublishTimeoutError, PublishNackedError):
                    continue
            else:
                errors.append(f"batch at {start} never confirmed")
                return
            time.sleep(0.005)
    except Exception as exc:  # reported by the test, not lost in a thread
        errors.append(repr(exc))


def _stream_through_fault(
    cluster: RabbitCluster,
    tmp_path: Path,
    io: str,
    fault: Callable[[AmqpTransport, str], None],
    query: str = "",
) -> tuple[AmqpTransport, str]:
    """Stream TOTAL messages through the cluster, ``fault(transport, node)`` on the node the
    transport is connected to once a quarter is consumed; the transport and that node."""
    topology = make_topology()
    store = EffectStore(tmp_path / "effects.db")
    transport = AmqpTransport(
        cluster.url + query, topology, reconnect_delays=(0.1, 0.2, 0.5), quorum_group_size=3
    )
    loop = LoopThread() if io == "loop" else None
    try:
        consumer: Consumer
        if loop is None:
            transport.start(timeout=30)
            consumer = transport.consume("core", store.handle, prefetch=500, batch_size=100)
        else:

            async def handle(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
                return store.handle(deliveries)

            loop.run(transport.start_async(timeout=30))
            consumer = loop.run(
                transport.consume_async("core", handle, prefetch=500, batch_size=100)
            )
        faulted = threading.Event()
        errors: list[str] = []
        publisher = threading.Thread(target=_publish, args=(transport, faulted, errors))
        publisher.start()
        wait_until(lambda: store.count() >= TOTAL // 4, timeout=60, what="a quarter consumed")
        connected = transport.connected_node
        assert connected is not None
        node = cluster.node_at(connected[1])
        fault(transport, node)
        faulted.set()
        publisher.join(timeout=240)
        assert not publisher.is_alive()
        assert errors == []
        wait_until(lambda: store.count() >= TOTAL, timeout=180, what="every effect")
        time.sleep(0.5)  # any straggling duplicate gets its chance to be (wrongly) applied
        consumer.stop()
        applied = store.applied()
        assert set(applied) == {f"m-{i}" for i in range(TOTAL)}, "lost messages"
        assert set(applied.values()) == {1}, "an effect applied twice"
        now = transport.connected_node
        assert now is not None and cluster.node_at(now[1]) != node, "not failed over"
        assert transport.dead_letters("core") == []
        return transport, node
    finally:
        transport.close()
        if loop is not None:
            loop.close()
        store.close()
        cluster.heal()
        delete_topology(cluster.node_url("ib1"), topology)


@pytest.mark.parametrize("io", ["thread", "loop"])
def test_killing_the_connected_node_mid_stream_loses_nothing_applies_nothing_twice(
    cluster: RabbitCluster, tmp_path: Path, io: str
) -> None:
    def kill_with_messages_in_flight(transport: AmqpTransport, node: str) -> None:
        # Frozen first, so that messages are on the wire, unconfirmed, when it dies.
        cluster.freeze(node)
        wait_until(lambda: transport.unconfirmed_count > 0, what="unconfirmed messages")
        cluster.kill(node)

    transport, _ = _stream_through_fault(cluster, tmp_path, io, kill_with_messages_in_flight)
    assert transport.republished_count > 0


@pytest.mark.parametrize("how", [PARTITION])
def test_a_node_cut_off_from_its_clients_mid_stream_loses_nothing(
    cluster: RabbitCluster, tmp_path: Path, how: str
) -> None:
    """A cut that sends nothing (no FIN, no RST) is seen only by the heartbeats: 2 s here."""

    def cut_off(transport: AmqpTransport, node: str) -> None:
        if how == "iptables":
            cluster.block(node)
        else:
            cluster.stop_app(node)

    _stream_through_fault(cluster, tmp_path, "thread", cut_off, query="?heartbeat=2")


def test_a_single_active_consumer_keeps_the_order_across_instances_when_one_dies(
    cluster: RabbitCluster, tmp_path: Path
) -> None:
    """Instance A (a process of its own) is the active consumer; instance B waits, receiving
    nothing; A is killed -9 after committing its 8th batch of 50, before the acks. B takes
    over with the deliveries A held: the effects are applied in queue order, each once."""
    topology = make_topology(single_active_consumer=True)
    db = tmp_path / "effects.db"
    total = 600
    transport = AmqpTransport(cluster.url, topology)
    instance_a: subprocess.Popen[str] | None = None
    store = EffectStore(db)
    try:
        transport.start(timeout=30)
        items = [Outgoing(encode(message(i)), "financial.request.acme") for i in range(total)]
        transport.publish_batch(items)
        instance_a = subprocess.Popen(
            [sys.executable, "-m", "tests.routing.crash_consumer", cluster.url,
             topology.prefix, str(db), "8", "0.5", "sac"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_until(lambda: store.count() > 0, timeout=60, what="instance A consuming")
        consumer_b = transport.consume("core", store.handle, prefetch=100, batch_size=50)
        time.sleep(1.0)  # B's chance to receive something (wrongly) while A is active
        assert instance_a.poll() is None, "instance A ended too soon for this test"
        assert store.deliveries == 0, "instance B received while A was the active consumer"
        _, stderr = instance_a.communicate(timeout=120)
        assert instance_a.returncode == -9, stderr
        wait_until(lambda: store.count() >= total, timeout=60, what="every effect")
        consumer_b.stop()
        with contextlib.closing(sqlite3.connect(db)) as read:
            order = [row[0] for row in read.execute("SELECT message_id FROM effect ORDER BY rowid")]
        assert order == [f"m-{i}" for i in range(total)], "applied out of order"
        assert set(store.applied().values()) == {1}
        assert store.duplicates >= 50  # the batch whose acks died with A came again, skipped
    finally:
        if instance_a is not None and instance_a.poll() is None:
            instance_a.kill()
            instance_a.wait()
        transport.close()
        store.close()
        delete_topology(cluster.node_url("ib1"), topology)
