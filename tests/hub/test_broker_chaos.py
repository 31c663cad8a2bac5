"""RabbitMQ restarted and killed -9 under the running hub, mid-load, on a node of this test's
own (never the shared broker); the ledger is reconciled at the end: every purchase the
acquirers were told was approved is posted once, every other one is not (reversed if it
was posted while its answer was lost)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.config_file import MainframeConfig, load_config
from hub.service import HubService
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from tests.hub.test_chaos import ACCOUNTS, _load
from tests.routing.chaos_node import ChaosNode
from tests.support import on_event_loop


@pytest.fixture(scope="module")
def broker() -> Iterator[ChaosNode]:
    node = ChaosNode()
    node.start()
    yield node
    node.stop()


def _outages(node: ChaosNode) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    return {
        "restart": (node.stop_app, node.start_app),
        "kill -9": (node.kill9, node.restart_after_kill),
    }


@pytest.mark.parametrize("outage", ["restart", "kill -9"])
def test_broker_outage_mid_load_loses_and_doubles_nothing(
    broker: ChaosNode, tmp_path: Path, outage: str
) -> None:
    go_down, come_back = _outages(broker)[outage]

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, port = await server.start("127.0.0.1", 0)
        toml = tmp_path / "hub.toml"
        toml.write_text(
            f'[hub]\nhome = "{tmp_path / "home"}"\n[routing]\ntransport = "{broker.url}"\n'
            "[[listeners]]\nname = 'pos'\nport = 0\nrequest_timeout = 4.0\n"
        )
        config = dataclasses.replace(
            load_config(toml, environ={}), mainframe=MainframeConfig(port=port, timeout=1.0)
        )
        before = {number: ledger.balances(number) for number in ACCOUNTS}
        approved: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        try:
            async with HubService(config) as service:
                edge = service.edges[0].port
                await asyncio.gather(
                    *(_load(edge, 1 + 1000 * n, 10, approved, codes) for n in range(4))
                )
                outage_done = threading.Event()

                def outage_cycle() -> None:
                    go_down()
                    come_back()
                    outage_done.set()

                cycle = asyncio.create_task(asyncio.to_thread(outage_cycle))
                await asyncio.gather(
                    *(_load(edge, 100 + 1000 * n, 20, approved, codes) for n in range(4))
                )
                await cycle
                await asyncio.gather(
                    *(_load(edge, 300 + 1000 * n, 10, approved, codes) for n in range(4))
                )
                assert service.reversals is not None
                for _ in range(300):
                    if not service.reversals.pending():
                        break
                    await asyncio.sleep(0.1)
                assert service.reversals.pending() == []
        finally:
            await server.close()
        assert set(codes) <= {"00", "91"}, codes
        assert codes["00"] >= 80  # before and after the outage everything is approved
        for number in ACCOUNTS:
            start, end = before[number], ledger.balances(number)
            assert start is not None and end is not None
            assert start.ledger - end.ledger == approved[number], number
        assert ledger.check().balanced
        ledger.close()

    scenario()
