"""Card numbers: the Luhn check against its textbook definition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical_model.pan import luhn_valid


def _textbook_luhn(digits: str) -> bool:
    """From the rightmost digit: every second digit doubled (9 subtracted above 9), all summed."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_luhn_is_the_textbook_check(digits: str) -> None:
    assert luhn_valid(digits) == _textbook_luhn(digits)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("5413330089010012", True),
        ("0", True),
        ("18", True),
        ("", False),
        ("4111 1111 1111 1111", False),
        ("41111111111111x1", False),
    ],
)
def test_luhn_known_values(text: str, valid: bool) -> None:
    assert luhn_valid(text) is valid
