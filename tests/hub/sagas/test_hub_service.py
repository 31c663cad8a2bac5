"""The payment sagas as ``isobridge run`` wires them (``[clearing] sagas = true``): a
``HubService`` on RabbitMQ and mainframe_sim, a canonical credit transfer routed to
``clearing`` sent out as an outbound saga and settled by the scripted clearing system, and a
pacs.008 on the inbound queue credited or returned; the ledger reconciles."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pika

from canonical_model.codes import TransactionStatus
from hub.config_file import load_config
from hub.sagas.card import CARD_REVERSAL
from hub.sagas.inbound import INBOUND
from hub.sagas.payments import OUTBOUND
from hub.sagas.store import Phase
from hub.service import HubService
from mainframe_sim.ledger import Ledger, clearing_account
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from tests.broker import delete_queues, own_name, with_dead_letters
from tests.hub.sagas.clearing_peer import AMQP_URL, ClearingPeer
from tests.hub.sagas.test_inbound import UNKNOWN, _answers, transfers
from tests.hub.sagas.test_payments import payment
from tests.mainframe_sim.samples import ANNA
from tests.routing.conftest import hub_namespace, require_broker
from tests.support import on_event_loop

RULES = """
[fallback]
destination = "core"

[[rule]]
name = "credit-transfers-out"
destination = "clearing"
kind = "financial"
currency = "EUR"
"""


def _config(tmp_path: Path, port: int, namespace: str, queues: dict[str, str]) -> Path:
    (tmp_path / "routes.toml").write_text(RULES)
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\ntenant = "bank-a"\n'
        f'[routing]\ntransport = "{AMQP_URL}"\nnamespace = "{namespace}"\n'
        'rules = "routes.toml"\n'
        f"[mainframe]\nport = {port}\ntimeout = 3.0\nconnections = 2\n"
        "[clearing]\nsagas = true\n"
        + "".join(f'{key} = "{name}"\n' for key, name in queues.items())
    )
    return path


def test_the_hub_runs_outbound_and_inbound_sagas_on_its_clearing_queues(tmp_path: Path) -> None:
    require_broker(AMQP_URL)
    base = own_name("isobridge.test.hubsagas", 10)
    queues = {name: f"{base}.{name}" for name in ("inbound", "outbound", "outgoing", "status")}

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, port = await server.start("127.0.0.1", 0)
        gl = clearing_account("EUR")
        anna_before, gl_before = ledger.balances(ANNA), ledger.balances(gl)
        assert anna_before is not None and gl_before is not None
        peer = ClearingPeer(queues["outgoing"])
        stop = asyncio.Event()
        try:
            with hub_namespace(AMQP_URL, rules=RULES) as namespace:
                config = load_config(_config(tmp_path, port, namespace, queues), environ={})
                async with HubService(config) as service:
                    assert service.sagas is not None and service.saga_runner is not None
                    store = service.sagas.store
                    assert {CARD_REVERSAL, OUTBOUND, INBOUND} <= set(
                        service.saga_runner.definitions
                    )
                    serving = asyncio.create_task(peer.serve(stop))
                    message = payment(71, "12.00")
                    answer = await service.route(message)
                    assert answer.status is not None
                    assert answer.status.code is TransactionStatus.RCVD
                    again = await service.route(message)  # a repeat starts nothing new
                    assert again.status is not None
                    assert again.status.code is TransactionStatus.RCVD
                    saga_id = message.ids.message_id
                    for _ in range(400):
                        record = store.get(saga_id)
                        if record is not None and record.phase is Phase.DONE:
                            break
                        await asyncio.sleep(0.05)
                    record = store.get(saga_id)
                    assert record is not None and record.outcome == "settled"
                    assert service.journal is not None
                    view = service.journal.status(saga_id)
                    assert view is not None and view.status == "ACSC"

                    await asyncio.to_thread(_publish, queues["inbound"], transfers(ANNA, UNKNOWN))
                    answers = await _answers(queues["outbound"], 2)
                    reasons = sorted(
                        (a.status.code.value, a.status.reason or "") for a in answers if a.status
                    )
                    # credited (pacs.002 ACSC), and the unknown account returned (pacs.004)
                    assert len(answers) == 2 and reasons[0] == ("ACSC", "")
                    assert reasons[1][1] == "AC01"
                    for _ in range(200):
                        if not store.sagas(phases=(Phase.ACTIVE, Phase.WAITING)):
                            break
                        await asyncio.sleep(0.05)
                    outcomes = sorted(
                        r.outcome or "" for r in store.sagas() if r.definition == INBOUND
                    )
                    assert outcomes == ["credited", "returned"]
                    stop.set()
                    await serving
        finally:
            stop.set()
            await server.close()
            names = with_dead_letters(*queues.values())
            await asyncio.to_thread(delete_queues, AMQP_URL, names)
        after_anna, after_gl = ledger.balances(ANNA), ledger.balances(gl)
        assert after_anna is not None and after_gl is not None
        paid_out = int(peer.net_settled * 100)
        assert paid_out == 1200
        # out: 12.00 settled; in: 25.00 credited to ANNA from the clearing account
        assert anna_before.ledger - after_anna.ledger == paid_out - 2500
        assert after_gl.ledger - gl_before.ledger == paid_out - 2500
        assert after_anna.available == after_anna.ledger  # no hold left
        assert ledger.check().balanced
        ledger.close()

    scenario()


def _publish(queue: str, document: bytes) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().basic_publish(
            "",
            queue,
            document,
            pika.BasicProperties(delivery_mode=2, message_id=uuid.uuid4().hex),
        )
    finally:
        connection.close()
