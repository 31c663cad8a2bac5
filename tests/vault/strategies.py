"""Card numbers for the vault tests: Hypothesis strategies and small helpers."""

from __future__ import annotations

from hypothesis import strategies as st

DIGITS = "0123456789"


def check_digit(body: str) -> str:
    """The Luhn check digit that makes ``body + digit`` a valid card number."""
    total = 0
    # The check digit will stand at position 0 from the right: body's last digit is doubled.
    for position, char in enumerate(reversed(body)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def with_check_digit(body: str) -> str:
    """``body`` completed into a Luhn-valid card number."""
    return body + check_digit(body)


def pans_of_length(length: int) -> st.SearchStrategy[str]:
    """Luhn-valid card numbers of ``length`` digits: a random body and its check digit."""
    return st.text(DIGITS, min_size=length - 1, max_size=length - 1).map(with_check_digit)


pans = st.integers(min_value=12, max_value=19).flatmap(pans_of_length)
"""Luhn-valid card numbers of 12 to 19 digits."""

tenants = st.text(min_size=1, max_size=12)
"""Tenant names: any non-empty text (Hypothesis leaves out lone surrogates)."""


def bucket(first6: str, last4: str) -> list[str]:
    """Every Luhn-valid 12-digit card number ``first6 + ?? + last4``: there are ten."""
    found = [
        pan
        for pan in (f"{first6}{middle:02d}{last4}" for middle in range(100))
        if with_check_digit(pan[:-1]) == pan
    ]
    assert len(found) == 10, found
    return found


def luhn_pans(count: int, *, seed: int, length: int = 16, prefix: str = "4") -> list[str]:
    """``count`` distinct Luhn-valid card numbers, the same for the same ``seed``."""
    import random

    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < count:
        body = prefix + "".join(rng.choice(DIGITS) for _ in range(length - len(prefix) - 1))
        found[with_check_digit(body)] = None
    return list(found)
