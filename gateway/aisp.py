"""Account information (OBIE v4.0 ``account-info-openapi.json``, base ``/aisp``).

========================================================  ==========================  ========
endpoint                                                  token                       scope
========================================================  ==========================  ========
``POST /account-access-consents`` (``OBReadConsent1``)    client credentials          accounts
``GET`` / ``DELETE /account-access-consents/{ConsentId}`` client credentials          accounts
``GET /accounts``, ``/accounts/{AccountId}``              authorization code          accounts
``GET /accounts/{AccountId}/balances``                    authorization code          accounts
``GET /accounts/{AccountId}/transactions``                authorization code          accounts
========================================================  ==========================  ========

A resource request needs a token bound to an ``AUTH`` consent of the calling TPP (the
token's ``consent_id``) whose ``Permissions`` allow it (``ReadAccountsBasic`` /
``ReadAccountsDetail`` for accounts, ``ReadBalances``, ``ReadTransactionsBasic`` /
``ReadTransactionsDetail`` with ``ReadTransactionsCredits`` / ``ReadTransactionsDebits``),
and an account the PSU bound to that consent; anything else is 403 (or 404 for an account
id outside the consent, which reveals nothing).

Balances are asked of the mainframe each time: a ``BALQ`` balance enquiry through the
hub's core banking connector (:class:`gateway.ports.CoreBankingPort`); the ledger balance is
reported as ``ITBD`` (interim booked) and the available balance as ``ITAV``. Transactions
are the booked entries of the mainframe's end-of-day statement extract
(:class:`gateway.ports.StatementSource`) and, for the account's payments made through the
gateway that no extract holds yet (matched by posting reference), the status of the
journal's read model (``BOOK``, or ``RJCT`` when refused); all within the consent's
``TransactionFromDateTime`` / ``TransactionToDateTime`` and the request's
``fromBookingDateTime`` / ``toBookingDateTime``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json_text
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import Response

from canonical_model.codes import Status
from canonical_model.messages import (
    Account,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    ProcessingCode,
)
from canonical_model.pan import random_hex_id
from gateway.app import GatewayServices, authorized, services_of
from gateway.consents import Consent, ConsentKind, ConsentStatus
from gateway.errors import ObieError
from gateway.http import JSON_TYPE, read_json, request_path
from gateway.ports import AccountRecord, BalanceEnquiries
from gateway.responses import amount_text, document, json_response, obie_time
from gateway.security.tokens import AccessClaims
from gateway.spec import spec

__all__ = ["Balances", "aisp_router", "balances_body", "enquire_balances", "parse_time"]

_SCOPE = "accounts"


@dataclass(frozen=True, slots=True)
class Balances:
    """An account's balances as the mainframe reported them."""

    ledger: Decimal
    available: Decimal
    currency: str
    at: dt.datetime


_ENQUIRES_BY_TYPE: dict[type, bool] = {}


def _balance_enquiries(core: object) -> BalanceEnquiries | None:
    """``core`` when it is a :class:`BalanceEnquiries`: the protocol's ``isinstance`` walks
    its members every time (8 us of a balance read), so the answer is kept per type."""
    kind = type(core)
    known = _ENQUIRES_BY_TYPE.get(kind)
    if known is None:
        known = _ENQUIRES_BY_TYPE[kind] = isinstance(core, BalanceEnquiries)
    return cast(BalanceEnquiries, core) if known else None


def balances_body(self_url: str, account_id: str, found: Balances) -> bytes:
    """The ``OBReadBalance1`` body of ``found``: the bytes ``json.dumps`` (compact) makes of
    the document :func:`gateway.responses.document` builds, written out directly (a tenth
    of the time; a test compares the two).

    >>> at = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    >>> found = Balances(Decimal("12.50"), Decimal("-3"), "EUR", at)
    >>> import json
    >>> items = json.loads(balances_body("https://b", "a1", found))["Data"]["Balance"]
    >>> [item["Amount"] for item in items]
    [{'Amount': '12.50', 'Currency': 'EUR'}, {'Amount': '3', 'Currency': 'EUR'}]
    """
    account = _json_text(account_id)
    at = _json_text(obie_time(found.at))
    currency = _json_text(found.currency)
    ledger, available = found.ledger, found.available
    return (
        f'{{"Data":{{"Balance":[{{"AccountId":{account},"CreditDebitIndicator":'
        f'"{"Credit" if ledger >= 0 else "Debit"}","Type":"ITBD","DateTime":{at},'
        f'"Amount":{{"Amount":{_json_text(amount_text(ledger))},"Currency":{currency}}}}},'
        f'{{"AccountId":{account},"CreditDebitIndicator":'
        f'"{"Credit" if available >= 0 else "Debit"}","Type":"ITAV","DateTime":{at},'
        f'"Amount":{{"Amount":{_json_text(amount_text(available))},"Currency":{currency}}}}}]}},'
        f'"Links":{{"Self":{_json_text(self_url)}}},"Meta":{{}}}}'
    ).encode()


