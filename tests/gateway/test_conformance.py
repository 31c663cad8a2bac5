"""schemathesis against the gateway's own OpenAPI documents, over real HTTP (uvicorn).

The gateway runs on a thread of its own (its event loop holds the mainframe connector and
mainframe_sim); schemathesis loads ``/open-banking/v4.0/{aisp,pisp}/openapi.json`` from it
and sends generated requests to every operation, with valid tokens (a client-credentials
token for consents, a PSU token bound to an authorised consent for the rest) so that the
requests get past authentication and reach the body and parameter checks. Every response
must not be a server error, and every body must conform to its declared schema.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Err

from gateway.app import GatewaySettings
from tests.gateway.harness import (
    AISP,
    PISP,
    account_consent_body,
    payment_consent_body,
    running_gateway,
)


@dataclass
class Served:
    """The gateway under uvicorn: its address and headers that authenticate."""

    base: str
    client: dict[str, str]
    account_psu: dict[str, str]
    payment_psu: dict[str, str]


def _serve(
    tmp_path: Path, ready: list[Served], stop: threading.Event, failed: list[BaseException]
) -> None:
    import uvicorn

    async def main() -> None:
        settings = GatewaySettings(public_url="http://127.0.0.1", rate_per_second=1e6, burst=10**6)
        async with running_gateway(tmp_path, settings=settings) as h:
            token = await h.client_token()
            created = await h.http.post(
                f"{AISP}/account-access-consents",
                json=account_consent_body(),
                headers=h.auth(token),
            )
            accounts = await h.authorise(created.json()["Data"]["ConsentId"], "accounts")
            payment = await h.http.post(
                f"{PISP}/domestic-payment-consents",
                json=payment_consent_body(),
                headers=h.auth(token, **{"x-idempotency-key": "conformance"}),
            )
            payments = await h.authorise(payment.json()["Data"]["ConsentId"], "payments")
            server = uvicorn.Server(
                uvicorn.Config(
                    h.built.app, host="127.0.0.1", port=0, log_level="error", lifespan="off"
                )
            )
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            ready.append(
                Served(
                    f"http://127.0.0.1:{port}", h.auth(token), h.auth(accounts), h.auth(payments)
                )
            )
            await asyncio.to_thread(stop.wait)
            server.should_exit = True
            await serving

    try:
        asyncio.run(main())
    except BaseException as exc:  # reported by the fixture
        failed.append(exc)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    ready: list[Served] = []
    failed: list[BaseException] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=_serve, args=(tmp_path_factory.mktemp("conformance"), ready, stop, failed)
    )
    thread.start()
    for _ in range(600):
        if ready or failed or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    if not ready:
        stop.set()
        thread.join(10)
        raise RuntimeError(f"the gateway did not start: {failed}")
    yield ready[0]
    stop.set()
    thread.join(30)
    assert not failed, failed


def _headers(served: Served, method: str, path: str) -> dict[str, str]:
    if path.endswith("-consents") or (
        method == "GET" and "-consents/" in path and "funds" not in path
    ):
        return served.client
    if path.startswith("/domestic-payments") and method == "GET":
        return served.client
    if path.startswith("/domestic") or "funds-confirmation" in path:
        return served.payment_psu
    if path.startswith("/account-access-consents"):
        return served.client
    return served.account_psu


def _fuzz(operation: Any, base: str, authenticating: dict[str, str], seen: dict[int, int]) -> None:
    """Send generated requests to ``operation`` with real credentials; check each answer."""

    @settings(
        max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def exchange(case: Any) -> None:
        # generated values for Authorization and friends are replaced by real ones
        case.headers = {**(case.headers or {}), **authenticating}
        response = case.call(base_url=base)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        assert "x-fapi-interaction-id" in response.headers

    exchange()


@pytest.mark.parametrize("api", ["aisp", "pisp"])
def test_generated_requests_get_conforming_answers(served: Served, api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{served.base}/open-banking/v4.0/{api}/openapi.json")
    operations: list[Any] = []
    for result in schema.get_all_operations():
        assert not isinstance(result, Err), result
        operations.append(result.ok())
    assert len(operations) == {"aisp": 7, "pisp": 6}[api]
    seen: dict[int, int] = {}
    for operation in operations:
        authenticating = {
            **_headers(served, operation.method.upper(), operation.path),
            "x-idempotency-key": "generated",
        }
        _fuzz(operation, f"{served.base}/open-banking/v4.0/{api}", authenticating, seen)
    assert not any(status >= 500 for status in seen)
    assert any(status < 300 for status in seen) or api == "pisp", seen
