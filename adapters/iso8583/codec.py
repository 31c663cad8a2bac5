r"""pyiso8583's ``decode`` and ``encode``, compiled for one spec: same results, less work.

Reference manual
================

What this module is
-------------------
pyiso8583 interprets its spec on every call: for every field it looks up the field's
format, the codec of its text encoding, its length form, and builds an "encoded parts"
dictionary next to the decoded one. :func:`compile_codec` does those look-ups once per
spec and returns a :class:`CompiledCodec` whose :meth:`~CompiledCodec.decode` and
:meth:`~CompiledCodec.encode` give *exactly* what ``iso8583.decode(...)[0]`` and
``bytes(iso8583.encode(...)[0])`` give, about five times faster.

pyiso8583 stays the reference, and the error path
--------------------------------------------------
A compiled codec only takes the road every well-formed message takes. Whenever it meets
anything else (a field too short, a non-digit length prefix, a byte its text encoding
does not define, extra data, a tertiary bitmap, an unknown field key, a value of the
wrong length...), it returns ``None`` instead of raising: the caller then asks pyiso8583,
which raises its own :class:`iso8583.DecodeError` / :class:`iso8583.EncodeError` with its
own message, field and offset (or, for the rare forms this module leaves to it, succeeds).
So errors are pyiso8583's, word for word, and a compiled codec never accepts what
pyiso8583 refuses.

>>> import iso8583
>>> from adapters.iso8583.specs import SPECS
>>> codec = compile_codec(SPECS["ascii"])
>>> raw = codec.encode({"t": "0800", "11": "000001", "70": "301"})
>>> raw
b'080080200000000000000400000000000000000001301'
>>> raw == bytes(iso8583.encode({"t": "0800", "11": "000001", "70": "301"}, SPECS["ascii"])[0])
True
>>> codec.decode(raw)
{'t': '0800', 'p': '8020000000000000', '1': '0400000000000000', '11': '000001', '70': '301'}
>>> codec.decode(raw + b"0") is None  # extra data: pyiso8583 names the error
True

Which specs compile
-------------------
Those of :mod:`adapters.iso8583.specs` and any of the same shape: no header
(``h`` ``max_len`` 0), a text MTI, bitmaps either raw (``data_enc`` ``"b"``) or hex text,
and every field either binary (``"b"``, carried as upper-case hex) or text in the one text
encoding of the spec, with a fixed length or a decimal ``LL`` / ``LLL`` prefix in that
encoding, lengths counted in bytes (no ``len_count`` ``"nibbles"``). The text encoding must
be ``ascii`` or a single-byte code page that maps the 256 bytes one to one onto U+0000 to
U+00FF (``latin-1``, EBCDIC ``cp037``, ``cp500``, ``cp1047``...): text is then decoded once
per message (``bytes.translate`` to Latin-1, one ``decode``) and sliced per field, which is
the same as decoding each field on its own. :func:`compile_codec` returns ``None`` for any
other spec; callers then use pyiso8583 alone.

>>> compile_codec({**SPECS["ascii"], "h": {**SPECS["ascii"]["h"], "max_len": 2}}) is None
True

What pyiso8583 does, which these functions repeat
-------------------------------------------------
Decoding: MTI (4 characters), primary bitmap, the secondary bitmap when bit 1 is set, then
every field whose bit is set in increasing order; the result's keys are ``t``, ``p``,
``1`` (when present) and the field numbers in that order; a bitmap keeps its text as read
(a hex-text bitmap in the case it arrived in), a binary bitmap or field becomes upper-case
hex, a zero-length variable field the empty string. Encoding: the keys ``t`` and ``2`` to
``128`` (``1`` and ``65`` are left to pyiso8583, which recomputes or drops them), fields in
increasing order after the bitmaps, binary values from hex in either case.
"""

from __future__ import annotations

import binascii
import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["CompiledCodec", "compile_codec"]

_BINARY: Final = "b"

_BITMAP_FIELDS: Final[tuple[tuple[tuple[str, ...], ...], ...]] = tuple(
    tuple(
        tuple(str(offset + 8 * index + bit) for bit in range(1, 9) if byte >> (8 - bit) & 1)
        for byte in range(256)
    )
    for offset in (0, 64)
    for index in range(8)
)
"""``_BITMAP_FIELDS[i][byte]``: the field keys that ``byte`` announces as byte ``i`` of the
primary (``i`` 0-7) or secondary (``i`` 8-15) bitmap, in increasing order."""

