"""The running hub end to end: an independent ISO 8583 client (py8583) over TCP -> the edge ->
route rules -> the transport (memory and a real RabbitMQ) -> the core banking worker ->
mainframe_sim over TCP -> its ledger, and back. Balances must match the approvals exactly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from canonical_model.pan import find_clear_pans
from hub.bootstrap import open_journal
from hub.config import Settings
from hub.config_file import load_config
from hub.service import HubService
from journal import format_trace
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from mainframe_sim.tls import server_context as mainframe_tls
from tests.certs import TestAuthority
from tests.hub.test_edge import Client, _build, _parse
from tests.hub.tls_support import client as tls_client
from tests.hub.tls_support import make_pki
from tests.mainframe_sim.samples import ANNA, JONAS
from tests.routing.conftest import amqp_url, hub_namespace, require_broker
from tests.support import on_event_loop
from tests.tls_broker import TlsBroker

PAN = "4111111111111111"
OFF_US_PAN = "6011000990139424"  # a Discover test card: no rule routes its BIN


def _purchase(stan: int, minor_units: int, account: str, pan: str = PAN) -> bytes:
    return _build(
        "0200",
        {
            2: pan,
            3: "000000",
            4: f"{minor_units:012d}",
            7: "1129101500",
            11: f"{stan:06d}",
            12: "101500",
            13: "1129",
            37: f"{stan:012d}",
            41: "TERM0001",
            42: "MERCHANT0000001",
            49: "978",
            102: account,
        },
    )


def _config(
    tmp_path: Path,
    mainframe_port: int,
    transport: str,
    rules: str | None,
    journal: bool = True,
    namespace: str = "isobridge",
    broker: TlsBroker | None = None,
) -> Path:
    lines = [
        "[hub]",
        f'home = "{tmp_path / "home"}"',
        'tenant = "bank-a"',
        f"journal = {str(journal).lower()}",
        "journal_flush_interval = 0.05",
        "[routing]",
        f'transport = "{transport}"',
        f'namespace = "{namespace}"',
    ]
    if broker is not None:  # mutual TLS, the client certificate as the login
        lines += [
            "[routing.tls]",
            f'ca = "{broker.certs / "ca.crt"}"',
            f'cert = "{broker.certs / "hub-client.crt"}"',
            f'key = "{broker.certs / "hub-client.key"}"',
            'auth = "external"',
        ]
    if rules is not None:
        (tmp_path / "routes.toml").write_text(rules)
        lines.append('rules = "routes.toml"')
    lines += [
        "[[listeners]]",
        'name = "pos"',
        "port = 0",
        "request_timeout = 5.0",
        "[mainframe]",
        f"port = {mainframe_port}",
        "timeout = 3.0",
        "connections = 2",
    ]
    path = tmp_path / "hub.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.asynccontextmanager
async def running_hub(
    tmp_path: Path,
    transport: str,
    rules: str | None = None,
    journal: bool = True,
    broker: TlsBroker | None = None,
) -> AsyncIterator[tuple[HubService, Ledger]]:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    seed_ledger(ledger)
    server = MainframeServer(ledger)
    _, port = await server.start("127.0.0.1", 0)
    try:
        tls = broker.tls(external=True) if broker is not None else None
        with hub_namespace(transport, tls, rules=rules) as namespace:
            path = _config(tmp_path, port, transport, rules, journal, namespace, broker)
            async with HubService(load_config(path, environ={})) as service:
                assert service.core is not None
                yield service, ledger
    finally:
        await server.close()
        ledger.close()


def _transport_url(name: str) -> str:
    if name == "memory":
        return "memory://"
    url = amqp_url()
    require_broker(url)
    return url


@pytest.mark.parametrize("transport", ["memory", "amqp", "amqps"])
def test_purchases_end_to_end_balances_match_the_approvals(
    tmp_path: Path, transport: str, request: pytest.FixtureRequest
) -> None:
    """amqps: edge -> RabbitMQ over TLS 1.3 (mutual, SASL EXTERNAL) -> core worker."""
    broker: TlsBroker | None = None
    if transport == "amqps":
        broker = request.getfixturevalue("tls_broker")
        url = f"amqps://localhost:{broker.port}/%2F"  # no password: the certificate logs in
    else:
        url = _transport_url(transport)

    @on_event_loop
    async def scenario() -> None:
        async with running_hub(tmp_path, url, broker=broker) as (service, ledger):
            before = {n: ledger.balances(n) for n in (ANNA, JONAS)}
            port = service.edges[0].port

            async def terminal(account: str, stans: range) -> list[tuple[str, dict[int, str]]]:
                client = await Client.connect(port)
                replies = []
                for stan in stans:
                    await client.send(_purchase(stan, 1_000 + stan, account))
                    replies.append(_parse(await client.receive()))
                await client.close()
                return replies

            anna, jonas = await asyncio.gather(
                terminal(ANNA, range(1, 21)), terminal(JONAS, range(101, 121))
            )
            # A purchase far above the balance is declined with 51 and posts nothing.
            client = await Client.connect(port)
            await client.send(_purchase(500, 99_999_999, ANNA))
            declined = _parse(await client.receive())
            await client.close()

        assert all(mti == "0210" and f[39] == "00" for mti, f in anna + jonas)
        assert declined[1][39] == "51"
        for account, stans in ((ANNA, range(1, 21)), (JONAS, range(101, 121))):
            start, end = before[account], ledger.balances(account)
            assert start is not None and end is not None
            assert start.ledger - end.ledger == sum(1_000 + stan for stan in stans)
        assert ledger.check().balanced

    scenario()


def test_no_route_answers_92_and_parks_the_message(tmp_path: Path) -> None:
    rules = """
