"""The ISO 8583:1987 pyiso8583 specs: structure, round trips, exact bytes, pyiso8583 edge cases."""

from __future__ import annotations

import iso8583
import iso8583.specs
import pytest

from adapters.iso8583.specs import (
    FIELDS,
    SPECS,
    VARIANT_DESCRIPTIONS,
    VARIANTS,
    build_spec,
)

EBCDIC_VARIANTS = ("ebcdic-cp037", "ebcdic-cp500", "ebcdic-cp1047")
FIELD_KEYS = {"h", "t", "p"} | {str(n) for n in range(1, 129)}
REQUIRED_PROPERTIES = {"data_enc", "len_enc", "len_type", "max_len", "desc"}

# A 0200 with the fields the adapters use, values valid in every variant's text encoding.
FINANCIAL_REQUEST: dict[str, str] = {
    "t": "0200",
    "2": "4111111111111111",
    "3": "000000",
    "4": "000000001050",
    "7": "1128161700",
    "11": "000123",
    "12": "161700",
    "13": "1128",
    "14": "2512",
    "18": "5411",
    "22": "051",
    "25": "00",
    "32": "12345678901",
    "35": "4111111111111111=2512101123456789012",
    "37": "000000123456",
    "41": "TERM0001",
    "42": "MERCHANT0000001",
    "43": "ACME STORE 42, [MAIN] ST^2  BERLIN    DE",
    "49": "978",
    "52": "0123456789ABCDEF",
    "54": "0001978C000000001000",
    "55": "9F02060000000010509F260811223344556677885F2A02097882021980",
    "102": "1234567890",
    "103": "DE89370400440532013000",
}

NETWORK_MANAGEMENT: dict[str, str] = {"t": "0800", "7": "1128161700", "11": "000001", "70": "301"}


def _roundtrip(message: dict[str, str], variant: str) -> None:
    spec = SPECS[variant]
    raw, _ = iso8583.encode(dict(message), spec)
    decoded, _ = iso8583.decode(raw, spec)
    bitmaps = {key: decoded.pop(key) for key in ("p", "1") if key in decoded}
    assert decoded == message
    assert "p" in bitmaps
    again, _ = iso8583.encode(decoded, spec)
    assert again == raw


# --- structure ---------------------------------------------------------------------------------


def test_variant_names_and_order() -> None:
    assert VARIANTS == (
        "ascii",
        "ascii-binary-bitmap",
        "ebcdic-cp037",
        "ebcdic-cp500",
        "ebcdic-cp1047",
    )
    assert tuple(SPECS) == VARIANTS
    assert tuple(VARIANT_DESCRIPTIONS) == VARIANTS
    assert all(VARIANT_DESCRIPTIONS[name] for name in VARIANTS)


def test_the_field_table_covers_all_128_fields() -> None:
    assert sorted(FIELDS) == list(range(1, 129))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_field_is_specified(variant: str) -> None:
    spec = SPECS[variant]
    assert set(spec) == FIELD_KEYS
    for key, field in spec.items():
        assert set(field) >= REQUIRED_PROPERTIES, key
        assert field["len_type"] in (0, 2, 3), key
    assert spec["h"]["max_len"] == 0


@pytest.mark.parametrize(
    ("field", "len_type", "max_len", "binary"),
    [
        ("2", 2, 19, False),
        ("3", 0, 6, False),
        ("4", 0, 12, False),
        ("7", 0, 10, False),
        ("11", 0, 6, False),
        ("12", 0, 6, False),
        ("13", 0, 4, False),
        ("14", 0, 4, False),
        ("18", 0, 4, False),
        ("22", 0, 3, False),
        ("23", 0, 3, False),
        ("25", 0, 2, False),
        ("32", 2, 11, False),
        ("33", 2, 11, False),
        ("35", 2, 37, False),
        ("37", 0, 12, False),
        ("38", 0, 6, False),
        ("39", 0, 2, False),
        ("41", 0, 8, False),
        ("42", 0, 15, False),
        ("43", 0, 40, False),
        ("49", 0, 3, False),
        ("52", 0, 8, True),
        ("54", 3, 120, False),
        ("55", 3, 255, True),
        ("64", 0, 8, True),
        ("70", 0, 3, False),
        ("90", 0, 42, False),
        ("96", 0, 8, True),
        ("102", 2, 28, False),
        ("103", 2, 28, False),
        ("128", 0, 8, True),
    ],
)
@pytest.mark.parametrize("variant", VARIANTS)
def test_key_field_formats(
    variant: str, field: str, len_type: int, max_len: int, binary: bool
) -> None:
    spec = SPECS[variant][field]
    text_encoding = SPECS[variant]["t"]["data_enc"]
    assert spec["len_type"] == len_type
    assert spec["max_len"] == max_len
    assert spec["data_enc"] == ("b" if binary else text_encoding)
    assert spec["len_enc"] == text_encoding
    assert spec.get("len_count", "bytes") == "bytes"


