"""Zoned decimal (USAGE DISPLAY numerics): one digit per byte, the sign overpunched or separate.

IBM Enterprise COBOL Language Reference, "SIGN clause", and Programming Guide, "Formats for
numeric data": each digit is one character. Without ``SIGN ... SEPARATE`` the sign is carried
in the zone of the last byte (``SIGN TRAILING``, the default) or of the first one
(``SIGN LEADING``): the *overpunch*. With ``SEPARATE`` it is its own ``+`` or ``-`` character,
first or last.

Overpunch conventions (``overpunch=``):

- ``"ebcdic"`` on an EBCDIC code page: digit bytes ``F0``-``F9``; the sign byte has zone
  ``C`` (positive), ``D`` (negative) or ``F`` (unsigned). Decoding also accepts the
  alternative zones ``A``/``E`` (positive) and ``B`` (negative).
- ``"ebcdic"`` on ASCII (the EBCDIC convention after a text conversion, GnuCOBOL
  ``-fsign=EBCDIC``): positive ``{ABCDEFGHI}`` for 0-9, negative ``}JKLMNOPQR``, unsigned
  ``0``-``9``.
- ``"ascii"`` on ASCII (GnuCOBOL's default, Micro Focus): positive and unsigned ``0``-``9``
  (0x30-0x39), negative with zone 7 (0x70-0x79, ``p``-``y``).

A signed field encodes a positive value with the positive sign (``C`` zone), an unsigned one
with the unsigned zone; a negative value in an unsigned field is an encoding error, a
negative sign in an unsigned field a decoding error.

>>> decode = zoned_decoder(digits=3, scale=0, signed=True, codepage="cp037")
>>> decode(bytes.fromhex("f1f2d3"))
-123
>>> zoned_encoder(digits=3, scale=1, signed=True, codepage="ascii", overpunch="ebcdic")(
...     Decimal("-12.3"))
b'12L'
>>> zoned_encoder(digits=3, scale=0, signed=True, codepage="ascii", overpunch="ascii")(-123)
b'12s'
>>> decode_separate = separate_sign_decoder(digits=3, scale=0, leading=True, codepage="cp037")
>>> decode_separate(bytes.fromhex("60f0f4f2"))
-42
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, Literal

from adapters.fixedwidth.errors import FieldValueError
from adapters.fixedwidth.numeric import to_unscaled

__all__ = [
    "Overpunch",
    "is_ebcdic",
    "separate_sign_decoder",
    "separate_sign_encoder",
    "zoned_decoder",
    "zoned_encoder",
]

Overpunch = Literal["ebcdic", "ascii"]

_INVALID: Final = ord("?")


def is_ebcdic(codepage: str) -> bool:
    """True for the EBCDIC code pages (digits at 0xF0-0xF9)."""
    return "0".encode(codepage) == b"\xf0"


def _digit_byte(codepage: str) -> int:
    return "0".encode(codepage)[0]


def _body_table(codepage: str) -> bytes:
    """bytes.translate table: the code page's digits -> ASCII digits, anything else -> '?'."""
    zero = _digit_byte(codepage)
    table = bytearray([_INVALID]) * 256
    for digit in range(10):
        table[zero + digit] = 0x30 + digit
    return bytes(table)


def _sign_table(codepage: str, overpunch: Overpunch) -> dict[int, tuple[int, int]]:
    """byte -> (digit, sign) for the byte carrying an overpunched sign (sign 0: unsigned)."""
    table: dict[int, tuple[int, int]] = {}
    if is_ebcdic(codepage):
        for digit in range(10):
            table[0xF0 + digit] = (digit, 0)
            for zone in (0xC0, 0xA0, 0xE0):
                table[zone + digit] = (digit, 1)
            for zone in (0xD0, 0xB0):
                table[zone + digit] = (digit, -1)
        return table
    for digit in range(10):
        table[0x30 + digit] = (digit, 0)
        if overpunch == "ascii":
            table[0x70 + digit] = (digit, -1)
        else:
            table[ord("{ABCDEFGHI"[digit])] = (digit, 1)
            table[ord("}JKLMNOPQR"[digit])] = (digit, -1)
    return table


def _sign_bytes(codepage: str, overpunch: Overpunch, sign: int) -> bytes:
    """The ten overpunched bytes for digits 0-9 with ``sign`` (1, -1, or 0 unsigned)."""
    if is_ebcdic(codepage):
        zone = {1: 0xC0, -1: 0xD0, 0: 0xF0}[sign]
        return bytes(zone + d for d in range(10))
    if sign == 0 or (sign > 0 and overpunch == "ascii"):
        return b"0123456789"
    if overpunch == "ascii":
        return bytes(0x70 + d for d in range(10))
    return b"{ABCDEFGHI" if sign > 0 else b"}JKLMNOPQR"


def _make_value(scale: int) -> Callable[[bytes, bool], Any]:
    """ASCII digits (bytes) and a sign -> the field's value."""
    if scale > 0:
        exponent = f"E-{scale}"

        def as_decimal(digits: bytes, negative: bool) -> Any:
            return Decimal(("-" if negative else "") + digits.decode("ascii") + exponent)

        return as_decimal
    factor = 10**-scale

    def as_int(digits: bytes, negative: bool) -> Any:
        value = int(digits) * factor
        return -value if negative else value

    return as_int


