"""``isobridge gateway``: its configuration file, and a real run under uvicorn against
mainframe_sim and RabbitMQ, reached over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from hub.cli import main
from hub.config_file import ConfigError, load_config
from hub.gateway import BuiltGateway
from hub.gateway_cli import CoalescingTransport, coalescing_protocol, serve_gateway
from hub.gateway_config import load_gateway_config
from tests.broker import own_name
from tests.certs import TestAuthority
from tests.gateway.harness import AMQP_URL, Authenticator, account_consent_body, delete_queues
from tests.hub.test_core import mainframe
from tests.hub.test_sca_cli import enrol_with_cli
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
        ('[gateway]\ndatabase = "mysql://db/gw"\n', "gateway.database: 'mysql' is not a database"),
        ('[gateway]\ndatabase = "sqlite://"\n', "gateway.database: sqlite:///<file>: an SQLite"),
        ('[gateway]\ndatabase = "sqlite:///:memory:"\n', "gateway.database: sqlite:///<file>"),
        ("[gateway]\ndatabase = 5\n", "gateway.database: expected a non-empty string"),
        ("[gateway]\nconsent_cache_seconds = 90\n", "gateway.consent_cache_seconds: 90"),
        ("[gateway]\nsca = true\n", "gateway.sca: expected a table"),
        ("[gateway.sca]\ndigits = 4\n", "gateway.sca.digits: 4 is not a number in 6..8"),
        ("[gateway.sca]\nstep = 0\n", "gateway.sca.step: 0 is not a number in 1..300"),
        ("[gateway.sca]\nmax_attempts = 0\n", "gateway.sca.max_attempts: 0 is not a number"),
        ("[gateway.sca]\nenabled = 1\n", "gateway.sca.enabled: expected true or false"),
        ("[gateway.sca]\nlockout = 1\n", "gateway.sca.lockout: unknown key"),
        ('[gateway.sca]\nalgorithm = "MD5"\n', "gateway.sca.algorithm: MD5 is not one of SHA1"),
    ],
)
def test_configuration_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "gateway.toml", text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_gateway_config(path)


def test_where_the_gateway_keeps_its_state(tmp_path: Path) -> None:
    from hub.gateway_config import database_url

    default = load_gateway_config(_write(tmp_path / "a.toml", ""))
    assert default.database is None and default.consent_cache_seconds == 1.0
    assert database_url(default, tmp_path / "home") == f"sqlite:///{tmp_path / 'home'}/gateway.db"
    relative = load_gateway_config(
        _write(tmp_path / "b.toml", '[gateway]\ndatabase = "sqlite:///state/gw.db"\n')
    )
    assert database_url(relative, tmp_path / "home") == f"sqlite:///{tmp_path / 'state/gw.db'}"
    url = "postgresql+psycopg://gw:secret@db.bank.example/gateway"
    shared = load_gateway_config(
        _write(
            tmp_path / "c.toml",
            f'[gateway]\ndatabase = "{url}"\nconsent_cache_seconds = 0\n',
        )
    )
    assert database_url(shared, tmp_path) == url and shared.consent_cache_seconds == 0


def test_strong_customer_authentication_settings(tmp_path: Path) -> None:
    from gateway.security.sca import ScaSettings

    assert load_gateway_config(_write(tmp_path / "a.toml", "")).sca == ScaSettings()
    assert ScaSettings().enabled  # on by default for the built-in server
    text = (
        '[gateway.sca]\nenabled = false\ndigits = 8\nstep = 60\nalgorithm = "sha256"\n'
        'skew_steps = 2\nmax_attempts = 3\nlockout_seconds = 600\nissuer_label = "Bank"\n'
    )
    assert load_gateway_config(_write(tmp_path / "b.toml", text)).sca == ScaSettings(
        enabled=False, digits=8, step=60, algorithm="SHA256", skew_steps=2, max_attempts=3,
        lockout_seconds=600.0, issuer_label="Bank",
    )  # fmt: skip


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
    outgoing, status = own_name("test.cli.outgoing"), own_name("test.cli.status")

    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf:
            hub_toml = _write(
                tmp_path / "hub.toml",
                f'[hub]\nhome = "{tmp_path / "home"}"\n[mainframe]\nport = {mf.port}\n'
                # the signing key rotates on its own after one token, published 1 s first
                "[keys]\ncheck_interval = 0.05\njwks_prepublish = 1\n"
                '[[keys.policies]]\nfamily = "authserver.signing"\nmax_uses = 1\n',
            )
            gateway_toml = _write(
                tmp_path / "gateway.toml",
                '[gateway]\nport = 0\npublic_url = "http://127.0.0.1"\n'
                f'[clearing]\noutgoing = "{outgoing}"\nstatus = "{status}"\n'
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
                registry = started[0][0].services.metrics.registry
                rotated = {"family": "authserver.signing", "outcome": "rotated"}
                while registry.get_sample_value("isobridge_key_rotations_total", rotated) != 1:
                    await asyncio.sleep(0.02)  # the running gateway rotates the key it used
                assert len((await http.get("/oauth2/jwks")).json()["keys"]) == 2
                ready = (await http.get("/readyz")).json()
                assert "key_rotation" in ready.get("checked", ready.get("failed")), ready
                created = await http.post(
                    "/open-banking/v4.0/aisp/account-access-consents",
                    json=account_consent_body(),
                    headers={"Authorization": f"Bearer {token}", **certificate},
                )
                assert created.status_code == 201, created.text
            stop.set()
            await task
            assert (tmp_path / "home" / "journal.db").exists()

    try:
        scenario()
    finally:
        delete_queues(outgoing, status)


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
    outgoing, status = own_name("test.run.outgoing"), own_name("test.run.status")

    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf:
            hub_toml = _write(
                tmp_path / "hub.toml",
                f'[hub]\nhome = "{tmp_path / "home"}"\n[mainframe]\nport = {mf.port}\n'
                # the signing key rotates on its own after one token, published 1 s first
                "[keys]\ncheck_interval = 0.05\njwks_prepublish = 1\n"
                '[[keys.policies]]\nfamily = "authserver.signing"\nmax_uses = 1\n',
            )
            gateway_toml = _write(
                tmp_path / "gateway.toml",
                '[gateway]\nport = 0\npublic_url = "http://127.0.0.1"\n'
                f'[clearing]\noutgoing = "{outgoing}"\nstatus = "{status}"\n'
                '[[clients]]\nclient_id = "tpp-one"\n'
                f'certificate = "{cert.name}"\nredirect_uris = ["https://tpp.example/cb"]\n'
                'scopes = ["accounts", "payments", "admin"]\n',
            )
            alice = enrol_with_cli(hub_toml, gateway_toml, environ={})  # as load_config below
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
                        "code_challenge_method": "S256", "totp": alice.code(time.time()),
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
                assert (await http.get("/readyz")).json()["checked"] == [
                    "journal",
                    "broker",
                    "key_rotation",
                ]
                metrics = await http.get(
                    "/metrics", headers={"Authorization": f"Bearer {admin}", **headers}
                )
                names = {
                    sample.name
                    for family in text_string_to_metric_families(metrics.text)
                    for sample in family.samples
                }
                # One registry: the gateway's HTTP series beside the hub's own.
                assert "isobridge_gateway_requests_total" in names
                assert "isobridge_destination_queue_depth" in names
                assert "isobridge_circuit_breaker_state" in names
                assert "isobridge_key_age_seconds" in names  # the vault's and the signing keys'
            stop.set()
            await task

    try:
        scenario()
    finally:
        delete_queues(outgoing, status)


def test_run_refuses_a_bad_gateway_file(tmp_path: Path) -> None:
    hub_toml = _write(tmp_path / "hub.toml", "[mainframe]\nport = 7070\n")
    bad = _write(tmp_path / "gateway.toml", "[gateway]\nprot = 1\n")
    err = io.StringIO()
    status = main(["run", "--config", str(hub_toml), "--gateway", str(bad)], stderr=err)
    assert status == 2 and "gateway.prot: unknown key" in err.getvalue()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _gateway_process(hub_toml: Path, gateway_toml: Path) -> Iterator[str]:
    """``isobridge gateway`` in a process of its own: its base URL once it serves."""
    errors = gateway_toml.with_suffix(".err")
    with errors.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "gateway", "--config", str(hub_toml),
             "--gateway", str(gateway_toml)],
            stdout=subprocess.PIPE, stderr=err, text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )  # fmt: skip
    assert process.stdout is not None
    with process.stdout:
        try:
            for line in process.stdout:
                if found := re.search(r"open-banking gateway on (http://\S+)", line):
                    break
            else:
                raise AssertionError(f"the gateway did not start: {errors.read_text()[-2000:]}")
            yield found.group(1)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_gateway_processes_share_one_database(tmp_path: Path, kind: str) -> None:
    """Two ``isobridge gateway`` processes on one database (behind one public address, as
    behind a load balancer): a consent made on one is authorised and used through the
    other, and one ``x-idempotency-key`` sent to both at once makes one payment."""
    from gateway.security.authserver import pkce_challenge
    from gateway.store import create_engine, payments_table, upgrade
    from tests.gateway.harness import payment_consent_body
    from tests.support import migrated_database

    authority = TestAuthority(tmp_path)
    cert = authority.issue("tpp", "tpp-one", server=False).cert
    queues = (own_name("test.two.outgoing"), own_name("test.two.status"))
    headers = {"x-ssl-client-cert": quote(cert.read_text())}

    @on_event_loop
    async def scenario(url: str, options: dict[str, Any]) -> None:
        if options:  # PostgreSQL: the test's schema, in the URL that gateway.toml holds
            url += "?options=" + quote(options["connect_args"]["options"])
        async with mainframe(tmp_path) as mf:
            hub_toml = _write(
                tmp_path / "hub.toml",
                f'[hub]\nhome = "{tmp_path / "home"}"\n[mainframe]\nport = {mf.port}\n'
                # the signing key rotates on its own after one token, published 1 s first
                "[keys]\ncheck_interval = 0.05\njwks_prepublish = 1\n"
                '[[keys.policies]]\nfamily = "authserver.signing"\nmax_uses = 1\n',
            )
            tomls = [
                _write(
                    tmp_path / f"gateway-{n}.toml",
                    f'[gateway]\nport = {_free_port()}\npublic_url = "https://api.bank.test"\n'
                    f'database = "{url}"\n'
                    '[issuer]\nissuer = "https://api.bank.test"\n'
                    f'[clearing]\noutgoing = "{queues[0]}"\nstatus = "{queues[1]}"\n'
                    '[[clients]]\nclient_id = "tpp-one"\n'
                    f'certificate = "{cert.name}"\nredirect_uris = ["https://tpp.example/cb"]\n',
                )
                for n in (1, 2)
            ]
            alice = enrol_with_cli(hub_toml, tomls[1])  # the same database for both
            with contextlib.ExitStack() as processes:
                bases = [processes.enter_context(_gateway_process(hub_toml, t)) for t in tomls]
                async with (
                    httpx.AsyncClient(base_url=bases[0]) as one,
                    httpx.AsyncClient(base_url=bases[1]) as two,
                ):
                    await _pay_through_both(one, two, headers, payment_consent_body("2.50"), alice)
        engine = create_engine(url.split("?")[0], **options)
        upgrade(engine)  # a no-op: the first process made the tables
        with engine.connect() as connection:
            rows = connection.execute(select(payments_table.c.consent_id)).all()
        engine.dispose()
        assert len(rows) == 1

    async def _pay_through_both(
        one: httpx.AsyncClient,
        two: httpx.AsyncClient,
        headers: dict[str, str],
        consent_body: dict[str, Any],
        alice: Authenticator,
    ) -> None:
        pisp = "/open-banking/v4.0/pisp"
        issued = await one.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "tpp-one"},
            headers=headers,
        )
        client = {"Authorization": f"Bearer {issued.json()['access_token']}", **headers}
        created = await two.post(
            f"{pisp}/domestic-payment-consents",
            json=consent_body,
            headers={**client, "x-idempotency-key": "consent-1"},
        )
        assert created.status_code == 201, created.text
        consent_id = created.json()["Data"]["ConsentId"]
        verifier = "v" * 50
        redirect = await one.get(
            "/oauth2/authorize",
            params={
                "response_type": "code", "client_id": "tpp-one", "scope": "payments",
                "redirect_uri": "https://tpp.example/cb", "psu": "alice",
                "consent_id": consent_id, "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256", "totp": alice.code(time.time()),
            },
        )  # fmt: skip
        assert redirect.status_code == 302, redirect.text
        code = parse_qs(urlparse(redirect.headers["location"]).query)["code"][0]
        redeemed = await two.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": "https://tpp.example/cb", "client_id": "tpp-one",
            },
            headers=headers,
        )  # fmt: skip
        assert redeemed.status_code == 200, redeemed.text
        payer = {
            "Authorization": f"Bearer {redeemed.json()['access_token']}",
            "x-idempotency-key": "pay-1",
            **headers,
        }
        body = json.loads(json.dumps(consent_body))
        body["Data"]["ConsentId"] = consent_id
        answers = await asyncio.gather(
            one.post(f"{pisp}/domestic-payments", json=body, headers=payer),
            two.post(f"{pisp}/domestic-payments", json=body, headers=payer),
        )
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        assert answers[0].content == answers[1].content  # one payment, one answer
        payment_id = answers[0].json()["Data"]["DomesticPaymentId"]
        for side in (one, two):
            got = await side.get(f"{pisp}/domestic-payments/{payment_id}", headers=client)
            assert got.status_code == 200, got.text

    with migrated_database(kind, tmp_path, "gateway", create_engine, upgrade) as (url, options):
        try:
            scenario(url, options)
        finally:
            delete_queues(*queues)


def test_run_refuses_workers_that_cannot_share_the_gateway_port(tmp_path: Path) -> None:
    hub_toml = _write(tmp_path / "hub.toml", "[mainframe]\nport = 7070\n")
    any_port = _write(tmp_path / "gateway.toml", "[gateway]\nport = 0\n")
    err = io.StringIO()
    argv = ["run", "--config", str(hub_toml), "--gateway", str(any_port), "--workers", "2"]
    assert main(argv, stderr=err) == 2
    assert "--workers 2: [gateway] port is 0 (any free port)" in err.getvalue()


def test_gateway_payments_go_through_the_sagas_when_configured(tmp_path: Path) -> None:
    """``[clearing] sagas = true``: the gateway's payments are given to the payment sagas,
    whose runner runs, and the status queue's answers go to them (one that matches no saga
    is parked with the reason)."""
    from canonical_model.codes import TransactionStatus
    from hub.sagas.service import PaymentSagas
    from tests.hub.sagas.clearing_peer import status_report
    from tests.hub.sagas.test_payments import _parked

    outgoing, status = own_name("test.cli.sagas.out"), own_name("test.cli.sagas.st")

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
                f'[clearing]\noutgoing = "{outgoing}"\nstatus = "{status}"\nsagas = true\n',
            )
            stop = asyncio.Event()
            started: list[BuiltGateway] = []
            task = asyncio.create_task(
                serve_gateway(
                    load_config(hub_toml, {}),
                    load_gateway_config(gateway_toml),
                    io.StringIO(),
                    ready=lambda built, _: started.append(built),
                    stop=stop,
                )
            )
            try:
                while not started and not task.done():
                    await asyncio.sleep(0.02)
                if not started:
                    await task
                    raise AssertionError("the gateway stopped without starting")
                sagas = started[0].payments.sagas
                assert isinstance(sagas, PaymentSagas)
                stranger = status_report("pmt-nobody", "E2E-X", None, TransactionStatus.ACSC)
                await asyncio.to_thread(_publish, status, stranger)
                parked: list[tuple[bytes, str]] = []
                for _ in range(200):
                    parked += await asyncio.to_thread(_parked, status)
                    if parked:
                        break
                    await asyncio.sleep(0.05)
                assert parked and "matches no payment saga" in parked[0][1]
                assert sagas.answers.parked == 1
            finally:
                stop.set()
                await task

    try:
        scenario()
    finally:
        delete_queues(outgoing, status)


def _publish(queue: str, document: bytes) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().basic_publish(
            "", queue, document, pika.BasicProperties(delivery_mode=2)
        )
    finally:
        connection.close()


def _loop_factories() -> list[Any]:
    import uvloop

    return [asyncio.new_event_loop, uvloop.new_event_loop]


@pytest.mark.parametrize("loop_factory", _loop_factories(), ids=["asyncio", "uvloop"])
def test_coalescing_transport_sends_the_writes_of_one_loop_turn_together(
    loop_factory: Any,
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        try:
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
            coalescing = CoalescingTransport(transport)
            coalescing.write(b"HTTP/1.1 200 OK\r\n\r\n")
            coalescing.write(b"")
            coalescing.write(memoryview(b'{"a":1}'))
            with pytest.raises(BlockingIOError):  # held until the turn ends
                theirs.recv(100)
            assert coalescing.get_write_buffer_size() == 26
            await asyncio.sleep(0)
            assert theirs.recv(100) == b'HTTP/1.1 200 OK\r\n\r\n{"a":1}'
            assert coalescing.get_write_buffer_size() == 0
            coalescing.writelines([b"last", b" words"])
            coalescing.close()  # what is held goes out before the connection closes
            assert coalescing.is_closing()
            await asyncio.sleep(0.01)
            assert theirs.recv(100) == b"last words"
            assert theirs.recv(100) == b""
        finally:
            theirs.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(scenario())


def test_coalescing_protocol_wraps_the_transport_uvicorn_writes_to() -> None:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    made: list[asyncio.BaseTransport] = []

    class Recording(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    protocol = coalescing_protocol(Recording)()
    ours, theirs = socket.socketpair()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
        assert isinstance(made[0], CoalescingTransport)
        assert made[0].transport is transport
        transport.close()

    try:
        asyncio.run(scenario())
    finally:
        theirs.close()
    assert (
        coalescing_protocol(AutoHTTPProtocol).__name__ == f"Coalescing{AutoHTTPProtocol.__name__}"
    )
