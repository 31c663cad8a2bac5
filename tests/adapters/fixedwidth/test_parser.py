"""Data description entries: clauses accepted, unsupported ones refused with line and column."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.fixedwidth import CopybookSyntaxError, compile_copybook
from adapters.fixedwidth.parser import Figurative, parse_copybook


def test_clauses_in_any_order_and_optional_words() -> None:
    (record,) = parse_copybook(
        "01 R.\n"
        "   05 A VALUE IS 'X' PICTURE IS X(2) USAGE IS DISPLAY.\n"
        "   05 B PIC S9(5) COMP-3 VALUE -12.\n"
        "   05 C PIC S9(3) SIGN IS LEADING SEPARATE CHARACTER.\n"
        "   05 D PIC 9 OCCURS 1 TO 3 TIMES DEPENDING ON B ASCENDING KEY IS D INDEXED BY I.\n"
    )
    a, b, c, d = record.children
    assert (a.picture, a.usage, a.values) == ("X(2)", "display", [("X", None)])
    assert (b.usage, b.values) == ("packed", [(Decimal(-12), None)])
    assert (c.sign_leading, c.sign_separate) == (True, True)
    assert d.occurs is not None
    assert (d.occurs.minimum, d.occurs.maximum, d.occurs.depending_on) == (1, 3, "B")


def test_level_88_values_ranges_and_figuratives() -> None:
    (record,) = parse_copybook(
        "01 R.\n"
        "   05 A PIC 99.\n"
        "      88 SMALL VALUES ARE 1 THRU 9, 11.\n"
        "      88 NONE VALUE ZERO.\n"
        "   05 B PIC X(3) VALUE ALL '*'.\n"
    )
    small, none = record.children[0].conditions
    assert small.values == [(Decimal(1), Decimal(9)), (Decimal(11), None)]
    assert none.values == [(Figurative("ZERO"), None)]
    assert record.children[1].values == [(Figurative("ALL", "*"), None)]


@pytest.mark.parametrize(
    ("line", "column", "reason"),
    [
        ("05 A PIC X SYNC.", 15, "SYNCHRONIZED"),
        ("05 A USAGE COMP-1.", 15, "COMP-1"),
        ("05 A PIC S9(4) COMP-2.", 19, "COMP-2"),
        ("05 A PIC X(4) POINTER.", 18, "POINTER"),
        ("66 A RENAMES B.", 4, "RENAMES"),
        ("05 A PIC X(4) FROBNICATE.", 18, "FROBNICATE"),
        ("05 A PIC X(4) OCCURS 2 TO 4.", 18, "needs DEPENDING ON"),
        ("05 A PIC 9(3).99.", 17, "editing symbol '.'"),
        ("05 A PIC X(4) VALUE N'AB'.", 24, "N-literals"),
        ("COPY OTHERBOOK.", 4, "COPY"),
    ],
)
def test_unsupported_clauses_name_line_and_column(line: str, column: int, reason: str) -> None:
    with pytest.raises(CopybookSyntaxError, match=reason) as info:
        compile_copybook(f"01 R.\n   {line}\n", source_format="free")
    assert (info.value.line, info.value.column) == (2, column)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("01 R.\n 05 A PIC X.\n 05 B REDEFINES Z PIC X.\n", "REDEFINES Z"),
        ("01 R.\n 05 A PIC X.\n 05 A PIC X.\n", "defined twice"),
        ("01 R.\n 05 G.\n  10 A PIC X.\n  88 C VALUE 'A'.\n 05 G2.\n", "no PICTURE"),
        ("01 R.\n 05 N PIC 9.\n 05 T OCCURS 1 TO 2 DEPENDING ON NOPE PIC X.\n", "NOPE"),
        ("01 R.\n 05 T OCCURS 1 TO 2 DEPENDING ON N PIC X.\n 05 N PIC 9.\n", "before the table"),
        ("01 R PIC X OCCURS 2.\n", "level 01"),
        ("01 R.\n 05 A PIC X COMP-3.\n", "alphanumeric picture"),
        ("01 R.\n 05 A PIC X(2) VALUE 'ABC'.\n", "literal of 3 characters for an item of 2"),
        ("01 R.\n 05 A PIC 9(2) VALUE 'AB'.\n", "text literal for a numeric item"),
        ("01 R.\n 05 A PIC 9(2) VALUE 123.\n", "more than 2 digits"),
        ("01 R.\n 05 A PIC X(2) VALUE ALL ''.\n", "ALL needs a non-empty literal"),
        ("01 R.\n 05 A PIC 9(2).\n  88 C VALUE 'X'.\n", "VALUE of C: a text literal"),
        ("01 R.\n 05 G VALUE 'TOO LONG'.\n  10 A PIC X.\n", "VALUE of G"),
    ],
)
def test_layout_errors(text: str, reason: str) -> None:
    with pytest.raises(CopybookSyntaxError, match=reason):
        compile_copybook(text, source_format="free")


_WORDS = st.sampled_from(
    ["01", "05", "10", "88", "77", "66", "FILLER", "A", "B", "PIC", "X(3)", "9(4)", "S9(5)V99",
     "COMP-3", "COMP", "COMP-5", "VALUE", "'X'", "ZERO", "OCCURS", "3", "TO", "DEPENDING", "ON",
     "REDEFINES", "SIGN", "LEADING", "SEPARATE", ".", "THRU", "-1", "P", "SYNC", "ALL", "X'FF'",
     "USAGE", "IS", "INDEXED", "BY"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_WORDS, max_size=10), max_size=10))
def test_any_word_salad_compiles_or_gets_a_syntax_error(lines: list[list[str]]) -> None:
    text = "\n".join("       " + " ".join(words) for words in lines)
    try:
        compile_copybook(text)
    except CopybookSyntaxError as exc:
        assert exc.line >= 1
        assert exc.column >= 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_text_compiles_or_gets_a_syntax_error(text: str) -> None:
    try:
        compile_copybook(text)
    except CopybookSyntaxError as exc:
        assert exc.line >= 1