_SECONDARY_BIT: Final = 1 << 63
"""Bit 1 of the primary bitmap (announces the secondary bitmap), as an integer bit."""


@dataclass(frozen=True, slots=True)
class _Field:
    """How one data element travels: length prefix digits (0 when fixed), maximum (or
    fixed) length in bytes, whether it is binary, and its bit in its bitmap."""

    len_type: int
    max_len: int
    binary: bool
    secondary: bool
    bit: int


class CompiledCodec:
    """pyiso8583's decode and encode for one spec; see the module docstring.

    Build one with :func:`compile_codec`. Both methods return ``None`` where pyiso8583
    must decide (an error, or a form left to it); neither raises on bad input.
    """

    __slots__ = ("_binary_bitmaps", "_fields", "_from_latin1", "_prefixes", "_to_latin1")

    def __init__(
        self, fields: Mapping[str, _Field], text_encoding: str, *, binary_bitmaps: bool
    ) -> None:
        self._fields = dict(fields)
        self._binary_bitmaps = binary_bitmaps
        # Text is handled as Latin-1. ASCII is Latin-1 restricted to U+0000-U+007F (checked
        # field by field, since binary fields may hold any byte): no tables. Any other text
        # encoding is a permutation of Latin-1: a translation table each way.
        self._to_latin1: bytes | None = None
        self._from_latin1: bytes | None = None
        if not _is_ascii(text_encoding):
            self._to_latin1, self._from_latin1 = _latin1_permutation(text_encoding)
        self._prefixes = {
            len_type: tuple(
                f"{length:0{len_type}d}".encode(text_encoding) for length in range(10**len_type)
            )
            for len_type in (2, 3)
        }

    def decode(self, data: bytes) -> dict[str, str] | None:
        """``iso8583.decode(data, spec)[0]``, or ``None`` where pyiso8583 must decide."""
        to_latin1 = self._to_latin1
        ascii_only = to_latin1 is None
        text = (data if to_latin1 is None else data.translate(to_latin1)).decode("latin-1")
        size = len(data)
        mti = text[0:4]
        if len(mti) != 4 or (ascii_only and not mti.isascii()):
            return None
        doc = {"t": mti}
        index = 4
        keys: list[str] = []
        for bitmap_key, first_byte in (("p", 0), ("1", 8)):
            if self._binary_bitmaps:
                bitmap = data[index : index + 8]
                if len(bitmap) != 8:
                    return None
                doc[bitmap_key] = bitmap.hex().upper()
                index += 8
            else:
                hex_text = text[index : index + 16]
                try:
                    bitmap = bytes.fromhex(hex_text)  # refuses non-ASCII text too
                except ValueError:
                    return None
                if len(bitmap) != 8:  # short, or spaced out (fromhex skips whitespace)
                    return None
                doc[bitmap_key] = hex_text
                index += 16
            for position, byte in enumerate(bitmap, first_byte):
                if byte:
                    keys += _BITMAP_FIELDS[position][byte]
            if keys[:1] != ["1"]:
                break
            del keys[0]  # field 1 is the secondary bitmap, read next
        if "65" in keys:  # a tertiary bitmap: pyiso8583 reads it, 1987 specs lack its fields
            return None
        fields = self._fields
        for key in keys:
            field = fields[key]
            len_type = field.len_type
            if len_type:
                prefix = text[index : index + len_type]
                if not (len(prefix) == len_type and prefix.isdigit() and prefix.isascii()):
                    return None
                length = int(prefix)
                if length > field.max_len:
                    return None
                index += len_type
            else:
                length = field.max_len
            end = index + length
            if end > size:
                return None
            if field.binary:
                doc[key] = data[index:end].hex().upper()
            else:
                value = text[index:end]
                if ascii_only and not value.isascii():
                    return None
                doc[key] = value
            index = end
        if index != size:
            return None
        return doc

    def encode(self, doc: Mapping[str, str]) -> bytes | None:
        """``bytes(iso8583.encode(dict(doc), spec)[0])``, or ``None`` where pyiso8583 must
        decide. ``doc`` is not modified (pyiso8583 adds the bitmaps to its argument)."""
        fields = self._fields
        from_latin1 = self._from_latin1
        prefixes = self._prefixes
        primary = secondary = 0
        parts: dict[str, bytes] = {}
        mti = b""
        try:
            for key, value in doc.items():
                field = fields.get(key)
                if field is not None and field.binary:
                    data = binascii.a2b_hex(value)
                elif from_latin1 is None:
                    data = value.encode("ascii")
                else:
                    data = value.encode("latin-1").translate(from_latin1)
                if field is None:
                    if key != "t":
                        return None
                    mti = data
                    continue
                length = len(data)
                if field.len_type:
                    if length > field.max_len:
                        return None
                    data = prefixes[field.len_type][length] + data
                elif length != field.max_len:
                    return None
                parts[key] = data
                if field.secondary:
                    secondary |= field.bit
                else:
                    primary |= field.bit
        except (ValueError, TypeError, AttributeError):  # binascii.Error, UnicodeError...
            return None
        if len(mti) != 4:
            return None
        if secondary:
            primary |= _SECONDARY_BIT
        bitmaps = primary.to_bytes(8, "big")
        if secondary:
            bitmaps += secondary.to_bytes(8, "big")
        if self._binary_bitmaps:
            out = [mti, bitmaps]
        elif from_latin1 is None:
            out = [mti, bitmaps.hex().upper().encode("ascii")]
        else:
            out = [mti, bitmaps.hex().upper().encode("latin-1").translate(from_latin1)]
        for position, byte in enumerate(bitmaps):
            if byte:
                out += [parts[key] for key in _BITMAP_FIELDS[position][byte] if key != "1"]
        return b"".join(out)


