"""Every refusal is an OBIE error body with the right status; interaction ids; limits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app import GatewaySettings
from gateway.http import new_interaction_id
from tests.gateway.harness import AISP, PISP, PUBLIC_URL, payment_consent_body, running_gateway
from tests.gateway.obie import check_error, check_response
from tests.support import on_event_loop


def test_unknown_path_wrong_method_and_interaction_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="isobridge.gateway")

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            minted = await h.http.get("/open-banking/v4.0/aisp/nothing-here")
            check_error(minted, 404, "UK.OBIE.Resource.NotFound")
            uuid.UUID(minted.headers["x-fapi-interaction-id"])  # minted: a UUID
            given = str(uuid.uuid4())
            echoed = await h.http.get("/nope", headers={"x-fapi-interaction-id": given})
            assert echoed.headers["x-fapi-interaction-id"] == given
            assert check_error(echoed, 404)["Id"] == given
            assert any(
                f"x-fapi-interaction-id={given}" in r.getMessage() and "-> 404" in r.getMessage()
                for r in caplog.records
            )
            for name, value in (
                ("x-fapi-auth-date", "yesterday"),
                ("x-fapi-auth-date", "2026-11-29T10:00:00Z"),
                ("x-fapi-customer-ip-address", "300.1.1.1"),
            ):
                check_error(await h.http.get("/healthz", headers={name: value}), 400)
            fine = {
                "x-fapi-auth-date": "Sun, 29 Nov 2026 10:00:00 GMT",
                "x-fapi-customer-ip-address": "2001:db8::1",
            }
            assert (await h.http.get("/healthz", headers=fine)).status_code == 200
            bad_id = await h.http.get("/healthz", headers={"x-fapi-interaction-id": "not-a-uuid"})
            check_error(bad_id, 400, "UK.OBIE.Header.Invalid")
            wrong = await h.http.delete(f"{PISP}/domestic-payments")
            check_error(wrong, 405)
            assert "POST" in wrong.headers["allow"]
            refused = await h.http.get(f"{AISP}/accounts", headers={"accept": "text/html"})
            check_error(refused, 406, "UK.OBIE.Header.Invalid")

    scenario()


def test_media_type_size_and_json_errors(tmp_path: Path) -> None:
    settings = GatewaySettings(public_url=PUBLIC_URL, max_body_bytes=2048)

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, settings=settings) as h:
            token = await h.client_token()
            headers = h.auth(token, **{"x-idempotency-key": "k-1"})
            url = f"{PISP}/domestic-payment-consents"
            as_text = await h.http.post(
                url, content=b"{}", headers={**headers, "content-type": "text/plain"}
            )
            check_error(as_text, 415, "UK.OBIE.Header.Invalid")
            check_response(as_text)
            huge = await h.http.post(
                url,
                content=b"{" + b" " * 4096 + b"}",
                headers={**headers, "content-type": "application/json"},
            )
            check_error(huge, 413, "UK.OBIE.Rules.PayloadTooLarge")

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(10):
                    yield b" " * 1000

            streamed = await h.http.post(
                url, content=chunks(), headers={**headers, "content-type": "application/json"}
            )
            check_error(streamed, 413, "UK.OBIE.Rules.PayloadTooLarge")
            broken = await h.http.post(
                url, content=b"{not json", headers={**headers, "content-type": "application/json"}
            )
            check_error(broken, 400, "UK.OBIE.Resource.InvalidFormat")
            check_response(broken)
            array = await h.http.post(url, json=[1], headers=headers)
            check_error(array, 400, "UK.OBIE.Resource.InvalidFormat")
            body = payment_consent_body()
            del body["Data"]["Initiation"]["CreditorAccount"]["Name"]
            invalid = await h.http.post(url, json=body, headers=headers)
            error = check_error(invalid, 400, "UK.OBIE.Field.Missing")
            assert error["Errors"][0]["Path"] == "Data.Initiation.CreditorAccount.Name"
            check_response(invalid)
            carded = payment_consent_body()
            carded["Data"]["Initiation"]["EndToEndIdentification"] = "4111111111111111"
            refused_card = await h.http.post(url, json=carded, headers=headers)
            body = check_error(refused_card, 400, "UK.OBIE.Field.Invalid")
            assert "4111111111111111" not in refused_card.text and "card number" in body["Message"]
            surprise = payment_consent_body()
            surprise["Data"]["Initiation"]["Debug"] = True  # the spec forbids unknown fields
            unknown = await h.http.post(url, json=surprise, headers=headers)
            error = check_error(unknown, 400, "UK.OBIE.Field.Unexpected")
            assert error["Errors"][0]["Path"] == "Data.Initiation.Debug"

    scenario()


def test_rate_limit_per_client(tmp_path: Path) -> None:
    settings = GatewaySettings(public_url=PUBLIC_URL, rate_per_second=0.01, burst=2)

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, settings=settings) as h:
            one = await h.client_token("tpp-one")
            two = await h.client_token("tpp-two")
            url = f"{AISP}/account-access-consents/none"
            for _ in range(2):
                check_error(await h.http.get(url, headers=h.auth(one)), 404)
            limited = await h.http.get(url, headers=h.auth(one))
            check_error(limited, 429, "UK.OBIE.Rules.RateLimited")
            check_response(limited)
            assert int(limited.headers["retry-after"]) >= 1
            # another client has its own budget
            check_error(await h.http.get(url, headers=h.auth(two, "tpp-two")), 404)

    scenario()


def test_an_unexpected_failure_is_a_500_body_without_detail(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:

            @h.built.app.get("/test-only/boom")
            async def boom() -> None:
                raise RuntimeError("secret internals")

            response = await h.http.get("/test-only/boom")
            body = check_error(response, 500, "UK.OBIE.UnexpectedError")
            assert "secret" not in response.text
            assert body["Id"] == response.headers["x-fapi-interaction-id"]

    scenario()


def test_minted_interaction_ids_are_random_rfc_4122_uuids() -> None:
    """What the middleware mints reads back, through ``uuid.UUID``, as itself: version 4,
    the RFC 4122 variant, lower-case hex in 8-4-4-4-12, and never twice the same."""
    minted = [new_interaction_id() for _ in range(5000)]
    for value in minted:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == value
    assert len(set(minted)) == len(minted)