async def enquire_balances(services: GatewayServices, tenant: str, iban: str) -> Balances:
    """A ``BALQ`` on the mainframe; 404 for an account it does not know, 503 when it cannot
    answer. Through the core's :class:`gateway.ports.BalanceEnquiries` when it has it (the
    hub's does), else a canonical balance enquiry to its ``handle``."""
    core = services.core
    status: Status | None
    enquiries = _balance_enquiries(core)
    if enquiries is not None:
        status, amounts_list = await enquiries.balance_enquiry(tenant, iban)
        at = dt.datetime.now(dt.UTC)
    else:
        enquiry = CanonicalMessage(
            MessageKind.BALANCE_ENQUIRY,
            MessageFunction.REQUEST,
            tenant,
            Identifiers(random_hex_id(), end_to_end_id=random_hex_id(8)),
            transmitted_at=dt.datetime.now(dt.UTC),
            processing=ProcessingCode("31"),
            debtor_account=Account(iban=iban),
        )
        reply = await core.handle(enquiry)
        status, amounts_list = reply.status, reply.additional_amounts
        at = reply.transmitted_at or dt.datetime.now(dt.UTC)
    if status is None or status.code.is_rejection:
        reason = status.reason if status is not None else None
        if reason in ("AC01", "AC06"):
            raise ObieError.single(
                404, "UK.OBIE.Resource.NotFound", "the bank does not hold this account"
            )
        raise ObieError.single(
            503, "UK.OBIE.Rules.ServiceUnavailable", "the core banking system cannot answer now"
        )
    amounts = {a.amount_type: a.amount for a in amounts_list}
    ledger, available = amounts.get("01"), amounts.get("02")
    if ledger is None or available is None:
        raise ObieError.single(
            503, "UK.OBIE.Rules.ServiceUnavailable", "the core banking system gave no balance"
        )
    return Balances(ledger.amount, available.amount, ledger.currency.alpha, at)


