"""The gateway terminating TLS 1.3 itself under a real uvicorn: refusals logged, the verified
client certificate handed to the token checks (a forged header dropped), reloads; and the
whole gateway (``serve_gateway``) with an mTLS-bound token over its own TLS."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from hub.config_file import load_config
from hub.gateway import BuiltGateway
from hub.gateway_cli import serve_gateway
from hub.gateway_config import load_gateway_config
from hub.gateway_tls import GatewayTls, GatewayTlsConfig, Receive, Scope, Send
from tests.broker import own_name
from tests.gateway.harness import account_consent_body, delete_queues
from tests.hub.test_core import mainframe
from tests.hub.tls_support import LOOPS, Pki, make_pki, run_on
from tests.hub.tls_support import client as tls_client
from tests.support import on_event_loop

HEADER = "x-ssl-client-cert"


async def _echo_certificate(scope: Scope, receive: Receive, send: Send) -> None:
    """A tiny ASGI app: answers with the client-certificate header it was given."""
    headers = dict(scope["headers"])
    body = unquote(headers.get(HEADER.encode(), b"").decode()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _served(tls: GatewayTls) -> AsyncIterator[int]:
    server = uvicorn.Server(
        uvicorn.Config(
            tls.wrap(_echo_certificate),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            http=tls.protocol_class(AutoHTTPProtocol),
            log_config=None,  # leave the process's logging as it is
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await serving


def _tls(pki: Pki, **changes: Any) -> GatewayTls:
    config = GatewayTlsConfig(pki.server.cert, pki.server.key, pki.ca.cert, **changes)
    return GatewayTls(config, HEADER)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("loop", LOOPS)
def test_the_verified_client_certificate_replaces_any_forwarded_header(pki: Pki, loop: str) -> None:
    tls = _tls(pki)

    async def scenario() -> None:
        async with _served(tls) as port:
            url = f"https://localhost:{port}/"
            forged = {HEADER: quote(pki.wrong_ca_client.cert.read_text())}
            with_cert = tls_client(pki.ca.cert, pki.client)
            async with httpx.AsyncClient(verify=with_cert) as http:
                answer = await http.get(url, headers=forged)
                assert answer.text == pki.client.cert.read_text()
            async with httpx.AsyncClient(verify=tls_client(pki.ca.cert)) as http:
                answer = await http.get(url, headers=forged)
                assert answer.text == ""  # no certificate: the forged header is gone too
                assert answer.extensions["http_version"] == b"HTTP/1.1"
        assert (tls.handshakes, tls.refused) == (2, 0)

    run_on(loop, scenario)


def test_a_terminator_in_front_may_forward_the_header(pki: Pki) -> None:
    tls = _tls(pki, forwarded_client_cert=True)

    @on_event_loop
    async def scenario() -> None:
        async with _served(tls) as port:
            forwarded = {HEADER: quote(pki.wrong_ca_client.cert.read_text())}
            async with httpx.AsyncClient(verify=tls_client(pki.ca.cert)) as http:
                answer = await http.get(f"https://localhost:{port}/", headers=forwarded)
        assert answer.text == pki.wrong_ca_client.cert.read_text()

    scenario()


@pytest.mark.parametrize(
    ("which", "maximum", "reason"),
    [
        ("expired_client", None, "certificate refused: certificate has expired"),
        ("self_signed_client", None, "certificate refused: self-signed certificate"),
        ("wrong_ca_client", None, "certificate refused: unable to get local issuer certificate"),
        ("client", ssl.TLSVersion.TLSv1_2, "TLS 1.2 or older offered: only TLS 1.3 is accepted"),
        ("plain", None, "plain HTTP sent to a TLS port"),
    ],
)
def test_refused_handshakes_are_logged_with_the_peer_and_the_reason(
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    which: str,
    maximum: ssl.TLSVersion | None,
    reason: str,
) -> None:
    tls = _tls(pki)

    @on_event_loop
    async def scenario() -> None:
        async with _served(tls) as port:
            if which == "plain":
                url = f"http://localhost:{port}/"
                verify: ssl.SSLContext | bool = False
            else:
                url = f"https://localhost:{port}/"
                verify = tls_client(pki.ca.cert, getattr(pki, which), maximum=maximum)
            async with httpx.AsyncClient(verify=verify) as http:
                with pytest.raises(httpx.TransportError):
                    await http.get(url)
            async with asyncio.timeout(10):
                while tls.refused == 0:
                    await asyncio.sleep(0.01)
        lines = [r.getMessage() for r in caplog.records if r.name == "isobridge.gateway.tls"]
        (line,) = [line for line in lines if "refused" in line]
        assert line.startswith("TLS handshake with 127.0.0.1:")
        assert f"refused: {reason}" in line
        assert tls.handshakes == 0

    with caplog.at_level(logging.INFO, logger="isobridge.gateway.tls"):
        scenario()


def test_reload_serves_the_new_certificate_and_keeps_the_old_on_bad_files(
    pki: Pki, tmp_path: Path
) -> None:
    renewed = make_pki(tmp_path)
    cert, key = tmp_path / "gateway.crt", tmp_path / "gateway.key"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    tls = GatewayTls(GatewayTlsConfig(cert, key, pki.ca.cert), HEADER)

    @on_event_loop
    async def scenario() -> None:
        async with _served(tls) as port:
            url = f"https://localhost:{port}/"
            async with httpx.AsyncClient(verify=tls_client(pki.ca.cert, pki.client)) as http:
                assert (await http.get(url)).status_code == 200
            cert.write_bytes(renewed.server.cert.read_bytes())
            assert not tls.reload()  # the new certificate with the old key: refused, kept
            async with httpx.AsyncClient(verify=tls_client(pki.ca.cert, pki.client)) as http:
                assert (await http.get(url)).status_code == 200
            key.write_bytes(renewed.server.key.read_bytes())
            assert tls.reload()
            async with httpx.AsyncClient(verify=tls_client(pki.ca.cert, pki.client)) as http:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await http.get(url)
            async with httpx.AsyncClient(verify=tls_client(renewed.ca.cert, pki.client)) as http:
                assert (await http.get(url)).status_code == 200

    scenario()


def test_the_gateway_over_its_own_tls_binds_tokens_to_the_tls_certificate(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path / "pki")
    outgoing, status = own_name("test.tls.outgoing"), own_name("test.tls.status")

    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf:
            hub_toml = tmp_path / "hub.toml"
            hub_toml.write_text(
                f'[hub]\nhome = "{tmp_path / "home"}"\n[mainframe]\nport = {mf.port}\n'
            )
            gateway_toml = tmp_path / "gateway.toml"
            gateway_toml.write_text(
                "[gateway]\nport = 0\n"
                f'[gateway.tls]\ncert = "{pki.server.cert}"\nkey = "{pki.server.key}"\n'
                f'client_ca = "{pki.ca.cert}"\n'
                f'[clearing]\noutgoing = "{outgoing}"\nstatus = "{status}"\n'
                '[[clients]]\nclient_id = "tpp-one"\n'
                f'certificate = "{pki.client.cert}"\nredirect_uris = ["https://tpp.example/cb"]\n'
            )
            config = load_gateway_config(gateway_toml)
            assert config.settings.public_url.startswith("https://")
            stop = asyncio.Event()
            started: list[tuple[BuiltGateway, int]] = []
            out = io.StringIO()
            task = asyncio.create_task(
                serve_gateway(
                    load_config(hub_toml, {}),
                    config,
                    out,
                    ready=lambda built, port: started.append((built, port)),
                    stop=stop,
                )
            )
            while not started and not task.done():
                await asyncio.sleep(0.02)
            if not started:
                await task
                raise AssertionError("the gateway stopped without starting")
            _, port = started[0]
            assert f"open-banking gateway on https://127.0.0.1:{port}" in out.getvalue()
            base = f"https://localhost:{port}"
            token_request = {"grant_type": "client_credentials", "client_id": "tpp-one"}
            forged = {HEADER: quote(pki.client.cert.read_text())}
            # The certificate in a header, over a TLS connection without one: not the TPP.
            async with httpx.AsyncClient(base_url=base, verify=tls_client(pki.ca.cert)) as http:
                refused = await http.post("/oauth2/token", data=token_request, headers=forged)
                assert refused.status_code in (400, 401), refused.text
            # The same certificate presented in the TLS handshake: a token bound to it.
            presenting = tls_client(pki.ca.cert, pki.client)
            async with httpx.AsyncClient(base_url=base, verify=presenting) as http:
                issued = await http.post("/oauth2/token", data=token_request)
                assert issued.status_code == 200, issued.text
                token = issued.json()["access_token"]
                created = await http.post(
                    "/open-banking/v4.0/aisp/account-access-consents",
                    json=account_consent_body(),
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert created.status_code == 201, created.text
            # The bound token without the certificate in the handshake is refused.
            async with httpx.AsyncClient(base_url=base, verify=tls_client(pki.ca.cert)) as http:
                stolen = await http.post(
                    "/open-banking/v4.0/aisp/account-access-consents",
                    json=account_consent_body(),
                    headers={"Authorization": f"Bearer {token}", **forged},
                )
                assert stolen.status_code == 401, stolen.text
            stop.set()
            await task

    try:
        scenario()
    finally:
        delete_queues(outgoing, status)