@pytest.mark.parametrize(
    ("variant", "text_encoding", "binary_bitmaps"),
    [
        ("ascii", "ascii", False),
        ("ascii-binary-bitmap", "ascii", True),
        ("ebcdic-cp037", "cp037", True),
        ("ebcdic-cp500", "cp500", True),
        ("ebcdic-cp1047", "cp1047", True),
    ],
)
def test_variant_encodings(variant: str, text_encoding: str, binary_bitmaps: bool) -> None:
    spec = SPECS[variant]
    assert spec["t"]["data_enc"] == text_encoding
    assert spec["t"]["max_len"] == 4
    for bitmap in ("p", "1", "65"):
        if binary_bitmaps:
            assert (spec[bitmap]["data_enc"], spec[bitmap]["max_len"]) == ("b", 8)
        else:
            assert (spec[bitmap]["data_enc"], spec[bitmap]["max_len"]) == (text_encoding, 16)
    assert SPECS[variant] == build_spec(text_encoding, binary_bitmaps=binary_bitmaps)


# Where the ascii variant deliberately departs from pyiso8583's default_ascii (see the module
# docstring): binary elements are raw bytes, and field 54 follows the 1987 directory (an..120).
DEPARTURES_FROM_DEFAULT_ASCII = {"52", "54", "55", "64", "96", "128"}


def test_ascii_variant_follows_pyiso8583_default_ascii() -> None:
    ours = SPECS["ascii"]
    theirs = iso8583.specs.default_ascii
    compared = ("data_enc", "len_enc", "len_type", "max_len")
    for key in FIELD_KEYS - DEPARTURES_FROM_DEFAULT_ASCII:
        assert {p: ours[key][p] for p in compared} == {p: theirs[key][p] for p in compared}, key
    for key in DEPARTURES_FROM_DEFAULT_ASCII:
        assert {p: ours[key][p] for p in compared} != {p: theirs[key][p] for p in compared}, key


def test_binary_fields_match_pyiso8583_default_binary_spec() -> None:
    # pyiso8583's ``default`` spec has the same raw-byte elements (except its 55 length form).
    theirs = iso8583.specs.default
    for key in ("52", "64", "96", "128"):
        assert (SPECS["ascii"][key]["data_enc"], SPECS["ascii"][key]["max_len"]) == (
            theirs[key]["data_enc"],
            theirs[key]["max_len"],
        )


