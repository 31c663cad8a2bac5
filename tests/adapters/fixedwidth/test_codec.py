"""The record codec: OCCURS, OCCURS DEPENDING ON, REDEFINES rules, VALUE clauses, conditions."""

from __future__ import annotations

import copy
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.fixedwidth import (
    RecordCodec,
    RecordDecodeError,
    RecordEncodeError,
    compile_copybook,
    layout_names,
    load_layout,
)
from adapters.fixedwidth.spec import FieldSpec
from adapters.fixedwidth.zoned import Overpunch
from tests.adapters.fixedwidth.strategies import reply_values, request_values

CUSTOMER = """
       01  CUSTOMER.
           05  REC-TYPE            PIC X.
               88  IS-PERSON               VALUE 'P'.
               88  IS-COMPANY              VALUE 'C'.
           05  PERSON-NAME.
               10  FIRST-NAME      PIC X(10).
               10  LAST-NAME       PIC X(10).
           05  COMPANY-NAME        REDEFINES PERSON-NAME.
               10  CO-NAME         PIC X(15).
               10  CO-REG          PIC 9(9) COMP-3.
           05  SCORE               PIC S9(3)V9 VALUE -1.5.
           05  GRADE               PIC 99.
               88  FAILED                  VALUE 0 THRU 49.
               88  PASSED                  VALUE 50 THRU 100.
           05  N-PHONES            PIC 9.
           05  MONTHS              OCCURS 3 TIMES.
               10  M-AMT           PIC S9(5) COMP-3.
               10  M-CODE          PIC XX OCCURS 2.
           05  PHONES              OCCURS 0 TO 4 TIMES
                                   DEPENDING ON N-PHONES.
               10  PHONE           PIC X(5).
           05  END-MARK            PIC X(3) VALUE 'END'.
"""


def customer() -> Any:
    return compile_copybook(CUSTOMER, redefines={"COMPANY-NAME": "IS-COMPANY"}).record()


def test_lengths_and_offsets() -> None:
    codec = customer()
    assert (codec.min_length, codec.length) == (52, 72)
    offsets = {f.key: f.offset for f in codec.fields}
    assert offsets["CO-REG"] == 16
    assert offsets["N-PHONES"] == 27
    assert offsets["PHONE"] == 49
    assert offsets["END-MARK"] == 69


def test_odo_moves_what_follows_and_round_trips() -> None:
    codec = customer()
    raw = codec.encode({"REC-TYPE": "P", "FIRST-NAME": "ANN", "PHONE": ["111", "222"]})
    assert len(raw) == 52 + 2 * 5
    values = codec.decode(raw)
    assert values["N-PHONES"] == 2
    assert values["PHONE"] == ["111", "222"]
    assert values["END-MARK"] == "END"
    assert values["SCORE"] == Decimal("-1.5")
    assert values["M-CODE"] == [["", ""], ["", ""], ["", ""]]
    assert codec.encode(values) == raw


def test_odo_count_out_of_range() -> None:
    codec = customer()
    raw = bytearray(codec.encode({"PHONE": []}))
    raw[27] = 0xF9  # N-PHONES = 9, the table holds 4
    with pytest.raises(RecordDecodeError, match="count 9 outside 0 TO 4") as info:
        codec.decode(bytes(raw), record=5)
    assert (info.value.field, info.value.offset, info.value.record) == ("N-PHONES", 27, 5)
    with pytest.raises(RecordEncodeError, match="outside OCCURS 0 TO 4"):
        codec.encode({"PHONE": ["1"] * 5})


def test_odo_length_mismatch() -> None:
    codec = customer()
    raw = codec.encode({"PHONE": ["1"]})
    with pytest.raises(RecordDecodeError, match="with these counts is 57"):
        codec.decode(raw + b"\x40")


def test_redefines_rule_picks_the_layout() -> None:
    codec = customer()
    company = codec.encode({"IS-COMPANY": True, "CO-NAME": "ACME", "CO-REG": 123456789})
    values = codec.decode(company)
    assert values["CO-REG"] == 123456789
    assert "FIRST-NAME" not in values
    person = codec.decode(codec.encode({"IS-PERSON": True, "FIRST-NAME": "ANN"}))
    assert person["FIRST-NAME"] == "ANN"
    assert "CO-REG" not in person


def test_values_for_two_alternatives_are_refused() -> None:
    with pytest.raises(RecordEncodeError, match="several REDEFINES alternatives"):
        customer().encode({"FIRST-NAME": "A", "CO-NAME": "B"})


