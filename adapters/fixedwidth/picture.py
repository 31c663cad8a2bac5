"""PICTURE character strings: category, size, digits, scale and sign (unedited items only).

IBM Enterprise COBOL Language Reference, "PICTURE clause": ``X`` is any character, ``A`` a
letter or space, ``9`` a digit, ``S`` an operational sign (no storage of its own unless SIGN
SEPARATE), ``V`` the assumed decimal point (no storage), ``P`` an assumed scaling digit
position (no storage; ``PPP9`` or ``VPPP9`` scale right of the point, ``9PPP`` left of it).
``X(n)`` repeats a symbol ``n`` times. A picture is *alphanumeric* (``X``/``A``), or *numeric*
(``9``, ``S``, ``V``, ``P``). Edited pictures (``Z``, ``*``, ``.``, ``,``, ``+``, ``-``, ``CR``,
``DB``, ``B``, ``0``, ``/``, currency signs) and DBCS / national ones (``G``, ``N``) are not
supported: the compiler reports the column of the first editing symbol.

``scale`` is the number of digits right of the assumed point: ``9(5)V99`` has 2, ``9(3)PP``
has -2 (the value is the stored integer times 100), ``PP99`` and ``VPP99`` have 4.

>>> parse_picture("S9(13)V99")
Picture(category='numeric', size=15, digits=15, scale=2, signed=True)
>>> parse_picture("X(34)")
Picture(category='alphanumeric', size=34, digits=0, scale=0, signed=False)
>>> parse_picture("9(3)PP").scale
-2
>>> parse_picture("ZZ9.99")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
adapters.fixedwidth.picture.PictureError: editing symbol 'Z' is not supported ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["Picture", "PictureError", "parse_picture"]

_REPEAT: Final = re.compile(r"\(([0-9]+)\)")
_EDITING: Final = frozenset("Z*.,+-CDB0/$E")
MAX_DIGITS: Final = 38
MAX_SIZE: Final = 1 << 20


class PictureError(ValueError):
    """A picture string that is malformed or uses a symbol that is not supported.

    ``position`` is the 0-based index of the offending symbol in the picture string.
    """

    def __init__(self, reason: str, position: int = 0) -> None:
        super().__init__(reason)
        self.position = position


@dataclass(frozen=True, slots=True)
class Picture:
    """An unedited picture: ``size`` characters of storage in DISPLAY usage."""

    category: Literal["alphanumeric", "alphabetic", "numeric"]
    size: int
    digits: int
    scale: int
    signed: bool


def _runs(text: str) -> list[tuple[str, int, int]]:
    """The picture as (symbol, position, count) runs: ``X(3)9`` -> X x3, 9 x1."""
    runs: list[tuple[str, int, int]] = []
    i = 0
    upper = text.upper()
    while i < len(upper):
        ch = upper[i]
        if ch == "(":
            match = _REPEAT.match(upper, i)
            if match is None or not runs:
                raise PictureError(f"malformed repetition in picture {text!r}", i)
            count = int(match.group(1))
            if not 1 <= count <= MAX_SIZE:
                raise PictureError(f"a repetition count must be 1 to {MAX_SIZE}", i)
            symbol, position, previous = runs[-1]
            runs[-1] = (symbol, position, previous + count - 1)
            i = match.end()
            continue
        runs.append((ch, i, 1))
        i += 1
    return runs


def parse_picture(text: str) -> Picture:
    """The :class:`Picture` for ``text``; raises :class:`PictureError`."""
    if not text:
        raise PictureError("empty picture")
    runs = _runs(text)
    kinds = {s for s, _, _ in runs}
    if kinds <= {"X", "A", "9"} and kinds & {"X", "A"}:
        category: Literal["alphanumeric", "alphabetic"] = (
            "alphabetic" if kinds == {"A"} else "alphanumeric"
        )
        size = sum(count for _, _, count in runs)
        if size > MAX_SIZE:
            raise PictureError(f"{size} characters exceed the maximum of {MAX_SIZE}")
        return Picture(category, size, 0, 0, False)
    signed = False
    digits = 0
    scale = 0
    seen_point = False
    leading_p = 0
    trailing_p = 0
    seen_nine = False
    for index, (symbol, position, count) in enumerate(runs):
        if symbol == "S":
            if index != 0 or count != 1:
                raise PictureError("S must be the first symbol of a picture, once", position)
            signed = True
        elif symbol == "9":
            if trailing_p:
                raise PictureError("9 cannot follow a trailing P", position)
            digits += count
            seen_nine = True
            if seen_point:
                scale += count
        elif symbol == "V":
            if seen_point or count != 1:
                raise PictureError("a picture may hold one V only", position)
            seen_point = True
        elif symbol == "P":
            if seen_nine and not seen_point:
                trailing_p += count
            elif not seen_nine:
                leading_p += count
            else:
                raise PictureError("P must be at the left or right end of the digits", position)
        elif symbol in _EDITING:
            raise PictureError(
                f"editing symbol {symbol!r} is not supported (unedited pictures only)", position
            )
        else:
            raise PictureError(f"symbol {symbol!r} is not supported in a picture", position)
        if digits > MAX_DIGITS or leading_p + trailing_p > MAX_DIGITS:
            raise PictureError(f"more than {MAX_DIGITS} digit positions", position)
    if digits == 0:
        raise PictureError(f"numeric picture {text!r} has no digit positions")
    if trailing_p:
        scale = -trailing_p
    elif leading_p:
        scale = digits + leading_p
    return Picture("numeric", digits, digits, scale, signed)
