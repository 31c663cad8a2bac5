"""COMP / COMP-4 / BINARY and COMP-5: two's complement integers of 2, 4 or 8 bytes.

IBM Enterprise COBOL Language Reference, "USAGE clause" (BINARY, COMPUTATIONAL-5): the size
follows the picture's digits: 1-4 digits take 2 bytes, 5-9 take 4, 10-18 take 8. Big-endian
(z/Architecture); ``byteorder="little"`` reads COMP-5 written natively on x86 (GnuCOBOL).
``COMP`` / ``COMP-4`` / ``BINARY`` values are limited to the picture's digits when encoding
(IBM ``TRUNC(STD)``); ``COMP-5`` values to the capacity of the bytes (native binary). Decoding
returns what is stored, scaled by the picture's ``V`` / ``P``.

>>> binary_size(4), binary_size(9), binary_size(18)
(2, 4, 8)
>>> binary_encoder(digits=4, scale=0, signed=True, native=False)(-2).hex()
'fffe'
>>> binary_decoder(digits=7, scale=2, signed=True)(bytes.fromhex("000004d2"))
Decimal('12.34')
>>> binary_encoder(digits=4, scale=0, signed=False, native=False)(10000)
Traceback (most recent call last):
...
ValueError: more than 4 digits
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

from adapters.fixedwidth.numeric import to_unscaled

__all__ = ["binary_decoder", "binary_encoder", "binary_size"]


def binary_size(digits: int) -> int:
    """Bytes taken by a binary field of ``digits`` digits (IBM sizes)."""
    if digits <= 4:
        return 2
    if digits <= 9:
        return 4
    if digits <= 18:
        return 8
    raise ValueError(f"a binary field holds at most 18 digits, not {digits}")


def binary_decoder(
    *, digits: int, scale: int, signed: bool, byteorder: Literal["big", "little"] = "big"
) -> Callable[[bytes], Any]:
    """A function from the field's bytes to its value (int or Decimal)."""
    if scale > 0:
        exponent = f"E-{scale}"

        def decode_scaled(raw: bytes) -> Any:
            return Decimal(f"{int.from_bytes(raw, byteorder, signed=signed)}{exponent}")

        return decode_scaled
    if scale == 0:
        from_bytes = int.from_bytes

        def decode_int(raw: bytes) -> Any:
            return from_bytes(raw, byteorder, signed=signed)

        return decode_int
    factor = 10**-scale

    def decode(raw: bytes) -> Any:
        return int.from_bytes(raw, byteorder, signed=signed) * factor

    return decode


def binary_encoder(
    *,
    digits: int,
    scale: int,
    signed: bool,
    native: bool,
    byteorder: Literal["big", "little"] = "big",
) -> Callable[[Any], bytes]:
    """A function from a value to the field's bytes; ValueError when it does not fit."""
    size = binary_size(digits)
    capacity = 8 * size - (1 if signed else 0)
    limit_digits = len(str(2**capacity)) if native else digits

    def encode(value: Any) -> bytes:
        unscaled = to_unscaled(value, scale=scale, digits=limit_digits, signed=signed)
        try:
            return unscaled.to_bytes(size, byteorder, signed=signed)
        except OverflowError:
            raise ValueError(f"does not fit in {size} bytes") from None

    return encode
