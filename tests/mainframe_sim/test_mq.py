"""The RabbitMQ queue pair against the real broker (127.0.0.1:5672 unless
``ISOBRIDGE_TEST_AMQP_URL`` says otherwise; skipped without a broker, failed under CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from adapters.fixedwidth import RecordDecodeError
from mainframe_sim.faults import FaultPlan
from mainframe_sim.ledger import Ledger
from mainframe_sim.mq import MqResponder
from mainframe_sim.records import Records
from mainframe_sim.transactions import Reply
from tests.broker import delete_queues, own_name
from tests.mainframe_sim.samples import ANNA, request

AMQP_URL = os.environ.get("ISOBRIDGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
RECORDS = Records()


class Peer:
    """The hub's side of the queue pair: publishes requests, collects replies."""

    def __init__(self, connection: Any, request_queue: str, reply_queue: str) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self.request_queue = request_queue
        self.reply_queue = reply_queue

    def send(self, body: bytes, message_id: str, reply_to: str | None = None) -> None:
        self.channel.basic_publish(
            "", self.request_queue, body,
            pika.BasicProperties(message_id=message_id, reply_to=reply_to or self.reply_queue,
                                 delivery_mode=2),
        )  # fmt: skip

    def replies(
        self, count: int, queue: str | None = None, timeout: float = 30
    ) -> list[tuple[str, bytes]]:
        received: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(received) < count and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(
                queue or self.reply_queue, auto_ack=True
            )
            if method is None:
                self.connection.sleep(0.02)
                continue
            received.append((properties.correlation_id, body))
        return received


@pytest.fixture
def queues() -> Iterator[tuple[str, str, Any]]:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    except pika.exceptions.AMQPConnectionError:
        if os.environ.get("CI"):
            pytest.fail(f"no RabbitMQ at {AMQP_URL} (./scripts/test starts it)")
        pytest.skip(f"no RabbitMQ at {AMQP_URL}")
    request_queue, reply_queue = own_name("mfsim-test.req", 10), own_name("mfsim-test.rep", 10)
    try:
        yield request_queue, reply_queue, connection
    finally:
        try:
            connection.close()
        finally:
            delete_queues(AMQP_URL, (request_queue, reply_queue))


@pytest.fixture
def responder(ledger: Ledger, queues: tuple[str, str, Any]) -> Iterator[MqResponder]:
    request_queue, reply_queue, _ = queues
    running = MqResponder(
        ledger, AMQP_URL, request_queue=request_queue, reply_queue=reply_queue, records=RECORDS,
        connection_name=f"mfsim-test-{request_queue}",
    )  # fmt: skip
    running.start()
    assert running.ready.wait(30)
    yield running
    running.stop()


def peer(queues: tuple[str, str, Any]) -> Peer:
    request_queue, reply_queue, connection = queues
    return Peer(connection, request_queue, reply_queue)


def decode(body: bytes) -> Reply:
    return RECORDS.decode_reply(body)


def test_requests_are_answered_on_reply_to_with_the_correlation_id(
    ledger: Ledger, queues: tuple[str, str, Any], responder: MqResponder
) -> None:
    hub = peer(queues)
    debit = RECORDS.encode_request(request("DEBT", "M1", amount="10"))
    hub.send(RECORDS.encode_request(request("BALQ", "Q1")), "msg-1")
    hub.send(debit, "msg-2")
    hub.send(debit, "msg-3")  # a redelivered / repeated request
    hub.send(b"\x40" * 120, "msg-4")
    replies = dict(hub.replies(4))
    assert sorted(replies) == ["msg-1", "msg-2", "msg-3", "msg-4"]
    assert decode(replies["msg-1"]).ledger_balance == 112345
    assert decode(replies["msg-2"]).result_code == "00"
    assert replies["msg-3"] == replies["msg-2"]
    bad = decode(replies["msg-4"])
    assert (bad.result_code, bad.reason_text) == ("30", "record length 120, expected 200")
    assert ledger.balances(ANNA) == (111345, 111345, "EUR")
    assert ledger.check().balanced


def test_a_request_without_reply_to_is_answered_on_the_pairs_reply_queue(
    queues: tuple[str, str, Any], responder: MqResponder
) -> None:
    request_queue, reply_queue, connection = queues
    channel = connection.channel()
    channel.basic_publish("", request_queue, RECORDS.encode_request(request("BALQ", "Q1")),
                          pika.BasicProperties(correlation_id="corr-9"))  # fmt: skip
    [(correlation_id, body)] = peer(queues).replies(1, reply_queue)
    assert correlation_id == "corr-9"
    assert decode(body).result_code == "00"


def test_dropped_and_garbage_replies_over_mq(
    ledger: Ledger, queues: tuple[str, str, Any], responder: MqResponder
) -> None:
    hub = peer(queues)
    responder.faults.set(FaultPlan.parse("drop=1"))
    hub.send(RECORDS.encode_request(request("CRDT", "M1", amount="1")), "msg-1")
    deadline = time.monotonic() + 30
    while responder.requests < 1 and time.monotonic() < deadline:  # handled, reply dropped
        time.sleep(0.02)
    assert responder.requests == 1
    responder.faults.set(FaultPlan.parse("garbage=1"))
    hub.send(RECORDS.encode_request(request("CRDT", "M1", amount="1")), "msg-2")
    [(correlation_id, body)] = hub.replies(1)
    assert correlation_id == "msg-2"
    with pytest.raises(RecordDecodeError, match="CB-RP-LEDGER-BALANCE"):
        decode(body)
    responder.faults.set(FaultPlan())
    assert ledger.balances(ANNA) == (112445, 112445, "EUR")


def test_down_leaves_requests_queued_until_it_is_cleared(
    queues: tuple[str, str, Any], responder: MqResponder
) -> None:
    hub = peer(queues)
    responder.faults.set(FaultPlan.parse("down=on"))
    assert responder.paused.wait(30)
    hub.send(RECORDS.encode_request(request("BALQ", "Q1")), "msg-1")
    assert hub.replies(1, timeout=0.5) == []
    responder.faults.set(FaultPlan())
    assert [cid for cid, _ in hub.replies(1)] == ["msg-1"]


def test_a_disconnect_redelivers_and_the_posting_is_applied_once(
    ledger: Ledger, queues: tuple[str, str, Any], responder: MqResponder
) -> None:
    hub = peer(queues)
    responder.faults.set(FaultPlan.parse("disconnect=1"))
    hub.send(RECORDS.encode_request(request("DEBT", "M1", amount="10")), "msg-1")
    deadline = time.monotonic() + 30
    while responder.connections < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    responder.faults.set(FaultPlan())
    [(correlation_id, body)] = hub.replies(1)
    assert (correlation_id, decode(body).result_code) == ("msg-1", "00")
    assert responder.connections >= 2
    assert ledger.balances(ANNA) == (111345, 111345, "EUR")


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
def test_the_responder_reconnects_after_the_broker_closes_its_connection(
    queues: tuple[str, str, Any], responder: MqResponder
) -> None:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    pids = [
        line.split("\t")[0]
        for line in listed.stdout.splitlines()
        if responder.connection_name in line
    ]
    subprocess.run(["rabbitmqctl", "-q", "close_connection", pids[0], "test"],
                   capture_output=True, check=True, timeout=60)  # fmt: skip
    deadline = time.monotonic() + 30
    while responder.connections < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert responder.connections == 2
    hub = peer(queues)
    hub.send(RECORDS.encode_request(request("BALQ", "Q1")), "msg-1")
    assert [cid for cid, _ in hub.replies(1)] == ["msg-1"]
