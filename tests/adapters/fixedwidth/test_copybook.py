"""The compiled copybook: the built-in core banking layouts, records, conditions, rules."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from adapters.fixedwidth import (
    CopybookSyntaxError,
    RecordDecodeError,
    RecordEncodeError,
    compile_copybook,
    layout_names,
    load_copybook,
    load_layout,
)


def test_builtin_layouts_are_shipped() -> None:
    assert layout_names() == ["corebank_reply", "corebank_request", "corebank_statement"]


@pytest.mark.parametrize(
    ("layout", "record", "length"),
    [
        ("corebank_request", "CB-REQUEST", 200),
        ("corebank_reply", "CB-REPLY", 200),
        ("corebank_statement", "STMT-HEADER", 120),
        ("corebank_statement", "STMT-DETAIL", 120),
        ("corebank_statement", "STMT-TRAILER", 120),
    ],
)
def test_builtin_record_lengths(layout: str, record: str, length: int) -> None:
    assert load_layout(layout).record(record).length == length


def test_request_offsets_match_the_copybook() -> None:
    codec = load_layout("corebank_request").record("CB-REQUEST")
    offsets = {f.key: (f.offset, f.size) for f in codec.fields if f.key}
    assert offsets == {
        "CB-TRAN-CODE": (0, 4),
        "CB-POSTING-REF": (4, 24),
        "CB-ORIG-POSTING-REF": (28, 24),
        "CB-ACCOUNT-NO": (52, 34),
        "CB-CONTRA-ACCOUNT": (86, 34),
        "CB-AMOUNT": (120, 8),
        "CB-CURRENCY": (128, 3),
        "CB-VALUE-DATE": (131, 8),
        "CB-CHANNEL": (139, 4),
        "CB-NARRATIVE": (143, 35),
    }


def test_request_round_trip_with_known_bytes() -> None:
    codec = load_layout("corebank_request").record("CB-REQUEST")
    values = {
        "CB-TRAN-CODE": "XFER",
        "CB-POSTING-REF": "REF-0001",
        "CB-ORIG-POSTING-REF": "",
        "CB-ACCOUNT-NO": "DE89370400440532013000",
        "CB-CONTRA-ACCOUNT": "GB29NWBK60161331926819",
        "CB-AMOUNT": Decimal("-1234567890123.45"),
        "CB-CURRENCY": "EUR",
        "CB-VALUE-DATE": 20261129,
        "CB-CHANNEL": "MOBI",
        "CB-NARRATIVE": "RENT NOVEMBER",
    }
    raw = codec.encode(values)
    assert len(raw) == 200
    assert raw[:4] == "XFER".encode("cp037")
    assert raw[120:128] == bytes.fromhex("123456789012345d")
    assert raw[131:139] == bytes.fromhex("f2f0f2f6f1f1f2f9")
    assert raw[178:] == b"\x40" * 22  # FILLER: spaces
    assert codec.decode(raw) == values
    assert codec.encode(codec.decode(raw)) == raw


def test_missing_fields_get_spaces_and_zeros() -> None:
    codec = load_layout("corebank_reply").record("CB-REPLY")
    raw = codec.encode({})
    assert raw[0:4] == b"\x40" * 4
    assert raw[64:72] == bytes.fromhex("000000000000000c")
    decoded = codec.decode(raw)
    assert decoded["CB-RP-LEDGER-BALANCE"] == Decimal("0.00")
    assert decoded["CB-RP-POSTED-AT"] == 0
    assert "FILLER" not in decoded


def test_conditions_and_encoding_by_condition_name() -> None:
    codec = load_layout("corebank_request").record("CB-REQUEST")
    raw = codec.encode({"CB-REVERSAL": True, "CB-ORIG-POSTING-REF": "P-1"})
    values = codec.decode(raw)
    assert values["CB-TRAN-CODE"] == "REVS"
    assert codec.condition("CB-REVERSAL", values)
    assert not codec.condition("CB-DEBIT-POSTING", values)
    assert set(codec.conditions) >= {"CB-BALANCE-ENQUIRY", "CB-RELEASE-HOLD"}
    with pytest.raises(RecordEncodeError, match="contradicts"):
        codec.encode({"CB-REVERSAL": True, "CB-TRAN-CODE": "DEBT"})
    with pytest.raises(KeyError):
        codec.condition("NO-SUCH", values)


def test_statement_record_rules_pick_the_layout() -> None:
    book = load_layout("corebank_statement")
    header = book.record("STMT-HEADER").encode({"SH-IS-HEADER": True, "SH-CURRENCY": "EUR"})
    detail = book.record("STMT-DETAIL").encode({"SD-IS-DETAIL": True, "SD-IS-DEBIT": True})
    trailer = book.record("STMT-TRAILER").encode({"ST-IS-TRAILER": True, "ST-ENTRY-COUNT": 1})
    assert book.decode(header)[0] == "STMT-HEADER"
    assert book.decode(detail) == ("STMT-DETAIL", book.record("STMT-DETAIL").decode(detail))
    assert book.decode(trailer)[1]["ST-ENTRY-COUNT"] == 1
    with pytest.raises(RecordDecodeError, match="no record rule matches"):
        book.decode("X".encode("cp037") * 120, record=4)


def test_wrong_length_names_the_record() -> None:
    codec = load_layout("corebank_request").record("CB-REQUEST")
    with pytest.raises(RecordDecodeError, match=r"record 3\b.*199 bytes") as info:
        codec.decode(b"\x40" * 199, record=3)
    assert info.value.record == 3


def test_invalid_packed_nibble_names_field_and_offset() -> None:
    codec = load_layout("corebank_request").record("CB-REQUEST")
    raw = bytearray(codec.encode({}))
    raw[123] = 0x3A  # a digit nibble 0xA inside CB-AMOUNT (offset 120)
    with pytest.raises(RecordDecodeError) as info:
        codec.decode(bytes(raw), record=9)
    assert info.value.field == "CB-AMOUNT"
    assert info.value.offset == 123
    assert "record 9" in str(info.value)


def test_invalid_zoned_digit_names_field_and_offset() -> None:
    codec = load_layout("corebank_request").record("CB-REQUEST")
    raw = bytearray(codec.encode({"CB-VALUE-DATE": 20261129}))
    raw[135] = 0x40
    with pytest.raises(RecordDecodeError) as info:
        codec.decode(bytes(raw))
    assert (info.value.field, info.value.offset) == ("CB-VALUE-DATE", 135)


def test_encode_refuses_what_does_not_fit() -> None:
    codec = load_layout("corebank_request").record("CB-REQUEST")
    with pytest.raises(RecordEncodeError, match="CB-CURRENCY"):
        codec.encode({"CB-CURRENCY": "EURO"})
    with pytest.raises(RecordEncodeError, match="decimal places"):
        codec.encode({"CB-AMOUNT": Decimal("1.001")})
    with pytest.raises(RecordEncodeError, match="digits"):
        codec.encode({"CB-AMOUNT": Decimal("10000000000000")})
    with pytest.raises(RecordEncodeError, match="no field or condition"):
        codec.encode({"CB-AMOUNTT": 1})


@pytest.mark.parametrize("codepage", ["cp037", "cp500", "cp1047", "cp273", "ascii"])
def test_every_codepage_round_trips(codepage: str) -> None:
    codec = load_layout("corebank_request", codepage=codepage).record("CB-REQUEST")
    values = {"CB-TRAN-CODE": "DEBT", "CB-NARRATIVE": "A[B]C^D", "CB-AMOUNT": Decimal("5.00")}
    raw = codec.encode(values)
    assert raw[:4] == "DEBT".encode(codepage)
    assert {k: codec.decode(raw)[k] for k in values} == values


def test_syntax_errors_have_line_and_column() -> None:
    with pytest.raises(CopybookSyntaxError) as info:
        compile_copybook("       01  R.\n           05  A  PIC X(4) SYNC.\n")
    assert (info.value.line, info.value.column) == (2, 28)
    assert "SYNCHRONIZED" in str(info.value)


def test_a_real_world_copybook() -> None:
    """Sequence numbers in columns 1-6 and 73-80, a level 88 with values over two lines,
    USAGE IS, VALUE ZEROES right up to column 72, REDEFINES chains, INDEXED BY, lowercase."""
    book = load_copybook(Path(__file__).parent / "copybooks" / "custmaster.cpy")
    codec = book.record("CUST-MASTER-REC")
    assert codec.length == 153
    offsets = {f.key: (f.offset, f.size) for f in codec.fields if f.key}
    assert offsets["CM-BALANCE"] == (15, 7)
    assert offsets["CM-HIST-TYPE"] == (43, 2)
    assert [f.offset for f in codec.fields if f.key is None] == [133]
    raw = codec.encode({"CM-CLOSED": True, "CM-BRANCH": 12, "CM-HIST-AMT": [Decimal("-1.50")]})
    values = codec.decode(raw)
    assert values["CM-STATUS"] == "C"
    assert codec.condition("CM-CLOSED", {"CM-STATUS": "Z"})
    assert values["CM-LIMIT"] == Decimal("0.00")
    assert values["CM-HIST-AMT"][:2] == [Decimal("-1.50"), Decimal("0.00")]
    assert "CM-OPEN-DATE-N" not in values  # no rule: the redefined item is decoded
