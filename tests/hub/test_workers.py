"""``isobridge run`` with several workers: one port, the work shared, a dead worker replaced.

Real processes throughout: the supervisor and its workers are ``isobridge run`` processes,
the acquirers are TCP clients that build their messages with pyiso8583 (not our adapter),
the core is a real ``mainframe_sim`` server, and the shared-work test runs over RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest

from hub.cli import main
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from tests.hub.test_edge import Client, _parse
from tests.hub.test_service import _purchase
from tests.mainframe_sim.samples import ANNA, JONAS
from tests.routing.conftest import amqp_url, hub_namespace, require_broker
from tests.support import on_event_loop

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = (ANNA, JONAS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(
    tmp_path: Path, port: int, mainframe_port: int, transport: str, namespace: str = "isobridge"
) -> Path:
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\nworkers = 2\n'
        f'[routing]\ntransport = "{transport}"\nnamespace = "{namespace}"\n'
        f"[[listeners]]\nname = 'pos'\nport = {port}\nrequest_timeout = 10.0\n"
        f"[mainframe]\nport = {mainframe_port}\n"
    )
    return config


class Supervised:
    """``isobridge run`` with workers, as a process; its output read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(
        cls,
        config: Path,
        *extra: str,
        ready: str = r"^isobridge\[worker \d\]: transport .* running$",
    ) -> Supervised:
        """Start ``isobridge run`` and read until two lines match ``ready``."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "run", "--config", str(config), *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        supervised = cls(process)
        await supervised.wait_for_lines(ready, 2)
        return supervised

    async def wait_for_lines(self, pattern: str, count: int = 1, timeout: float = 60) -> list[str]:
        """Read output until ``count`` lines (seen so far included) match ``pattern``."""
        compiled = re.compile(pattern)
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while len(found := [x for x in self.lines if compiled.search(x)]) < count:
                line = (await self.process.stdout.readline()).decode()
                assert line, f"isobridge run ended; its output:\n{''.join(self.lines)}"
                self.lines.append(line.rstrip("\n"))
        return found

    def worker_pids(self) -> list[int]:
        started = next(x for x in self.lines if "workers started (pids" in x)
        return [int(pid) for pid in re.findall(r"\d+", started.split("pids")[1])]

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), 60)
        self.lines += rest.decode().splitlines()
        return await asyncio.wait_for(self.process.wait(), 30)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"


def test_two_workers_share_the_port_and_the_work_and_the_ledger_reconciles(
    tmp_path: Path,
) -> None:
    url = amqp_url()
    require_broker(url)

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        before = {number: ledger.balances(number) for number in ACCOUNTS}
        approved: Counter[str] = Counter()
        port = _free_port()
        hub = await Supervised.start(_config(tmp_path, port, mainframe_port, url, namespace))
        try:

            async def terminal(first: int) -> None:
                client = await Client.connect(port)
                for stan in range(first, first + 10):
                    account, amount = ACCOUNTS[stan % 2], 100 + stan % 37
                    await client.send(_purchase(stan, amount, account))
                    mti, fields = _parse(await client.receive(timeout=20))
                    assert (mti, fields[11]) == ("0210", f"{stan:06d}")
                    if fields[39] == "00":
                        approved[account] += amount
                await client.close()

            await asyncio.gather(*(terminal(1000 * n + 1) for n in range(1, 17)))
            assert await hub.stop() == 0
        finally:
            await hub.kill()
            await server.close()
        served = [
            int(re.findall(r"after (\d+) requests", x)[0])
            for x in hub.lines
            if re.match(r"isobridge\[worker \d\]: stopping after", x)
        ]
        assert len(served) == 2 and sum(served) == 160
        assert min(served) > 0, f"one worker took every connection: {served}"
        for number in ACCOUNTS:
            start, end = before[number], ledger.balances(number)
            assert start is not None and end is not None
            assert start.ledger - end.ledger == approved[number], number
        assert sum(approved.values()) > 0
        assert ledger.check().balanced
        ledger.close()

    with hub_namespace(url) as namespace:
        scenario()


def test_a_killed_worker_is_started_again_and_no_worker_outlives_the_supervisor(
    tmp_path: Path,
) -> None:
    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        port = _free_port()
        hub = await Supervised.start(_config(tmp_path, port, mainframe_port, "memory://"))
        try:
            first, second = hub.worker_pids()
            os.kill(first, signal.SIGKILL)
            await hub.wait_for_lines(r"worker 1 \(pid \d+\) exited with status -9 after")
            restarted = await hub.wait_for_lines(r"worker 1 started again \(pid \d+\)")
            replacement = int(re.findall(r"pid (\d+)", restarted[0])[0])
            await hub.wait_for_lines(r"^isobridge\[worker 1\]: transport .* running$", 2)
            for stan in range(1, 9):  # whichever worker a connection lands on, it is served
                client = await Client.connect(port)
                await client.send(_purchase(stan, 250, ANNA))
                assert _parse(await client.receive(timeout=20))[1][39] == "00"
                await client.close()
            assert await hub.stop() == 0
        finally:
            await hub.kill()
            await server.close()
            ledger.close()
        assert not _alive(first)
        for pid in (second, replacement):
            assert not _alive(pid), f"worker {pid} outlived its supervisor"

    scenario()


def test_a_worker_that_cannot_start_stops_them_all_with_its_status(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        with socket.socket() as taken:  # no SO_REUSEPORT: the workers cannot bind
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            config = _config(tmp_path, port, 1, "memory://")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.cli", "run", "--config", str(config),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
            try:
                output, _ = await asyncio.wait_for(process.communicate(), 60)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        assert process.returncode == 1
        text = output.decode()
        assert "address already in use" in text
        assert re.search(r"worker \d exited at start-up with status 1; stopping", text)

    scenario()


@pytest.mark.parametrize(
    ("table", "argv", "message"),
    [
        (
            "[hub]\nworkers = 2\n[[listeners]]\nname = 'pos'\nport = 0\n",
            [],
            "listeners[0].port: 0 (any free port) cannot be shared by 2 workers: name a port",
        ),
        ("[hub]\nworkers = 0\n", [], "hub.workers: 0 is outside 1..64"),
        (
            "[[listeners]]\nname = 'pos'\nport = 0\n",
            ["--workers", "3"],
            "--workers 3: listener 'pos' has port 0 (any free port), which workers cannot"
            " share: name a port",
        ),
        ("", ["--workers", "0"], "--workers: 0 is outside 1..64"),
    ],
)
def test_workers_that_cannot_share_a_port_are_refused_at_start(
    tmp_path: Path, table: str, argv: list[str], message: str
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(table)
    err = io.StringIO()
    status = main(["run", "--config", str(config), *argv], stdout=io.StringIO(), stderr=err)
    assert status == 2
    assert message in err.getvalue()


def test_the_supervisor_serves_the_metrics_of_every_worker_summed(tmp_path: Path) -> None:
    from tests.observability.test_metrics import scrape, value

    url = amqp_url()
    require_broker(url)

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        port = _free_port()
        config = _config(tmp_path, port, mainframe_port, url, namespace)
        config.write_text(config.read_text() + '[metrics]\nlisten = "127.0.0.1:0"\n')
        hub = await Supervised.start(config)
        try:
            (line,) = await hub.wait_for_lines(r"^isobridge: metrics of every worker on http://")
            host, metrics_port = re.findall(r"http://([\d.]+):(\d+)/metrics", line)[0]
            address = (host, int(metrics_port))

            async def terminal(first: int) -> None:
                client = await Client.connect(port)
                for stan in range(first, first + 3):
                    await client.send(_purchase(stan, 100, ANNA))
                    assert _parse(await client.receive(timeout=20))[1][39] == "00"
                await client.close()

            await asyncio.gather(*(terminal(100 * n) for n in range(1, 9)))
            _, summed = await asyncio.to_thread(scrape, address)
            first, second = hub.worker_pids()
            files = {p.name for p in tmp_path.rglob("metrics/*.db")}
            os.kill(first, signal.SIGKILL)
            await hub.wait_for_lines(r"worker 1 started again \(pid \d+\)")
            _, after_kill = await asyncio.to_thread(scrape, address)
            assert await hub.stop() == 0
        finally:
            await hub.kill()
            await server.close()
            ledger.close()

        request = {"adapter": "iso8583:ascii", "message_type": "financial.request"}
        for samples in (summed, after_kill):  # a dead worker's counters stay in the sum
            assert value(samples, "isobridge_adapter_decode_total", **request) == 24
            assert value(samples, "isobridge_edge_request_seconds_count", listener="pos") == 24
            assert value(samples, "isobridge_edge_connections_accepted_total", listener="pos") == 8
            tokenized = value(
                samples, "isobridge_vault_operations_total", operation="tokenize", outcome="ok"
            )
            assert tokenized == 24
            assert value(samples, "isobridge_edge_in_flight", listener="pos") == 0
            assert value(samples, "isobridge_circuit_breaker_state", breaker="mainframe") == 0
            assert value(samples, "isobridge_transport_up") == 1
            assert ("isobridge_destination_queue_depth", frozenset({("destination", "core")})) in (
                samples
            )
        # both workers wrote their values (each set its breaker gauge at start)
        assert {f"gauge_livemax_{first}.db", f"gauge_livemax_{second}.db"} <= files

    with hub_namespace(url) as namespace:
        scenario()


def test_each_worker_traces_on_a_provider_of_its_own(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        port = _free_port()
        config = _config(tmp_path, port, mainframe_port, "memory://")
        config.write_text(config.read_text() + '[tracing]\nexporter = "console"\n')
        hub = await Supervised.start(config)
        assert hub.process.stdout is not None
        stdout = hub.process.stdout

        async def drain() -> None:  # the spans are many: a full pipe would hold the workers
            while line := await stdout.readline():
                hub.lines.append(line.decode().rstrip("\n"))

        reader = asyncio.create_task(drain())
        try:

            async def terminal(first: int) -> None:
                client = await Client.connect(port)
                for stan in range(first, first + 3):
                    await client.send(_purchase(stan, 100, ANNA))
                    assert _parse(await client.receive(timeout=20))[1][39] == "00"
                await client.close()

            await asyncio.gather(*(terminal(1000 * n + 1) for n in range(1, 17)))
            hub.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(reader, 60)
            assert await asyncio.wait_for(hub.process.wait(), 30) == 0
        finally:
            reader.cancel()
            await hub.kill()
            await server.close()
            ledger.close()
        output = "\n".join(hub.lines)
        instances = Counter(re.findall(r'"service\.instance\.id": "([^"]+)"', output))
        assert len(instances) == 2, instances  # one provider per worker process
        assert output.count('"name": "edge receive"') == 48
        assert output.count('"name": "mainframe posting"') == 48

    scenario()


def test_workers_serve_the_gateway_on_one_port_from_one_database(tmp_path: Path) -> None:
    """``run --workers 2 --gateway``: both workers serve the gateway's port; a TPP whose
    every request opens a new connection (so the kernel picks a worker each time) makes a
    consent, has it authorised, reads with it, pays and revokes, as with one process."""
    from gateway.security.authserver import pkce_challenge
    from tests.broker import own_name
    from tests.certs import TestAuthority
    from tests.gateway.harness import (
        Authenticator,
        account_consent_body,
        delete_queues,
        payment_consent_body,
    )
    from tests.hub.test_sca_cli import enrol_with_cli

    cert = TestAuthority(tmp_path).issue("tpp", "tpp-one", server=False).cert
    headers = {"x-ssl-client-cert": quote(cert.read_text())}
    queues = (own_name("test.workers.outgoing"), own_name("test.workers.status"))
    gateway_port = _free_port()
    gateway_toml = tmp_path / "gateway.toml"
    gateway_toml.write_text(
        f'[gateway]\nport = {gateway_port}\npublic_url = "https://api.bank.test"\n'
        "consent_cache_seconds = 60\n"  # cached long: the revocation still holds at once
        '[issuer]\nissuer = "https://api.bank.test"\n'
        f'[clearing]\noutgoing = "{queues[0]}"\nstatus = "{queues[1]}"\n'
        '[[clients]]\nclient_id = "tpp-one"\n'
        f'certificate = "{cert.name}"\nredirect_uris = ["https://tpp.example/cb"]\n'
    )

    async def call(method: str, path: str, **options: Any) -> httpx.Response:
        fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection: any worker
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway_port}", limits=fresh
        ) as http:
            return await http.request(method, path, **options)

    async def token(**form: str) -> str:
        issued = await call(
            "POST", "/oauth2/token", data={"client_id": "tpp-one", **form}, headers=headers
        )
        assert issued.status_code == 200, issued.text
        value: str = issued.json()["access_token"]
        return value

    alice: list[Authenticator] = []  # her app, once enrolled

    async def authorised(consent_id: str, scope: str) -> dict[str, str]:
        verifier = "w" * 50
        redirect = await call(
            "GET",
            "/oauth2/authorize",
            params={
                "response_type": "code", "client_id": "tpp-one", "scope": scope,
                "redirect_uri": "https://tpp.example/cb", "psu": "alice",
                "consent_id": consent_id, "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256", "totp": alice[0].code(time.time()),
            },
        )  # fmt: skip
        assert redirect.status_code == 302, redirect.text
        code = parse_qs(urlparse(redirect.headers["location"]).query)["code"][0]
        psu = await token(
            grant_type="authorization_code", code=code, code_verifier=verifier,
            redirect_uri="https://tpp.example/cb",
        )  # fmt: skip
        return {"Authorization": f"Bearer {psu}", **headers}

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        config = _config(tmp_path, _free_port(), mainframe_port, "memory://")
        alice.append(enrol_with_cli(config, gateway_toml))
        hub = await Supervised.start(
            config, "--gateway", str(gateway_toml), ready=r"open-banking gateway on http://"
        )
        try:
            client = {"Authorization": f"Bearer {await token(grant_type='client_credentials')}"}
            client.update(headers)
            aisp, pisp = "/open-banking/v4.0/aisp", "/open-banking/v4.0/pisp"
            created = await call(
                "POST", f"{aisp}/account-access-consents",
                json=account_consent_body(), headers=client,
            )  # fmt: skip
            assert created.status_code == 201, created.text
            access_id = created.json()["Data"]["ConsentId"]
            reader = await authorised(access_id, "accounts")
            for _ in range(8):
                accounts = await call("GET", f"{aisp}/accounts", headers=reader)
                assert accounts.status_code == 200, accounts.text
            consent_body = payment_consent_body("1.75")
            made = await call(
                "POST", f"{pisp}/domestic-payment-consents", json=consent_body,
                headers={**client, "x-idempotency-key": "k-consent"},
            )  # fmt: skip
            assert made.status_code == 201, made.text
            payment_consent = made.json()["Data"]["ConsentId"]
            payer = await authorised(payment_consent, "payments")
            body = {**consent_body, "Data": {**consent_body["Data"], "ConsentId": payment_consent}}
            pay = {**payer, "x-idempotency-key": "k-pay"}
            answers = [
                await call("POST", f"{pisp}/domestic-payments", json=body, headers=pay)
                for _ in range(4)
            ]
            assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
            assert len({a.content for a in answers}) == 1  # one payment, whichever worker
            payment_id = answers[0].json()["Data"]["DomesticPaymentId"]
            for _ in range(4):
                got = await call("GET", f"{pisp}/domestic-payments/{payment_id}", headers=client)
                assert got.status_code == 200, got.text
            gone = await call(
                "DELETE", f"{aisp}/account-access-consents/{access_id}", headers=client
            )
            assert gone.status_code == 204, gone.text
            for _ in range(4):
                refused = await call("GET", f"{aisp}/accounts", headers=reader)
                assert refused.status_code == 403, refused.text
            assert await hub.stop() == 0
        finally:
            await hub.kill()
            await server.close()
            ledger.close()
            await asyncio.to_thread(delete_queues, *queues)

    scenario()


def test_a_worker_whose_supervisor_is_already_gone_exits_at_once(tmp_path: Path) -> None:
    """A supervisor that died while its worker was still starting cannot be signalled by the
    kernel any more: the worker notices (its parent is not the supervisor named) and exits
    instead of living on as an orphan."""
    config = _config(tmp_path, _free_port(), 1, "memory://")
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", "--worker", "1", "--workers", "2",
         "--config", str(config)],
        env={**os.environ, "ISOBRIDGE_SUPERVISOR_PID": "1"},  # not our parent: gone
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "its supervisor (pid 1) is gone; exiting" in done.stderr