def test_conditions_with_ranges() -> None:
    codec = customer()
    assert codec.condition("FAILED", {"GRADE": 49})
    assert codec.condition("PASSED", {"GRADE": 50})
    assert not codec.condition("PASSED", {"GRADE": 49})


def test_nested_occurs_lists() -> None:
    codec = customer()
    raw = codec.encode({"M-CODE": [["A", "B"], ["C"]], "M-AMT": [1, -2, 3], "PHONE": []})
    values = codec.decode(raw)
    assert values["M-CODE"] == [["A", "B"], ["C", ""], ["", ""]]
    assert values["M-AMT"] == [1, -2, 3]
    with pytest.raises(RecordEncodeError, match="4 entries for a table of 3"):
        codec.encode({"M-AMT": [1, 2, 3, 4]})


def test_group_value_figuratives_and_justified() -> None:
    codec = compile_copybook(
        """
       01  R.
           05  G                   VALUE ALL '*'.
               10  G1              PIC X(2).
               10  G2              PIC X(2).
           05  H                   PIC X(2) VALUE HIGH-VALUES.
           05  Z                   PIC 9(3) VALUE ZEROS.
           05  J                   PIC X(4) JUSTIFIED RIGHT.
           05  P                   PIC 9(3)PP COMP-3 VALUE 12300.
        """,
        codepage="cp037",
    ).record()
    raw = codec.encode({"J": "AB"})
    assert raw.hex() == "5c5c5c5cfffff0f0f04040c1c2123f"
    assert codec.decode(raw)["P"] == 12300
    assert codec.decode(raw)["J"] == "AB"


def test_duplicate_names_are_qualified() -> None:
    codec = compile_copybook(
        """
       01  R.
           05  FROM-ACCT.
               10  ACCT-NO         PIC X(4).
           05  TO-ACCT.
               10  ACCT-NO         PIC X(4).
        """
    ).record()
    assert codec.keys == ("ACCT-NO OF FROM-ACCT", "ACCT-NO OF TO-ACCT")


@given(
    st.fixed_dictionaries(
        {
            "REC-TYPE": st.just("P"),
            "FIRST-NAME": st.text("ABCXYZ ", max_size=10).map(str.rstrip),
            "SCORE": st.integers(-9999, 9999).map(lambda n: Decimal(n).scaleb(-1)),
            "GRADE": st.integers(0, 99),
            "M-AMT": st.lists(st.integers(-99999, 99999), min_size=3, max_size=3),
            "PHONE": st.lists(st.text("0123456789", max_size=5), max_size=4),
        }
    )
)
def test_round_trip(values: dict[str, Any]) -> None:
    codec = customer()
    raw = codec.encode(values)
    decoded = codec.decode(raw)
    assert {k: decoded[k] for k in values} == values
    assert codec.encode(decoded) == raw


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_bytes_decode_or_give_a_record_decode_error(data: st.DataObject) -> None:
    codec = customer()
    size = data.draw(st.sampled_from([codec.min_length, codec.length, 57, 3]))
    raw = data.draw(st.binary(min_size=size, max_size=size))
    try:
        codec.decode(raw, record=7)
    except RecordDecodeError as exc:
        assert exc.record == 7


def test_nested_view_of_groups_and_tables() -> None:
    codec = customer()
    values = codec.decode(
        codec.encode({"IS-COMPANY": True, "CO-NAME": "ACME", "M-AMT": [1, 2, 3], "PHONE": ["9"]})
    )
    nested = codec.nest(values)
    assert list(nested) == [
        "REC-TYPE", "COMPANY-NAME", "SCORE", "GRADE", "N-PHONES", "MONTHS", "PHONES", "END-MARK",
    ]  # fmt: skip
    assert nested["COMPANY-NAME"] == {"CO-NAME": "ACME", "CO-REG": 0}
    assert nested["MONTHS"][1] == {"M-AMT": 2, "M-CODE": ["", ""]}
    assert nested["PHONES"] == [{"PHONE": "9"}]


TABLES = """
       01  TABLES.
           05  KIND                PIC X(2).
               88  IS-A                    VALUE 'AA'.
           05  AMT                 PIC S9(7)V99 COMP-3.
           05  WHEN                PIC 9(8).
           05  CODES               PIC X(3) OCCURS 2.
           05  NOTE                PIC X(12).
           05  FILLER              PIC X(4) VALUE 'ZZZZ'.
"""


