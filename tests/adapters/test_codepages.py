"""The EBCDIC code pages, in particular the ``cp1047`` codec that adapters.codepages adds."""

from __future__ import annotations

import codecs
import io

import pytest

from adapters import codepages
from adapters.codepages import CP1047_DECODING_TABLE, EBCDIC_CODEPAGES, ensure_codecs

ALL_BYTES = bytes(range(256))

# IBM CCSID 1047, row by row (0x00-0x0F, 0x10-0x1F, ...), written out from IBM's published
# code page layout, independently of the cp037-plus-overrides construction in the module.
CP1047_EXPECTED_ROWS = (
    "\x00\x01\x02\x03\x9c\t\x86\x7f\x97\x8d\x8e\x0b\x0c\r\x0e\x0f",
    "\x10\x11\x12\x13\x9d\x85\x08\x87\x18\x19\x92\x8f\x1c\x1d\x1e\x1f",
    "\x80\x81\x82\x83\x84\n\x17\x1b\x88\x89\x8a\x8b\x8c\x05\x06\x07",
    "\x90\x91\x16\x93\x94\x95\x96\x04\x98\x99\x9a\x9b\x14\x15\x9e\x1a",
    " \xa0âäàáãåçñ¢.<(+|",
    "&éêëèíîïìß!$*);^",
    "-/ÂÄÀÁÃÅÇÑ¦,%_>?",
    "øÉÊËÈÍÎÏÌ`:#@'=\"",
    "Øabcdefghi«»ðýþ±",
    "°jklmnopqrªºæ\xb8Æ¤",
    "µ~stuvwxyz¡¿Ð[Þ®",
    "¬£¥·©§¶¼½¾Ý¨¯]\xb4\xd7",
    "{ABCDEFGHI\xadôöòóõ",
    "}JKLMNOPQR¹ûüùúÿ",
    "\\÷STUVWXYZ²ÔÖÒÓÕ",
    "0123456789³ÛÜÙÚ\x9f",
)


@pytest.mark.parametrize("codepage", EBCDIC_CODEPAGES)
def test_every_byte_round_trips(codepage: str) -> None:
    text = ALL_BYTES.decode(codepage)
    assert len(text) == 256
    assert len(set(text)) == 256, "a code page must be a bijection over the 256 bytes"
    assert text.encode(codepage) == ALL_BYTES


@pytest.mark.parametrize("codepage", EBCDIC_CODEPAGES)
def test_every_code_page_is_registered(codepage: str) -> None:
    assert codecs.lookup(codepage).name == codepage


def test_codepage_list() -> None:
    assert EBCDIC_CODEPAGES == ("cp037", "cp500", "cp1047", "cp273")


def test_cp1047_matches_the_published_table() -> None:
    expected = "".join(CP1047_EXPECTED_ROWS)
    assert len(expected) == 256
    assert expected == CP1047_DECODING_TABLE
    assert ALL_BYTES.decode("cp1047") == expected


@pytest.mark.parametrize(
    ("byte", "in_cp037", "in_cp1047"),
    [
        (0x5F, "¬", "^"),
        (0xAD, "Ý", "["),
        (0xB0, "^", "¬"),
        (0xBA, "[", "Ý"),
        (0xBB, "]", "¨"),
        (0xBD, "¨", "]"),
    ],
)
def test_positions_where_1047_differs_from_037(byte: int, in_cp037: str, in_cp1047: str) -> None:
    assert bytes([byte]).decode("cp037") == in_cp037
    assert bytes([byte]).decode("cp1047") == in_cp1047
    assert in_cp1047.encode("cp1047") == bytes([byte])


def test_1047_and_037_differ_at_exactly_six_positions() -> None:
    in_037 = ALL_BYTES.decode("cp037")
    in_1047 = ALL_BYTES.decode("cp1047")
    differing = [i for i in range(256) if in_037[i] != in_1047[i]]
    assert differing == [0x5F, 0xAD, 0xB0, 0xBA, 0xBB, 0xBD]


def test_brackets_and_caret() -> None:
    assert "[]^".encode("cp1047") == b"\xad\xbd\x5f"
    assert b"\xad\xbd\x5f".decode("cp1047") == "[]^"


def test_newline_controls_are_the_standard_ccsid_1047_ones() -> None:
    assert b"\x15".decode("cp1047") == "\x85"  # NEL
    assert b"\x25".decode("cp1047") == "\n"  # LF
    assert "\n".encode("cp1047") == b"\x25"


def test_iso8583_text_is_the_same_as_cp037() -> None:
    text = "0200 Terminal-01 ACME/STORE 42, 1234567890 abc"
    assert text.encode("cp1047") == text.encode("cp037")
    assert "0200".encode("cp1047") == b"\xf0\xf2\xf0\xf0"


def test_unencodable_character_raises_unicode_error() -> None:
    with pytest.raises(UnicodeEncodeError):
        "€".encode("cp1047")
    assert "a€".encode("cp1047", errors="replace") == b"\x81\x6f"


@pytest.mark.parametrize("name", ["cp1047", "CP1047", "cp-1047", "ibm1047", "IBM-1047", "1047"])
def test_aliases(name: str) -> None:
    assert codecs.lookup(name).name == "cp1047"


def test_incremental_and_stream_interfaces() -> None:
    text = "[x]^¬"
    encoded = text.encode("cp1047")
    assert b"".join(codecs.iterencode(iter(text), "cp1047")) == encoded
    assert "".join(codecs.iterdecode((encoded[i : i + 1] for i in range(5)), "cp1047")) == text
    reader = codecs.getreader("cp1047")(io.BytesIO(encoded))
    assert reader.read() == text
    buffer = io.BytesIO()
    codecs.getwriter("cp1047")(buffer).write(text)
    assert buffer.getvalue() == encoded


def test_ensure_codecs_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(codecs, "register", calls.append)
    ensure_codecs()
    ensure_codecs()
    assert calls == [], "the search function was registered on import; never again"
    assert codepages.EBCDIC_CODEPAGES[2] == "cp1047"
    assert "^".encode("cp1047") == b"\x5f"