[fallback]
dead_letter = "no rule for this card"

[[rule]]
name = "visa"
destination = "core.cards"
bin = ["400000-499999"]
"""

    @on_event_loop
    async def scenario() -> None:
        async with running_hub(tmp_path, "memory://", rules) as (service, _):
            client = await Client.connect(service.edges[0].port)
            await client.send(_purchase(1, 100, ANNA))
            routed = _parse(await client.receive())
            await client.send(_purchase(2, 100, ANNA, pan=OFF_US_PAN))
            unrouted = _parse(await client.receive())
            await client.close()
            parked = service.transport.dead_letters("unroutable")
        assert routed[1][39] == "00"
        assert unrouted[1][39] == "92"
        (dead,) = parked
        assert dead.original_routing_key.startswith("unrouted.financial.request")
        assert OFF_US_PAN not in dead.envelope.body.decode()

    scenario()


def test_the_journal_tells_each_transaction_path(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_hub(tmp_path, "memory://") as (service, _):
            assert service.journal_writer is not None
            assert service.journal_writer.interval == 0.05  # [hub] journal_flush_interval
            client = await Client.connect(service.edges[0].port)
            for stan, amount in ((7, 1_234), (8, 99_999_999)):
                await client.send(_purchase(stan, amount, ANNA))
                await client.receive()
            await client.close()

    scenario()
    home = tmp_path / "home"
    settings = Settings.from_environment({"ISOBRIDGE_HOME": str(home)})
    journal = open_journal(settings)
    try:
        assert journal.verify().ok
        (approved,) = journal.trace("000000000007")  # the RRN
        kinds = [event.kind.value for event in approved.events]
        assert kinds == ["received", "routed", "answered"]
        assert approved.view is not None
        assert (approved.view.status, approved.view.destination) == ("ACSC", "core")
        (declined,) = journal.trace("000008@TERM0001")  # STAN@terminal
        assert declined.view is not None
        assert (declined.view.status, declined.view.reason_code) == ("RJCT", "AM04")
        assert declined.events[-1].body["response_code"] == "51"
        assert "answered" in format_trace([approved])
        with journal.engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT body FROM journal_events").all()
        assert find_clear_pans(" ".join(str(row[0]) for row in rows)) == []
    finally:
        journal.close()


def test_a_hub_without_journal_serves_and_records_nothing(tmp_path: Path) -> None:
    """``[hub] journal = false`` (what ``bench.journal_cost`` compares against): the same
    answers, no journal database."""

    @on_event_loop
    async def scenario() -> None:
        async with running_hub(tmp_path, "memory://", journal=False) as (service, ledger):
            assert service.journal is None
            before = ledger.balances(ANNA)
            client = await Client.connect(service.edges[0].port)
            await client.send(_purchase(9, 1_000, ANNA))
            mti, fields = _parse(await client.receive())
            await client.close()
            after = ledger.balances(ANNA)
            assert (mti, fields[39]) == ("0210", "00")
            assert before is not None and after is not None
            assert before.ledger - after.ledger == 1_000

    scenario()
    assert not (tmp_path / "home" / "journal.db").exists()


def test_tls_listeners_reload_their_certificates(tmp_path: Path) -> None:
    authority = TestAuthority(tmp_path)
    authority.issue("edge", "edge.test", server=True)
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\n'
        "[[listeners]]\nname = 'plain'\nport = 0\n"
        "[[listeners]]\nname = 'tls'\nport = 0\n"
        '[listeners.tls]\ncert = "edge.crt"\nkey = "edge.key"\n'
    )

    @on_event_loop
    async def scenario() -> None:
        async with HubService(load_config(toml, environ={})) as service:
            assert service.reload_certificates() == 1

    scenario()


def _peer_common_name(writer: asyncio.StreamWriter) -> str:
    certificate = writer.get_extra_info("peercert")
    return str(dict(item[0] for item in certificate["subject"])["commonName"])


def test_tls_end_to_end_and_reload_when_the_files_change(tmp_path: Path) -> None:
    """Acquirer -(mutual TLS 1.3)-> edge -> core worker -(mutual TLS 1.3)-> mainframe_sim;
    then the edge's certificate is renewed in place and the hub picks it up by itself."""
    pki = make_pki(tmp_path / "pki")
    authority = TestAuthority(tmp_path / "edge", "the hub's edge CA")
    authority.issue("edge", "edge-2026", server=True)
    toml = tmp_path / "hub.toml"

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        before = ledger.balances(ANNA)
        mainframe = MainframeServer(
            ledger, tls=mainframe_tls(pki.server.cert, pki.server.key, pki.ca.cert)
        )
        _, mainframe_port = await mainframe.start("127.0.0.1", 0)
        toml.write_text(
            f'[hub]\nhome = "{tmp_path / "home"}"\ntenant = "bank-a"\n'
            "tls_reload_interval = 0.05\n"
            "[[listeners]]\nname = 'pos'\nport = 0\n"
            f'[listeners.tls]\ncert = "edge/edge.crt"\nkey = "edge/edge.key"\n'
            f'client_ca = "{pki.ca.cert}"\n'
            f"[mainframe]\nport = {mainframe_port}\nconnections = 1\n"
            f'[mainframe.tls]\nca = "{pki.ca.cert}"\ncert = "{pki.client.cert}"\n'
            f'key = "{pki.client.key}"\nserver_name = "localhost"\n'
        )
        acquirer = tls_client(authority.files.cert, pki.client)
        try:
            async with HubService(load_config(toml, environ={})) as service:
                port = service.edges[0].port
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=acquirer, server_hostname="localhost"
                )
                assert _peer_common_name(writer) == "edge-2026"
                client = Client(reader, writer)
                assert _parse(await client.exchange(_purchase(1, 1_000, ANNA)))[1][39] == "00"
                await client.close()
                assert service.reload_certificates() == 2  # the edge and the mainframe link

                authority.issue("edge", "edge-2027", server=True)  # renewed in place
                async with asyncio.timeout(10):
                    while True:
                        reader, writer = await asyncio.open_connection(
                            "127.0.0.1", port, ssl=acquirer, server_hostname="localhost"
                        )
                        renewed = _peer_common_name(writer) == "edge-2027"
                        client = Client(reader, writer)
                        if renewed:
                            break
                        await client.close()
                        await asyncio.sleep(0.05)
                assert _parse(await client.exchange(_purchase(2, 1_000, ANNA)))[1][39] == "00"
                await client.close()
        finally:
            await mainframe.close()
        after = ledger.balances(ANNA)
        assert before is not None and after is not None
        assert before.ledger - after.ledger == 2_000
        assert mainframe.stats.tls_refused == 0
        ledger.close()

    scenario()
