"""The clearing queue pair on a real RabbitMQ, through the running hub and mainframe_sim."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pika
import pytest

from hub.clearing_outgoing import ClearingOutgoing
from hub.config_file import load_config
from hub.service import HubService
from hub.tls import client_context
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from routing.amqp import node_parameters
from routing.amqps import BrokerTls
from tests.broker import delete_queues, own_name, with_dead_letters
from tests.certs import TestAuthority
from tests.hub.test_clearing import _transfers
from tests.mainframe_sim.samples import ANNA
from tests.routing.conftest import amqp_url, require_broker
from tests.support import on_event_loop
from tests.tls_broker import TlsBroker


def _get(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> bytes:
    for _ in range(300):
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            assert isinstance(body, bytes)
            return body
        channel.connection.sleep(0.05)
    raise AssertionError(f"nothing on {queue}")


def test_pacs008_over_the_queue_is_credited_and_answered(tmp_path: Path) -> None:
    url = amqp_url()
    require_broker(url)
    inbound, outbound = own_name("test.clearing.in"), own_name("test.clearing.out")

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, port = await server.start("127.0.0.1", 0)
        toml = tmp_path / "hub.toml"
        toml.write_text(
            f'[hub]\nhome = "{tmp_path / "home"}"\ntenant = "bank-a"\n'
            f"[mainframe]\nport = {port}\n"
            f'[clearing]\nurl = "{url}"\ninbound = "{inbound}"\noutbound = "{outbound}"\n'
        )
        before = ledger.balances(ANNA)
        try:
            async with HubService(load_config(toml, environ={})):
                connection = pika.BlockingConnection(pika.URLParameters(url))
                channel = connection.channel()
                for message_id, body in (("DOC-1", _transfers()), ("DOC-2", b"not xml")):
                    channel.basic_publish(
                        "", inbound, body,
                        pika.BasicProperties(message_id=message_id, delivery_mode=2),
                    )  # fmt: skip
                reports = await asyncio.to_thread(lambda: [_get(channel, outbound) for _ in "12"])
                connection.close()
        finally:
            await server.close()
            # after the hub stopped: its edge declares them again when they go while it runs
            await asyncio.to_thread(delete_queues, url, with_dead_letters(inbound, outbound))
        after = ledger.balances(ANNA)
        ledger.close()
        accepted = next(r for r in reports if b"ACSC" in r)
        refused = next(r for r in reports if b"<GrpSts>RJCT</GrpSts>" in r)
        assert b"<Cd>AC01</Cd>" in accepted  # the second transfer's unknown account
        assert b"FF01" in refused
        assert before is not None and after is not None
        assert after.ledger - before.ledger == 2500

    scenario()


def test_the_clearing_queues_over_mutual_tls_and_a_refusal(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    """The clearing queue pair over amqps: a document goes out over TLS; a broker whose
    certificate is not from the configured CA ends the start at once, naming it and why."""
    outgoing, status = own_name("test.clearing.out"), own_name("test.clearing.st")

    async def on_status(document: bytes) -> int:
        return 0

    @on_event_loop
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        good = ClearingOutgoing(
            tls_broker.url, loop, on_status, outgoing=outgoing, status=status, tls=tls_broker.tls()
        )
        await asyncio.to_thread(good.start)
        try:
            await good.publish(b"<Document/>", message_id="m-1")
        finally:
            await asyncio.to_thread(good.stop)
        other = TestAuthority(tmp_path / "other")
        wrong = ClearingOutgoing(
            tls_broker.url,
            loop,
            on_status,
            outgoing=outgoing,
            status=status,
            tls=BrokerTls(client_context(other.files.cert)),
        )
        with pytest.raises(RuntimeError) as caught:
            await asyncio.to_thread(wrong.start, 60.0)
        assert str(caught.value) == (
            f"clearing queues: the broker at localhost:{tls_broker.port}/%2F refused TLS:"
            " the broker's certificate was refused: self-signed certificate in certificate"
            " chain (not issued by the configured CA)"
        )

    try:
        scenario()
        connection = pika.BlockingConnection(node_parameters(tls_broker.url, tls_broker.tls()))
        try:
            channel = connection.channel()
            assert channel.queue_declare(outgoing, passive=True).method.message_count == 1
        finally:
            connection.close()
    finally:
        delete_queues(tls_broker.url, with_dead_letters(outgoing, status), tls=tls_broker.tls())
