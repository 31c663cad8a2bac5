"""The core banking connector over the MQ queue pair: the whole hub against mainframe_sim's
MQ responder on a real RabbitMQ."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from hub.config_file import load_config
from hub.mainframe_mq import MqPostingExchange
from hub.service import HubService
from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.mq import MqResponder
from mainframe_sim.seed import seed_ledger
from routing.amqps import BrokerTls
from tests.broker import delete_queues, own_name
from tests.hub.test_edge import Client, _parse
from tests.hub.test_service import _purchase
from tests.mainframe_sim.samples import ANNA
from tests.routing.conftest import amqp_url, require_broker
from tests.support import on_event_loop
from tests.tls_broker import TlsBroker


@pytest.mark.parametrize("scheme", ["amqp", "amqps"])
def test_purchases_over_the_mq_queue_pair(
    tmp_path: Path, scheme: str, request: pytest.FixtureRequest
) -> None:
    """amqps: the hub and the simulator both reach RabbitMQ over mutual TLS 1.3."""
    tls = ""
    context: ssl.SSLContext | None = None
    broker_tls: BrokerTls | None = None
    if scheme == "amqps":
        broker: TlsBroker = request.getfixturevalue("tls_broker")
        url = broker.url
        broker_tls = broker.tls()
        context = broker_tls.context
        tls = (
            f'[mainframe.tls]\nca = "{broker.certs / "ca.crt"}"\n'
            f'cert = "{broker.certs / "hub-client.crt"}"\n'
            f'key = "{broker.certs / "hub-client.key"}"\n'
        )
    else:
        url = amqp_url()
        require_broker(url)
    requests, replies = own_name("test.mainframe.req"), own_name("test.mainframe.rep")
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    seed_ledger(ledger)
    faults = Faults()
    responder = MqResponder(
        ledger, url, request_queue=requests, reply_queue=replies, faults=faults, tls=context
    )
    responder.start()
    assert responder.ready.wait(30)
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\n'
        "[[listeners]]\nname = 'pos'\nport = 0\nrequest_timeout = 10.0\n"
        f'[mainframe]\nvia = "mq"\nmq_url = "{url}"\nrequest_queue = "{requests}"\n'
        "timeout = 1.0\n" + tls
    )
    before = ledger.balances(ANNA)

    @on_event_loop
    async def scenario() -> None:
        async with HubService(load_config(toml, environ={})) as service:
            assert service.core is not None
            exchange = service.core.exchange
            assert isinstance(exchange, MqPostingExchange)
            await exchange.wait_connected()
            client = await Client.connect(service.edges[0].port)
            codes = []
            for stan in range(1, 11):
                await client.send(_purchase(stan, 300, ANNA))
                codes.append(_parse(await client.receive())[1][39])
            faults.set(FaultPlan(drop=1.0))  # applied, reply lost: 91, then reversed
            await client.send(_purchase(50, 700, ANNA))
            codes.append(_parse(await client.receive())[1][39])
            faults.set(FaultPlan())
            assert service.reversals is not None
            for _ in range(100):
                if not service.reversals.pending():
                    break
                await asyncio.sleep(0.1)
            await client.close()
            assert service.reversals.pending() == []
        assert codes == ["00"] * 10 + ["91"]

    try:
        scenario()
    finally:
        try:
            responder.stop()
        finally:
            delete_queues(url, (requests, replies), tls=broker_tls)
    after = ledger.balances(ANNA)
    assert before is not None and after is not None
    assert before.ledger - after.ledger == 10 * 300
    assert ledger.check().balanced
    ledger.close()
