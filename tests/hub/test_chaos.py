"""The mainframe misbehaving under load, through the whole hub; each ends with a ledger
reconciliation: what the mainframe posted equals what the acquirers were told was approved
(no posting lost, none applied twice, every unknown outcome reversed)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.config_file import MainframeConfig, load_config
from hub.service import HubService
from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import SEED_ACCOUNTS, seed_ledger
from mainframe_sim.server import MainframeServer
from tests.hub.test_edge import Client, _parse
from tests.hub.test_service import _purchase
from tests.support import on_event_loop

ACCOUNTS = [a.number for a in SEED_ACCOUNTS[:6] if a.status == "open" and a.opening > 100_000]


@contextlib.asynccontextmanager
async def hub_and_mainframe(
    tmp_path: Path,
) -> AsyncIterator[tuple[HubService, Ledger, Faults]]:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    seed_ledger(ledger)
    faults = Faults(seed=7)
    server = MainframeServer(ledger, faults=faults)
    _, port = await server.start("127.0.0.1", 0)
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\n'
        "[[listeners]]\nname = 'pos'\nport = 0\nrequest_timeout = 10.0\n"
    )
    config = dataclasses.replace(
        load_config(toml, environ={}),
        mainframe=MainframeConfig(
            port=port, timeout=0.3, connections=2, failure_threshold=3, reset_after=0.5
        ),
    )
    try:
        async with HubService(config) as service:
            yield service, ledger, faults
    finally:
        await server.close()
        ledger.close()


async def _load(
    port: int, first: int, count: int, approved: Counter[str], codes: Counter[str]
) -> None:
    client = await Client.connect(port)
    try:
        for stan in range(first, first + count):
            account = ACCOUNTS[stan % len(ACCOUNTS)]
            amount = 100 + stan % 50
            await client.send(_purchase(stan, amount, account))
            code = _parse(await client.receive())[1][39]
            codes[code] += 1
            if code == "00":
                approved[account] += amount
    finally:
        await client.close()


@pytest.mark.parametrize(
    "fault",
    [
        "down=on",  # connections closed and refused: breaker opens, 91 at once
        "latency=fixed:600ms",  # replies later than the 0.3 s timeout: 91, reversals
        "drop=0.5",  # half the replies lost
        "disconnect=0.3",  # connections cut after the commit
    ],
)
def test_mainframe_faults_mid_load_reconcile(tmp_path: Path, fault: str) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with hub_and_mainframe(tmp_path) as (service, ledger, faults):
            before = {number: ledger.balances(number) for number in ACCOUNTS}
            port = service.edges[0].port
            approved: Counter[str] = Counter()
            codes: Counter[str] = Counter()
            await asyncio.gather(
                *(_load(port, 1 + 1000 * n, 15, approved, codes) for n in range(4))
            )
            faults.set(FaultPlan.parse(fault))
            await asyncio.gather(
                *(_load(port, 100 + 1000 * n, 15, approved, codes) for n in range(4))
            )
            faults.set(FaultPlan())
            await asyncio.sleep(0.6)  # the breaker's reset period: half-open, then closed
            await asyncio.gather(
                *(_load(port, 200 + 1000 * n, 15, approved, codes) for n in range(4))
            )
            assert service.reversals is not None
            for _ in range(200):
                if not service.reversals.pending():
                    break
                await asyncio.sleep(0.1)
            assert service.reversals.pending() == []
            assert codes["91"] > 0, f"the fault {fault} was not felt: {codes}"
            assert set(codes) <= {"00", "91"}
            for number in ACCOUNTS:
                start, end = before[number], ledger.balances(number)
                assert start is not None and end is not None
                assert start.ledger - end.ledger == approved[number], number
            assert ledger.check().balanced

    scenario()
