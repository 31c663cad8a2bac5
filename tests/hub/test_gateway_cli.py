"""``isobridge gateway``: its configuration file, and a real run under uvicorn against
mainframe_sim and RabbitMQ, reached over TCP."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from hub.cli import main
from hub.config_file import ConfigError, load_config
from hub.gateway import BuiltGateway
from hub.gateway_cli import serve_gateway
from hub.gateway_config import load_gateway_config
from tests.certs import TestAuthority
from tests.gateway.harness import account_consent_body, delete_queues
from tests.hub.test_core import mainframe
from tests.support import on_event_loop


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gateway]\nprot = 1\n", "gateway.prot: unknown key (did you mean 'port'?)"),
        ("[gateway]\nport = 70000\n", "gateway.port: 70000 is not a number in 0..65535"),
        ('[issuer]\nalgorithm = "HS256"\n', "issuer.algorithm: HS256 is not one of PS256"),
        ('[[clients]]\nclient_id = "a"\n', "clients[0]: needs a certificate or a secret"),
        ('[[clients]]\nclient_id = "a"\nsecret = "short"\n', "clients[0].secret: at least 8"),
        (
            '[[clients]]\nclient_id = "a"\ncertificate = "none.pem"\n',
            "clients[0].certificate: no such file",
        ),
        (
            '[[clients]]\nclient_id = "a"\nsecret = "12345678"\nscopes = ["root"]\n',
            "clients[0].scopes",
        ),
        ('[gateway]\nresponse_signing_key = "gateway.toml"\n', "not a PS256 private key"),
        ("[surprise]\n", "surprise: unknown key"),
        ("[issuer]\njwks_url = 5\n", "issuer.jwks_url: expected a non-empty string"),
        ('[issuer]\njwks_url = "http://as.example/jwks"\n', "issuer.jwks_url: an https:// URL"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_configuration_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "gateway.toml", text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_gateway_config(path)


def test_the_cli_refuses_a_bad_configuration(tmp_path: Path) -> None:
    hub_toml = _write(tmp_path / "hub.toml", "[mainframe]\nport = 7070\n")
    bad = _write(tmp_path / "gateway.toml", "[gateway]\nprot = 1\n")
    err = io.StringIO()
    assert main(["gateway", "--config", str(hub_toml), "--gateway", str(bad)], stderr=err) == 2
    assert "gateway.prot: unknown key" in err.getvalue()
    no_mainframe = _write(tmp_path / "bare.toml", "")
    good = _write(tmp_path / "ok.toml", "")
    err = io.StringIO()
    assert main(["gateway", "--config", str(no_mainframe), "--gateway", str(good)], stderr=err) == 2
    assert "mainframe: the gateway needs a [mainframe]" in err.getvalue()


def test_a_real_run_over_tcp(tmp_path: Path) -> None:
    authority = TestAuthority(tmp_path)
    cert = authority.issue("tpp", "tpp-one", server=False).cert

    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf:
            hub_toml = _write(
                tmp_path / "hub.toml",
                f'[hub]\nhome = "{tmp_path / "home"}"\n[mainframe]\nport = {mf.port}\n',
            )
            gateway_toml = _write(
                tmp_path / "gateway.toml",
                '[gateway]\nport = 0\npublic_url = "http://127.0.0.1"\n'
                '[clearing]\noutgoing = "test.cli.outgoing"\nstatus = "test.cli.status"\n'
                '[[clients]]\nclient_id = "tpp-one"\nsecret = "demo-secret-1"\n'
                f'certificate = "{cert.name}"\nredirect_uris = ["https://tpp.example/cb"]\n',
            )
            stop = asyncio.Event()
            started: list[tuple[BuiltGateway, int]] = []
            out = io.StringIO()
            task = asyncio.create_task(
                serve_gateway(
                    load_config(hub_toml, {}),
                    load_gateway_config(gateway_toml),
                    out,
                    ready=lambda built, port: started.append((built, port)),
                    stop=stop,
                )
            )
            while not started and not task.done():
                await asyncio.sleep(0.02)
            if not started:
                await task  # raises why it did not start
                raise AssertionError("the gateway stopped without starting")
            _, port = started[0]
            assert f"open-banking gateway on http://127.0.0.1:{port}" in out.getvalue()
            certificate = {"x-ssl-client-cert": quote(cert.read_text())}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                assert (await http.get("/healthz")).json() == {"status": "ok"}
                issued = await http.post(
                    "/oauth2/token",
                    data={"grant_type": "client_credentials", "client_id": "tpp-one"},
                    headers=certificate,
                )
                assert issued.status_code == 200, issued.text
                token = issued.json()["access_token"]
                created = await http.post(
                    "/open-banking/v4.0/aisp/account-access-consents",
                    json=account_consent_body(),
                    headers={"Authorization": f"Bearer {token}", **certificate},
                )
                assert created.status_code == 201, created.text
            stop.set()
            await task
            await asyncio.to_thread(delete_queues, "test.cli.outgoing", "test.cli.status")
            assert (tmp_path / "home" / "journal.db").exists()

    scenario()


async def _no_reports(document: bytes) -> int:
    return 0


def test_a_real_issuer_by_configuration(tmp_path: Path) -> None:
    from gateway.security.authserver import HttpJwksSource
    from gateway.store import create_engine, upgrade
    from hub.clearing_outgoing import ClearingOutgoing
    from hub.config_file import MainframeConfig
    from hub.core import CoreBanking, corebank_connector
    from hub.gateway import build_gateway
    from journal import Journal, StaticMasterKeys

    path = _write(
        tmp_path / "gateway.toml",
        '[issuer]\nissuer = "https://as.bank.example"\naudience = "https://api.bank.example"\n'
        'jwks_url = "https://as.bank.example/jwks"\n'
        '[[clients]]\nclient_id = "tpp-one"\nsecret = "demo-secret-1"\n',
    )
    config = load_gateway_config(path)
    assert config.issuer.jwks_url == "https://as.bank.example/jwks"

    # real parts, none of them started: the wiring is what is under test
    journal = Journal.open(
        f"sqlite:///{tmp_path / 'journal.db'}", StaticMasterKeys({1: bytes(32)}), create=True
    )
    core = CoreBanking(corebank_connector(MainframeConfig(port=1)))
    loop = asyncio.new_event_loop()
    clearing = ClearingOutgoing("amqp://guest:guest@127.0.0.1:5672/%2F", loop, _no_reports)
    engine = create_engine("sqlite://")
    upgrade(engine)
    built = build_gateway(
        core=core,
        clearing=clearing,
        journal=journal,
        engine=engine,
        issuer=config.issuer,
        clients=config.clients,
    )
    journal.close()
    engine.dispose()
    loop.close()
    assert built.authorization_server is None  # no built-in server, no /oauth2 endpoints
    source = built.services.verifier.keys.source
    assert isinstance(source, HttpJwksSource) and source.url == "https://as.bank.example/jwks"
    assert all(not getattr(r, "path", "").startswith("/oauth2") for r in built.app.routes)


def test_run_serves_the_hub_and_the_gateway_in_one_process(tmp_path: Path) -> None:
    from urllib.parse import parse_qs, urlparse

    from gateway.security.authserver import pkce_challenge
    from hub.gateway import seed_directory
    from hub.gateway_cli import serve_hub_with_gateway

    authority = TestAuthority(tmp_path)
    cert = authority.issue("tpp", "tpp-one", server=False).cert
    account = seed_directory().of("alice")[0]

    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf:
            hub_toml = _write(
                tmp_path / "hub.toml",
                f'[hub]\nhome = "{tmp_path / "home"}"\n[mainframe]\nport = {mf.port}\n',
            )
            gateway_toml = _write(
                tmp_path / "gateway.toml",
                '[gateway]\nport = 0\npublic_url = "http://127.0.0.1"\n'
                '[clearing]\noutgoing = "test.run.outgoing"\nstatus = "test.run.status"\n'
                '[[clients]]\nclient_id = "tpp-one"\n'
                f'certificate = "{cert.name}"\nredirect_uris = ["https://tpp.example/cb"]\n'
                'scopes = ["accounts", "payments", "admin"]\n',
            )
            stop = asyncio.Event()
            started: list[int] = []
            task = asyncio.create_task(
                serve_hub_with_gateway(
                    load_config(hub_toml, {}),
                    load_gateway_config(gateway_toml),
                    io.StringIO(),
                    ready=lambda _, port: started.append(port),
                    stop=stop,
                )
            )
            while not started and not task.done():
                await asyncio.sleep(0.02)
            if not started:
                await task
                raise AssertionError("the hub stopped without starting")
            headers = {"x-ssl-client-cert": quote(cert.read_text())}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{started[0]}") as http:

                async def token(**form: str) -> str:
                    answer = await http.post(
                        "/oauth2/token", data={"client_id": "tpp-one", **form}, headers=headers
                    )
                    assert answer.status_code == 200, answer.text
                    value: str = answer.json()["access_token"]
                    return value

                client = await token(grant_type="client_credentials")
                auth = {"Authorization": f"Bearer {client}", **headers}
                consent = await http.post(
                    "/open-banking/v4.0/aisp/account-access-consents",
                    json=account_consent_body(),
                    headers=auth,
                )
                verifier = "v" * 50
                redirect = await http.get(
                    "/oauth2/authorize",
                    params={
                        "response_type": "code", "client_id": "tpp-one", "scope": "accounts",
                        "redirect_uri": "https://tpp.example/cb", "psu": "alice",
                        "consent_id": consent.json()["Data"]["ConsentId"],
                        "code_challenge": pkce_challenge(verifier),
                        "code_challenge_method": "S256",
                    },
                )  # fmt: skip
                code = parse_qs(urlparse(redirect.headers["location"]).query)["code"][0]
                psu = await token(
                    grant_type="authorization_code", code=code, code_verifier=verifier,
                    redirect_uri="https://tpp.example/cb",
                )  # fmt: skip
                balances = await http.get(
                    f"/open-banking/v4.0/aisp/accounts/{account.account_id}/balances",
                    headers={"Authorization": f"Bearer {psu}", **headers},
                )
                assert balances.status_code == 200, balances.text  # through the hub's core
                admin = await token(grant_type="client_credentials", scope="admin")
                parked = await http.get(
                    "/ops/dead-letters/core",
                    headers={"Authorization": f"Bearer {admin}", **headers},
                )
                assert parked.json() == {"Data": {"DeadLetter": []}}  # the hub's transport
                assert (await http.get("/readyz")).json()["checked"] == ["journal", "broker"]
            stop.set()
            await task
            await asyncio.to_thread(delete_queues, "test.run.outgoing", "test.run.status")

    scenario()


def test_run_refuses_a_bad_gateway_file(tmp_path: Path) -> None:
    hub_toml = _write(tmp_path / "hub.toml", "[mainframe]\nport = 7070\n")
    bad = _write(tmp_path / "gateway.toml", "[gateway]\nprot = 1\n")
    err = io.StringIO()
    status = main(["run", "--config", str(hub_toml), "--gateway", str(bad)], stderr=err)
    assert status == 2 and "gateway.prot: unknown key" in err.getvalue()