def _general(codec: RecordCodec) -> RecordCodec:
    """The same codec encoding through the general path only (no per-item fast slots)."""
    general = copy.copy(codec)
    general._fast_slots = None
    general._fast_encode = None
    return general


def _outcome(codec: RecordCodec, values: dict[str, Any]) -> bytes | tuple[str | None, str]:
    try:
        return codec.encode(values)
    except RecordEncodeError as exc:
        return exc.field, str(exc)


_ANY_VALUE = st.one_of(
    st.text(max_size=40),
    st.integers(-(10**16), 10**16),
    st.decimals(allow_nan=True, allow_infinity=True, places=3),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=4), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fixed_layouts_encode_as_the_general_path_does(data: st.DataObject) -> None:
    """Layouts without REDEFINES or OCCURS DEPENDING ON encode each value straight into its
    slice; the bytes, and the errors, are those of the general path, for valid values and
    anything else."""
    from adapters.fixedwidth.adapter import FixedWidthAdapter

    request = FixedWidthAdapter("corebank-request").mapper.codec
    reply = FixedWidthAdapter("corebank-reply").mapper.codec
    tables = compile_copybook(TABLES).record()
    codec = data.draw(st.sampled_from([request, reply, tables]))
    if codec is request:
        values = data.draw(request_values(request))
    elif codec is reply:
        values = data.draw(reply_values())
    else:
        values = {
            "IS-A": True,
            "AMT": data.draw(st.integers(-(10**9) + 1, 10**9 - 1).map(lambda n: Decimal(n) / 100)),
            "CODES": data.draw(st.lists(st.text("ABC", max_size=3), max_size=2)),
            "NOTE": data.draw(st.text("XYZ ", max_size=12)),
        }
    for key in data.draw(st.lists(st.sampled_from([*codec.keys, "NO-SUCH-FIELD"]), max_size=3)):
        values[key] = data.draw(_ANY_VALUE)
    assert codec._fast_slots is not None
    assert _outcome(codec, values) == _outcome(_general(codec), values)


_HERE = Path(__file__).parent
_LAYOUTS = resources.files("adapters.fixedwidth") / "layouts"
_LAYOUT_FILES = [
    *(_LAYOUTS / f"{name}.cpy" for name in layout_names()),
    *(_HERE / "copybooks").glob("*.cpy"),
    *(_HERE / "cobol").glob("*.cpy"),
]


def _per_item(codec: RecordCodec) -> RecordCodec:
    """The same codec encoding item by item (the encoder before the generated one)."""
    reference = copy.copy(codec)
    reference._fast_encode = None
    return reference


def _result(codec: RecordCodec, values: dict[str, Any]) -> object:
    try:
        return codec.encode(values)
    except RecordEncodeError as exc:
        return exc.field, str(exc)
    except Exception as exc:
        return type(exc), str(exc)


def _any_value(f: FieldSpec) -> st.SearchStrategy[Any]:
    """Values for item ``f``: fitting ones, and too long, too many digits or places, wrong
    sign, wrong type, characters outside the code page."""
    limit = 10 ** (f.digits + 1)
    numbers = st.one_of(
        st.integers(-limit, limit),
        st.integers(-(10**f.digits) + 1, 10**f.digits - 1).map(
            lambda n: Decimal(n).scaleb(-f.scale)
        ),
        st.decimals(-limit, limit, places=max(f.scale, 0) + 1),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.sampled_from([Decimal("-0"), Decimal("-0.00"), Decimal("0E-9"), Decimal("1E+30")]),
        st.integers(-999, 999).map(str),
    )
    text = st.text(st.characters(max_codepoint=0x17F), max_size=f.size + 2)
    others = st.sampled_from([None, True, False, 1.5, b"AB", ["A"]])
    if f.numeric:
        return st.one_of(numbers, numbers, text, others)
    return st.one_of(text, text, numbers, others)


@st.composite
def _record_values(draw: st.DrawFn, codec: RecordCodec) -> dict[str, Any]:
    plain = [f for f in codec.fields if f.key is not None and not f.dims]
    chosen = draw(st.lists(st.sampled_from(plain), unique=True)) if plain else []
    values = {f.key: draw(_any_value(f)) for f in chosen if f.key is not None}
    with_condition: bool = draw(st.booleans())
    if codec.conditions and with_condition:
        values[draw(st.sampled_from(sorted(codec.conditions)))] = draw(
            st.sampled_from([True, True, False])
        )
    if draw(st.integers(0, 9)) == 0:
        values["NO-SUCH-FIELD"] = "X"
    return dict(draw(st.permutations(list(values.items()))))