def compile_codec(spec: Mapping[str, Mapping[str, Any]]) -> CompiledCodec | None:
    """The compiled codec of a pyiso8583 ``spec``, or ``None`` if the spec has a shape
    this module does not compile (see the module docstring)."""
    try:
        if spec["h"]["max_len"] > 0:
            return None
        text_encoding = spec["t"]["data_enc"]
        if text_encoding == _BINARY or not _single_byte_text(text_encoding):
            return None
        bitmap_encodings = {spec[key]["data_enc"] for key in ("p", "1")}
        if len(bitmap_encodings) != 1 or bitmap_encodings - {_BINARY, text_encoding}:
            return None
        fields: dict[str, _Field] = {}
        for number in range(2, 129):
            if number == 65:
                continue
            key = str(number)
            form = spec[key]
            len_type = form["len_type"]
            if (
                form["data_enc"] not in (_BINARY, text_encoding)
                or form.get("len_count", "bytes") != "bytes"
                or len_type not in (0, 2, 3)
                or (len_type and form["len_enc"] != text_encoding)
            ):
                return None
            secondary = number > 64
            bit = 1 << (64 - (number - 64 if secondary else number))
            fields[key] = _Field(
                len_type, form["max_len"], form["data_enc"] == _BINARY, secondary, bit
            )
    except (KeyError, TypeError):
        return None
    return CompiledCodec(fields, text_encoding, binary_bitmaps=_BINARY in bitmap_encodings)


def _is_ascii(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "ascii"


def _single_byte_text(encoding: str) -> bool:
    """Whether ``encoding`` is ASCII or a one-to-one map of the 256 bytes onto Latin-1."""
    try:
        if not _is_ascii(encoding):
            _latin1_permutation(encoding)
    except (LookupError, ValueError):
        return False
    return True


def _latin1_permutation(encoding: str) -> tuple[bytes, bytes]:
    """Translation tables from ``encoding`` to Latin-1 and back; ``ValueError`` if the
    encoding is not a one-to-one map of the 256 bytes onto U+0000 to U+00FF."""
    every_byte = bytes(range(256))
    characters = every_byte.decode(encoding)  # UnicodeDecodeError is a ValueError
    if len(characters) != 256 or len(set(characters)) != 256 or max(characters) > "\xff":
        raise ValueError(f"{encoding} is not a permutation of Latin-1")
    if characters.encode(encoding) != every_byte:
        raise ValueError(f"{encoding} does not encode back to the bytes it decodes")
    to_latin1 = characters.encode("latin-1")
    from_latin1 = bytes(to_latin1.index(byte) for byte in every_byte)
    return to_latin1, from_latin1
