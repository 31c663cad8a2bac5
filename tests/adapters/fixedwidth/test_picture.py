"""PICTURE strings: sizes, digits, scale, sign; editing symbols refused with their position."""

from __future__ import annotations

import pytest

from adapters.fixedwidth.picture import MAX_SIZE, Picture, PictureError, parse_picture


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("X", Picture("alphanumeric", 1, 0, 0, False)),
        ("X(34)", Picture("alphanumeric", 34, 0, 0, False)),
        ("A(3)", Picture("alphabetic", 3, 0, 0, False)),
        ("XX9X", Picture("alphanumeric", 4, 0, 0, False)),
        ("9(8)", Picture("numeric", 8, 8, 0, False)),
        ("S9(13)V99", Picture("numeric", 15, 15, 2, True)),
        ("s9(3)v9(2)", Picture("numeric", 5, 5, 2, True)),
        ("V99", Picture("numeric", 2, 2, 2, False)),
        ("9(3)PP", Picture("numeric", 3, 3, -2, False)),
        ("PP99", Picture("numeric", 2, 2, 4, False)),
        ("VPP99", Picture("numeric", 2, 2, 4, False)),
        ("SP(3)9", Picture("numeric", 1, 1, 4, True)),
    ],
)
def test_pictures(text: str, expected: Picture) -> None:
    assert parse_picture(text) == expected


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("ZZ9.99", 0, "editing symbol 'Z'"),
        ("9(5).99", 4, "editing symbol '.'"),
        ("-9(5)", 0, "editing symbol '-'"),
        ("9S", 1, "S must be the first"),
        ("9V9V9", 3, "one V only"),
        ("9(0)", 1, "repetition count"),
        ("(3)", 0, "malformed repetition"),
        ("9P9", 2, "9 cannot follow a trailing P"),
        ("N(3)", 0, "not supported"),
        ("9(39)", 0, "more than 38 digit positions"),
        (f"X({MAX_SIZE + 1})", 1, "repetition count"),
    ],
)
def test_bad_pictures_name_the_position(text: str, position: int, reason: str) -> None:
    with pytest.raises(PictureError, match=reason) as info:
        parse_picture(text)
    assert info.value.position == position
