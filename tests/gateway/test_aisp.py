"""Account information end to end: consents, accounts, balances from a BALQ on the real
mainframe_sim, transactions from its statement extract; every response checked against the
OBIE v4.0 schemas; permissions and tenant isolation."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.aisp import Balances, balances_body
from gateway.responses import amount_text, obie_time
from hub.gateway import seed_directory
from mainframe_sim.faults import FaultPlan
from mainframe_sim.records import Records
from mainframe_sim.statement import write_statement
from tests.gateway.harness import (
    AISP,
    ALICE_EUR,
    PISP,
    Harness,
    account_consent_body,
    payment_consent_body,
    running_gateway,
)
from tests.gateway.obie import check_error, check_response
from tests.gateway.test_pisp import _consent as pay_consent
from tests.gateway.test_pisp import _payment as payment_of
from tests.support import on_event_loop

CONSENTS = f"{AISP}/account-access-consents"


async def _authorised(
    h: Harness, client_id: str = "tpp-one", *permissions: str, **extra: str
) -> tuple[str, str]:
    """A new consent authorised by alice (bob for tpp-two): (consent id, PSU token)."""
    token = await h.client_token(client_id, "accounts")
    created = await h.http.post(
        CONSENTS, json=account_consent_body(*permissions), headers=h.auth(token, client_id)
    )
    body = check_response(created)
    assert created.status_code == 201
    consent_id = body["Data"]["ConsentId"]
    assert body["Data"]["Status"] == "AWAU"
    psu = "alice" if client_id == "tpp-one" else "bob"
    return consent_id, await h.authorise(
        consent_id, "accounts", client_id=client_id, psu=psu, **extra
    )


def test_consent_life_cycle(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            token = await h.client_token(scope="accounts")
            consent_id, psu_token = await _authorised(h)
            got = await h.http.get(f"{CONSENTS}/{consent_id}", headers=h.auth(token))
            assert check_response(got)["Data"]["Status"] == "AUTH"
            accounts = await h.http.get(f"{AISP}/accounts", headers=h.auth(psu_token))
            assert len(check_response(accounts)["Data"]["Account"]) == 4
            deleted = await h.http.delete(f"{CONSENTS}/{consent_id}", headers=h.auth(token))
            assert deleted.status_code == 204
            check_response(deleted)
            gone = await h.http.get(f"{CONSENTS}/{consent_id}", headers=h.auth(token))
            assert check_response(gone)["Data"]["Status"] == "CANC"
            refused = await h.http.get(f"{AISP}/accounts", headers=h.auth(psu_token))
            check_error(refused, 403, "UK.OBIE.Resource.InvalidConsentStatus")
            missing = await h.http.delete(f"{CONSENTS}/aac-nothing", headers=h.auth(token))
            check_error(missing, 404, "UK.OBIE.Resource.NotFound")
            expired = account_consent_body()
            expired["Data"]["ExpirationDateTime"] = "2020-01-01T00:00:00+00:00"
            old = await h.http.post(CONSENTS, json=expired, headers=h.auth(token))
            check_error(old, 400, "UK.OBIE.Field.InvalidDate")
            for unpaired in (("ReadTransactionsDetail",), ("ReadTransactionsDebits",)):
                refused = await h.http.post(
                    CONSENTS, json=account_consent_body(*unpaired), headers=h.auth(token)
                )
                check_error(refused, 400, "UK.OBIE.Field.Invalid")
            no_permissions = await h.http.post(
                CONSENTS, json={"Data": {"Permissions": []}, "Risk": {}}, headers=h.auth(token)
            )
            check_error(no_permissions, 400)
            check_response(no_permissions)

    scenario()


def test_accounts_and_balances_from_the_mainframe(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            _, psu_token = await _authorised(h)
            listed = check_response(await h.http.get(f"{AISP}/accounts", headers=h.auth(psu_token)))
            ids = [a["AccountId"] for a in listed["Data"]["Account"]]
            assert ids == [r.account_id for r in seed_directory().of("alice")]
            assert listed["Data"]["Account"][0]["Account"][0]["Identification"] == ALICE_EUR.iban
            one = await h.http.get(
                f"{AISP}/accounts/{ALICE_EUR.account_id}", headers=h.auth(psu_token)
            )
            assert check_response(one)["Data"]["Account"][0]["Currency"] == "EUR"
            response = await h.http.get(
                f"{AISP}/accounts/{ALICE_EUR.account_id}/balances", headers=h.auth(psu_token)
            )
            balances = {b["Type"]: b for b in check_response(response)["Data"]["Balance"]}
            ledger = h.mf.ledger.balances(ALICE_EUR.iban)
            assert ledger is not None
            assert Decimal(balances["ITBD"]["Amount"]["Amount"]) == Decimal(ledger.ledger) / 100
            assert Decimal(balances["ITAV"]["Amount"]["Amount"]) == Decimal(ledger.available) / 100
            assert balances["ITBD"]["CreditDebitIndicator"] == "Credit"
            assert h.mf.server.stats.requests >= 1  # asked the mainframe, not a cache
            bob = seed_directory().of("bob")[0]
            outside = await h.http.get(
                f"{AISP}/accounts/{bob.account_id}/balances", headers=h.auth(psu_token)
            )
            check_error(outside, 404, "UK.OBIE.Resource.NotFound")
            h.mf.faults.set(FaultPlan(down=True))
            down = await h.http.get(
                f"{AISP}/accounts/{ALICE_EUR.account_id}/balances", headers=h.auth(psu_token)
            )
            check_error(down, 503, "UK.OBIE.Rules.ServiceUnavailable")

    scenario()


def test_the_first_of_repeated_credential_headers_is_the_one_checked(tmp_path: Path) -> None:
    """As ``request.headers.get`` reads them: the first ``Authorization`` and the first
    client certificate header count, whatever follows."""

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            _, psu_token = await _authorised(h)
            url = f"{AISP}/accounts/{ALICE_EUR.account_id}/balances"
            good = list(h.auth(psu_token).items())
            junk = [("Authorization", "Bearer not.a.token"), *h.tpps["tpp-two"].cert_header.items()]
            first_good = await h.http.get(url, headers=[*good, *junk])
            assert check_response(first_good)["Data"]["Balance"]
            first_junk = await h.http.get(url, headers=[*junk, *good])
            check_error(first_junk, 401)

    scenario()


def test_transactions_from_the_statement_extract(tmp_path: Path) -> None:
    extract = tmp_path / "STMT.DAT"

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, statement_files=(extract,)) as h:
            _, psu_token = await _authorised(h)
            url = f"{AISP}/accounts/{ALICE_EUR.account_id}/transactions"
            empty = check_response(await h.http.get(url, headers=h.auth(psu_token)))
            assert empty["Data"]["Transaction"] == []  # no extract yet
            today = dt.datetime.now(dt.UTC).date()
            with extract.open("wb") as out:
                write_statement(h.mf.ledger, Records("cp037"), today, out)
            listed = check_response(await h.http.get(url, headers=h.auth(psu_token)))["Data"][
                "Transaction"
            ]
            assert len(listed) == 1
            (opening,) = listed
            assert opening["CreditDebitIndicator"] == "Credit"
            assert opening["TransactionInformation"] == "OPENING BALANCE"
            assert Decimal(opening["Amount"]["Amount"]) == Decimal("1123.45")
            assert opening["BookingDateTime"].startswith(today.isoformat())
            # a payment through the gateway: from the journal until an extract holds it
            consent_body = payment_consent_body("7.25")
            consent_id, payer = await pay_consent(h, consent_body)
            paid = await h.http.post(
                f"{PISP}/domestic-payments",
                json=payment_of(consent_body, consent_id),
                headers=h.auth(payer, **{"x-idempotency-key": "t-1"}),
            )
            assert paid.status_code == 201, paid.text
            pending = check_response(await h.http.get(url, headers=h.auth(psu_token)))
            journaled = [
                t for t in pending["Data"]["Transaction"] if t["CreditDebitIndicator"] == "Debit"
            ]
            assert len(journaled) == 1 and journaled[0]["Status"] == "BOOK"
            assert journaled[0]["Amount"]["Amount"] == "7.25"
            assert journaled[0]["TransactionInformation"] == "Invoice 42"
            with extract.open("wb") as out:
                write_statement(h.mf.ledger, Records("cp037"), today, out)
            booked = check_response(await h.http.get(url, headers=h.auth(psu_token)))
            debits = [
                t for t in booked["Data"]["Transaction"] if t["CreditDebitIndicator"] == "Debit"
            ]
            assert len(debits) == 1  # once: from the extract now, by its posting reference
            assert debits[0]["TransactionId"] == journaled[0]["TransactionId"]
            assert "TransactionReference" not in debits[0]
            later = await h.http.get(
                url,
                params={
                    "fromBookingDateTime": (today + dt.timedelta(days=1)).isoformat() + "T00:00:00"
                },
                headers=h.auth(psu_token),
            )
            assert check_response(later)["Data"]["Transaction"] == []
            bad = await h.http.get(
                url, params={"fromBookingDateTime": "yesterday"}, headers=h.auth(psu_token)
            )
            check_error(bad, 400, "UK.OBIE.Field.InvalidDate")

    scenario()


def test_permissions_limit_what_a_consent_reads(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            _, basic = await _authorised(h, "tpp-one", "ReadAccountsBasic")
            listed = check_response(await h.http.get(f"{AISP}/accounts", headers=h.auth(basic)))
            assert all("Account" not in a for a in listed["Data"]["Account"])  # no IBANs
            balances = await h.http.get(
                f"{AISP}/accounts/{ALICE_EUR.account_id}/balances", headers=h.auth(basic)
            )
            check_error(balances, 403, "UK.OBIE.Resource.ConsentMismatch")
            _, one_account = await _authorised(
                h, "tpp-one", "ReadBalances", accounts=ALICE_EUR.account_id
            )
            other = seed_directory().of("alice")[1]
            refused = await h.http.get(
                f"{AISP}/accounts/{other.account_id}/balances", headers=h.auth(one_account)
            )
            check_error(refused, 404)
            check_error(await h.http.get(f"{AISP}/accounts", headers=h.auth(one_account)), 403)
            client_token = await h.client_token(scope="accounts")
            no_consent = await h.http.get(f"{AISP}/accounts", headers=h.auth(client_token))
            check_error(no_consent, 403, "UK.OBIE.Resource.ConsentMismatch")

    scenario()


def test_tenant_isolation_of_consents_and_accounts(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            ones_consent, ones_psu = await _authorised(h, "tpp-one")
            _, twos_psu = await _authorised(h, "tpp-two")
            two = await h.client_token("tpp-two", "accounts")
            for method in ("GET", "DELETE"):
                response = await h.http.request(
                    method, f"{CONSENTS}/{ones_consent}", headers=h.auth(two, "tpp-two")
                )
                check_error(response, 404, "UK.OBIE.Resource.NotFound")
            still: Any = check_response(
                await h.http.get(f"{AISP}/accounts", headers=h.auth(ones_psu))
            )
            assert len(still["Data"]["Account"]) == 4  # tpp-two's DELETE did nothing
            # tpp-two's PSU token cannot reach alice's accounts, nor use tpp-one's token
            alice = await h.http.get(
                f"{AISP}/accounts/{ALICE_EUR.account_id}/balances",
                headers=h.auth(twos_psu, "tpp-two"),
            )
            check_error(alice, 404)
            stolen = await h.http.get(f"{AISP}/accounts", headers=h.auth(ones_psu, "tpp-two"))
            check_error(stolen, 401)
            theirs = check_response(
                await h.http.get(f"{AISP}/accounts", headers=h.auth(twos_psu, "tpp-two"))
            )
            assert ALICE_EUR.account_id not in {a["AccountId"] for a in theirs["Data"]["Account"]}

    scenario()


@pytest.mark.parametrize(
    ("account_id", "ledger", "available", "self_url"),
    [
        ("acc-0001", Decimal("12.50"), Decimal("-3.00"), "https://bank.example/x/balances"),
        ('a"\\b\u00e9\u2028', Decimal("0"), Decimal("-0.01"), "http://h/p%22\u00fc"),
        ("A" * 40, Decimal("-1234567890.12"), Decimal("7"), "https://b"),
    ],
)
def test_balances_body_is_the_generic_documents_json(
    account_id: str, ledger: Decimal, available: Decimal, self_url: str
) -> None:
    at = dt.datetime(2026, 11, 29, 9, 30, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    found = Balances(ledger, available, "EUR", at)
    items = [
        {
            "AccountId": account_id,
            "CreditDebitIndicator": "Credit" if value >= 0 else "Debit",
            "Type": code,
            "DateTime": obie_time(at),
            "Amount": {"Amount": amount_text(value), "Currency": "EUR"},
        }
        for code, value in (("ITBD", ledger), ("ITAV", available))
    ]
    generic = {"Data": {"Balance": items}, "Links": {"Self": self_url}, "Meta": {}}
    body = balances_body(self_url, account_id, found)
    assert body == json.dumps(generic, separators=(",", ":")).encode()
    assert json.loads(body) == generic
