"""Upstream ISO 8583 hosts through the running hub: the route rules send Mastercard BINs to
an upstream switch (here: another ISO 8583 edge on real TCP, with its own vault), the rest
to the core."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.iso8583.adapter import Iso8583Adapter
from canonical_model.codes import status_from_iso8583
from canonical_model.messages import CanonicalMessage
from canonical_model.replies import reply_to
from hub.config_file import load_config
from hub.edge import EdgeSettings, Iso8583Edge
from hub.service import HubService
from hub.tls import server_context
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from tests.hub.test_edge import Client, _parse
from tests.hub.test_service import _purchase
from tests.hub.tls_support import make_pki
from tests.mainframe_sim.samples import ANNA
from tests.support import NOW, decode_context, encode_context, fixed_vault, on_event_loop

MASTERCARD = "5500005555555559"
VISA = "4111111111111111"
RULES = """
[fallback]
destination = "core"

[[rule]]
name = "mastercard"
destination = "upstream.mc"
bin = ["510000-559999"]
"""


@contextlib.asynccontextmanager
async def upstream_switch(
    seen: list[CanonicalMessage], tls: ssl.SSLContext | None = None
) -> AsyncIterator[Iso8583Edge]:
    """The upstream host: approves up to 100.00, declines (05) above; TLS with ``tls``."""

    async def answer(request: CanonicalMessage) -> CanonicalMessage:
        seen.append(request)
        assert request.amount is not None
        code = "00" if request.amount.amount <= 100 else "05"
        return reply_to(
            request,
            status_from_iso8583(code),
            message_id=f"up-{request.ids.message_id}",
            transmitted_at=NOW,
            approval_code="UPS123" if code == "00" else None,
        )

    adapter = Iso8583Adapter("ascii")
    vault = fixed_vault()
    edge = Iso8583Edge(
        EdgeSettings(tls=tls),
        adapter=adapter,
        decode_context=decode_context(vault),
        encode_context=encode_context(adapter, vault),
        handler=answer,
    )
    async with edge:
        yield edge


def _config(tmp_path: Path, mainframe_port: int, upstream_port: int) -> Path:
    (tmp_path / "routes.toml").write_text(RULES)
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\n'
        '[routing]\nrules = "routes.toml"\n'
        "[[listeners]]\nname = 'pos'\nport = 0\nrequest_timeout = 10.0\n"
        f"[mainframe]\nport = {mainframe_port}\n"
        f"[[upstreams]]\nname = 'mc'\nhost = '127.0.0.1'\nport = {upstream_port}\n"
        "timeout = 2.0\nfailure_threshold = 2\n"
    )
    return path


def test_rules_send_mastercard_upstream_and_visa_to_the_core(tmp_path: Path) -> None:
    seen: list[CanonicalMessage] = []

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        try:
            async with upstream_switch(seen) as upstream:
                config = load_config(_config(tmp_path, mainframe_port, upstream.port), environ={})
                async with HubService(config) as service:
                    client = await Client.connect(service.edges[0].port)
                    answers = []
                    for stan, pan, amount in (
                        (1, MASTERCARD, 5_000),
                        (2, MASTERCARD, 50_000),
                        (3, VISA, 5_000),
                    ):
                        await client.send(_purchase(stan, amount, ANNA, pan=pan))
                        answers.append(_parse(await client.receive())[1])
                    await upstream.close()  # the upstream host goes away
                    await client.send(_purchase(4, 5_000, ANNA, pan=MASTERCARD))
                    answers.append(_parse(await client.receive())[1])
                    await client.close()
        finally:
            await server.close()
            ledger.close()
        assert [a[39] for a in answers] == ["00", "05", "00", "91"]
        assert answers[0][38] == "UPS123"
        assert answers[0][2] == MASTERCARD  # the acquirer sees its own card number back
        assert answers[0][11] == "000001"

    scenario()
    assert [m.ids.instruction_id for m in seen] == ["000001", "000002"]
    assert all(m.card is not None and m.card.token is not None for m in seen)


@pytest.mark.parametrize(
    ("hub_certificate", "answer"), [("client", "00"), ("expired_client", "91")]
)
def test_mutual_tls_to_the_upstream_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, hub_certificate: str, answer: str
) -> None:
    pki = make_pki(tmp_path / "pki")
    files = getattr(pki, hub_certificate)
    seen: list[CanonicalMessage] = []

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        listener = server_context(pki.server.cert, pki.server.key, pki.ca.cert)
        try:
            async with upstream_switch(seen, tls=listener) as upstream:
                path = _config(tmp_path, mainframe_port, upstream.port)
                path.write_text(
                    path.read_text()
                    + f'[upstreams.tls]\nca = "{pki.ca.cert}"\ncert = "{files.cert}"\n'
                    f'key = "{files.key}"\nserver_name = "localhost"\n'
                )
                async with HubService(load_config(path, environ={})) as service:
                    (host,) = service.upstream_hosts
                    async with asyncio.timeout(10):
                        while host.connector.connected + upstream.stats.tls_refused == 0:
                            await asyncio.sleep(0.01)
                    client = await Client.connect(service.edges[0].port)
                    await client.send(_purchase(1, 5_000, ANNA, pan=MASTERCARD))
                    answers = _parse(await client.receive())[1]
                    await client.close()
        finally:
            await server.close()
            ledger.close()
        assert answers[39] == answer
        if answer == "91":
            assert seen == []
            assert any(
                r.name == "isobridge.connector"
                and "upstream mc 127.0.0.1:" in r.getMessage()
                and "TLS handshake refused" in r.getMessage()
                for r in caplog.records
            )
            assert any(
                r.name == "isobridge.edge" and "certificate has expired" in r.getMessage()
                for r in caplog.records
            )

    with caplog.at_level(logging.WARNING):
        scenario()
