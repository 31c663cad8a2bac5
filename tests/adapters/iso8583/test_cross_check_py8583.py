"""Cross-check the ``ascii`` spec against py8583, an independent ISO 8583 implementation.

pyiso8583 + ``SPECS["ascii"]`` builds, py8583 parses, and the other way round, field by field.
The py8583 spec is py8583's own ISO 8583:1987 table (lengths, length forms) with our data
encodings, not one derived from our spec, so the two sides agree only if the layouts do.

How py8583 is configured, and why:

- py8583 ships ``IsoSpec1987ASCII`` but its ``DataTypes`` table is a class attribute shared by
  every spec instance, and ``IsoSpec1987BCD`` rewrites the module-global content-type table,
  so specs built elsewhere in the process can change ours. We build a private instance with
  its own copies of the tables (:func:`_py8583_ascii_spec`).
- Bitmaps: hex in ASCII (py8583 ``DT.ASCII`` for field 1), as in our ``ascii`` variant.
  py8583 *writes* lower-case hex digits, pyiso8583 upper-case; both read either.
- Fields 52 (PIN data) and 55 (ICC data) are raw bytes in our spec (``DT.BIN`` here); py8583's
  1987 table has 55 as ``ans..999`` (reserved ISO), so we set it to ``b..255`` like ours.
- py8583 returns numeric (``n``) fields as ``int``: leading zeros are lost, so fixed-length
  numeric values are compared after zero-padding to the field length, and the variable
  numeric fields (2, 32) use values without leading zeros.
- Track 2 (``z``): py8583 writes the ``=`` separator as ``D`` and pads an odd length with
  ``F`` after writing the length prefix (so the prefix is one short: a py8583 bug); it is left
  out of the field-by-field checks and pinned in its own tests.
- py8583 right-justifies short fixed-length text (leading spaces); pyiso8583 refuses short
  fixed-length values, so all values here have their exact length.
- py8583 cannot *set* fixed binary field 52 (its length check compares the hex string, 16
  characters, to the byte length, 8), so 52 is checked only in the pyiso8583 -> py8583
  direction.
"""

from __future__ import annotations

import copy
from typing import Any

import iso8583
import pytest
from py8583 import py8583spec
from py8583.py8583 import DT, LT, Iso8583

from adapters.iso8583.specs import SPECS

SPEC = SPECS["ascii"]

MESSAGE: dict[str, str] = {
    "t": "0200",
    "2": "4111111111111111",
    "3": "000000",
    "4": "000000001050",
    "7": "1128161700",
    "11": "000123",
    "12": "161700",
    "13": "1128",
    "32": "12345678",
    "37": "000000123456",
    "41": "TERM0001",
    "42": "MERCHANT0000001",
    "43": "ACME STORE 42                  BERLIN DE",
    "49": "978",
    "54": "0001978C000000001000",
    "55": "9F02060000000010509F260811223344556677885F2A0209788202198095050000000000",
    "102": "1234567890",
    "103": "DE89370400440532013000",
}
"""A 0200 with fields of every layout: fixed n/an/ans, LLVAR, LLLVAR, binary, secondary bitmap."""

PIN_BLOCK = "0123456789ABCDEF"


def _py8583_ascii_spec() -> Any:
    """py8583's ISO 8583:1987 table with our ``ascii`` data encodings, in private copies."""
    spec = py8583spec.IsoSpec()
    spec.Descriptions = dict(py8583spec.Descriptions["1987"])
    spec.ContentTypes = copy.deepcopy(py8583spec.ContentTypes["1987"])
    spec.ContentTypes[55] = {"ContentType": "b", "MaxLen": 255, "LenType": LT.LLLVAR}
    spec.DataTypes = {}
    spec.DataType("MTI", DT.ASCII)
    for field, content in spec.ContentTypes.items():
        data_type = DT.BIN if content["ContentType"] == "b" else DT.ASCII
        spec.DataType(field, data_type)
        if content["LenType"] != LT.FIXED:
            spec.LengthDataType(field, DT.ASCII)
    spec.DataType(1, DT.ASCII)  # hex bitmaps (py8583 uses field 1's type for both bitmaps)
    return spec


