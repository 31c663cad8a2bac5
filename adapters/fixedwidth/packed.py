"""COMP-3 / PACKED-DECIMAL: two digits per byte, the sign in the last nibble.

IBM Enterprise COBOL Language Reference, "USAGE clause" (PACKED-DECIMAL) and Programming
Guide, "Formats for numeric data": a field of *n* digits takes ``n // 2 + 1`` bytes; the
last byte holds the last digit and the sign nibble. Sign nibbles: ``C`` positive, ``D``
negative, ``F`` unsigned; the preferred signs are written (``C`` / ``D`` for a signed field,
``F`` for an unsigned one). Decoding also accepts the alternative signs ``A`` and ``E``
(positive) and ``B`` (negative), and ``C`` for an unsigned field; a digit nibble above 9, a
sign nibble below ``A``, a negative sign in an unsigned field or a non-zero pad nibble (even
digit counts) is an error naming the byte.

>>> decode = packed_decoder(digits=5, scale=2, signed=True)
>>> decode(bytes.fromhex("12345d"))
Decimal('-123.45')
>>> packed_encoder(digits=5, scale=2, signed=True)(Decimal("123.45")).hex()
'12345c'
>>> packed_encoder(digits=4, scale=0, signed=False)(42).hex()
'00042f'
>>> decode(bytes.fromhex("12a45c"))
Traceback (most recent call last):
...
adapters.fixedwidth.errors.FieldValueError: invalid packed digit nibble 0xa
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from adapters.fixedwidth.errors import FieldValueError
from adapters.fixedwidth.numeric import to_unscaled

__all__ = ["packed_decoder", "packed_encoder", "packed_size"]

_SIGNS: Final[dict[str, int]] = {"c": 1, "a": 1, "e": 1, "f": 0, "d": -1, "b": -1}


def packed_size(digits: int) -> int:
    """Bytes taken by a packed field of ``digits`` digits."""
    return digits // 2 + 1


def _explain(raw: bytes, signed: bool, even: bool) -> FieldValueError:
    text = raw.hex()
    for index, nibble in enumerate(text[:-1]):
        if nibble not in "0123456789":
            return FieldValueError(f"invalid packed digit nibble 0x{nibble}", index // 2)
    sign = text[-1]
    if sign not in _SIGNS:
        return FieldValueError(f"invalid packed sign nibble 0x{sign}", len(raw) - 1)
    if even and text[0] != "0":
        return FieldValueError("non-zero pad nibble in a packed field of even digit count", 0)
    if not signed and _SIGNS[sign] < 0:
        return FieldValueError(f"negative sign nibble 0x{sign} in an unsigned field", len(raw) - 1)
    return FieldValueError("invalid packed decimal", 0)


def packed_decoder(*, digits: int, scale: int, signed: bool) -> Callable[[bytes], Any]:
    """A function from the field's bytes to its value (int or Decimal)."""
    even = digits % 2 == 0
    # sign nibble -> the text that starts the number ("-" for negatives); None: invalid
    prefixes = {"c": "", "a": "", "e": "", "f": "", "d": "-", "b": "-"}
    if not signed:
        prefixes = {"c": "", "f": ""}
    if scale > 0:
        exponent = f"E-{scale}"

        def decode_decimal(raw: bytes) -> Any:
            text = raw.hex()
            prefix = prefixes.get(text[-1])
            body = text[:-1]
            if prefix is None or not body.isdigit() or (even and text[0] != "0"):
                raise _explain(raw, signed, even)
            return Decimal(prefix + body + exponent)

        return decode_decimal
    factor = 10**-scale

    def decode_int(raw: bytes) -> Any:
        text = raw.hex()
        prefix = prefixes.get(text[-1])
        body = text[:-1]
        if prefix is None or not body.isdigit() or (even and text[0] != "0"):
            raise _explain(raw, signed, even)
        return int(prefix + body) * factor

    return decode_int


def packed_encoder(*, digits: int, scale: int, signed: bool) -> Callable[[Any], bytes]:
    """A function from a value to the field's bytes; ValueError when it does not fit."""
    nibbles = packed_size(digits) * 2 - 1

    def encode(value: Any) -> bytes:
        unscaled = to_unscaled(value, scale=scale, digits=digits, signed=signed)
        negative = unscaled < 0 or (isinstance(value, Decimal) and value.is_signed() and signed)
        sign = ("d" if negative else "c") if signed else "f"
        return bytes.fromhex(f"{abs(unscaled):0{nibbles}d}{sign}")

    return encode
