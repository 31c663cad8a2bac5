"""The session's check for queues left on the development broker (tests/broker.py), on it."""

from __future__ import annotations

import os

import pika
import pytest

from tests.broker import (
    amqp_url,
    delete_queues,
    leftover_queues,
    own_name,
    owned_names,
    with_dead_letters,
)
from tests.routing.conftest import require_broker


def test_a_queue_under_an_owned_name_is_found_with_its_test_until_deleted() -> None:
    url = amqp_url()
    require_broker(url)
    name, other = own_name("test.broker"), own_name("test.broker")
    this_test = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]
    assert owned_names()[name] == this_test
    unowned = f"{name}x"  # the name's prefix, but not under it
    declared = [f"{name}.dlq", f"{name}.core.shard3.retry.1000ms", unowned]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in declared:
            channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        left = leftover_queues(url, {name: this_test, other: "another test"})
        if left is None:
            reason = "rabbitmqctl cannot list the local node's queues"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        assert left == {f"{name}.dlq": this_test, f"{name}.core.shard3.retry.1000ms": this_test}
    finally:
        connection.close()
        delete_queues(url, [*declared, *with_dead_letters(name)])
    assert leftover_queues(url, {name: this_test}) == {}


def test_another_broker_than_the_local_node_is_not_checked() -> None:
    assert leftover_queues("amqp://guest:guest@10.0.0.9:5672/%2F", {"t0": "a test"}) is None
    assert leftover_queues("amqp://guest:guest@127.0.0.1:5673/%2F", {"t0": "a test"}) is None
    assert leftover_queues("amqp://guest:guest@127.0.0.1:5672/other", {"t0": "a test"}) is None
    assert leftover_queues(amqp_url(), {}) is None
