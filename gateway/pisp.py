"""Payment initiation (OBIE v4.0 ``payment-initiation-openapi.json``, base ``/pisp``).

=================================================================  ===================  ========
endpoint                                                           token                scope
=================================================================  ===================  ========
``POST /domestic-payment-consents`` (``OBWriteDomesticConsent4``)  client credentials   payments
``GET /domestic-payment-consents/{ConsentId}``                     client credentials   payments
``GET /domestic-payment-consents/{ConsentId}/funds-confirmation``  authorization code   payments
``POST /domestic-payments`` (``OBWriteDomestic2``)                 authorization code   payments
``GET /domestic-payments/{DomesticPaymentId}``                     client credentials   payments
``GET /domestic-payments/{DomesticPaymentId}/payment-details``     client credentials   payments
=================================================================  ===================  ========

Both POSTs need ``x-idempotency-key`` (24-hour replay, :mod:`gateway.idempotency`) and, when
``require_request_signatures`` is set, the TPP's detached ``x-jws-signature``
(:mod:`gateway.signatures`); every response here is signed by the bank when a signer is
configured. A payment must carry the token's consent id (``Data.ConsentId``), that consent
must be ``AUTH`` and unused, and its ``Initiation`` and ``Risk`` must equal the consent's
(OBIE: 400 ``Resource.ConsentMismatch`` otherwise). Claiming the idempotency key,
using the consent and recording the payment are one transaction of the gateway's database
(a refusal keeps none of them). What a payment becomes, and its status,
is :mod:`gateway.payments`. Funds confirmation asks the mainframe for the debtor account's
available balance (``BALQ``) and compares it with the consent's amount.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from gateway.aisp import enquire_balances
from gateway.app import GatewayServices, authorized, services_of
from gateway.consents import Consent, ConsentKind, ConsentStatus
from gateway.errors import ObieError
from gateway.http import read_json
from gateway.payments import Payment, check_initiation
from gateway.responses import (
    document,
    idempotent_post,
    json_response,
    obie_time,
    verify_request_signature,
)
from gateway.security.tokens import AccessClaims
from gateway.spec import spec

__all__ = ["pisp_router"]

_SCOPE = "payments"
_DETAIL_STATUSES = frozenset(
    {"PDNG", "ACTC", "PATC", "ACCP", "ACFC", "ACSP", "ACWC", "ACSC", "ACWP", "ACCC", "BLCK", "RJCT"}
)


def _consent_view(consent: Consent) -> dict[str, Any]:
    status = consent.status.value if consent.status is not ConsentStatus.CANC else "RJCT"
    data: dict[str, Any] = {
        "ConsentId": consent.consent_id,
        "CreationDateTime": obie_time(consent.created_at),
        "Status": status,
        "StatusUpdateDateTime": obie_time(consent.status_updated_at),
        "Initiation": consent.data["Initiation"],
    }
    if "ReadRefundAccount" in consent.data:
        data["ReadRefundAccount"] = consent.data["ReadRefundAccount"]
    return data


def _payment_consent(services: GatewayServices, claims: AccessClaims, consent_id: str) -> Consent:
    _check_bound(claims, consent_id)
    consent = services.consents.get(consent_id, claims.tenant, ConsentKind.DOMESTIC_PAYMENT)
    return _usable(consent)


def _check_bound(claims: AccessClaims, consent_id: str) -> None:
    if claims.consent_id != consent_id:
        raise ObieError.single(
            403,
            "UK.OBIE.Resource.ConsentMismatch",
            "the token is not bound to this consent",
            "ConsentId",
        )


def _usable(consent: Consent | None) -> Consent:
    if consent is None:
        raise ObieError.single(404, "UK.OBIE.Resource.NotFound", "no such consent", "ConsentId")
    if consent.status is not ConsentStatus.AUTH:
        raise ObieError.single(
            403, "UK.OBIE.Resource.InvalidConsentStatus", f"the consent is {consent.status.value}"
        )
    return consent


def _debtor_iban(services: GatewayServices, consent: Consent, body: dict[str, Any]) -> str:
    """The debtor account of a payment on ``consent`` whose ``Initiation`` and ``Risk``
    must be the consent's."""
    if body["Data"]["Initiation"] != consent.data["Initiation"] or body["Risk"] != consent.risk:
        raise ObieError.single(
            400,
            "UK.OBIE.Resource.ConsentMismatch",
            "Initiation and Risk must equal the consent's",
            "Data.Initiation",
        )
    record = services.directory.by_id(consent.account_ids[0]) if consent.account_ids else None
    if record is None:
        raise ObieError.single(
            403, "UK.OBIE.Resource.ConsentMismatch", "the consent names no debtor account"
        )
    return record.iban


def _record_payment(
    services: GatewayServices, claims: AccessClaims, body: dict[str, Any], connection: Connection
) -> Payment:
    """Use the payment's consent and record the payment, in the transaction on
    ``connection`` (the one claiming its idempotency key): one conditional ``UPDATE`` uses
    the consent, so of concurrent payments on it, on any process, one wins; any refusal
    rolls it all back."""
    data = body["Data"]
    consent_id = data["ConsentId"]
    _check_bound(claims, consent_id)
    payment_id = services.payments.new_payment_id()
    consent = services.consents.use(connection, consent_id, claims.tenant, payment_id)
    if consent is None:  # why: the answers, in the order, of a read before the use
        found = services.consents.read(
            connection, consent_id, claims.tenant, ConsentKind.DOMESTIC_PAYMENT
        )
        _debtor_iban(services, _usable(found), body)
        raise ObieError.single(
            403, "UK.OBIE.Resource.InvalidConsentStatus", "the consent was used already"
        )
    payment = services.payments.prepare(
        data["Initiation"],
        tenant=claims.tenant,
        consent_id=consent_id,
        debtor_iban=_debtor_iban(services, consent, body),
        payment_id=payment_id,
    )
    services.payments.store(connection, payment)
    return payment


