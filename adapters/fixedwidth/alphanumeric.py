"""PIC X / PIC A: text in the record's code page, space padded.

IBM Enterprise COBOL Language Reference, "JUSTIFIED clause" and "Alignment rules": an
alphanumeric value is stored left-justified and padded with spaces on the right; with
``JUSTIFIED RIGHT`` it is right-justified and padded on the left. Decoding trims the padding
(trailing spaces, or leading ones for JUSTIFIED RIGHT). Encoding pads and refuses a value
longer than the field (COBOL would truncate silently; a bridge must not) and any character
the code page cannot represent. Bytes that the code page cannot decode (ASCII above 0x7F)
are an error naming the byte.

>>> alphanumeric_decoder(codepage="cp037")(b"\\xc1\\xc2\\x40\\x40")
'AB'
>>> alphanumeric_encoder(size=4, codepage="cp037")("AB")
b'\\xc1\\xc2@@'
>>> alphanumeric_encoder(size=4, codepage="ascii", justified_right=True)("AB")
b'  AB'
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

from adapters.fixedwidth.errors import FieldValueError

__all__ = ["alphanumeric_decoder", "alphanumeric_encoder", "text_decoder", "text_encoder"]


def text_decoder(codepage: str) -> Callable[[bytes], str]:
    """The fastest exact bytes -> str function for a single-byte code page.

    ``bytes.decode(name)`` looks the codec up on every call; an EBCDIC page whose characters
    all lie in Latin-1 is instead one ``bytes.translate`` and a Latin-1 decode (both C loops
    without lookup), other pages use their charmap table directly. ASCII stays strict
    (bytes above 0x7F raise UnicodeDecodeError).

    >>> text_decoder("cp037")(b"\\xc8\\xc9")
    'HI'
    """
    if codepage == "ascii":
        return lambda raw: raw.decode("ascii")
    table = bytes(range(256)).decode(codepage)
    if len(table) == 256 and max(table) <= "\xff":
        to_latin1 = bytes.maketrans(bytes(range(256)), table.encode("latin-1"))
        return lambda raw: raw.translate(to_latin1).decode("latin-1")
    charmap_decode = codecs.charmap_decode
    return lambda raw: charmap_decode(raw, "strict", table)[0]


def text_encoder(codepage: str) -> Callable[[str], bytes]:
    """The fastest exact str -> bytes function for a single-byte code page, the other way
    round from :func:`text_decoder`: an EBCDIC page holding every Latin-1 character once is
    a Latin-1 encode and one ``bytes.translate``; any other page is ``str.encode``. A
    character the page lacks raises UnicodeEncodeError as ``str.encode`` does, at the same
    position.

    >>> text_encoder("cp037")("HI")
    b'\\xc8\\xc9'
    """
    table = bytes(range(256)).decode(codepage, errors="replace")
    if codepage == "ascii" or len(set(table)) != 256 or max(table) > "\xff":
        return lambda text: text.encode(codepage)
    from_latin1 = bytes.maketrans(table.encode("latin-1"), bytes(range(256)))
    return lambda text: text.encode("latin-1").translate(from_latin1)


def alphanumeric_decoder(*, codepage: str, justified_right: bool = False) -> Callable[[bytes], Any]:
    """A function from the field's bytes to its text, padding trimmed."""
    to_text = text_decoder(codepage)

    def decode(raw: bytes) -> Any:
        try:
            text = to_text(raw)
        except UnicodeDecodeError as exc:
            raise FieldValueError(
                f"byte 0x{raw[exc.start]:02x} is not valid {codepage}", exc.start
            ) from None
        return text.lstrip(" ") if justified_right else text.rstrip(" ")

    return decode


def alphanumeric_encoder(
    *, size: int, codepage: str, justified_right: bool = False
) -> Callable[[Any], bytes]:
    """A function from text to ``size`` bytes; ValueError when it does not fit."""
    space = " ".encode(codepage)
    to_bytes = text_encoder(codepage)

    def encode(value: Any) -> bytes:
        if not isinstance(value, str):
            raise ValueError(f"expected text, not {type(value).__name__}")
        if len(value) > size:
            raise ValueError(f"{len(value)} characters do not fit in {size}")
        try:
            raw = to_bytes(value)
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"character {value[exc.start]!r} at position {exc.start} has no {codepage} byte"
            ) from None
        if len(raw) != len(value):
            raise ValueError(f"{codepage} is not a single-byte code page")
        pad = space * (size - len(raw))
        return pad + raw if justified_right else raw + pad

    return encode
