"""Order per account across hub instances (``[routing] core_shards``): two instances on one
RabbitMQ broker, a stream of postings on four accounts published in order, the instance that
holds the shards killed -9 in the middle; the mainframe applies each account's postings in
the order they were published, each once; and card payments through the ISO 8583 edge on the
memory transport, each card on its shard."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.config_file import ConfigError, load_config
from hub.core import posting_reference
from hub.service import HubService
from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger, entries
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from routing.amqp import AmqpTransport
from routing.reqreply import Requester
from routing.transport import routing_key_for
from tests.hub.test_chaos import ACCOUNTS
from tests.hub.test_core import purchase
from tests.hub.test_edge import Client, _parse
from tests.hub.test_hub_crash import _start_hub
from tests.hub.test_service import _purchase
from tests.mainframe_sim.samples import ANNA, JONAS
from tests.routing.conftest import amqp_url, hub_namespace, require_broker
from tests.support import on_event_loop

SHARDS = 4
ROUNDS = 30


def _toml(path: Path, home: Path, transport: str, namespace: str, mainframe: int) -> Path:
    path.write_text(
        f'[hub]\nhome = "{home}"\ntenant = "bank-a"\n'
        f'[routing]\ntransport = "{transport}"\nnamespace = "{namespace}"\n'
        f"core_shards = {SHARDS}\n"
        "[[listeners]]\nname = 'pos'\nport = 0\n"
        f"[mainframe]\nport = {mainframe}\ntimeout = 5.0\n"
    )
    return path


def test_two_instances_keep_each_accounts_order_while_one_is_killed(tmp_path: Path) -> None:
    transport_url = amqp_url()
    require_broker(transport_url)
    accounts = ACCOUNTS[:4]

    @on_event_loop
    async def scenario(namespace: str) -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        faults = Faults()
        # Slow enough that the postings are still being applied when the instance dies.
        faults.set(FaultPlan.parse("latency=fixed:15ms"))
        server = MainframeServer(ledger, faults=faults)
        _, mainframe = await server.start("127.0.0.1", 0)
        first = _toml(tmp_path / "a.toml", tmp_path / "a", transport_url, namespace, mainframe)
        second = _toml(tmp_path / "b.toml", tmp_path / "b", transport_url, namespace, mainframe)
        # The first instance to consume is the active one of every shard; the other waits.
        hub, _ = await _start_hub(first)
        published: dict[str, list[str]] = {account: [] for account in accounts}
        try:
            async with HubService(load_config(second)) as survivor:
                assert len(survivor.topology.destinations) == SHARDS
                transport = AmqpTransport(transport_url, survivor.topology)
                await transport.start_async()
                requester = Requester(transport, default_timeout=40)
                await requester.start_async()
                replies = []
                for round_ in range(ROUNDS):
                    for number, account in enumerate(accounts):
                        request = purchase(1000 + 10 * round_ + number, "1.00", account)
                        key = f"{survivor.published_to('core', request)}."
                        key += routing_key_for(request)
                        _, reply = await requester.send_async(request, key)
                        replies.append(reply)
                        published[account].append(posting_reference(request))
                for reply in replies[: len(replies) // 4]:
                    await reply
                hub.send_signal(signal.SIGKILL)  # mid-stream: the survivor takes the shards
                await hub.wait()
                answers = await asyncio.gather(*replies)
                await asyncio.to_thread(requester.close)
                await transport.close_async()
        finally:
            if hub.returncode is None:
                hub.kill()
                await hub.wait()
            await server.close()
        codes = [a.status.original.code for a in answers if a.status and a.status.original]
        assert codes == ["00"] * len(replies)
        with ledger.engine.connect() as connection:
            for account in accounts:
                applied = connection.execute(
                    select(entries.c.posting_ref)
                    .where(entries.c.account == account)
                    .order_by(entries.c.id)
                ).scalars()
                ours = [ref for ref in applied if ref in set(published[account])]  # not the seed
                assert ours == published[account], account  # in order, each once
        assert ledger.check().balanced
        ledger.close()

    with hub_namespace(transport_url, core_shards=SHARDS) as namespace:
        scenario(namespace)


def test_card_payments_through_the_edge_go_to_their_cards_shard(tmp_path: Path) -> None:
    """The memory transport, and the acquirers' path: ISO 8583 in, a shard by card token."""

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe = await server.start("127.0.0.1", 0)
        toml = _toml(tmp_path / "hub.toml", tmp_path / "home", "memory://", "t", mainframe)
        before = {number: ledger.balances(number) for number in (ANNA, JONAS)}
        try:
            async with HubService(load_config(toml, environ={})) as service:
                names = [d.name for d in service.topology.destinations]
                assert names == [f"core.shard{n}" for n in range(SHARDS)]
                assert all(d.single_active_consumer for d in service.topology.destinations)
                port = service.edges[0].port

                async def terminal(account: str, stans: range, pan: str) -> list[str]:
                    client = await Client.connect(port)
                    codes = []
                    for stan in stans:
                        await client.send(_purchase(stan, 1_000 + stan, account, pan))
                        codes.append(_parse(await client.receive())[1][39])
                    await client.close()
                    return codes

                codes = await asyncio.gather(
                    terminal(ANNA, range(1, 11), "4111111111111111"),
                    terminal(JONAS, range(101, 111), "5500000000000004"),
                )
        finally:
            await server.close()
        assert list(codes) == [["00"] * 10, ["00"] * 10]
        for account, stans in ((ANNA, range(1, 11)), (JONAS, range(101, 111))):
            start, end = before[account], ledger.balances(account)
            assert start is not None and end is not None
            assert start.ledger - end.ledger == sum(1_000 + stan for stan in stans)
        assert ledger.check().balanced
        ledger.close()

    scenario()


def test_core_shards_is_checked(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text("[routing]\ncore_shards = -1\n")
    with pytest.raises(ConfigError, match=r"routing\.core_shards.*-1 is outside 0\.\.256"):
        load_config(toml, environ={})
