"""Reference format: sequence and indicator areas, comments, continuation, free format."""

from __future__ import annotations

import pytest

from adapters.fixedwidth.errors import CopybookSyntaxError
from adapters.fixedwidth.source import detect_format, tokenize

OPENING = "000500     05  NAME   PIC X(60) VALUE '"
FILL = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[: 72 - len(OPENING)]
FIXED = (
    "000100 01  REC.".ljust(72) + "SEQ00001\n"
    "000200*    A COMMENT LINE, IGNORED\n"
    "000300/    A PAGE EJECT, IGNORED\n"
    "000400D    05 DEBUG-ONLY PIC X.\n"
    f"{OPENING}{FILL}IGNORED\n"
    "000600-    'THETA'.\n"
)


def test_fixed_format_areas_and_continuation() -> None:
    assert detect_format(FIXED) == "fixed"
    tokens = tokenize(FIXED)
    texts = [t.text for t in tokens]
    assert texts[:3] == ["01", "REC", "."]
    assert "SEQ00001" not in texts  # columns 73-80 are ignored
    assert "DEBUG-ONLY" not in texts
    literal = tokens[-2]
    assert literal.is_literal
    assert literal.text == f"'{FILL}THETA'"
    assert (literal.line, literal.column) == (5, len(OPENING))


def test_free_format_with_inline_comments() -> None:
    text = "01 REC. *> the record\n  05 A PIC X(2) VALUE 'a.b'. *> a field\n* a full comment\n"
    assert detect_format(text) == "free"
    assert [t.text for t in tokenize(text)] == [
        "01", "REC", ".", "05", "A", "PIC", "X(2)", "VALUE", "'a.b'", ".",
    ]  # fmt: skip


def test_period_inside_a_picture_is_not_a_separator() -> None:
    assert [t.text for t in tokenize("01 A PIC 9(3).99.", "free")] == [
        "01", "A", "PIC", "9(3).99", ".",
    ]  # fmt: skip


def test_doubled_quotes_and_hex_literals() -> None:
    tokens = tokenize("01 A VALUE 'IT''S' X'C1C2'.", "free")
    assert [t.text for t in tokens if t.is_literal] == ["'IT''S'", "X'C1C2'"]


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("01 A VALUE 'OPEN.", 1, 12),
        ("       01  A.\n      -    'X'.\n", 2, 7),
        ("       01  A.\n      %    05 B.\n", 2, 7),
    ],
)
def test_errors_have_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(CopybookSyntaxError) as info:
        tokenize(text, "free" if text.startswith("01") else "fixed")
    assert (info.value.line, info.value.column) == (line, column)


def test_a_continued_literal_runs_to_column_72_even_when_the_line_is_trimmed() -> None:
    text = "       01  A PIC X(70) VALUE 'AB\n      -    'CD'.\n"
    literal = next(t for t in tokenize(text) if t.is_literal)
    assert literal.text == "'AB" + " " * (72 - 32) + "CD'"