def parse_time(value: str, path: str) -> dt.datetime:
    """An ISO 8601 date-time; one without an offset is taken as UTC (OBIE query rules)."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ObieError.single(
            400, "UK.OBIE.Field.InvalidDate", f"{path} is not a date-time", path
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _check_permissions(permissions: list[str]) -> None:
    """OBIE's pairing rule: ``ReadTransactionsBasic`` / ``Detail`` need
    ``ReadTransactionsCredits`` and / or ``Debits``, and the other way round."""
    granted = set(permissions)
    kinds = granted & {"ReadTransactionsBasic", "ReadTransactionsDetail"}
    sides = granted & {"ReadTransactionsCredits", "ReadTransactionsDebits"}
    if bool(kinds) != bool(sides):
        raise ObieError.single(
            400,
            "UK.OBIE.Field.Invalid",
            "ReadTransactionsBasic / Detail go with ReadTransactionsCredits / Debits",
            "Data.Permissions",
        )


def _consent_view(consent: Consent) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ConsentId": consent.consent_id,
        "CreationDateTime": obie_time(consent.created_at),
        "Status": consent.status.value,
        "StatusUpdateDateTime": obie_time(consent.status_updated_at),
        "Permissions": list(consent.data["Permissions"]),
    }
    for name in ("ExpirationDateTime", "TransactionFromDateTime", "TransactionToDateTime"):
        if name in consent.data:
            data[name] = consent.data[name]
    return data


def _consented(services: GatewayServices, claims: AccessClaims, *permissions: str) -> Consent:
    if claims.consent_id is None:
        raise ObieError.single(
            403,
            "UK.OBIE.Resource.ConsentMismatch",
            "the token is not bound to a consent (use the authorization code flow)",
        )
    consent = services.consents.get(claims.consent_id, claims.tenant, ConsentKind.ACCOUNT_ACCESS)
    if consent is None:
        raise ObieError.single(
            403,
            "UK.OBIE.Resource.ConsentMismatch",
            "the token's consent is not an account access consent of this TPP",
        )
    if consent.status is not ConsentStatus.AUTH:
        raise ObieError.single(
            403, "UK.OBIE.Resource.InvalidConsentStatus", f"the consent is {consent.status.value}"
        )
    granted = set(consent.data["Permissions"])
    if permissions and not granted & set(permissions):
        raise ObieError.single(
            403, "UK.OBIE.Resource.ConsentMismatch", f"the consent does not grant {permissions[0]}"
        )
    return consent


def _account(services: GatewayServices, consent: Consent, account_id: str) -> AccountRecord:
    record = services.directory.by_id(account_id)
    if record is None or account_id not in consent.account_ids:
        raise ObieError.single(404, "UK.OBIE.Resource.NotFound", "no such account", "AccountId")
    return record


def _account_view(record: AccountRecord, detail: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "AccountId": record.account_id,
        "Status": "Enabled",
        "Currency": record.currency,
        "AccountCategory": "Personal",
        "AccountTypeCode": "CACC",
        "Nickname": record.name[:70],
    }
    if detail:
        view["Account"] = [
            {"SchemeName": "UK.OBIE.IBAN", "Identification": record.iban, "Name": record.name[:350]}
        ]
    return view


def aisp_router() -> APIRouter:
    """The account information endpoints (module docstring)."""
    router = APIRouter()

    async def create_consent(request: Request) -> Response:
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        _, body = await read_json(request)
        problems = spec("account-info").problems("OBReadConsent1", body)
        if problems:
            raise ObieError(400, problems)
        data = body["Data"]
        _check_permissions(data["Permissions"])
        expires = None
        if "ExpirationDateTime" in data:
            expires = parse_time(data["ExpirationDateTime"], "Data.ExpirationDateTime")
            if expires <= dt.datetime.now(dt.UTC):
                raise ObieError.single(
                    400,
                    "UK.OBIE.Field.InvalidDate",
                    "ExpirationDateTime is in the past",
                    "Data.ExpirationDateTime",
                )
        for name in ("TransactionFromDateTime", "TransactionToDateTime"):
            if name in data:
                parse_time(data[name], f"Data.{name}")
        consent = services.consents.create(
            ConsentKind.ACCOUNT_ACCESS, claims.tenant, data, body["Risk"], expires_at=expires
        )
        path = f"{request.url.path}/{consent.consent_id}"
        return json_response(
            services,
            document(services, path, _consent_view(consent), Risk=consent.risk),
            status=201,
        )

    async def get_consent(request: Request) -> Response:
        consent_id = request.path_params["consent_id"]
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        consent = services.consents.get(consent_id, claims.tenant, ConsentKind.ACCOUNT_ACCESS)
        if consent is None:
            raise ObieError.single(404, "UK.OBIE.Resource.NotFound", "no such consent", "ConsentId")
        return json_response(
            services,
            document(services, request.url.path, _consent_view(consent), Risk=consent.risk),
        )

    async def delete_consent(request: Request) -> Response:
        consent_id = request.path_params["consent_id"]
        claims = await authorized(request, _SCOPE)
        if not services_of(request).consents.revoke(consent_id, claims.tenant):
            raise ObieError.single(404, "UK.OBIE.Resource.NotFound", "no such consent", "ConsentId")
        return Response(status_code=204)

    async def accounts(request: Request) -> Response:
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        consent = _consented(services, claims, "ReadAccountsBasic", "ReadAccountsDetail")
        detail = "ReadAccountsDetail" in consent.data["Permissions"]
        views = [
            _account_view(record, detail)
            for account_id in consent.account_ids
            if (record := services.directory.by_id(account_id)) is not None
        ]
        return json_response(services, document(services, request.url.path, {"Account": views}))

    async def account(request: Request) -> Response:
        account_id = request.path_params["account_id"]
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        consent = _consented(services, claims, "ReadAccountsBasic", "ReadAccountsDetail")
        record = _account(services, consent, account_id)
        detail = "ReadAccountsDetail" in consent.data["Permissions"]
        return json_response(
            services,
            document(services, request.url.path, {"Account": [_account_view(record, detail)]}),
        )

    async def balances(request: Request) -> Response:
        account_id = request.path_params["account_id"]
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        consent = _consented(services, claims, "ReadBalances")
        record = _account(services, consent, account_id)
        found = await enquire_balances(services, claims.tenant, record.iban)
        self_url = f"{services.settings.public_url}{request_path(request)}"
        # account_id is record.account_id: the directory found the record by it
        return Response(balances_body(self_url, account_id, found), media_type=JSON_TYPE)

    async def transactions(request: Request) -> Response:
        account_id = request.path_params["account_id"]
        claims = await authorized(request, _SCOPE)
        services = services_of(request)
        consent = _consented(services, claims, "ReadTransactionsBasic", "ReadTransactionsDetail")
        record = _account(services, consent, account_id)
        granted = set(consent.data["Permissions"])
        credits = "ReadTransactionsCredits" in granted
        debits = "ReadTransactionsDebits" in granted
        if not (credits or debits):
            raise ObieError.single(
                403,
                "UK.OBIE.Resource.ConsentMismatch",
                "the consent grants neither credits nor debits",
            )
        low = _bound(
            consent.data.get("TransactionFromDateTime"),
            request.query_params.get("fromBookingDateTime"),
            max,
            "fromBookingDateTime",
        )
        high = _bound(
            consent.data.get("TransactionToDateTime"),
            request.query_params.get("toBookingDateTime"),
            min,
            "toBookingDateTime",
        )
        entries = await services.statements.entries(record.iban) if services.statements else ()
        items = []
        booked_refs = {entry.account_servicer_reference for entry in entries}
        if debits:
            items += await _journaled(services, record, booked_refs, granted, low, high)
        for entry in entries:
            booked = dt.datetime.combine(entry.booking_date or dt.date.min, dt.time(), dt.UTC)
            if (low and booked < low) or (high and booked > high):
                continue
            if (entry.credit and not credits) or (not entry.credit and not debits):
                continue
            item: dict[str, Any] = {
                "AccountId": record.account_id,
                "CreditDebitIndicator": "Credit" if entry.credit else "Debit",
                "Status": "BOOK",
                "BookingDateTime": obie_time(booked),
                "Amount": {
                    "Amount": amount_text(entry.amount.amount),
                    "Currency": entry.amount.currency.alpha,
                },
            }
            if entry.account_servicer_reference:
                item["TransactionId"] = entry.account_servicer_reference[:210]
            if entry.value_date:
                item["ValueDateTime"] = obie_time(
                    dt.datetime.combine(entry.value_date, dt.time(), dt.UTC)
                )
            if entry.remittance and "ReadTransactionsDetail" in granted:
                item["TransactionInformation"] = entry.remittance[0][:500]
            items.append(item)
        return json_response(services, document(services, request.url.path, {"Transaction": items}))

    router.add_route("/account-access-consents", create_consent, methods=["POST"])
    router.add_route("/account-access-consents/{consent_id}", get_consent, methods=["GET"])
    router.add_route("/account-access-consents/{consent_id}", delete_consent, methods=["DELETE"])
    router.add_route("/accounts", accounts, methods=["GET"])
    router.add_route("/accounts/{account_id}", account, methods=["GET"])
    router.add_route("/accounts/{account_id}/balances", balances, methods=["GET"])
    router.add_route("/accounts/{account_id}/transactions", transactions, methods=["GET"])
    return router


async def _journaled(
    services: GatewayServices,
    record: AccountRecord,
    booked: set[str | None],
    granted: set[str],
    low: dt.datetime | None,
    high: dt.datetime | None,
) -> list[dict[str, Any]]:
    """The account's payments made through the gateway that no extract holds yet, with the
    status of the journal's read model: ``BOOK`` once the debit is posted, ``RJCT`` when the
    mainframe or the clearing system refused it (a rejected debit is reversed)."""
    items: list[dict[str, Any]] = []
    for payment in services.payments.debiting(record.iban):
        reference = services.payments.reference_of(payment)
        if reference is not None and reference in booked:
            continue  # the extract has it
        if (low and payment.created_at < low) or (high and payment.created_at > high):
            continue
        outcome = await services.payments.outcome(payment)
        amount = payment.message.amount
        if amount is None or outcome.status == "RCVD":
            continue
        item: dict[str, Any] = {
            "AccountId": record.account_id,
            "TransactionReference": payment.message.ids.end_to_end_id or payment.payment_id,
            "CreditDebitIndicator": "Debit",
            "Status": "RJCT" if outcome.status == "RJCT" else "BOOK",
            "BookingDateTime": obie_time(payment.created_at),
            "Amount": {"Amount": amount_text(amount.amount), "Currency": amount.currency.alpha},
        }
        if reference is not None:
            item["TransactionId"] = reference
        if payment.message.remittance and "ReadTransactionsDetail" in granted:
            item["TransactionInformation"] = payment.message.remittance[0][:500]
        items.append(item)
    return items


def _bound(consented: Any, asked: str | None, pick: Any, name: str) -> dt.datetime | None:
    values = []
    if isinstance(consented, str):
        values.append(parse_time(consented, name))
    if asked:
        values.append(parse_time(asked, name))
    return pick(values) if values else None
