"""BER-TLV for EMV chip data (ISO 8583 field 55), after EMV 4.4 Book 3 Annex B.

Field 55 carries a flat list of BER-TLV data objects. :func:`parse_tlv` reads them into
:class:`~canonical_model.messages.EmvTag` values (tag and value as upper-case hex) and
:func:`build_tlv` writes them back.

Coding rules
------------
- **Tag**: one byte, unless its low five bits are all 1 (``xxx11111``), in which case
  further bytes follow while bit 8 of the byte just read is set (``9F26``, ``5F2A``,
  ``DF8101``...). The tag is kept whole, class and constructed bits included.
- **Length**: a byte below 0x80 is the length (short form); ``0x81`` and ``0x82`` announce
  one or two length bytes (long form). EMV allows length fields of at most three bytes, so
  ``0x83`` and above are rejected, as is ``0x80`` (BER's indefinite form, not used in EMV).
- **Value**: that many bytes. A *constructed* object (bit 6 of the first tag byte set, e.g.
  ``70``, ``77``) is not recursed into: its value is kept opaque, as the raw hex of its
  contents.
- **Padding**: bytes ``00`` and ``FF`` where a tag would start are skipped. EMV Book 3
  Annex B allows ``00`` bytes before, between and after data objects (e.g. from erased
  objects); ISO/IEC 7816-4 makes ``00`` and ``FF`` invalid first tag bytes and allows both as
  padding there. Consequently :func:`build_tlv` refuses tags starting with ``00`` or ``FF``.

:func:`build_tlv` uses the minimal length encoding, so ``build_tlv(parse_tlv(x)) == x`` for
any minimally encoded ``x`` without padding. Non-minimal lengths (``81 05`` for 5, ``82 00
7F`` for 127) are accepted by :func:`parse_tlv` and normalised by :func:`build_tlv`, and
padding bytes are dropped.

Errors are :class:`TlvError` (a ``ValueError``) with the byte ``offset`` and a ``reason``;
neither ever contains the data, so the message is safe to log.

>>> chip = "9F0206000000001000" "5F2A020978" "82023900" "95050000008000"
>>> tags = parse_tlv(bytes.fromhex(chip))
>>> [(t.tag, t.value) for t in tags]
[('9F02', '000000001000'), ('5F2A', '0978'), ('82', '3900'), ('95', '0000008000')]
>>> build_tlv(tags).hex().upper()
'9F02060000000010005F2A0209788202390095050000008000'
>>> build_tlv([EmvTag("9F10", "AB" * 200)])[:5].hex().upper()
'9F1081C8AB'
>>> try:
...     parse_tlv(bytes.fromhex("9F0206000000"))
... except TlvError as error:
...     print(error.offset, error.reason)
3 value of 6 bytes runs past the end of the data (3 bytes left)
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Iterable
from typing import Final

from canonical_model.construct import fast_constructor
from canonical_model.messages import EmvTag

__all__ = ["MAX_VALUE_LENGTH", "EmvTag", "TlvError", "build_tlv", "build_tlv_hex", "parse_tlv"]

MAX_VALUE_LENGTH: Final = 0xFFFF
"""The longest value a three-byte (``82 xx xx``) length field can announce."""

_PADDING: Final = frozenset({0x00, 0xFF})
_HEX: Final = re.compile(r"(?:[0-9A-Fa-f]{2})*")


class TlvError(ValueError):
    """Malformed BER-TLV: where (``offset``, in bytes) and why (``reason``); never the data.

    For :func:`parse_tlv` the offset is that of the element at fault: the tag's first byte
    for a bad tag, the first length byte for a bad length, the first value byte for a
    value that runs past the end. For :func:`build_tlv` it is the offset in the output at
    which the offending data object would have started.
    """

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(f"BER-TLV error at offset {offset}: {reason}")

    def __reduce__(self) -> tuple[type[TlvError], tuple[int, str]]:
        return (type(self), (self.offset, self.reason))


_new_emv_tag: Final = fast_constructor(EmvTag)


def parse_tlv(data: bytes) -> tuple[EmvTag, ...]:
    """The data objects of ``data``, in order; raises :class:`TlvError` on malformed input."""
    # Hot path (every chip transaction): locals only, and tags and values are sliced out of
    # one hex rendering rather than converted one by one.
    hexed = data.hex().upper()
    size = len(data)
    tags: list[EmvTag] = []
    append = tags.append
    new_tag = _new_emv_tag
    index = 0
    while index < size:
        byte = data[index]
        if byte == 0x00 or byte == 0xFF:  # padding
            index += 1
            continue
        tag_start = index
        index += 1
        if byte & 0x1F == 0x1F:
            while True:
                if index >= size:
                    raise TlvError(tag_start, "tag truncated: a subsequent tag byte is missing")
                more = data[index] & 0x80
                index += 1
                if not more:
                    break
        length_start = index
        if index >= size:
            raise TlvError(length_start, "length missing after the tag")
        length = data[index]
        index += 1
        if length >= 0x80:
            if length == 0x81 or length == 0x82:
                count = length & 0x7F
                if index + count > size:
                    raise TlvError(
                        length_start,
                        f"length truncated: {count} subsequent length byte(s) missing",
                    )
                length = int.from_bytes(data[index : index + count], "big")
                index += count
            elif length == 0x80:
                raise TlvError(length_start, "indefinite length (0x80) is not allowed in EMV")
            else:
                raise TlvError(
                    length_start,
                    f"length field of {(length & 0x7F) + 1} bytes: EMV allows at most 3"
                    " (0x82 xx xx)",
                )
        end = index + length
        if end > size:
            raise TlvError(
                index,
                f"value of {length} bytes runs past the end of the data"
                f" ({size - index} bytes left)",
            )
        append(new_tag(hexed[2 * tag_start : 2 * length_start], hexed[2 * index : 2 * end]))
        index = end
    return tuple(tags)


def _length_hex(length: int) -> str:
    if length < 0x80:
        return _SHORT_LENGTHS[length]
    if length <= 0xFF:
        return f"81{length:02X}"
    return f"82{length:04X}"


_SHORT_LENGTHS: Final = tuple(f"{n:02X}" for n in range(0x80))


def _tag_problem(tag: bytes) -> str | None:
    """Why ``tag`` is not one well-formed BER tag, or ``None`` if it is."""
    if not tag:
        return "empty tag"
    if tag[0] in _PADDING:
        return "a tag cannot start with 00 or FF (padding bytes)"
    if tag[0] & 0x1F != 0x1F:
        return None if len(tag) == 1 else "a one-byte tag number has trailing tag bytes"
    if len(tag) == 1:
        return "tag announces subsequent bytes (low five bits 11111) but has none"
    if any(not byte & 0x80 for byte in tag[1:-1]) or tag[-1] & 0x80:
        return "subsequent tag bytes must have bit 8 set on all but the last"
    return None


@functools.lru_cache(maxsize=1024)
def _checked_tag(tag: str) -> str:
    """``tag`` upper-cased if it is one well-formed BER tag in hex; raises TlvError(0, ...)."""
    if not _HEX.fullmatch(tag):
        raise TlvError(0, "tag is not an even number of hex digits")
    problem = _tag_problem(bytes.fromhex(tag))
    if problem is not None:
        raise TlvError(0, problem)
    return tag.upper()


def build_tlv_hex(tags: Iterable[EmvTag]) -> str:
    """:func:`build_tlv`, as upper-case hex (the form ISO 8583 field 55 is handled in)."""
    tags = tuple(tags)
    # Hot path (every chip transaction): the headers and values are joined as they are,
    # the whole is checked to be hex in one C call and upper-cased once. Anything wrong
    # (a bad tag, an odd, long or non-hex value) is left to the checked build, which
    # names the data object at fault.
    parts: list[str] = []
    for item in tags:
        try:
            tag = _checked_tag(item.tag)
        except TlvError:
            return _checked_build_tlv_hex(tags)
        value = item.value
        length = len(value) >> 1
        if len(value) & 1 or length > MAX_VALUE_LENGTH:
            return _checked_build_tlv_hex(tags)
        parts += (tag, _SHORT_LENGTHS[length] if length < 0x80 else _length_hex(length), value)
    try:
        built = "".join(parts)
        binascii.a2b_hex(built)
    except (ValueError, TypeError):  # binascii.Error (not hex), non-ASCII or non-str values
        return _checked_build_tlv_hex(tags)
    return built.upper()


def _checked_build_tlv_hex(tags: tuple[EmvTag, ...]) -> str:
    """:func:`build_tlv_hex`, checking each data object in turn; raises :class:`TlvError`."""
    parts: list[str] = []
    size = 0  # bytes written so far, for error offsets
    for item in tags:
        try:
            tag = _checked_tag(item.tag)
        except TlvError as exc:
            raise TlvError(size, exc.reason) from None
        value = item.value
        length, odd = divmod(len(value), 2)
        if odd or (value and not _HEX.fullmatch(value)):
            raise TlvError(size, "value is not an even number of hex digits")
        if length > MAX_VALUE_LENGTH:
            raise TlvError(size, f"value of {length} bytes exceeds {MAX_VALUE_LENGTH} (0x82 xx xx)")
        header = tag + _length_hex(length)
        parts.append(header)
        parts.append(value.upper())
        size += len(header) // 2 + length
    return "".join(parts)


def build_tlv(tags: Iterable[EmvTag]) -> bytes:
    """The BER-TLV bytes of ``tags``, lengths minimally encoded; raises :class:`TlvError`.

    Tags and values are hex (either case). Each tag must be one well-formed BER tag not
    starting with ``00``/``FF``; each value at most :data:`MAX_VALUE_LENGTH` bytes.
    """
    return bytes.fromhex(build_tlv_hex(tags))
