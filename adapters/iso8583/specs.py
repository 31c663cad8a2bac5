r"""ISO 8583:1987 message specifications for pyiso8583, one per wire variant.

Reference manual
================

What this module is
-------------------
pyiso8583 (``iso8583`` on import, version 4) encodes and decodes ISO 8583 messages from a
*spec*: a plain mapping of field key to field format, keys ``"h"`` (header), ``"t"`` (MTI),
``"p"`` (primary bitmap), ``"1"`` (secondary bitmap) and ``"2"`` .. ``"128"``; each format
holds ``data_enc``, ``len_enc``, ``len_type``, ``max_len`` and ``desc`` (see the
``iso8583.specs`` module of pyiso8583). This module provides those specs for the ISO 8583
variants the hub speaks, as plain data in :data:`SPECS`, keyed by variant name.

Standard and version
--------------------
ISO 8583-1:1987 (MTI version digit ``0``), 128 data elements: the primary bitmap announces
fields 1-64, field 1 is the secondary bitmap announcing fields 65-128. No message header
(``"h"`` has ``max_len`` 0). Field formats follow pyiso8583's ``default_ascii`` (which
follows the 1987 data element directory) with these deliberate differences:

- binary elements are raw bytes in every variant (``data_enc`` ``"b"``; pyiso8583's
  ``default_ascii`` carries them as hex text): 52 PIN data (b8), 64 and 128 MAC (b8),
  96 message security code (b8), and 55 ICC data (LLLVAR b..255, length counted in bytes);
- 54 additional amounts is LLLVAR an..120 (the 1987 directory; ``default_ascii`` allows 240).

Field 65 ("Bitmap, extended" in the 1987 directory) is described like a bitmap, as in
pyiso8583, but pyiso8583 never reads ``spec["65"]``: on encode it drops a field ``"65"``,
and on decode a set bit 65 makes it read a *tertiary* bitmap (fields 129-192, which these
specs, being 1987 specs, do not define: such a message fails with ``KeyError``).

Variants
--------
=========================  ==============================  =======================
variant                    MTI, n/an/ans data, lengths     bitmaps
=========================  ==============================  =======================
``ascii`` (the default)    ASCII                           16 hex digits in ASCII
``ascii-binary-bitmap``    ASCII                           8 raw bytes
``ebcdic-cp037``           EBCDIC code page 037 (US)       8 raw bytes
``ebcdic-cp500``           EBCDIC code page 500 (Intl.)    8 raw bytes
``ebcdic-cp1047``          EBCDIC code page 1047 (z/OS)    8 raw bytes
=========================  ==============================  =======================

Length prefixes are decimal digits in the variant's text encoding: ``LL`` (2 digits) for
LLVAR, ``LLL`` (3 digits) for LLLVAR; for binary fields they count bytes. Track 2 (field 35,
``z..37``) is text: digits and the ``=`` (or ``D``) separator, never nibble-packed here.
The ``ascii`` variant is strict 7-bit ASCII: a byte above 0x7F in a text field is a decode
error. ``cp1047`` is registered by :mod:`adapters.codepages`, imported here.

All specs derive from one field table, :data:`FIELDS` (ISO 8583:1987 data elements 2-128:
type, length form, maximum length, description), through :func:`build_spec`.

Using a spec with pyiso8583
---------------------------
Values are ``str``: text as is, binary fields as hex (decoded upper-case). ``encode`` wants
a ``dict`` and *modifies* it (it adds ``"p"`` and, when fields 65-128 are present, ``"1"``;
it removes any ``"1"`` or ``"65"`` it was given and recomputes the bitmaps).

>>> import iso8583
>>> from adapters.iso8583.specs import SPECS
>>> raw, _ = iso8583.encode({"t": "0800", "11": "000001", "70": "301"}, SPECS["ascii"])
>>> bytes(raw)
b'080080200000000000000400000000000000000001301'
>>> decoded, _ = iso8583.decode(raw, SPECS["ascii"])
>>> decoded
{'t': '0800', 'p': '8020000000000000', '1': '0400000000000000', '11': '000001', '70': '301'}

The same message in EBCDIC (code page 037) with binary bitmaps:

>>> raw, _ = iso8583.encode({"t": "0800", "11": "000001", "70": "301"}, SPECS["ebcdic-cp037"])
>>> bytes(raw).hex(" ")
'f0 f8 f0 f0 80 20 00 00 00 00 00 00 04 00 00 00 00 00 00 00 f0 f0 f0 f0 f0 f1 f3 f0 f1'
>>> iso8583.decode(raw, SPECS["ebcdic-cp037"])[0]["70"]
'301'

Errors: ``iso8583.DecodeError`` / ``iso8583.EncodeError`` (both ``ValueError``) with
``field`` and, for decoding, ``pos`` (byte offset). Their text is safe to log, but the
``DecodeError`` object also holds the whole input (``s``) and the partly decoded fields
(``doc_dec``, ``doc_enc``): never log or pickle the exception object's attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from iso8583.encoder import SpecDict

import adapters.codepages  # noqa: F401  (registers the cp1047 codec)

__all__ = [
    "FIELDS",
    "SPECS",
    "VARIANTS",
    "VARIANT_DESCRIPTIONS",
    "FieldFormat",
    "FieldType",
    "LengthForm",
    "SpecDict",
    "build_spec",
]

FieldType = Literal["n", "a", "an", "ans", "ns", "z", "x+n", "b", "bitmap"]
"""ISO 8583 data element types; every type but ``b`` and ``bitmap`` travels as text."""

LengthForm = Literal["fixed", "LLVAR", "LLLVAR"]
"""Fixed length, or variable length with a 2- or 3-digit length prefix."""

_LEN_TYPE: Final[Mapping[LengthForm, int]] = {"fixed": 0, "LLVAR": 2, "LLLVAR": 3}


@dataclass(frozen=True, slots=True)
class FieldFormat:
    """One ISO 8583:1987 data element: type, length form, maximum length, description.

    ``max_len`` counts characters for text and bytes for ``b`` (``b8`` = 64 bits).
    """

    type: FieldType
    length: LengthForm
    max_len: int
    desc: str


def _table() -> dict[int, FieldFormat]:
    fixed: LengthForm = "fixed"
    ll: LengthForm = "LLVAR"
    lll: LengthForm = "LLLVAR"
    rows: list[tuple[int, FieldType, LengthForm, int, str]] = [
        (1, "bitmap", fixed, 8, "Bitmap, Secondary"),
        (2, "n", ll, 19, "Primary Account Number (PAN)"),
        (3, "n", fixed, 6, "Processing Code"),
        (4, "n", fixed, 12, "Amount, Transaction"),
        (5, "n", fixed, 12, "Amount, Settlement"),
        (6, "n", fixed, 12, "Amount, Cardholder Billing"),
        (7, "n", fixed, 10, "Transmission Date and Time"),
        (8, "n", fixed, 8, "Amount, Cardholder Billing Fee"),
        (9, "n", fixed, 8, "Conversion Rate, Settlement"),
        (10, "n", fixed, 8, "Conversion Rate, Cardholder Billing"),
        (11, "n", fixed, 6, "System Trace Audit Number"),
        (12, "n", fixed, 6, "Time, Local Transaction"),
        (13, "n", fixed, 4, "Date, Local Transaction"),
        (14, "n", fixed, 4, "Date, Expiration"),
        (15, "n", fixed, 4, "Date, Settlement"),
        (16, "n", fixed, 4, "Date, Conversion"),
        (17, "n", fixed, 4, "Date, Capture"),
        (18, "n", fixed, 4, "Merchant Type"),
        (19, "n", fixed, 3, "Acquiring Institution Country Code"),
        (20, "n", fixed, 3, "PAN Country Code"),
        (21, "n", fixed, 3, "Forwarding Institution Country Code"),
        (22, "n", fixed, 3, "Point-of-Service Entry Mode"),
        (23, "n", fixed, 3, "PAN Sequence Number"),
        (24, "n", fixed, 3, "Network International ID (NII)"),
        (25, "n", fixed, 2, "Point-of-Service Condition Code"),
        (26, "n", fixed, 2, "Point-of-Service Capture Code"),
        (27, "n", fixed, 1, "Authorizing ID Response Length"),
        (28, "x+n", fixed, 9, "Amount, Transaction Fee"),
        (29, "x+n", fixed, 9, "Amount, Settlement Fee"),
        (30, "x+n", fixed, 9, "Amount, Transaction Processing Fee"),
        (31, "x+n", fixed, 9, "Amount, Settlement Processing Fee"),
        (32, "n", ll, 11, "Acquiring Institution ID Code"),
        (33, "n", ll, 11, "Forwarding Institution ID Code"),
        (34, "ns", ll, 28, "Primary Account Number, Extended"),
        (35, "z", ll, 37, "Track 2 Data"),
        (36, "n", lll, 104, "Track 3 Data"),
        (37, "an", fixed, 12, "Retrieval Reference Number"),
        (38, "an", fixed, 6, "Authorization ID Response"),
        (39, "an", fixed, 2, "Response Code"),
        (40, "an", fixed, 3, "Service Restriction Code"),
        (41, "ans", fixed, 8, "Card Acceptor Terminal ID"),
        (42, "ans", fixed, 15, "Card Acceptor ID Code"),
        (43, "ans", fixed, 40, "Card Acceptor Name/Location"),
        (44, "an", ll, 25, "Additional Response Data"),
        (45, "an", ll, 76, "Track 1 Data"),
        (46, "an", lll, 999, "Additional Data - ISO"),
        (47, "an", lll, 999, "Additional Data - National"),
        (48, "an", lll, 999, "Additional Data - Private"),
        (49, "an", fixed, 3, "Currency Code, Transaction"),
        (50, "an", fixed, 3, "Currency Code, Settlement"),
        (51, "an", fixed, 3, "Currency Code, Cardholder Billing"),
        (52, "b", fixed, 8, "PIN Data"),
        (53, "n", fixed, 16, "Security-Related Control Information"),
        (54, "an", lll, 120, "Additional Amounts"),
        (55, "b", lll, 255, "ICC Data (EMV)"),
        (56, "ans", lll, 999, "Reserved ISO"),
        (57, "ans", lll, 999, "Reserved National"),
        (58, "ans", lll, 999, "Reserved National"),
        (59, "ans", lll, 999, "Reserved National"),
        (60, "ans", lll, 999, "Reserved National"),
        (61, "ans", lll, 999, "Reserved Private"),
        (62, "ans", lll, 999, "Reserved Private"),
        (63, "ans", lll, 999, "Reserved Private"),
        (64, "b", fixed, 8, "MAC"),
        (65, "bitmap", fixed, 8, "Bitmap, Extended"),
        (66, "n", fixed, 1, "Settlement Code"),
        (67, "n", fixed, 2, "Extended Payment Code"),
        (68, "n", fixed, 3, "Receiving Institution Country Code"),
        (69, "n", fixed, 3, "Settlement Institution Country Code"),
        (70, "n", fixed, 3, "Network Management Information Code"),
        (71, "n", fixed, 4, "Message Number"),
        (72, "n", fixed, 4, "Message Number, Last"),
        (73, "n", fixed, 6, "Date, Action"),
        (74, "n", fixed, 10, "Credits, Number"),
        (75, "n", fixed, 10, "Credits, Reversal Number"),
        (76, "n", fixed, 10, "Debits, Number"),
        (77, "n", fixed, 10, "Debits, Reversal Number"),
        (78, "n", fixed, 10, "Transfer, Number"),
        (79, "n", fixed, 10, "Transfer, Reversal Number"),
        (80, "n", fixed, 10, "Inquiries, Number"),
        (81, "n", fixed, 10, "Authorizations, Number"),
        (82, "n", fixed, 12, "Credits, Processing Fee Amount"),
        (83, "n", fixed, 12, "Credits, Transaction Fee Amount"),
        (84, "n", fixed, 12, "Debits, Processing Fee Amount"),
        (85, "n", fixed, 12, "Debits, Transaction Fee Amount"),
        (86, "n", fixed, 16, "Credits, Amount"),
        (87, "n", fixed, 16, "Credits, Reversal Amount"),
        (88, "n", fixed, 16, "Debits, Amount"),
        (89, "n", fixed, 16, "Debits, Reversal Amount"),
        (90, "n", fixed, 42, "Original Data Elements"),
        (91, "an", fixed, 1, "File Update Code"),
        (92, "an", fixed, 2, "File Security Code"),
        (93, "an", fixed, 5, "Response Indicator"),
        (94, "an", fixed, 7, "Service Indicator"),
        (95, "an", fixed, 42, "Replacement Amounts"),
        (96, "b", fixed, 8, "Message Security Code"),
        (97, "x+n", fixed, 17, "Amount, Net Settlement"),
        (98, "ans", fixed, 25, "Payee"),
        (99, "n", ll, 11, "Settlement Institution ID Code"),
        (100, "n", ll, 11, "Receiving Institution ID Code"),
        (101, "ans", ll, 17, "File Name"),
        (102, "ans", ll, 28, "Account ID 1"),
        (103, "ans", ll, 28, "Account ID 2"),
        (104, "ans", lll, 100, "Transaction Description"),
    ]
    rows += [(n, "ans", lll, 999, "Reserved for ISO Use") for n in range(105, 112)]
    rows += [(n, "ans", lll, 999, "Reserved for National Use") for n in range(112, 120)]
    rows += [(n, "ans", lll, 999, "Reserved for Private Use") for n in range(120, 128)]
    rows.append((128, "b", fixed, 8, "MAC"))
    return {number: FieldFormat(kind, form, size, desc) for number, kind, form, size, desc in rows}


FIELDS: Final[Mapping[int, FieldFormat]] = _table()
"""ISO 8583:1987 data elements 1-128 (1 and 65 are bitmaps): the one table all specs derive from."""


def build_spec(text_encoding: str, *, binary_bitmaps: bool) -> dict[str, dict[str, Any]]:
    """A fresh pyiso8583 spec from :data:`FIELDS`.

    ``text_encoding`` (a Python codec name) encodes the MTI, every text field and every
    length prefix; binary fields are raw bytes; bitmaps are 8 raw bytes when
    ``binary_bitmaps``, else 16 hex digits in ``text_encoding``. The result is a new,
    mutable dict: adapt a copy rather than the shared :data:`SPECS`.

    >>> spec = build_spec("cp500", binary_bitmaps=True)
    >>> {key: spec["2"][key] for key in ("data_enc", "len_enc", "len_type", "max_len")}
    {'data_enc': 'cp500', 'len_enc': 'cp500', 'len_type': 2, 'max_len': 19}
    >>> spec["55"]["data_enc"], spec["p"]["max_len"]
    ('b', 8)
    """

    def text(max_len: int, desc: str, len_type: int = 0) -> dict[str, Any]:
        return {
            "data_enc": text_encoding,
            "len_enc": text_encoding,
            "len_type": len_type,
            "max_len": max_len,
            "desc": desc,
        }

    def bitmap(desc: str) -> dict[str, Any]:
        if binary_bitmaps:
            return {
                "data_enc": "b",
                "len_enc": text_encoding,
                "len_type": 0,
                "max_len": 8,
                "desc": desc,
            }
        return text(16, desc)

    spec: dict[str, dict[str, Any]] = {
        "h": text(0, "Message Header"),
        "t": text(4, "Message Type"),
        "p": bitmap("Bitmap, Primary"),
    }
    for number, field in FIELDS.items():
        if field.type == "bitmap":
            spec[str(number)] = bitmap(field.desc)
        elif field.type == "b":
            spec[str(number)] = {
                "data_enc": "b",
                "len_enc": text_encoding,
                "len_type": _LEN_TYPE[field.length],
                "max_len": field.max_len,
                "desc": field.desc,
            }
        else:
            spec[str(number)] = text(field.max_len, field.desc, _LEN_TYPE[field.length])
    return spec


@dataclass(frozen=True, slots=True)
class _Variant:
    text_encoding: str
    binary_bitmaps: bool
    description: str


_VARIANTS: Final[dict[str, _Variant]] = {
    "ascii": _Variant(
        "ascii",
        binary_bitmaps=False,
        description="ISO 8583:1987, ASCII data and lengths, hex (ASCII) bitmaps",
    ),
    "ascii-binary-bitmap": _Variant(
        "ascii",
        binary_bitmaps=True,
        description="ISO 8583:1987, ASCII data and lengths, binary bitmaps",
    ),
    "ebcdic-cp037": _Variant(
        "cp037",
        binary_bitmaps=True,
        description="ISO 8583:1987, EBCDIC code page 037 data and lengths, binary bitmaps",
    ),
    "ebcdic-cp500": _Variant(
        "cp500",
        binary_bitmaps=True,
        description="ISO 8583:1987, EBCDIC code page 500 data and lengths, binary bitmaps",
    ),
    "ebcdic-cp1047": _Variant(
        "cp1047",
        binary_bitmaps=True,
        description="ISO 8583:1987, EBCDIC code page 1047 data and lengths, binary bitmaps",
    ),
}

VARIANTS: Final[tuple[str, ...]] = tuple(_VARIANTS)
"""The variant names; the first, ``"ascii"``, is the default."""

VARIANT_DESCRIPTIONS: Final[Mapping[str, str]] = {
    name: variant.description for name, variant in _VARIANTS.items()
}
"""One line per variant: standard, text encoding, bitmap form."""

SPECS: Final[Mapping[str, SpecDict]] = {
    name: build_spec(variant.text_encoding, binary_bitmaps=variant.binary_bitmaps)
    for name, variant in _VARIANTS.items()
}
"""The pyiso8583 spec of each variant, in :data:`VARIANTS` order. Read-only by contract."""
