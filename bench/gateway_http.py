"""Benchmark: the open-banking gateway under uvicorn against a bare FastAPI endpoint.

Processes: ``python -m mainframe_sim serve`` (SQLite ledger, len2), the server under test
(``python -m bench.gateway_http serve-bare`` or ``serve-gateway``: one uvicorn worker each),
RabbitMQ for the payments' clearing queue, and this process, the client: ``--connections``
keep-alive HTTP/1.1 connections (raw asyncio streams, so the client costs little), each
sending the next request as soon as the answer is in, for ``--seconds``. Measured in one run:

- **floor**: ``GET /bare`` of a FastAPI application with that one endpoint returning a small
  JSON object (no middleware, no token);
- **balances**: ``GET /open-banking/v4.0/aisp/accounts/{AccountId}/balances`` with full token
  verification (ES256 JWT against the built-in issuer's JWKS, claims, scope, the
  certificate binding against the forwarded client certificate, the consent and its
  permission), then a ``BALQ`` on mainframe_sim through the core banking connector;
- **payments**: ``POST /open-banking/v4.0/pisp/domestic-payments`` with the same
  verification, OBIE schema validation, idempotency, a ``DEBT`` posting on the simulator,
  the journal (SQLite) and a pacs.008 published with a broker confirm; each payment needs an
  authorised consent of its own, prepared before the clock starts.

Both servers run on the same stack: uvicorn with httptools and uvloop (the gateway through
``isobridge gateway``'s own loop, :func:`hub.gateway_cli.run_event_loop`). Requests per
second and the ratio to the floor are printed, with the CPU time each process used per
request meanwhile (from ``/proc/<pid>/stat``: what a request costs, whatever else runs on
this shared machine) (``bench/RESULTS.md``)::

    .venv/bin/python -m bench.gateway_http [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
REDIRECT = "https://tpp.example/cb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# -- the servers (run as subprocesses) ---------------------------------------------------------


def serve_bare(port: int) -> None:
    """A FastAPI application with one endpoint: the floor."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def serve_gateway(port: int, mainframe_port: int, certificate: Path, home: Path) -> None:
    """The gateway, configured and wired as ``isobridge gateway`` does it."""
    from hub.config_file import load_config
    from hub.gateway_cli import run_event_loop
    from hub.gateway_cli import serve_gateway as serve
    from hub.gateway_config import load_gateway_config

    hub_toml = home / "hub.toml"
    hub_toml.write_text(f'[hub]\nhome = "{home}"\n[mainframe]\nport = {mainframe_port}\n')
    gateway_toml = home / "gateway.toml"
    # The PSU's second factor is off: what is measured is the resource endpoints, and the
    # 1,500 consents prepared for one PSU would need 1,500 TOTP time steps (one code each).
    gateway_toml.write_text(
        f"[gateway]\nport = {port}\nrate_per_second = 1000000\nburst = 1000000\n"
        "[gateway.sca]\nenabled = false\n"
        '[clearing]\noutgoing = "bench.clearing.outgoing"\nstatus = "bench.clearing.status"\n'
        f'[[clients]]\nclient_id = "tpp-bench"\ncertificate = "{certificate}"\n'
        f'redirect_uris = ["{REDIRECT}"]\n'
    )
    from hub.service import settle_heap

    # as run_gateway_command (``isobridge gateway``): the heap settled once serving
    run_event_loop(
        serve(
            load_config(hub_toml, {}),
            load_gateway_config(gateway_toml),
            sys.stdout,
            ready=lambda _built, _port: settle_heap(),
        )
    )


