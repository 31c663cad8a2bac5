"""What only the memory transport has to show: topic matching, its life cycle."""

from __future__ import annotations

import pytest

from routing.memory import MemoryTransport, topic_matches
from routing.transport import Outcome, RoutingError, as_batch_handler
from tests.routing.conftest import make_topology, message


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("financial.#", "financial", True),
        ("financial.#", "financial.request.acme", True),
        ("financial.*", "financial.request.acme", False),
        ("*.request.*", "financial.request.acme", True),
        ("#.acme", "financial.request.acme", True),
        ("#", "", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("a.b", "a.b.c", False),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


def test_a_transport_that_is_not_started_or_closed_refuses_work() -> None:
    transport = MemoryTransport("memory://", make_topology())
    with pytest.raises(RoutingError, match="not started"):
        transport.publish(message(1))
    transport.start()
    transport.start()  # idempotent
    consumer = transport.consume("core", as_batch_handler(lambda d: Outcome.ack()))
    transport.close()
    transport.close()
    assert consumer.stopping
    with pytest.raises(RoutingError, match="not started"):
        transport.publish(message(1))


def test_messages_wait_in_their_queue_until_consumed() -> None:
    with MemoryTransport("memory://", make_topology()) as transport:
        transport.publish(message(1))
        transport.publish(message(2))
        assert transport.queue_depth(transport.topology.queue("core")) == 2
