"""The fixed-width adapter: built-in variants, a user layout from files, errors, describe."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import AdapterDecodeError, AdapterEncodeError, RoundTrip
from adapters.fixedwidth.adapter import FixedWidthAdapter
from adapters.registry import get_adapter
from canonical_model import find_clear_pans, to_json
from canonical_model.codes import TransactionStatus
from canonical_model.messages import MessageKind, ProcessingCode
from canonical_model.money import Money
from tests.support import decode_context, encode_context, fixed_vault

FIXTURES = Path(__file__).parent / "fixtures"


def test_registered_variants() -> None:
    adapter = get_adapter("fixedwidth:corebank-reply")
    assert isinstance(adapter, FixedWidthAdapter)
    assert adapter.capabilities.round_trip is RoundTrip.BYTES
    assert not adapter.capabilities.needs_clear_pan
    assert MessageKind.BALANCE_ENQUIRY in adapter.capabilities.kinds


def test_reply_status_and_balances() -> None:
    adapter = FixedWidthAdapter("corebank-reply")
    message = adapter.decode(
        (FIXTURES / "reply-insufficient-funds.bin").read_bytes(), decode_context(fixed_vault())
    )
    assert message.status is not None
    assert (message.status.code, message.status.reason) == (TransactionStatus.RJCT, "AM04")
    ledger, available = message.additional_amounts
    assert ledger.amount == Money.of("-12.00", "GBP")
    assert available.amount_type == "02"


def test_encode_from_a_message_of_another_adapter() -> None:
    """A financial message without the extensions: spaces and zeros fill the rest."""
    adapter = FixedWidthAdapter("corebank-request")
    vault = fixed_vault()
    message = adapter.decode(
        (FIXTURES / "request-debit-posting.bin").read_bytes(), decode_context(vault)
    )
    credit = dataclasses.replace(
        message, processing=ProcessingCode("20"), extensions=(), remittance=()
    )
    values = adapter.codec.decode(adapter.encode(credit, encode_context(adapter, vault)))
    assert values["CB-TRAN-CODE"] == "CRDT"
    assert values["CB-CHANNEL"] == ""
    assert values["CB-AMOUNT"] == Decimal("125.40")


def test_a_kind_the_layout_cannot_carry() -> None:
    adapter = FixedWidthAdapter("corebank-request")
    vault = fixed_vault()
    message = adapter.decode(
        (FIXTURES / "request-debit-posting.bin").read_bytes(), decode_context(vault)
    )
    statement = dataclasses.replace(message, kind=MessageKind.STATEMENT)
    with pytest.raises(AdapterEncodeError, match="cannot carry a statement message"):
        adapter.encode(statement, encode_context(adapter, vault))


def test_bad_records_name_field_and_offset() -> None:
    adapter = FixedWidthAdapter("corebank-request")
    raw = bytearray((FIXTURES / "request-debit-posting.bin").read_bytes())
    raw[128:131] = "EU?".encode("cp037")
    with pytest.raises(AdapterDecodeError, match="field CB-CURRENCY, offset 128"):
        adapter.decode(bytes(raw), decode_context(fixed_vault()))
    raw[0:4] = "ZZZZ".encode("cp037")
    with pytest.raises(AdapterDecodeError, match="field CB-TRAN-CODE, offset 0"):
        adapter.decode(bytes(raw), decode_context(fixed_vault()))


def test_user_layout_from_files(tmp_path: Path) -> None:
    (tmp_path / "posting.cpy").write_text(
        "       01  MY-POSTING.\n"
        "           05  MP-KIND       PIC X.\n"
        "               88  MP-DEBIT          VALUE 'D'.\n"
        "               88  MP-CREDIT         VALUE 'C'.\n"
        "           05  MP-REF        PIC X(12).\n"
        "           05  MP-AMOUNT     PIC S9(9)V99 SIGN TRAILING SEPARATE.\n"
        "           05  MP-CCY        PIC X(3).\n"
    )
    (tmp_path / "posting.toml").write_text(
        '[record]\ncopybook = "posting.cpy"\ncodepage = "ascii"\n'
        '[[kind]]\ncondition = "MP-DEBIT"\nkind = "financial"\nprocessing = "00"\n'
        '[[kind]]\ncondition = "MP-CREDIT"\nkind = "financial"\nprocessing = "20"\n'
        '[fields]\n"MP-REF" = "ids.end_to_end_id"\n'
        '[[money]]\namount = "MP-AMOUNT"\ncurrency = "MP-CCY"\nto = "amount"\n'
    )
    adapter = FixedWidthAdapter.from_files(tmp_path / "posting.cpy", tmp_path / "posting.toml")
    assert adapter.variant == "posting"
    raw = b"CREF-42      00000012345+EUR"
    vault = fixed_vault()
    message = adapter.decode(raw, decode_context(vault))
    assert message.amount == Money.of("123.45", "EUR")
    assert message.ids.end_to_end_id == "REF-42"
    assert message.processing == ProcessingCode("20")
    assert adapter.encode(message, encode_context(adapter, vault)) == raw


def test_describe_lists_fields_with_offsets() -> None:
    adapter = FixedWidthAdapter("corebank-request")
    views, error = adapter.describe((FIXTURES / "request-debit-posting.bin").read_bytes())
    assert error is None
    amount = next(v for v in views if v.field == "CB-AMOUNT")
    assert (amount.offset, amount.value) == (120, "125.40")
    views, error = adapter.describe(b"short")
    assert views == [] and error is not None


_SAMPLES = [
    ("corebank-request", "request-debit-posting.bin"),
    ("corebank-request", "request-funds-transfer.bin"),
    ("corebank-reply", "reply-approved.bin"),
    ("corebank-reply", "reply-insufficient-funds.bin"),
]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_SAMPLES),
    st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_records_decode_and_re_encode_or_give_a_typed_error(
    sample: tuple[str, str], mutations: list[tuple[int, int]]
) -> None:
    adapter = FixedWidthAdapter(sample[0])
    raw = bytearray((FIXTURES / sample[1]).read_bytes())
    for index, value in mutations:
        raw[index] = value
    vault = fixed_vault()
    try:
        message = adapter.decode(bytes(raw), decode_context(vault))
    except AdapterDecodeError as exc:
        assert exc.offset is None or 0 <= exc.offset < 200
        return
    again = adapter.decode(
        adapter.encode(message, encode_context(adapter, vault)), decode_context(vault)
    )
    assert again.same_transaction(message)


CARD_COPYBOOK = (
    "       01  CARD-POSTING.\n"
    "           05  CP-CARD-NO    PIC X(19).\n"
    "           05  CP-NOTE       PIC X(30).\n"
    "           05  CP-AMOUNT     PIC S9(9)V99 COMP-3.\n"
    "           05  CP-CCY        PIC X(3).\n"
)
CARD_MAPPING = (
    '[record]\ncopybook = "card.cpy"\ncodepage = "cp037"\n'
    '[fields]\n"CP-CARD-NO" = { to = "card.token", convert = "pan" }\n'
    '[[money]]\namount = "CP-AMOUNT"\ncurrency = "CP-CCY"\nto = "amount"\n'
)


def test_card_numbers_are_tokenized_and_masked(tmp_path: Path) -> None:
    (tmp_path / "card.cpy").write_text(CARD_COPYBOOK)
    (tmp_path / "card.toml").write_text(CARD_MAPPING)
    adapter = FixedWidthAdapter.from_files(tmp_path / "card.cpy", tmp_path / "card.toml")
    assert adapter.capabilities.needs_clear_pan
    raw = adapter.codec.encode(
        {"CP-CARD-NO": "4111111111111111", "CP-NOTE": "REFUND TO 5500000000000004",
         "CP-AMOUNT": Decimal("9.99"), "CP-CCY": "USD"}
    )  # fmt: skip
    vault = fixed_vault()
    message = adapter.decode(raw, decode_context(vault))
    assert message.card is not None and message.card.token is not None
    assert find_clear_pans(to_json(message)) == []
    note = next(e for e in message.extensions if e.key == "fixedwidth:CP-NOTE")
    assert note.value == "REFUND TO 550000******0004"
    encoded = adapter.encode(message, encode_context(adapter, vault))
    assert adapter.codec.decode(encoded)["CP-CARD-NO"] == "4111111111111111"
    assert adapter.codec.decode(encoded)["CP-NOTE"] == "REFUND TO 550000******0004"