_CODEPAGES: list[tuple[str, Overpunch | None]] = [
    ("cp037", None), ("cp500", None), ("cp1047", None), ("ascii", "ebcdic"), ("ascii", "ascii"),
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_generated_encoder_matches_the_per_item_encoder_on_every_layout(
    data: st.DataObject,
) -> None:
    """Every layout the generated encoder covers (the built-in ones and the tests'
    copybooks), every code page: the same bytes, or the same error naming the same field,
    for fitting and unfitting values alike."""
    path = data.draw(st.sampled_from(_LAYOUT_FILES))
    codepage, overpunch = data.draw(st.sampled_from(_CODEPAGES))
    copybook = compile_copybook(path.read_text(), codepage=codepage, overpunch=overpunch)
    codec = copybook.record(data.draw(st.sampled_from(sorted(copybook.records))))
    if codec._fast_encode is None:
        return
    values = data.draw(_record_values(codec))
    assert _result(codec, values) == _result(_per_item(codec), values)


_ITEMS = (
    "PIC X({n})",
    "PIC X({n}) JUSTIFIED RIGHT",
    "PIC 9({n})",
    "PIC S9({n})",
    "PIC S9({n}) SIGN LEADING",
    "PIC S9({n})V99",
    "PIC 9({n})V9 COMP-3",
    "PIC S9({n})V99 COMP-3",
    "PIC S9({n}) COMP-3",
    "PIC 9({n}) COMP-3",
    "PIC S9({n}) SIGN LEADING SEPARATE",
    "PIC S9({n})V9 SIGN TRAILING SEPARATE",
    "PIC S9(4) COMP",
    "PIC 9(9) COMP",
    "PIC S9(9)V99 COMP",
    "PIC S9(4) COMP-5",
    "PIC 9(18) COMP-5",
    "PIC S99PP",
    "PIC SVPP99 COMP-3",
    "PIC 9 VALUE 7",
    "PIC X(3) VALUE '{{%}}'",
    "PIC S9(3)V9 COMP-3 VALUE -1.5",
)


@st.composite
def _copybooks(draw: st.DrawFn) -> str:
    items = draw(st.lists(st.sampled_from(_ITEMS), min_size=1, max_size=8))
    lines = ["       01  GENERATED."]
    for index, item in enumerate(items):
        picture = item.format(n=draw(st.integers(1, 12)))
        name = "FILLER" if draw(st.integers(0, 5)) == 0 else f"ITEM-{index}"
        lines.append(f"           05  {name:<12} {picture}.")
        if index == 0 and item.startswith("PIC X") and name != "FILLER":
            lines.append("               88  ITEM-0-SET      VALUE 'A'.")
    return "\n".join(lines) + "\n"


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_generated_encoder_matches_the_per_item_encoder_on_generated_copybooks(
    data: st.DataObject,
) -> None:
    """Copybooks drawn from every item kind (text, justified, zoned with the sign trailing
    or leading, separate signs, packed, binary, COMP-5, P scaling, VALUE clauses) in EBCDIC
    and ASCII with both overpunch conventions: the same bytes or the same error."""
    codepage, overpunch = data.draw(st.sampled_from(_CODEPAGES))
    codec = compile_copybook(
        data.draw(_copybooks()), codepage=codepage, overpunch=overpunch
    ).record()
    assert codec._fast_encode is not None
    values = data.draw(_record_values(codec))
    assert _result(codec, values) == _result(_per_item(codec), values)


def test_generated_encoder_covers_the_core_banking_records() -> None:
    """CB-REQUEST and CB-REPLY encode through the generated function: its source is named
    after the record, and an unfitting value still names its field."""
    copybook = load_layout("corebank_request")
    codec = copybook.record("CB-REQUEST")
    assert codec._fast_encode is not None
    assert codec._fast_encode.__code__.co_filename == "<copybook CB-REQUEST encoder>"
    with pytest.raises(RecordEncodeError, match="more than 15 digits") as error:
        codec.encode({"CB-DEBIT-POSTING": True, "CB-AMOUNT": Decimal("1E+14")})
    assert error.value.field == "CB-AMOUNT"
    with pytest.raises(RecordEncodeError, match="negative value") as error:
        codec.encode({"CB-VALUE-DATE": -1})
    assert error.value.field == "CB-VALUE-DATE"
