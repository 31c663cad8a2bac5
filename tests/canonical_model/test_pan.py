"""Clear card numbers in text: the quick answer for text without a long digit run is exact."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from canonical_model.pan import contains_clear_pan, find_clear_pans

# Card numbers, digit runs of every length around 13-19, IBANs, separators and letters, and
# digits outside ASCII (which \d matches too): enough to reach every branch of the scan.
PIECES = st.sampled_from(
    [
        "4222222222222", "30569309025904", "378282246310005", "4111111111111111",
        "4111111111111111110", "4111111111111", "411111111111", "41111111111111111111",
        "GB14BARC20325340846481", "GB15BARC20325340846481", "0", "7", " ", "-", "\n", '"',
        "a", "Z", "é", "\u0664\u0661\u0661\u0661", "\u0661" * 16, "\uff14",
    ]
)  # fmt: skip
TEXTS = st.lists(PIECES | st.text(max_size=4), max_size=12).map("".join)


def outcome(scan: Callable[[str], object], text: str) -> object:
    """What ``scan`` answers, or the type of what it raises (a run of non-ASCII digits
    fails the Luhn arithmetic with IndexError, both ways)."""
    try:
        return bool(scan(text))
    except IndexError as exc:
        return type(exc)


@given(TEXTS)
def test_contains_clear_pan_agrees_with_the_full_scan(text: str) -> None:
    assert outcome(contains_clear_pan, text) == outcome(find_clear_pans, text)


def test_text_with_no_long_digit_run_holds_no_card_number() -> None:
    assert not contains_clear_pan('{"amount":"12.50","stan":"000123","rrn":"633300000001"}')
    assert contains_clear_pan('{"note":"card 4111111111111111"}')
    assert not contains_clear_pan("IBAN GB14BARC20325340846481")