async def _payment_view(services: GatewayServices, payment: Payment) -> dict[str, Any]:
    outcome = await services.payments.outcome(payment)
    data: dict[str, Any] = {
        "DomesticPaymentId": payment.payment_id,
        "ConsentId": payment.consent_id,
        "CreationDateTime": obie_time(payment.created_at),
        "Status": outcome.status,
        "StatusUpdateDateTime": obie_time(outcome.updated_at),
        "Initiation": payment.initiation,
    }
    if outcome.reason:
        data["StatusReason"] = [
            {
                "StatusReasonCode": outcome.reason[:4],
                "StatusReasonDescription": f"ISO 20022 reason {outcome.reason}",
            }
        ]
    return data


def _find_payment(services: GatewayServices, claims: AccessClaims, payment_id: str) -> Payment:
    payment = services.payments.find(payment_id, claims.tenant)
    if payment is None:
        raise ObieError.single(
            404, "UK.OBIE.Resource.NotFound", "no such payment", "DomesticPaymentId"
        )
    return payment


def pisp_router() -> APIRouter:
    """The payment initiation endpoints (module docstring)."""
    router = APIRouter()

    @router.post("/domestic-payment-consents")
    async def create_consent(request: Request) -> Response:
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        raw, body = await read_json(request)
        verify_request_signature(request, claims, raw)

        async def produce() -> Response:
            problems = spec("payment-initiation").problems("OBWriteDomesticConsent4", body)
            if problems:
                raise ObieError(400, problems)
            check_initiation(body["Data"]["Initiation"])
            consent = services.consents.create(
                ConsentKind.DOMESTIC_PAYMENT, claims.tenant, body["Data"], body["Risk"]
            )
            path = f"{request.url.path}/{consent.consent_id}"
            view = document(services, path, _consent_view(consent), Risk=consent.risk)
            return json_response(services, view, status=201, sign=True)

        return await idempotent_post(request, claims, "domestic-payment-consents", raw, produce)

    @router.get("/domestic-payment-consents/{consent_id}")
    async def get_consent(consent_id: str, request: Request) -> Response:
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        consent = services.consents.get(consent_id, claims.tenant, ConsentKind.DOMESTIC_PAYMENT)
        if consent is None:
            raise ObieError.single(404, "UK.OBIE.Resource.NotFound", "no such consent", "ConsentId")
        view = document(services, request.url.path, _consent_view(consent), Risk=consent.risk)
        return json_response(services, view, sign=True)

    @router.get("/domestic-payment-consents/{consent_id}/funds-confirmation")
    async def funds_confirmation(consent_id: str, request: Request) -> Response:
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        consent = _payment_consent(services, claims, consent_id)
        record = services.directory.by_id(consent.account_ids[0]) if consent.account_ids else None
        if record is None:
            raise ObieError.single(
                403, "UK.OBIE.Resource.ConsentMismatch", "the consent names no debtor account"
            )
        balances = await enquire_balances(services, claims.tenant, record.iban)
        amount = consent.data["Initiation"]["InstructedAmount"]
        available = balances.currency == amount["Currency"] and balances.available >= Decimal(
            amount["Amount"]
        )
        data = {
            "FundsAvailableResult": {
                "FundsAvailableDateTime": obie_time(dt.datetime.now(dt.UTC)),
                "FundsAvailable": available,
            }
        }
        return json_response(services, document(services, request.url.path, data), sign=True)

    @router.post("/domestic-payments")
    async def create_payment(request: Request) -> Response:
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        raw, body = await read_json(request)
        verify_request_signature(request, claims, raw)
        problems = spec("payment-initiation").problems("OBWriteDomestic2", body)
        recorded: list[Payment] = []

        def claiming(connection: Connection) -> None:
            if problems:
                raise ObieError(400, problems)
            recorded.append(_record_payment(services, claims, body, connection))

        async def produce() -> Response:
            payment = await services.payments.send(recorded[0])
            path = f"{request.url.path}/{payment.payment_id}"
            view = document(services, path, await _payment_view(services, payment))
            return json_response(services, view, status=201, sign=True)

        return await idempotent_post(
            request, claims, "domestic-payments", raw, produce, claiming=claiming
        )

    @router.get("/domestic-payments/{payment_id}")
    async def get_payment(payment_id: str, request: Request) -> Response:
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        payment = _find_payment(services, claims, payment_id)
        view = document(services, request.url.path, await _payment_view(services, payment))
        return json_response(services, view, sign=True)

    @router.get("/domestic-payments/{payment_id}/payment-details")
    async def payment_details(payment_id: str, request: Request) -> Response:
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        payment = _find_payment(services, claims, payment_id)
        outcome = await services.payments.outcome(payment)
        status = outcome.status if outcome.status in _DETAIL_STATUSES else "PDNG"
        detail: dict[str, Any] = {"Status": status}
        if outcome.reason:
            detail["StatusReason"] = outcome.reason[:4]
        item = {
            "PaymentTransactionId": payment.message.ids.uetr or payment.payment_id,
            "Status": status,
            "StatusUpdateDateTime": obie_time(outcome.updated_at),
            "StatusDetail": detail,
        }
        data = {"PaymentStatus": [item]}
        return json_response(services, document(services, request.url.path, data), sign=True)

    return router
