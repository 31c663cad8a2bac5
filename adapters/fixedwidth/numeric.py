"""Numbers between Python and a PICTURE: scaling, digit limits, no silent rounding.

A numeric field stores an *unscaled* integer; its value is that integer times
``10 ** -scale`` (IBM: the assumed decimal point ``V`` and the scaling positions ``P``).
Decoded values are ``int`` when the scale is 0 or negative, ``decimal.Decimal`` otherwise.
Encoding accepts ``int`` and ``Decimal`` (and ``str`` holding a decimal number); a value with
more decimals than the picture, more digits than the picture, a sign the picture lacks, or
digits lost to ``P`` scaling is refused rather than rounded or truncated.

>>> to_unscaled(Decimal("12.30"), scale=2, digits=5, signed=True)
1230
>>> from_unscaled(-1230, scale=2)
Decimal('-12.30')
>>> to_unscaled(Decimal("1.005"), scale=2, digits=5, signed=True)
Traceback (most recent call last):
...
ValueError: 1.005 has more than 2 decimal places
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext
from typing import Final

__all__ = ["Number", "from_unscaled", "to_unscaled"]

Number = int | Decimal

_PRECISION: Final = 80


def from_unscaled(unscaled: int, scale: int) -> Number:
    """The value of a field holding ``unscaled`` with ``scale`` decimal places."""
    if scale <= 0:
        return unscaled * 10**-scale if scale else unscaled
    return Decimal(f"{unscaled}E-{scale}")


def to_unscaled(value: object, *, scale: int, digits: int, signed: bool) -> int:
    """The integer a field stores for ``value``; ValueError when it does not fit exactly."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int) and scale == 0:
        unscaled = value
    else:
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, Decimal):
            number = value
        elif isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise ValueError("not a decimal number") from None
        else:
            raise ValueError(f"expected an int or a Decimal, not {type(value).__name__}")
        if not number.is_finite():
            raise ValueError("not a finite number")
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            shifted = number.scaleb(scale)
            if shifted != shifted.to_integral_value():
                if scale >= 0:
                    raise ValueError(f"{number} has more than {scale} decimal places")
                raise ValueError(f"{number} is not a multiple of {10**-scale}")
            unscaled = int(shifted)
    if unscaled < 0 and not signed:
        raise ValueError("a negative value for an unsigned field")
    if abs(unscaled) >= 10**digits:
        raise ValueError(f"more than {digits} digits")
    return unscaled
