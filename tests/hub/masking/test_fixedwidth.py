"""Masking fixed-width record files: sensitive fields by name or policy, every other byte
kept, the same account masked alike in request and statement files."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.fixedwidth import compile_copybook, load_copybook, load_layout
from adapters.fixedwidth.recordformat import RecordWriter, read_records
from adapters.iso20022.rules import IBAN_LENGTHS, iban_problem
from hub.masking.fixedwidth import FixedWidthMasker, field_rule, load_policy
from hub.masking.values import Masker, MaskingKey, RecordMaskingError, iban_check_digits
from tests.adapters.fixedwidth.samples import statement_records

MASKER = Masker(MaskingKey(bytes(range(32))))
STATEMENT = load_layout("corebank_statement")
REQUEST = load_layout("corebank_request")
CUSTMASTER = Path(__file__).resolve().parents[2] / "adapters/fixedwidth/copybooks/custmaster.cpy"


def records_of(data: bytes, record_format: str, length: int) -> list[bytes]:
    return [raw for _, raw in read_records(io.BytesIO(data), record_format, length=length)]


def file_of(records: list[bytes], record_format: str) -> bytes:
    sink = io.BytesIO()
    writer = RecordWriter(sink, record_format)
    for record in records:
        writer.write(record)
    writer.close()
    return sink.getvalue()


@pytest.mark.parametrize("record_format", ["F", "VB"])
def test_a_statement_masks_and_decodes(record_format: str) -> None:
    original = statement_records()
    sink = io.BytesIO()
    masker = FixedWidthMasker(MASKER, STATEMENT)
    count = masker.mask_stream(io.BytesIO(file_of(original, record_format)), sink, record_format)
    assert count == len(original)
    masked = records_of(sink.getvalue(), record_format, 120)
    header = STATEMENT.record("STMT-HEADER")
    before, after = header.decode(original[0]), header.decode(masked[0])
    assert iban_problem(after["SH-ACCOUNT-NO"]) is None
    assert after["SH-ACCOUNT-NO"] != before["SH-ACCOUNT-NO"]
    assert (
        after["SH-ACCOUNT-NO"][:12]
        == before["SH-ACCOUNT-NO"][:2] + after["SH-ACCOUNT-NO"][2:4] + "37040044"
    )
    assert after["SH-ACCOUNT-NAME"] != "ANNA SCHMIDT" and after["SH-ACCOUNT-NAME"].isupper()
    assert {k: v for k, v in after.items() if k not in ("SH-ACCOUNT-NO", "SH-ACCOUNT-NAME")} == {
        k: v for k, v in before.items() if k not in ("SH-ACCOUNT-NO", "SH-ACCOUNT-NAME")
    }
    detail = STATEMENT.record("STMT-DETAIL")
    assert detail.decode(masked[1])["SD-AMOUNT"] == Decimal("125.40")
    assert detail.decode(masked[1])["SD-NARRATIVE"] != "POS PURCHASE"
    assert masked[3] == original[3]  # the trailer holds nothing personal
    for secret in (b"ANNA SCHMIDT", b"DE89370400440532013000"):
        assert secret.decode().encode("cp037") not in sink.getvalue()


def test_only_the_masked_fields_bytes_change() -> None:
    raw = bytearray(statement_records()[0])
    raw[-1] = 0x5C  # not a space: FILLER bytes are copied as read
    masked = FixedWidthMasker(MASKER, STATEMENT).mask_record(bytes(raw))
    changed = {i for i, (a, b) in enumerate(zip(raw, masked, strict=True)) if a != b}
    account, name = range(1, 35), range(54, 89)
    assert changed and changed <= set(account) | set(name)
    assert masked[-1] == 0x5C


def test_the_same_account_masks_alike_in_requests_and_statements() -> None:
    request = REQUEST.record("CB-REQUEST").encode(
        {
            "CB-DEBIT-POSTING": True,
            "CB-POSTING-REF": "P-1",
            "CB-ACCOUNT-NO": "DE89370400440532013000",
            "CB-AMOUNT": Decimal("12.34"),
            "CB-CURRENCY": "EUR",
            "CB-VALUE-DATE": 20261129,
            "CB-NARRATIVE": "RENT ANNA SCHMIDT",
        }
    )
    masked_request = FixedWidthMasker(MASKER, REQUEST).mask_record(request)
    masked_header = FixedWidthMasker(MASKER, STATEMENT).mask_record(statement_records()[0])
    account = REQUEST.record("CB-REQUEST").decode(masked_request)["CB-ACCOUNT-NO"]
    assert account == STATEMENT.record("STMT-HEADER").decode(masked_header)["SH-ACCOUNT-NO"]
    assert REQUEST.record("CB-REQUEST").decode(masked_request)["CB-POSTING-REF"] == "P-1"


SECRETS = compile_copybook(
    "       01  R.\n"
    "           05  R-CUSTOMER-NO   PIC 9(8).\n"
    "           05  R-HOBBY         PIC X(10).\n"
    "           05  R-MOTTO         PIC X(10).\n"
)


def test_unclassified_fields_must_get_a_rule() -> None:
    with pytest.raises(ValueError, match=r"no masking rule for R.R-HOBBY, R.R-MOTTO: give each"):
        FixedWidthMasker(MASKER, SECRETS)
    masker = FixedWidthMasker(MASKER, SECRETS, policy={"R-HOBBY": "text", "R-MOTTO": "drop"})
    codec = SECRETS.record()
    masked = codec.decode(
        masker.mask_record(
            codec.encode({"R-CUSTOMER-NO": 4711, "R-HOBBY": "Chess", "R-MOTTO": "Carpe"})
        )
    )
    assert masked["R-MOTTO"] == "" and masked["R-HOBBY"] not in ("", "Chess")
    assert len(masked["R-HOBBY"]) == 5 and masked["R-CUSTOMER-NO"] != 4711
    assert field_rule("CM-ACCT-NO") == "account"
    assert field_rule("CM-BALANCE") == "keep"


def test_numeric_account_numbers_keep_their_width(tmp_path: Path) -> None:
    book = load_copybook(CUSTMASTER)
    policy_file = tmp_path / "custmaster.toml"
    policy_file.write_text('[fields]\nCM-STATUS = "keep"\n')
    masker = FixedWidthMasker(MASKER, book, policy=load_policy(policy_file))
    codec = book.record()
    raw = codec.encode({"CM-BRANCH": 42, "CM-ACCT-NO": 1234567890, "CM-ACTIVE": True})
    masked = codec.decode(masker.mask_record(raw))
    assert masked["CM-BRANCH"] == 42
    assert masked["CM-ACCT-NO"] != 1234567890 and 0 <= masked["CM-ACCT-NO"] < 10**10
    assert masker.mask_record(raw) == masker.mask_record(raw)


def test_policy_errors() -> None:
    with pytest.raises(ValueError, match="no field CM-NOPE"):
        FixedWidthMasker(MASKER, load_copybook(CUSTMASTER), policy={"CM-NOPE": "keep"})
    with pytest.raises(ValueError, match="rule 'name' does not fit it"):
        FixedWidthMasker(
            MASKER, load_copybook(CUSTMASTER), policy={"CM-HIST-TYPE": "keep", "CM-BALANCE": "name"}
        )


def test_a_card_number_in_a_kept_field_fails_with_record_and_field() -> None:
    book = compile_copybook("       01  R.\n           05  R-REF   PIC X(20).\n")
    raw = book.record().encode({"R-REF": "4111111111111111"})
    masker = FixedWidthMasker(MASKER, book)
    with pytest.raises(RecordMaskingError, match=r"record 7, field R-REF .*holds a card number"):
        masker.mask_record(raw, 7)
    told = FixedWidthMasker(MASKER, book, policy={"R-REF": "pan"}).mask_record(raw)
    assert b"4111111111111111".decode().encode("cp037") not in told


def test_a_truncated_file_names_the_record() -> None:
    data = file_of(statement_records(), "F")[:-10]
    with pytest.raises(RecordMaskingError, match=r"record 4 .*ends inside a record"):
        FixedWidthMasker(MASKER, STATEMENT).mask_stream(io.BytesIO(data), io.BytesIO(), "F")


@st.composite
def headers(draw: st.DrawFn) -> dict[str, object]:
    country = draw(st.sampled_from(["DE", "GB", "FR", "NL", "CH", "AT"]))
    length = IBAN_LENGTHS[country]
    alphabet = (
        "0123456789" if country in ("DE", "AT", "CH") else "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    )
    bban = draw(st.text(alphabet=alphabet, min_size=length - 4, max_size=length - 4))
    name = draw(st.from_regex(r"[A-Z][A-Z ]{0,33}[A-Z]", fullmatch=True))
    return {
        "SH-IS-HEADER": True,
        "SH-ACCOUNT-NO": country + iban_check_digits(country, bban) + bban,
        "SH-CURRENCY": "EUR",
        "SH-STATEMENT-DATE": 20261129,
        "SH-OPENING-BALANCE": Decimal(draw(st.integers(-(10**12), 10**12))) / 100,
        "SH-ACCOUNT-NAME": name,
    }


@settings(max_examples=50)
@given(headers())
def test_masked_records_round_trip(values: dict[str, object]) -> None:
    codec = STATEMENT.record("STMT-HEADER")
    raw = codec.encode(values)
    masked_raw = FixedWidthMasker(MASKER, STATEMENT).mask_record(raw)
    assert len(masked_raw) == len(raw)
    before, after = codec.decode(raw), codec.decode(masked_raw)
    assert iban_problem(after["SH-ACCOUNT-NO"]) is None
    assert after["SH-ACCOUNT-NO"][:2] == before["SH-ACCOUNT-NO"][:2]
    assert after["SH-ACCOUNT-NAME"] != before["SH-ACCOUNT-NAME"]
    for key in ("SH-CURRENCY", "SH-STATEMENT-DATE", "SH-OPENING-BALANCE", "SH-REC-TYPE"):
        assert after[key] == before[key]
    assert FixedWidthMasker(MASKER, STATEMENT).mask_record(raw) == masked_raw
