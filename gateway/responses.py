"""Building OBIE responses: JSON bytes, ``Links`` / ``Meta``, date-times, amounts, signing,
and the idempotent POST (``x-idempotency-key``, :mod:`gateway.idempotency`).

Date-times are ISO 8601 with the offset (``2026-11-29T09:30:00+00:00``), as OBIE v4.0
requires of every date-time in a response. Amounts are decimal strings in the OBIE pattern
``^\\d{1,13}$|^\\d{1,13}\\.\\d{1,5}$``: never negative (a sign is a ``CreditDebitIndicator``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from gateway.app import GatewayServices, services_of
from gateway.errors import ObieError
from gateway.http import JSON_TYPE
from gateway.idempotency import Claimed, StoredAnswer, valid_key
from gateway.security.tokens import AccessClaims
from gateway.signatures import verify_detached

__all__ = [
    "IDEMPOTENCY_KEY",
    "amount_text",
    "document",
    "idempotent_post",
    "json_response",
    "obie_time",
    "verify_request_signature",
]

IDEMPOTENCY_KEY: Final = "x-idempotency-key"
SIGNATURE: Final = "x-jws-signature"


def obie_time(moment: dt.datetime) -> str:
    """ISO 8601 with offset, to the second.

    >>> obie_time(dt.datetime(2026, 11, 29, 9, 30, 0, 123, tzinfo=dt.UTC))
    '2026-11-29T09:30:00+00:00'
    """
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def amount_text(value: Decimal) -> str:
    """The absolute value as an OBIE amount string.

    >>> amount_text(Decimal("-12.50")), amount_text(Decimal("7"))
    ('12.50', '7')
    """
    return format(abs(value), "f")


def document(
    services: GatewayServices, path: str, data: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """``{"Data": ..., <extra>, "Links": {"Self": ...}, "Meta": {}}``."""
    return {
        "Data": dict(data),
        **extra,
        "Links": {"Self": f"{services.settings.public_url}{path}"},
        "Meta": {},
    }


def json_response(
    services: GatewayServices, body: Mapping[str, Any], *, status: int = 200, sign: bool = False
) -> Response:
    """A JSON response; ``sign`` adds the bank's detached ``x-jws-signature`` when a signer
    is configured."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {}
    if sign and services.signer is not None:
        headers[SIGNATURE] = services.signer.sign(raw)
    return Response(raw, status_code=status, headers=headers, media_type=JSON_TYPE)


def verify_request_signature(request: Request, claims: AccessClaims, raw: bytes) -> None:
    """When request signatures are required, check the TPP's ``x-jws-signature``."""
    services = services_of(request)
    if not services.settings.require_request_signatures:
        return
    checks = services.request_signatures or {}
    check = checks.get(claims.client_id)
    if check is None:
        raise ObieError.single(
            400,
            "UK.OBIE.Signature.Invalid",
            "no signing keys are registered for this TPP",
            SIGNATURE,
        )
    verify_detached(request.headers.get(SIGNATURE), raw, check)


async def idempotent_post(
    request: Request,
    claims: AccessClaims,
    endpoint: str,
    raw: bytes,
    produce: Callable[[], Awaitable[Response]],
    *,
    claiming: Callable[[Connection], object] | None = None,
) -> Response:
    """Run ``produce`` once per ``x-idempotency-key`` and body within 24 hours, on whichever
    process (:meth:`gateway.idempotency.IdempotencyStore.claim`); a repeat with the same body
    gets the stored answer (waiting for it while the first still runs, a 409 with
    ``Retry-After`` past the store's ``wait``), with another body a 400. Only a success is
    kept: after a refusal or a failure the key is given back.

    ``claiming`` runs in the transaction that claims the key, before ``produce`` (the
    request's own first writes, in one transaction with the claim); if it raises (a
    refusal), nothing of it nor the claim is kept."""
    services = services_of(request)
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        raise ObieError.single(
            400, "UK.OBIE.Header.Missing", "x-idempotency-key is required", IDEMPOTENCY_KEY
        )
    if not valid_key(key):
        raise ObieError.single(
            400,
            "UK.OBIE.Header.Invalid",
            "x-idempotency-key: 1 to 40 printable characters",
            IDEMPOTENCY_KEY,
        )
    store = services.idempotency
    digest = store.digest(raw)
    tenant = claims.tenant
    mismatch = ObieError.single(
        400,
        "UK.OBIE.Field.Invalid",
        "x-idempotency-key was used with a different body",
        IDEMPOTENCY_KEY,
    )
    deadline = time.monotonic() + store.wait
    while True:
        found = await asyncio.to_thread(
            functools.partial(store.claim, tenant, endpoint, key, digest, then=claiming)
        )
        if isinstance(found, Claimed):
            break
        if found.body_digest != digest:
            raise mismatch
        if isinstance(found, StoredAnswer):
            return Response(
                found.body,
                status_code=found.status,
                headers=dict(found.headers),
                media_type=JSON_TYPE,
            )
        if time.monotonic() >= deadline:
            raise ObieError.single(
                409,
                "UK.OBIE.Rules.ResourceAlreadyExists",
                "a request with this x-idempotency-key is still being processed; retry",
                IDEMPOTENCY_KEY,
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(store.poll)
    holder = found.holder
    try:
        response = await produce()
    except BaseException:
        await asyncio.shield(asyncio.to_thread(store.release, tenant, endpoint, key, holder))
        raise
    if 200 <= response.status_code < 300:
        kept = {k: v for k, v in response.headers.items() if k.lower() == SIGNATURE}
        await asyncio.to_thread(
            functools.partial(
                store.complete,
                tenant,
                endpoint,
                key,
                holder,
                status=response.status_code,
                body=bytes(response.body),
                headers=kept,
            )
        )
    else:
        await asyncio.to_thread(store.release, tenant, endpoint, key, holder)
    return response