def _delete_queues(*names: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in names:
            for queue in (name, f"{name}.dlq"):
                channel.queue_delete(queue)
    finally:
        connection.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid``, from Linux ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    """One case: answers under 300 and the others, the seconds it ran, and the CPU seconds
    each server process and this client used meanwhile."""

    ok: int
    failed: int
    seconds: float
    cpu: dict[str, float]


def _case(
    port: int, requests: Iterator[Request], connections: int, seconds: float, pids: dict[str, int]
) -> Outcome:
    """Run :func:`_load`, metering the CPU of the processes ``pids`` names."""
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    own = time.process_time()
    ok, failed, took = asyncio.run(_load(port, requests, connections, seconds))
    cpu = {name: _cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    cpu["client"] = time.process_time() - own
    return Outcome(ok, failed, took, cpu)


# -- the client --------------------------------------------------------------------------------


@dataclass
class Request:
    """One prepared HTTP/1.1 request (bytes on the wire)."""

    raw: bytes


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Request:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return Request(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _load(
    port: int, requests: Iterator[Request], connections: int, seconds: float
) -> tuple[int, int, float]:
    """Send requests from ``requests`` over ``connections`` for ``seconds``: (ok, failed, s)."""
    ok = failed = 0
    deadline = time.monotonic() + seconds

    async def connection() -> None:
        nonlocal ok, failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                try:
                    request = next(requests)
                except StopIteration:
                    return
                writer.write(request.raw)
                status = await _read_response(reader)
                if status < 300:
                    ok += 1
                else:
                    failed += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return ok, failed, time.monotonic() - started


def _forever(request: Request) -> Iterator[Request]:
    while True:
        yield request


async def _prepare(port: int, certificate: str, payments: int) -> tuple[Request, list[Request]]:
    """A balances request with a PSU token, and ``payments`` payment requests, each with a
    consent of its own."""
    from gateway.security.authserver import pkce_challenge
    from hub.gateway import seed_directory

    cert = {"x-ssl-client-cert": quote(certificate)}
    base = f"http://127.0.0.1:{port}"
    account = seed_directory().of("alice")[0]
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def token(**form: str) -> str:
            answer = await http.post(
                "/oauth2/token", data={"client_id": "tpp-bench", **form}, headers=cert
            )
            answer.raise_for_status()
            value: str = answer.json()["access_token"]
            return value

        async def authorised(consent_id: str, scope: str) -> str:
            verifier = secrets.token_urlsafe(48)
            params = {
                "response_type": "code", "client_id": "tpp-bench", "redirect_uri": REDIRECT,
                "scope": scope, "consent_id": consent_id, "psu": "alice", "state": "s",
                "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256",
            }  # fmt: skip
            redirect = await http.get("/oauth2/authorize", params=params)
            code = parse_qs(urlparse(redirect.headers["location"]).query)["code"][0]
            return await token(grant_type="authorization_code", code=code,
                               redirect_uri=REDIRECT, code_verifier=verifier)  # fmt: skip

        client = await token(grant_type="client_credentials")
        auth = {"Authorization": f"Bearer {client}", **cert}
        consent = await http.post("/open-banking/v4.0/aisp/account-access-consents", json={
            "Data": {"Permissions": ["ReadAccountsDetail", "ReadBalances"]}, "Risk": {}},
            headers=auth)  # fmt: skip
        psu = await authorised(consent.json()["Data"]["ConsentId"], "accounts")
        balances = _request(
            "GET",
            f"/open-banking/v4.0/aisp/accounts/{account.account_id}/balances",
            {"Authorization": f"Bearer {psu}", **cert},
        )
        prepared: list[Request] = []
        for number in range(payments):
            initiation = {
                "InstructionIdentification": f"I{number:08d}",
                "EndToEndIdentification": f"B{secrets.token_hex(6)}",
                "InstructedAmount": {"Amount": "0.01", "Currency": "EUR"},
                "CreditorAccount": {"SchemeName": "UK.OBIE.IBAN",
                                    "Identification": "GB29NWBK60161331926819", "Name": "O S"},
            }  # fmt: skip
            body: dict[str, Any] = {"Data": {"Initiation": initiation}, "Risk": {}}
            created = await http.post(
                "/open-banking/v4.0/pisp/domestic-payment-consents",
                json=body,
                headers={**auth, "x-idempotency-key": f"c{number}"},
            )
            consent_id = created.json()["Data"]["ConsentId"]
            payment_psu = await authorised(consent_id, "payments")
            body["Data"]["ConsentId"] = consent_id
            prepared.append(
                _request(
                    "POST",
                    "/open-banking/v4.0/pisp/domestic-payments",
                    {
                        "Authorization": f"Bearer {payment_psu}",
                        **cert,
                        "x-idempotency-key": f"p{number}",
                    },
                    json.dumps(body).encode(),
                )
            )
    return balances, prepared


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (module docstring)."""
    parser = argparse.ArgumentParser(prog="bench.gateway_http")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--payments", type=int, default=1500, help="consents prepared")
    parser.add_argument("role", nargs="?", default="client")
    parser.add_argument("--port", type=int)
    parser.add_argument("--mainframe-port", type=int)
    parser.add_argument("--certificate")
    parser.add_argument("--home")
    parser.add_argument(
        "--only",
        choices=["balances"],
        help="run the floor and this case only (no payments prepared); e.g. to profile it",
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="seconds to wait, printing the server's pid, before the measured case (py-spy)",
    )
    args = parser.parse_args(argv)
    if args.role == "serve-bare":
        serve_bare(args.port)
        return 0
    if args.role == "serve-gateway":
        serve_gateway(args.port, args.mainframe_port, Path(args.certificate), Path(args.home))
        return 0

    from tests.certs import TestAuthority

    python = sys.executable
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        certificate = TestAuthority(work).issue("tpp", "tpp-bench", server=False).cert
        db = f"sqlite:///{work / 'ledger.db'}"
        subprocess.run(
            [python, "-m", "mainframe_sim", "--db", db, "seed"], check=True, capture_output=True
        )
        mainframe_port = _free_port()
        processes = [
            subprocess.Popen(
                [python, "-m", "mainframe_sim", "--db", db, "serve", "--port", str(mainframe_port)]
            )
        ]
        try:
            _wait_port(mainframe_port)
            bare_port = _free_port()
            processes.append(
                subprocess.Popen(
                    [python, "-m", "bench.gateway_http", "serve-bare", "--port", str(bare_port)]
                )
            )
            _wait_port(bare_port)
            floor = _case(
                bare_port,
                _forever(_request("GET", "/bare", {})),
                args.connections,
                args.seconds,
                {"server": processes[-1].pid},
            )
            processes.pop().terminate()
            gateway_port = _free_port()
            home = work / "home"
            home.mkdir()
            processes.append(subprocess.Popen([
                python, "-m", "bench.gateway_http", "serve-gateway", "--port", str(gateway_port),
                "--mainframe-port", str(mainframe_port), "--certificate", str(certificate),
                "--home", str(home)]))  # fmt: skip
            _wait_port(gateway_port)
            started = time.monotonic()
            balances, payments = asyncio.run(
                _prepare(
                    gateway_port,
                    certificate.read_text(),
                    0 if args.only == "balances" else args.payments,
                )
            )
            print(f"prepared {len(payments)} consents in {time.monotonic() - started:.1f} s")
            pids = {"server": processes[-1].pid, "mainframe_sim": processes[0].pid}
            if args.hold:
                print(f"gateway server pid {pids['server']}", flush=True)
                time.sleep(args.hold)
            read = _case(gateway_port, _forever(balances), args.connections, args.seconds, pids)
            pay: Outcome | None = None
            if args.only != "balances":
                pay = _case(gateway_port, iter(payments), args.connections, args.seconds, pids)
        finally:
            for process in processes:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
            _delete_queues("bench.clearing.outgoing", "bench.clearing.status")
    rows = [("bare FastAPI endpoint (floor)", floor), ("GET balances", read)]
    if pay is not None:
        rows.append(("POST domestic-payments", pay))
    floor_rate = floor.ok / floor.seconds
    print(f"{'case':30} {'ok':>7} {'failed':>6} {'req/s':>7} {'x floor':>7}  CPU per request")
    for name, outcome in rows:
        rate = outcome.ok / outcome.seconds
        cpu = ", ".join(
            f"{who} {seconds / max(outcome.ok, 1) * 1e6:,.0f} us"
            for who, seconds in outcome.cpu.items()
        )
        print(
            f"{name:30} {outcome.ok:7d} {outcome.failed:6d} {rate:7.0f} {rate / floor_rate:7.2f}"
            f"  {cpu}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
