"""The simulated mainframe's TLS listener: TLS 1.3 only, the hub's client certificate
required, refusals logged with the peer and the reason, certificates reloaded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

import pytest

from mainframe_sim.client import MainframeClient
from mainframe_sim.ledger import Ledger
from mainframe_sim.server import MainframeServer
from mainframe_sim.tls import server_context
from tests.hub.tls_support import Pki, client, make_pki
from tests.mainframe_sim.samples import request
from tests.support import on_event_loop


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _server(ledger: Ledger, pki: Pki) -> MainframeServer:
    return MainframeServer(ledger, tls=server_context(pki.server.cert, pki.server.key, pki.ca.cert))


def test_the_hub_with_its_certificate_is_served_over_tls_1_3(ledger: Ledger, pki: Pki) -> None:
    @on_event_loop
    async def scenario() -> None:
        server = _server(ledger, pki)
        _, port = await server.start()
        try:
            connection = await MainframeClient.connect(
                "127.0.0.1", port, tls=client(pki.ca.cert, pki.client), server_hostname="localhost"
            )
            reply = await connection.request(request("BALQ", "TLS1"))
            assert reply.result_code == "00"
            await connection.close()
        finally:
            await server.close()
        assert (server.stats.connections, server.stats.tls_refused) == (1, 0)

    scenario()


@pytest.mark.parametrize(
    ("which", "maximum", "reason"),
    [
        ("none", None, "no client certificate presented"),
        ("expired_client", None, "client certificate refused: certificate has expired"),
        ("self_signed_client", None, "client certificate refused: self-signed certificate"),
        ("wrong_ca_client", None, "client certificate refused: unable to get local issuer"),
        ("client", ssl.TLSVersion.TLSv1_2, "TLS 1.2 or older offered"),
        ("plain", None, "not a TLS 1.3 handshake"),
    ],
)
def test_refusals_are_logged_and_nothing_is_posted(
    ledger: Ledger,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    which: str,
    maximum: ssl.TLSVersion | None,
    reason: str,
) -> None:
    postings = ledger.check().postings  # the seed's

    @on_event_loop
    async def scenario() -> None:
        server = _server(ledger, pki)
        _, port = await server.start()
        try:
            context = None
            if which != "plain":
                files = None if which == "none" else getattr(pki, which)
                context = client(pki.ca.cert, files, maximum=maximum)
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                connection = await MainframeClient.connect(
                    "127.0.0.1", port, tls=context, server_hostname="localhost"
                )
                with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                    await connection.request(request("DEBT", "TLS2", amount="1.00"))
                with contextlib.suppress(ssl.SSLError, ConnectionError):
                    await connection.close()
            async with asyncio.timeout(10):
                while server.stats.tls_refused == 0:
                    await asyncio.sleep(0.01)
        finally:
            await server.close()
        (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert line.startswith("TLS handshake with 127.0.0.1:")
        assert reason in line
        assert (server.stats.connections, server.stats.requests) == (0, 0)
        assert ledger.check().postings == postings

    with caplog.at_level(logging.WARNING, logger="mainframe_sim.server"):
        scenario()


def test_reloaded_certificates_serve_new_connections(
    ledger: Ledger, pki: Pki, tmp_path: Path
) -> None:
    renewed = make_pki(tmp_path)

    @on_event_loop
    async def scenario() -> None:
        server = _server(ledger, pki)
        _, port = await server.start()
        try:
            old = await MainframeClient.connect(
                "127.0.0.1", port, tls=client(pki.ca.cert, pki.client), server_hostname="localhost"
            )
            server.use_tls_context(
                server_context(renewed.server.cert, renewed.server.key, renewed.ca.cert)
            )
            new = await MainframeClient.connect(
                "127.0.0.1",
                port,
                tls=client(renewed.ca.cert, renewed.client),
                server_hostname="localhost",
            )
            assert (await new.request(request("BALQ", "NEW1"))).result_code == "00"
            assert (await old.request(request("BALQ", "OLD1"))).result_code == "00"
            await new.close()
            await old.close()
        finally:
            await server.close()

    scenario()


def test_a_server_without_tls_cannot_be_reloaded(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError, match="does not use TLS"):
        MainframeServer(ledger).use_tls_context(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