def _py8583_value(parsed: Iso8583, spec: Any, field: int) -> str:
    """A py8583 field value as pyiso8583 gives it: str, numeric zero-padded if fixed length."""
    value = parsed.FieldData(field)
    if isinstance(value, int):
        if spec.LengthType(field) == LT.FIXED:
            return f"{value:0{spec.MaxLength(field)}d}"
        return str(value)
    assert isinstance(value, str)
    return value


def test_py8583_parses_what_pyiso8583_builds() -> None:
    message = {**MESSAGE, "52": PIN_BLOCK}
    raw, _ = iso8583.encode(dict(message), SPEC)

    spec = _py8583_ascii_spec()
    parsed = Iso8583(IsoMsg=bytes(raw), IsoSpec=spec)

    assert parsed.MTI() == message["t"]
    present = sorted(f for f, bit in parsed.Bitmap().items() if bit == 1 and f != 1)
    assert present == sorted(int(key) for key in message if key != "t")
    assert parsed.Field(1) == 1  # secondary bitmap announced (fields 102, 103)
    for key, value in message.items():
        if key == "t":
            continue
        assert _py8583_value(parsed, spec, int(key)) == value, f"field {key}"


def test_pyiso8583_decodes_what_py8583_builds() -> None:
    spec = _py8583_ascii_spec()
    built = Iso8583(IsoSpec=spec)
    built.MTI(MESSAGE["t"])
    for key, value in MESSAGE.items():
        if key == "t":
            continue
        field = int(key)
        content = spec.ContentType(field)
        fixed = spec.LengthType(field) == LT.FIXED
        built.FieldData(field, int(value) if content == "n" and fixed else value)
        built.Field(field, 1)
    raw = built.BuildIso()

    decoded, _ = iso8583.decode(raw, SPEC)
    bitmaps = {key: decoded.pop(key) for key in ("p", "1")}
    assert decoded == MESSAGE

    ours, _ = iso8583.encode(dict(MESSAGE), SPEC)
    assert {key: value.upper() for key, value in bitmaps.items()} == {
        "p": "F238000108E08600",
        "1": "0000000006000000",
    }
    # Byte for byte the same message, but for the case of py8583's hex bitmap digits.
    assert raw[4:36] == raw[4:36].lower()
    assert raw[:4] == bytes(ours[:4])
    assert raw[4:36].upper() == bytes(ours[4:36])
    assert raw[36:] == bytes(ours[36:])


def test_track2_separator_as_py8583_writes_it() -> None:
    track2 = "4111111111111111=2512101123456"  # 30 characters: even, so no 'F' pad
    spec = _py8583_ascii_spec()
    built = Iso8583(IsoSpec=spec)
    built.MTI("0200")
    built.FieldData(35, track2)
    built.Field(35, 1)
    raw = built.BuildIso()

    decoded, _ = iso8583.decode(raw, SPEC)
    # py8583 writes '=' as 'D': our spec carries track 2 as text, so 'D' comes through as is.
    assert decoded["35"] == "4111111111111111D2512101123456"

    ours, _ = iso8583.encode({"t": "0200", "35": track2}, SPEC)
    parsed = Iso8583(IsoMsg=bytes(ours), IsoSpec=spec)
    assert parsed.FieldData(35) == track2


def test_py8583_odd_length_track2_has_a_wrong_length_prefix() -> None:
    # py8583 pads an odd-length track 2 with 'F' *after* writing the length prefix, even in
    # ASCII: "31" is followed by 32 characters. pyiso8583 then sees one byte too many.
    built = Iso8583(IsoSpec=_py8583_ascii_spec())
    built.MTI("0200")
    built.FieldData(35, "4111111111111111=25121011234567")
    built.Field(35, 1)
    raw = built.BuildIso()
    assert raw == b"0200" + b"0000000020000000" + b"31" + b"4111111111111111D25121011234567F"
    with pytest.raises(iso8583.DecodeError, match="Extra data after last field"):
        iso8583.decode(raw, SPEC)


def test_py8583_cannot_set_a_fixed_binary_field_from_hex() -> None:
    built = Iso8583(IsoSpec=_py8583_ascii_spec())
    with pytest.raises(ValueError, match="larger than field maximum"):
        built.FieldData(52, PIN_BLOCK)
