"""Card numbers in the canonical model: tokens and masks, never a clear PAN.

A :class:`PanToken` is what the vault hands out in place of a primary account number: same
length, first six and last four digits kept (configurable in the vault), and the Luhn check
failing on purpose, so a token can never be mistaken for a card number. The canonical model
refuses a Luhn-valid value as a token: that is how "no canonical field can hold a clear PAN"
is enforced at construction, not by convention.

>>> luhn_valid("4111111111111111")
True
>>> PanToken("4111111111111111")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
canonical_model.pan.ClearPanError: a PanToken must fail the Luhn check; refusing ...
>>> t = PanToken("4111110000001112")
>>> t.masked
'411111******1112'
>>> mask_pan("5500005555555559")
'550000******5559'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from time import time_ns

from canonical_model.random_ids import token_hex

__all__ = [
    "ClearPanError",
    "PanToken",
    "contains_clear_pan",
    "find_clear_pans",
    "luhn_valid",
    "mask_pan",
    "random_hex_id",
    "time_ordered_hex_id",
]


class ClearPanError(ValueError):
    """A value that looks like a clear card number where only a token may stand."""


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_DOUBLED_DIGIT_SUMS = bytes.maketrans(b"0123456789", bytes(48 + d for d in _DOUBLED))
"""Each ASCII digit to the ASCII digit of the digit sum of its double (``5`` -> ``1``)."""


def luhn_valid(digits: str) -> bool:
    """Whether a string of decimal digits passes the Luhn (mod 10) check. Decimal digits of
    any script count as their values (``\\d`` finds them in text too); other characters,
    superscripts included, make it not a card number.

    >>> luhn_valid("4111111111111111"), luhn_valid("\u0664" + "\u0661" * 15), luhn_valid("4\u00b2")
    (True, True, False)
    """
    if not digits.isdecimal():
        return False
    if digits.isascii():
        # From the right: every other digit as it is, the others doubled; the bytes are
        # summed in C, and every byte carries 48 (ord("0")) on top of its digit.
        raw = digits.encode("ascii")
        total = sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_DOUBLED_DIGIT_SUMS))
        return (total - 48 * len(raw)) % 10 == 0
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        total += _DOUBLED[value] if position % 2 else value
    return total % 10 == 0


def mask_pan(pan: str, keep_first: int = 6, keep_last: int = 4) -> str:
    """First six and last four digits shown, the rest replaced by ``*``."""
    if len(pan) <= keep_first + keep_last:
        return "*" * len(pan)
    return pan[:keep_first] + "*" * (len(pan) - keep_first - keep_last) + pan[-keep_last:]


# The integer part of a decimal number (an amount of a trillion units or more, such as a
# balance in IDR or KRW: "3556874280959.12") is not a card number; a card number is never
# written with a fraction.
_DIGIT_RUN = re.compile(r"(?<!\d)\d{13,19}(?!\d)(?!\.\d)")
# In ASCII text \d is [0-9], and a regex of plain digits runs about twice as fast: text
# without 13 of them in a row holds no candidate at all (the usual case, checked first).
_ASCII_THIRTEEN_DIGITS = re.compile(r"[0-9]{13}")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def _valid_iban(word: str) -> bool:
    if not _IBAN_SHAPE.fullmatch(word):
        return False
    rearranged = word[4:] + word[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _inside_iban(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is part of a word that is a valid IBAN (ISO 13616 mod 97)."""
    while start > 0 and text[start - 1] in _WORD_CHARS:
        start -= 1
    while end < len(text) and text[end] in _WORD_CHARS:
        end += 1
    return _valid_iban(text[start:end])


def _card_numbers(text: str) -> list[re.Match[str]]:
    return [
        m
        for m in _DIGIT_RUN.finditer(text)
        if luhn_valid(m.group()) and not _inside_iban(text, m.start(), m.end())
    ]


def find_clear_pans(text: str) -> list[str]:
    """Every Luhn-valid run of 13-19 digits standing on its own in the text.

    A run that is the account part of a valid IBAN is an account number, not a card number,
    even when its digits pass the Luhn check by chance (one in ten does):

    >>> find_clear_pans("card 4111111111111111, IBAN GB14BARC20325340846481")
    ['4111111111111111']
    >>> find_clear_pans("GB15BARC20325340846481")  # wrong IBAN check digits: not exempt
    ['20325340846481']

    Nor is the integer part of a decimal amount, though a card number ending a sentence is:

    >>> find_clear_pans('{"amount":"3556874280959.12"} paid with 4111111111111111.')
    ['4111111111111111']
    """
    return [m.group() for m in _card_numbers(text)]


def contains_clear_pan(text: str) -> bool:
    """Whether the text holds a Luhn-valid 13-19 digit run standing on its own (not the
    account part of a valid IBAN)."""
    if text.isascii() and _ASCII_THIRTEEN_DIGITS.search(text) is None:
        return False
    return bool(_card_numbers(text))


@dataclass(frozen=True, slots=True)
class PanToken:
    """A surrogate for a PAN: digits, PAN length, Luhn-invalid by construction."""

    value: str

    def __post_init__(self) -> None:
        value = self.value
        if not (value.isdigit() and 12 <= len(value) <= 19):
            raise ValueError("a PanToken is 12-19 decimal digits")
        if luhn_valid(value):
            raise ClearPanError(
                "a PanToken must fail the Luhn check; refusing a value that looks like a clear PAN"
            )

    @property
    def masked(self) -> str:
        """The token with its middle digits hidden, for display."""
        return mask_pan(self.value)

    def __str__(self) -> str:
        return self.masked


def random_hex_id(size: int = 16) -> str:
    """``2 * size`` random hex digits (:func:`canonical_model.random_ids.token_hex`, as
    :func:`secrets.token_hex`), that never hold 13
    decimal digits in a row: an id that no journal, log filter or masking scan can take for
    a card number (a random 32-digit hex id holds such a run about once in 60, a Luhn-valid
    one about once in 600, and the journal refuses every event that carries it).

    >>> value = random_hex_id()
    >>> len(value), contains_clear_pan(value), int(value, 16) >= 0
    (32, False, True)
    """
    while True:
        value = token_hex(size)
        if _ASCII_THIRTEEN_DIGITS.search(value) is None:
            return value


def time_ordered_hex_id() -> str:
    """32 hex digits that sort by the time they were made: the millisecond since the epoch
    in the first 12, then 20 random ones (80 bits, :func:`random_hex_id`'s source), never
    13 decimal digits in a row (as :func:`random_hex_id`).

    The ids of a hub's requests are its journal's transaction ids, the key of the events'
    transaction-id index and of the read model's table: random ones put every insert on
    another page of both, and every such page is written again at the next commit; ids
    made later sort later, so a batch's inserts share the last pages (``bench/RESULTS.md``:
    the journal writer wrote 56% fewer bytes per card payment at 500/s). Made in the same
    millisecond, two ids are in no particular order.

    >>> import time
    >>> first = time_ordered_hex_id()
    >>> time.sleep(0.002)
    >>> second = time_ordered_hex_id()
    >>> len(first), first < second, contains_clear_pan(first + second), int(first, 16) >= 0
    (32, True, False, True)
    """
    prefix = f"{time_ns() // 1_000_000:012x}"
    while True:
        value = prefix + token_hex(10)
        if _ASCII_THIRTEEN_DIGITS.search(value) is None:
            return value
