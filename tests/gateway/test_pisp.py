"""Payments end to end: POST /domestic-payments -> a debit posting on mainframe_sim and a
pacs.008 on the RabbitMQ clearing queue -> a scripted pacs.002 -> the status, read from the
journal's read model. Idempotency, message signatures, consents and tenant isolation too."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import httpx

from canonical_model.codes import TransactionStatus
from gateway.app import GatewaySettings
from gateway.journaled import JournalPayments
from gateway.security.jose import PublicJwk, parse_compact, verify_signature
from gateway.signatures import OB_IAT, OB_ISS, OB_TAN
from hub.gateway import IssuerConfig, build_gateway
from tests.gateway.clearing_system import ClearingSystem
from tests.gateway.harness import (
    ALICE_EUR,
    AUDIENCE,
    ISSUER,
    PISP,
    PUBLIC_URL,
    Harness,
    gateway_database,
    payment_consent_body,
    running_gateway,
)
from tests.gateway.obie import check_error, check_response
from tests.support import on_event_loop

CONSENTS = f"{PISP}/domestic-payment-consents"
PAYMENTS = f"{PISP}/domestic-payments"


async def _consent(
    h: Harness, body: dict[str, Any], *, client_id: str = "tpp-one", key: str | None = None
) -> tuple[str, str]:
    """(consent id, PSU token) of a new payment consent authorised by alice (bob for tpp-two)."""
    token = await h.client_token(client_id, "payments")
    headers = h.auth(token, client_id, **{"x-idempotency-key": key or f"c-{id(body)}"})
    created = await h.http.post(CONSENTS, json=body, headers=headers)
    assert created.status_code == 201, created.text
    consent_id = check_response(created)["Data"]["ConsentId"]
    psu = "alice" if client_id == "tpp-one" else "bob"
    return consent_id, await h.authorise(consent_id, "payments", client_id=client_id, psu=psu)


def _payment(consent_body: dict[str, Any], consent_id: str) -> dict[str, Any]:
    body = copy.deepcopy(consent_body)
    body["Data"]["ConsentId"] = consent_id
    return body


async def _status(h: Harness, payment_id: str, wanted: str) -> dict[str, Any]:
    token = await h.client_token(scope="payments")
    for _ in range(100):
        response = await h.http.get(f"{PAYMENTS}/{payment_id}", headers=h.auth(token))
        assert response.status_code == 200, response.text
        body = check_response(response)
        if body["Data"]["Status"] == wanted:
            return dict(body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment {payment_id} never became {wanted}: {body}")


def _bank_signature_verifies(h: Harness, response: Any) -> None:
    signer = h.built.services.signer
    assert signer is not None
    jws = parse_compact(
        response.headers["x-jws-signature"],
        detached_payload=response.content,
        understood_crit=[OB_IAT, OB_ISS, OB_TAN],
    )
    verify_signature(jws, PublicJwk.from_dict(signer.key.public_jwk()))
    assert jws.header[OB_ISS] == "isobridge"


def test_a_payment_end_to_end(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, with_clearing=True, sign_responses=True) as h:
            assert h.clearing is not None
            clearing = ClearingSystem(h.clearing.outgoing)
            before = h.mf.balance(ALICE_EUR.iban)
            consent_body = payment_consent_body("10.50")
            consent_id, psu = await _consent(h, consent_body)
            funds = await h.http.get(
                f"{CONSENTS}/{consent_id}/funds-confirmation", headers=h.auth(psu)
            )
            assert check_response(funds)["Data"]["FundsAvailableResult"]["FundsAvailable"] is True
            _bank_signature_verifies(h, funds)

            posted = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(psu, **{"x-idempotency-key": "pay-1"}),
            )
            assert posted.status_code == 201, posted.text
            data = check_response(posted)["Data"]
            _bank_signature_verifies(h, posted)
            payment_id = data["DomesticPaymentId"]
            assert data["Status"] == "ACSP"  # debited and handed to clearing
            assert h.mf.balance(ALICE_EUR.iban) == before - 1050  # the debit posting

            received = await clearing.take()
            (transfer,) = received.transfers
            assert received.properties.message_id == payment_id
            assert transfer.ids.source_message_id == payment_id  # GrpHdr/MsgId
            assert (
                transfer.ids.end_to_end_id
                == consent_body["Data"]["Initiation"]["EndToEndIdentification"]
            )
            assert transfer.amount is not None and str(transfer.amount.amount) == "10.50"
            assert (
                transfer.debtor_account is not None
                and transfer.debtor_account.iban == ALICE_EUR.iban
            )
            assert transfer.creditor_account is not None
            assert transfer.creditor_account.iban == "GB29NWBK60161331926819"
            assert b"CardData" not in received.document

            await clearing.answer(received, TransactionStatus.ACSC)
            settled = await _status(h, payment_id, "ACSC")
            assert "StatusReason" not in settled["Data"]
            token = await h.client_token(scope="payments")
            details = await h.http.get(
                f"{PAYMENTS}/{payment_id}/payment-details", headers=h.auth(token)
            )
            (status,) = check_response(details)["Data"]["PaymentStatus"]
            assert (
                status["Status"] == "ACSC" and status["PaymentTransactionId"] == transfer.ids.uetr
            )
            # the journal recorded the whole path, the read model says where it is
            view = h.journal.status(payment_id)
            assert view is not None and (view.status, view.event_count) == ("ACSC", 3)
            assert h.mf.ledger.check().balanced

            # the same request again (same key, same body): the same answer, posted once
            again = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(psu, **{"x-idempotency-key": "pay-1"}),
            )
            assert (
                again.status_code == 201 and again.json()["Data"]["DomesticPaymentId"] == payment_id
            )
            assert again.content == posted.content
            assert h.mf.balance(ALICE_EUR.iban) == before - 1050
            changed = _payment(consent_body, consent_id)
            changed["Risk"] = {"PaymentContextCode": "TransferToSelf"}
            conflict = await h.http.post(
                PAYMENTS, json=changed, headers=h.auth(psu, **{"x-idempotency-key": "pay-1"})
            )
            check_error(conflict, 400, "UK.OBIE.Field.Invalid")
            reuse = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(psu, **{"x-idempotency-key": "pay-2"}),
            )
            check_error(reuse, 403, "UK.OBIE.Resource.InvalidConsentStatus")

    scenario()


def test_rejections_reverse_the_debit(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, with_clearing=True) as h:
            assert h.clearing is not None
            clearing = ClearingSystem(h.clearing.outgoing)
            before = h.mf.balance(ALICE_EUR.iban)
            consent_body = payment_consent_body("20.00")
            consent_id, psu = await _consent(h, consent_body)
            posted = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(psu, **{"x-idempotency-key": "pay-r"}),
            )
            payment_id = check_response(posted)["Data"]["DomesticPaymentId"]
            assert h.mf.balance(ALICE_EUR.iban) == before - 2000
            received = await clearing.take()
            await clearing.answer(received, TransactionStatus.RJCT, "AC04")
            rejected = await _status(h, payment_id, "RJCT")
            assert rejected["Data"]["StatusReason"][0]["StatusReasonCode"] == "AC04"
            assert h.mf.balance(ALICE_EUR.iban) == before  # the debit was reversed
            assert h.mf.ledger.check().balanced

            # the mainframe refuses: no funds -> RJCT AM04 at once, nothing to clearing
            poor = payment_consent_body("999999.00")
            consent_id, psu = await _consent(h, poor)
            funds = await h.http.get(
                f"{CONSENTS}/{consent_id}/funds-confirmation", headers=h.auth(psu)
            )
            assert check_response(funds)["Data"]["FundsAvailableResult"]["FundsAvailable"] is False
            refused = await h.http.post(
                PAYMENTS,
                json=_payment(poor, consent_id),
                headers=h.auth(psu, **{"x-idempotency-key": "pay-poor"}),
            )
            data = check_response(refused)["Data"]
            assert (data["Status"], data["StatusReason"][0]["StatusReasonCode"]) == ("RJCT", "AM04")
            assert h.mf.balance(ALICE_EUR.iban) == before

    scenario()


def test_payment_refusals_and_tenant_isolation(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            consent_body = payment_consent_body("1.00")
            consent_id, psu = await _consent(h, consent_body)
            token = await h.client_token(scope="payments")
            no_key = await h.http.post(CONSENTS, json=consent_body, headers=h.auth(token))
            check_error(no_key, 400, "UK.OBIE.Header.Missing")
            long_key = await h.http.post(
                CONSENTS,
                json=consent_body,
                headers=h.auth(token, **{"x-idempotency-key": "k" * 41}),
            )
            check_error(long_key, 400, "UK.OBIE.Header.Invalid")
            other = _payment(consent_body, consent_id)
            other["Data"]["Initiation"]["InstructedAmount"]["Amount"] = "1000.00"
            mismatch = await h.http.post(
                PAYMENTS, json=other, headers=h.auth(psu, **{"x-idempotency-key": "m-1"})
            )
            check_error(mismatch, 400, "UK.OBIE.Resource.ConsentMismatch")
            check_response(mismatch)
            wrong_consent = _payment(consent_body, "pdc-someone-elses")
            refused = await h.http.post(
                PAYMENTS, json=wrong_consent, headers=h.auth(psu, **{"x-idempotency-key": "m-2"})
            )
            check_error(refused, 403, "UK.OBIE.Resource.ConsentMismatch")
            with_client_token = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(token, **{"x-idempotency-key": "m-3"}),
            )
            check_error(with_client_token, 403, "UK.OBIE.Resource.ConsentMismatch")
            for amount, currency in (("1.001", "EUR"), ("0", "EUR"), ("1.00", "ZZZ")):
                odd = payment_consent_body(amount, currency)
                refused_consent = await h.http.post(
                    CONSENTS,
                    json=odd,
                    headers=h.auth(token, **{"x-idempotency-key": amount + currency}),
                )
                check_error(refused_consent, 400)
                check_response(refused_consent)
            sort_code = copy.deepcopy(consent_body)
            sort_code["Data"]["Initiation"]["CreditorAccount"]["SchemeName"] = (
                "UK.OBIE.SortCodeAccountNumber"
            )
            unsupported = await h.http.post(
                CONSENTS, json=sort_code, headers=h.auth(token, **{"x-idempotency-key": "m-4"})
            )
            check_error(unsupported, 400, "UK.OBIE.Unsupported.AccountIdentifier")
            sc_id, _ = await _consent(h, payment_consent_body("2.00"), key="sc")

            # the refused mismatch kept neither its key ("m-1") nor the consent's use
            posted = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(psu, **{"x-idempotency-key": "m-1"}),
            )
            payment_id = check_response(posted)["Data"]["DomesticPaymentId"]
            assert posted.status_code == 201
            # the consent is used now: a mismatch is still told first, then the use
            again = await h.http.post(
                PAYMENTS, json=other, headers=h.auth(psu, **{"x-idempotency-key": "m-5"})
            )
            check_error(again, 400, "UK.OBIE.Resource.ConsentMismatch")
            used = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(psu, **{"x-idempotency-key": "m-6"}),
            )
            check_error(used, 403, "UK.OBIE.Resource.InvalidConsentStatus")
            two = await h.client_token("tpp-two", "payments")
            for path in (
                f"{PAYMENTS}/{payment_id}",
                f"{PAYMENTS}/{payment_id}/payment-details",
                f"{CONSENTS}/{consent_id}",
            ):
                check_error(await h.http.get(path, headers=h.auth(two, "tpp-two")), 404)
            # tpp-two reusing tpp-one's idempotency key gets its own answer, not tpp-one's
            theirs = await h.http.post(
                CONSENTS,
                json=consent_body,
                headers=h.auth(two, "tpp-two", **{"x-idempotency-key": "sc"}),
            )
            assert theirs.status_code == 201 and theirs.json()["Data"]["ConsentId"] != sc_id
            # two payments at once on one consent (different keys): one of them only
            racing_body = payment_consent_body("3.00")
            racing_id, racer = await _consent(h, racing_body, key="race")
            before = h.mf.balance(ALICE_EUR.iban)
            answers = await asyncio.gather(
                *(
                    h.http.post(
                        PAYMENTS,
                        json=_payment(racing_body, racing_id),
                        headers=h.auth(racer, **{"x-idempotency-key": f"race-{n}"}),
                    )
                    for n in range(3)
                )
            )
            assert sorted(a.status_code for a in answers) == [201, 403, 403]
            assert h.mf.balance(ALICE_EUR.iban) == before - 300
            # tpp-two's PSU (bob) cannot spend from tpp-one's consent
            bob_consent, bob = await _consent(h, payment_consent_body("1.00"), client_id="tpp-two")
            stolen = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(bob, "tpp-two", **{"x-idempotency-key": "x"}),
            )
            check_error(stolen, 403, "UK.OBIE.Resource.ConsentMismatch")
            assert bob_consent != consent_id

    scenario()


def test_request_signatures_when_required(tmp_path: Path) -> None:
    settings = GatewaySettings(public_url=PUBLIC_URL, require_request_signatures=True)

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, settings=settings) as h:
            token = await h.client_token(scope="payments")
            raw = json.dumps(payment_consent_body()).encode()

            async def post(signature: str | None, body: bytes = raw, key: str = "s") -> Any:
                headers = h.auth(
                    token, **{"x-idempotency-key": key, "content-type": "application/json"}
                )
                if signature is not None:
                    headers["x-jws-signature"] = signature
                return await h.http.post(CONSENTS, content=body, headers=headers)

            check_error(await post(None), 400, "UK.OBIE.Signature.Missing")
            check_error(await post("not.a.jws"), 400, "UK.OBIE.Signature.Malformed")
            tampered = raw.replace(b"10.50", b"99.50")
            check_error(await post(h.sign(raw), tampered), 400, "UK.OBIE.Signature.Invalid")
            check_error(
                await post(h.sign(raw, **{OB_ISS: "org/someone"})),
                400,
                "UK.OBIE.Signature.InvalidClaim",
            )
            check_error(await post(h.sign(raw, crit=["http://openbanking.org.uk/iat"])), 400)
            check_error(await post(h.sign(raw, "tpp-two")), 400, "UK.OBIE.Signature.Invalid")
            good = await post(h.sign(raw))
            assert good.status_code == 201, good.text
            check_response(good)

    scenario()


def test_a_restarted_gateway_rebuilds_its_payments_from_the_journal(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, with_clearing=True) as h:
            assert h.clearing is not None
            clearing = ClearingSystem(h.clearing.outgoing)
            consent_body = payment_consent_body("4.00")
            consent_id, psu = await _consent(h, consent_body)
            posted = await h.http.post(
                PAYMENTS,
                json=_payment(consent_body, consent_id),
                headers=h.auth(psu, **{"x-idempotency-key": "before-restart"}),
            )
            payment_id = check_response(posted)["Data"]["DomesticPaymentId"]
            received = await clearing.take()
            # a new gateway on the same journal, core and clearing queues, and a new database
            # (the payments' rows are rebuilt from the journal)
            restarted = build_gateway(
                core=h.core,
                clearing=h.clearing,
                journal=h.journal,
                engine=gateway_database(tmp_path, "rebuilt"),
                issuer=IssuerConfig(issuer=ISSUER, audience=AUDIENCE),
                clients=list(h.server.clients.values()),
                settings=GatewaySettings(public_url=PUBLIC_URL),
            )
            assert await restarted.payments.restore(JournalPayments(h.journal)) == 1
            assert await restarted.payments.restore(JournalPayments(h.journal)) == 0  # once
            h.built = restarted  # the clearing queue's reports now go to the new gateway
            transport = httpx.ASGITransport(app=restarted.app)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
                h.http = http
                token = await h.client_token(scope="payments")
                got = await http.get(f"{PAYMENTS}/{payment_id}", headers=h.auth(token))
                data = check_response(got)["Data"]
                assert data["Status"] == "ACSP" and data["ConsentId"] == consent_id
                assert data["Initiation"] == consent_body["Data"]["Initiation"]
                await clearing.answer(received, TransactionStatus.ACSC)  # a late pacs.002
                await _status(h, payment_id, "ACSC")
                two = await h.client_token("tpp-two", "payments")
                other = await http.get(f"{PAYMENTS}/{payment_id}", headers=h.auth(two, "tpp-two"))
                check_error(other, 404)

    scenario()


def test_a_payment_carried_by_its_saga_follows_it_to_settled_or_rejected(tmp_path: Path) -> None:
    """``[clearing] sagas = true``: POST answers RCVD; the saga holds the amount, sends the
    pacs.008 (ACSP), and on the clearing system's answer debits it (ACSC) or releases the
    hold (RJCT with the reason)."""

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, with_clearing=True, sagas=True) as h:
            assert h.clearing is not None
            clearing = ClearingSystem(h.clearing.outgoing)
            before = h.mf.balance(ALICE_EUR.iban)
            settled_id = ""
            for amount, key, answer in (("10.50", "pay-s1", "ACSC"), ("4.00", "pay-s2", "RJCT")):
                consent_body = payment_consent_body(amount)
                consent_id, psu = await _consent(h, consent_body)
                posted = await h.http.post(
                    PAYMENTS,
                    json=_payment(consent_body, consent_id),
                    headers=h.auth(psu, **{"x-idempotency-key": key}),
                )
                assert posted.status_code == 201, posted.text
                data = check_response(posted)["Data"]
                payment_id = data["DomesticPaymentId"]
                assert data["Status"] == "RCVD"  # accepted: the saga carries it from here
                received = await clearing.take()
                (transfer,) = received.transfers
                assert received.properties.message_id == payment_id
                assert transfer.amount is not None and str(transfer.amount.amount) == amount
                await _status(h, payment_id, "ACSP")
                if answer == "ACSC":
                    await clearing.answer(received, TransactionStatus.ACSC)
                    await _status(h, payment_id, "ACSC")
                    settled_id = payment_id
                else:
                    await clearing.answer(received, TransactionStatus.RJCT, "AC04")
                    rejected = await _status(h, payment_id, "RJCT")
                    assert rejected["Data"]["StatusReason"][0]["StatusReasonCode"] == "AC04"
            for _ in range(100):  # the saga's last step (the release) is recorded after RJCT
                balances = h.mf.ledger.balances(ALICE_EUR.iban)
                if balances is not None and balances.available == balances.ledger:
                    break
                await asyncio.sleep(0.05)
            assert h.mf.balance(ALICE_EUR.iban) == before - 1050  # the settled one only
            balances = h.mf.ledger.balances(ALICE_EUR.iban)
            assert balances is not None and balances.available == balances.ledger  # no hold
            assert h.mf.ledger.check().balanced
            view = h.journal.status(settled_id)
            assert view is not None and view.status == "ACSC"

    scenario()
