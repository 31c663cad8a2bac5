"""The OBIE initiation -> canonical credit transfer mapping."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from canonical_model.messages import MessageKind
from gateway.errors import ObieError
from gateway.payments import canonical_payment
from tests.gateway.harness import payment_consent_body

AT = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)


def _map(initiation: dict[str, object]) -> object:
    return canonical_payment(
        initiation, tenant="tpp-1", payment_id="pmt-1", debtor_iban="DE89370400440532013000",
        uetr="6f1c9a4e-1b2c-4d3e-8f4a-000000000001", now=AT,
    )  # fmt: skip


def test_the_mapping_of_each_field() -> None:
    initiation = payment_consent_body("12.3")["Data"]["Initiation"]
    message = canonical_payment(
        initiation, tenant="tpp-1", payment_id="pmt-1", debtor_iban="DE89370400440532013000",
        uetr="6f1c9a4e-1b2c-4d3e-8f4a-000000000001", now=AT,
    )  # fmt: skip
    assert message.kind is MessageKind.FINANCIAL
    assert message.processing is not None and message.processing.transaction_type == "00"
    assert message.ids.message_id == "pmt-1"
    assert message.ids.end_to_end_id == initiation["EndToEndIdentification"]
    assert message.ids.instruction_id == initiation["InstructionIdentification"]
    assert message.amount is not None and message.amount.amount == Decimal("12.30")
    assert message.amount.currency.alpha == "EUR"
    assert message.debtor_account is not None
    assert message.debtor_account.iban == "DE89370400440532013000"
    assert message.creditor_account is not None
    assert message.creditor_account.iban == "GB29NWBK60161331926819"
    assert message.creditor is not None and message.creditor.name == "Oliver Smith"
    assert message.remittance == ("Invoice 42",)
    assert message.settlement_date == AT.date()


@pytest.mark.parametrize(
    ("amount", "currency", "name"),
    [
        ("0", "EUR", "UK.OBIE.Field.Invalid"),
        ("1.001", "EUR", "UK.OBIE.Field.Invalid"),  # more decimals than EUR has
        ("1.00", "ZZZ", "UK.OBIE.Unsupported.Currency"),
    ],
)
def test_amounts_the_hub_cannot_carry(amount: str, currency: str, name: str) -> None:
    initiation = payment_consent_body(amount, currency)["Data"]["Initiation"]
    with pytest.raises(ObieError) as caught:
        _map(initiation)
    assert caught.value.status == 400
    assert caught.value.errors[0].name == name
