"""Card numbers: the Luhn check against its textbook definition, and clear card numbers in
text (the quick answer for text without a long digit run is exact)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import canonical_model.pan
from canonical_model.pan import (
    contains_clear_pan,
    find_clear_pans,
    luhn_valid,
    random_hex_id,
    time_ordered_hex_id,
)

# Card numbers, digit runs of every length around 13-19, IBANs, separators and letters, and
# digits outside ASCII (which \d matches too): enough to reach every branch of the scan.
PIECES = st.sampled_from(
    [
        "4222222222222", "30569309025904", "378282246310005", "4111111111111111",
        "4111111111111111110", "4111111111111", "411111111111", "41111111111111111111",
        "GB14BARC20325340846481", "GB15BARC20325340846481", "0", "7", " ", "-", "\n", '"',
        "a", "Z", "é", "\u0664\u0661\u0661\u0661", "\u0661" * 16, "\uff14", ".", ".5",
    ]
)  # fmt: skip
TEXTS = st.lists(PIECES | st.text(max_size=4), max_size=12).map("".join)


@given(TEXTS)
def test_contains_clear_pan_agrees_with_the_full_scan(text: str) -> None:
    assert contains_clear_pan(text) == bool(find_clear_pans(text))


def test_text_with_no_long_digit_run_holds_no_card_number() -> None:
    assert not contains_clear_pan('{"amount":"12.50","stan":"000123","rrn":"633300000001"}')
    assert contains_clear_pan('{"note":"card 4111111111111111"}')
    assert not contains_clear_pan("IBAN GB14BARC20325340846481")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('{"amount":"3556874280959.12"}', []),  # a balance of trillions: an amount
        ('{"amount":"4111111111111111.00"}', []),
        ("paid with 4111111111111111.", ["4111111111111111"]),  # a sentence ends
        ("4111111111111111.x", ["4111111111111111"]),
        ("0.4111111111111111", ["4111111111111111"]),  # 16 digits of a fraction: flagged
        ('{"amount":"3556874280959"}', ["3556874280959"]),  # without a fraction: flagged
    ],
)
def test_the_integer_part_of_a_decimal_amount_is_not_a_card_number(
    text: str, found: list[str]
) -> None:
    assert find_clear_pans(text) == found
    assert contains_clear_pan(text) == bool(found)


def _textbook_luhn(digits: str) -> bool:
    """From the rightmost digit: every second digit doubled (9 subtracted above 9), all summed."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)  # any script's decimal digit
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@given(st.text(alphabet="0123456789\u0660\u0661\u0669\uff15", min_size=1, max_size=40))
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


def test_digits_of_other_scripts_count_as_their_values_and_never_crash_the_scan() -> None:
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in "4111111111111111")
    assert luhn_valid(arabic_indic)
    assert find_clear_pans(f"card {arabic_indic} here") == [arabic_indic]
    assert not luhn_valid("41111111111111\u00b21")  # a superscript is no decimal digit
    assert not contains_clear_pan("\u0661" * 17)


def test_a_random_hex_id_never_holds_thirteen_digits_in_a_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = iter(["4000000010030003" * 2, "0123456789abcdef" * 2])  # a card-like run first
    monkeypatch.setattr(canonical_model.pan, "token_hex", lambda size: next(draws))
    assert random_hex_id() == "0123456789abcdef" * 2


@given(st.integers(min_value=7, max_value=32))
def test_random_hex_ids_have_their_size_and_no_card_like_run(size: int) -> None:
    value = random_hex_id(size)
    assert len(value) == 2 * size and not contains_clear_pan(value)


def test_a_time_ordered_id_starts_with_its_millisecond_and_sorts_after_earlier_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([1_796_045_000_123_456_789, 1_796_045_000_124_000_000])
    monkeypatch.setattr(canonical_model.pan, "time_ns", lambda: next(clock))
    first, second = time_ordered_hex_id(), time_ordered_hex_id()
    assert first[:12] == f"{1_796_045_000_123:012x}" and second[:12] == f"{1_796_045_000_124:012x}"
    assert len(first) == len(second) == 32 and first < second
    assert int(first[12:], 16) >= 0 and first[12:] != second[12:]


def test_a_time_ordered_id_never_holds_thirteen_digits_in_a_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A millisecond whose 12 hex digits are all decimal ones: the random part must then
    # start with a letter, so a draw starting with a digit is drawn again.
    millisecond = 0x001122334455
    monkeypatch.setattr(canonical_model.pan, "time_ns", lambda: millisecond * 1_000_000)
    draws = iter(["9abcdefabcdefabcdefa", "a0123456789abcdef012"])
    monkeypatch.setattr(canonical_model.pan, "token_hex", lambda size: next(draws))
    assert time_ordered_hex_id() == "001122334455a0123456789abcdef012"


def test_time_ordered_ids_of_one_process_are_distinct_and_sorted_across_milliseconds() -> None:
    made = []
    for _ in range(3):
        made.append(time_ordered_hex_id())
        deadline = time.monotonic() + 0.0015
        while time.monotonic() < deadline:
            pass
    assert made == sorted(made) and len(set(made)) == 3
    assert not any(contains_clear_pan(value) for value in made)