def _first_bad(raw: bytes, text: bytes, sign_index: int) -> FieldValueError:
    """The error for the first invalid byte, when the sign byte is invalid too."""
    for index in range(sign_index):
        if text[index] == _INVALID:
            return FieldValueError(f"invalid zoned digit byte 0x{raw[index]:02x}", index)
    return FieldValueError(f"invalid zoned sign byte 0x{raw[sign_index]:02x}", sign_index)


def _bad_digit(raw: bytes, text: bytes, skip: int | None) -> FieldValueError:
    for index, char in enumerate(text):
        if char == _INVALID and index != skip:
            return FieldValueError(f"invalid zoned digit byte 0x{raw[index]:02x}", index)
    return FieldValueError("invalid zoned decimal", 0)


def zoned_decoder(
    *,
    digits: int,
    scale: int,
    signed: bool,
    codepage: str,
    leading: bool = False,
    overpunch: Overpunch = "ebcdic",
) -> Callable[[bytes], Any]:
    """A function from the field's bytes to its value (sign overpunched, not separate)."""
    body_table = _body_table(codepage)
    signs = _sign_table(codepage, overpunch)
    make = _make_value(scale)
    sign_index = 0 if leading else digits - 1

    digit_bytes = [bytes((0x30 + d,)) for d in range(10)]

    def decode(raw: bytes) -> Any:
        text = raw.translate(body_table)
        if text.isdigit():  # unsigned zones throughout: no sign to look at
            return make(text, False)
        entry = signs.get(raw[sign_index])
        if entry is None:
            raise _first_bad(raw, text, sign_index)
        digit, sign = entry
        if sign < 0 and not signed:
            raise FieldValueError(
                f"negative zone 0x{raw[sign_index]:02x} in an unsigned field", sign_index
            )
        body = digit_bytes[digit] + text[1:] if leading else text[:-1] + digit_bytes[digit]
        if not body.isdigit():
            raise _bad_digit(raw, text, sign_index)
        return make(body, sign < 0)

    if scale or signed:
        return decode

    def decode_unsigned_integer(raw: bytes) -> Any:
        # dates, counts: plain digits, no call through make()
        text = raw.translate(body_table)
        return int(text) if text.isdigit() else decode(raw)

    return decode_unsigned_integer


def zoned_encoder(
    *,
    digits: int,
    scale: int,
    signed: bool,
    codepage: str,
    leading: bool = False,
    overpunch: Overpunch = "ebcdic",
) -> Callable[[Any], bytes]:
    """A function from a value to the field's bytes; ValueError when it does not fit."""
    zero = _digit_byte(codepage)
    to_code = bytes.maketrans(b"0123456789", bytes(zero + d for d in range(10)))
    positive = _sign_bytes(codepage, overpunch, 1 if signed else 0)
    negative = _sign_bytes(codepage, overpunch, -1)

    def encode(value: Any) -> bytes:
        unscaled = to_unscaled(value, scale=scale, digits=digits, signed=signed)
        is_negative = unscaled < 0 or (signed and isinstance(value, Decimal) and value.is_signed())
        text = f"{abs(unscaled):0{digits}d}".encode("ascii").translate(to_code)
        table = negative if is_negative else positive
        if leading:
            return bytes((table[text[0] - zero],)) + text[1:]
        return text[:-1] + bytes((table[text[-1] - zero],))

    return encode


def separate_sign_decoder(
    *, digits: int, scale: int, leading: bool, codepage: str
) -> Callable[[bytes], Any]:
    """SIGN LEADING / TRAILING SEPARATE: ``+`` or ``-`` as its own character."""
    body_table = _body_table(codepage)
    plus = "+".encode(codepage)[0]
    minus = "-".encode(codepage)[0]
    make = _make_value(scale)
    sign_index = 0 if leading else digits

    def decode(raw: bytes) -> Any:
        sign = raw[sign_index]
        if sign != plus and sign != minus:
            raise FieldValueError(f"invalid separate sign byte 0x{sign:02x}", sign_index)
        text = raw[1:] if leading else raw[:-1]
        body = text.translate(body_table)
        if not body.isdigit():
            raise _shifted(text, body_table, 1 if leading else 0)
        return make(body, sign == minus)

    return decode


def _shifted(text: bytes, table: bytes, shift: int) -> FieldValueError:
    error = _bad_digit(text, text.translate(table), None)
    return FieldValueError(error.reason, error.position + shift)


def separate_sign_encoder(
    *, digits: int, scale: int, leading: bool, codepage: str
) -> Callable[[Any], bytes]:
    """A function from a value to ``digits + 1`` bytes with a separate sign character."""
    plus = "+".encode(codepage)
    minus = "-".encode(codepage)

    def encode(value: Any) -> bytes:
        unscaled = to_unscaled(value, scale=scale, digits=digits, signed=True)
        negative = unscaled < 0 or (isinstance(value, Decimal) and value.is_signed())
        body = f"{abs(unscaled):0{digits}d}".encode(codepage)
        sign = minus if negative else plus
        return sign + body if leading else body + sign

    return encode