def test_build_spec_returns_a_fresh_copy() -> None:
    spec = build_spec("ascii", binary_bitmaps=False)
    spec["2"]["max_len"] = 99
    assert SPECS["ascii"]["2"]["max_len"] == 19


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_financial_request_round_trip(variant: str) -> None:
    _roundtrip(FINANCIAL_REQUEST, variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_management_with_secondary_bitmap_round_trip(variant: str) -> None:
    spec = SPECS[variant]
    raw, _ = iso8583.encode(dict(NETWORK_MANAGEMENT), spec)
    decoded, _ = iso8583.decode(raw, spec)
    assert decoded["1"] == "0400000000000000"
    assert decoded["p"] == "8220000000000000"
    _roundtrip(NETWORK_MANAGEMENT, variant)


@pytest.mark.parametrize("variant", EBCDIC_VARIANTS)
def test_ebcdic_variants_differ_from_ascii_on_the_wire(variant: str) -> None:
    ascii_raw, _ = iso8583.encode(dict(FINANCIAL_REQUEST), SPECS["ascii-binary-bitmap"])
    ebcdic_raw, _ = iso8583.encode(dict(FINANCIAL_REQUEST), SPECS[variant])
    assert len(ascii_raw) == len(ebcdic_raw)
    assert ebcdic_raw[:4] == b"\xf0\xf2\xf0\xf0"
    assert ascii_raw[4:12] == ebcdic_raw[4:12]  # the binary primary bitmap


# --- exact bytes (built by hand, not by the spec) ----------------------------------------------

SMALL_MESSAGE: dict[str, str] = {
    "t": "0200",
    "2": "4111111111111111",
    "3": "000000",
    "4": "000000001000",
    "11": "000001",
    "41": "TERM 01A",
    "52": "0011223344556677",
    "55": "9F020600000000100082023900",
}


def test_exact_bytes_ascii() -> None:
    expected = (
        b"0200"
        # primary bitmap: fields 2, 3, 4 (0x70), 11 (0x20), 41 (0x80), 52 and 55 (0x12)
        + b"7020000000801200"
        + b"16"
        + b"4111111111111111"
        + b"000000"
        + b"000000001000"
        + b"000001"
        + b"TERM 01A"
        + b"\x00\x11\x22\x33\x44\x55\x66\x77"
        + b"013"
        + b"\x9f\x02\x06\x00\x00\x00\x00\x10\x00\x82\x02\x39\x00"
    )
    raw, _ = iso8583.encode(dict(SMALL_MESSAGE), SPECS["ascii"])
    assert bytes(raw) == expected
    decoded, _ = iso8583.decode(expected, SPECS["ascii"])
    assert decoded == {**SMALL_MESSAGE, "p": "7020000000801200"}


def test_exact_bytes_ascii_binary_bitmap() -> None:
    raw, _ = iso8583.encode(dict(SMALL_MESSAGE), SPECS["ascii-binary-bitmap"])
    assert bytes(raw[:12]) == b"0200\x70\x20\x00\x00\x00\x80\x12\x00"
    assert bytes(raw[12:14]) == b"16"


def test_exact_bytes_ebcdic_cp037() -> None:
    expected = (
        b"\xf0\xf2\xf0\xf0"  # MTI 0200
        + b"\x70\x20\x00\x00\x00\x80\x12\x00"  # binary primary bitmap
        + b"\xf1\xf6"  # LL = 16
        + b"\xf4\xf1\xf1\xf1\xf1\xf1\xf1\xf1\xf1\xf1\xf1\xf1\xf1\xf1\xf1\xf1"
        + b"\xf0\xf0\xf0\xf0\xf0\xf0"  # 3
        + b"\xf0\xf0\xf0\xf0\xf0\xf0\xf0\xf0\xf1\xf0\xf0\xf0"  # 4
        + b"\xf0\xf0\xf0\xf0\xf0\xf1"  # 11
        + b"\xe3\xc5\xd9\xd4\x40\xf0\xf1\xc1"  # 41 "TERM 01A"
        + b"\x00\x11\x22\x33\x44\x55\x66\x77"  # 52, raw
        + b"\xf0\xf1\xf3"  # LLL = 13 (bytes)
        + b"\x9f\x02\x06\x00\x00\x00\x00\x10\x00\x82\x02\x39\x00"  # 55, raw
    )
    raw, _ = iso8583.encode(dict(SMALL_MESSAGE), SPECS["ebcdic-cp037"])
    assert bytes(raw) == expected
    decoded, _ = iso8583.decode(expected, SPECS["ebcdic-cp037"])
    assert decoded == {**SMALL_MESSAGE, "p": "7020000000801200"}


def test_exact_bytes_where_cp1047_and_cp037_and_cp500_differ() -> None:
    message = {"t": "0200", "103": "[12]^34!|"}
    bitmaps = b"\x80\x00\x00\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x00\x02\x00\x00\x00"
    by_variant = {
        "ebcdic-cp037": b"\xba\xf1\xf2\xbb\xb0\xf3\xf4\x5a\x4f",
        "ebcdic-cp500": b"\x4a\xf1\xf2\x5a\x5f\xf3\xf4\x4f\xbb",
        "ebcdic-cp1047": b"\xad\xf1\xf2\xbd\x5f\xf3\xf4\x5a\x4f",
    }
    for variant, data in by_variant.items():
        raw, _ = iso8583.encode(dict(message), SPECS[variant])
        assert bytes(raw) == b"\xf0\xf2\xf0\xf0" + bitmaps + b"\xf0\xf9" + data, variant


# --- pyiso8583 edge cases, pinned ---------------------------------------------------------------


def _zero_secondary_bitmap_message(variant: str) -> bytes:
    """A 0800 with bit 1 set, an all-zero secondary bitmap and field 11, built by hand."""
    text = SPECS[variant]["t"]["data_enc"]
    if variant == "ascii":
        bitmaps = ("8020000000000000" + "0" * 16).encode(text)
    else:
        bitmaps = b"\x80\x20\x00\x00\x00\x00\x00\x00" + bytes(8)
    return "0800".encode(text) + bitmaps + "000001".encode(text)


@pytest.mark.parametrize("variant", VARIANTS)
def test_all_zero_secondary_bitmap_is_accepted(variant: str) -> None:
    raw = _zero_secondary_bitmap_message(variant)
    decoded, _ = iso8583.decode(raw, SPECS[variant])
    assert decoded == {
        "t": "0800",
        "p": "8020000000000000",
        "1": "0000000000000000",
        "11": "000001",
    }
    # pyiso8583 recomputes bitmaps on encode: the empty secondary bitmap and bit 1 are
    # dropped, so such a message does not re-encode to the same bytes.
    again, _ = iso8583.encode(decoded, SPECS[variant])
    assert decoded["p"] == "0020000000000000"
    assert "1" not in decoded
    assert len(again) == len(raw) - (16 if variant == "ascii" else 8)


def test_bit_65_makes_pyiso8583_read_a_tertiary_bitmap() -> None:
    spec = SPECS["ascii"]
    empty_tertiary = b"0800" + b"8000000000000000" + b"8000000000000000" + b"0" * 16
    decoded, _ = iso8583.decode(empty_tertiary, spec)
    assert decoded["1"] == "8000000000000000" + "0" * 16
    # A field above 128 is outside these (1987) specs: pyiso8583 raises KeyError, not
    # DecodeError. Callers must treat KeyError from iso8583.decode as malformed input.
    with_field_129 = b"0800" + b"8000000000000000" + b"8000000000000000" + b"8" + b"0" * 15
    with pytest.raises(KeyError, match="129"):
        iso8583.decode(with_field_129, spec)


def test_decode_error_reports_field_and_offset_but_carries_the_input() -> None:
    truncated = b"0200" + b"7000000000000000" + b"16" + b"41111111"
    with pytest.raises(iso8583.DecodeError) as caught:
        iso8583.decode(truncated, SPECS["ascii"])
    error = caught.value
    assert (error.field, error.pos) == ("2", 22)
    assert str(error) == "Field data is 8 bytes, expecting 16: field 2 pos 22"
    assert "4111" not in str(error)
    assert error.s == truncated  # the raw message rides along: never log the object itself


def test_numeric_fields_are_not_validated_by_pyiso8583() -> None:
    decoded, _ = iso8583.decode(b"0200" + b"2000000000000000" + b"ABCDEF", SPECS["ascii"])
    assert decoded["3"] == "ABCDEF"


def test_ascii_variant_rejects_8_bit_text() -> None:
    with pytest.raises(iso8583.EncodeError, match="field 43"):
        iso8583.encode({"t": "0200", "43": "\u00e9" * 40}, SPECS["ascii"])
    with pytest.raises(iso8583.DecodeError, match="field 39"):
        iso8583.decode(b"0210" + b"0000000002000000" + b"0\xe9", SPECS["ascii"])
