"""PIC X: padding, JUSTIFIED RIGHT, code pages, values that do not fit, undecodable bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.codepages import EBCDIC_CODEPAGES
from adapters.fixedwidth.alphanumeric import (
    alphanumeric_decoder,
    alphanumeric_encoder,
    text_decoder,
    text_encoder,
)
from adapters.fixedwidth.errors import FieldValueError


def test_padding_and_justification() -> None:
    assert alphanumeric_encoder(size=5, codepage="ascii")("AB") == b"AB   "
    assert alphanumeric_encoder(size=5, codepage="ascii", justified_right=True)("AB") == b"   AB"
    assert alphanumeric_decoder(codepage="ascii", justified_right=True)(b"   AB") == "AB"
    assert alphanumeric_decoder(codepage="ascii")(b" AB  ") == " AB"


def test_too_long_and_unencodable_values_are_refused() -> None:
    with pytest.raises(ValueError, match="6 characters do not fit in 5"):
        alphanumeric_encoder(size=5, codepage="cp037")("ABCDEF")
    with pytest.raises(ValueError, match="has no ascii byte"):
        alphanumeric_encoder(size=5, codepage="ascii")("Ä")
    with pytest.raises(ValueError, match="expected text"):
        alphanumeric_encoder(size=5, codepage="ascii")(5)


def test_undecodable_ascii_names_the_byte() -> None:
    with pytest.raises(FieldValueError, match="byte 0xc1 is not valid ascii") as info:
        alphanumeric_decoder(codepage="ascii")(b"AB\xc1")
    assert info.value.position == 2


@pytest.mark.parametrize("codepage", EBCDIC_CODEPAGES)
def test_text_decoder_matches_the_codec(codepage: str) -> None:
    every_byte = bytes(range(256))
    assert text_decoder(codepage)(every_byte) == every_byte.decode(codepage)


@pytest.mark.parametrize("codepage", [*EBCDIC_CODEPAGES, "ascii", "latin-1"])
def test_text_encoder_matches_the_codec(codepage: str) -> None:
    encode = text_encoder(codepage)
    for code in range(0x300):
        text = f"ab{chr(code)}"
        try:
            expected = text.encode(codepage)
        except UnicodeEncodeError as exc:
            with pytest.raises(UnicodeEncodeError) as refused:
                encode(text)
            assert refused.value.start == exc.start == 2
        else:
            assert encode(text) == expected


@given(st.sampled_from(EBCDIC_CODEPAGES), st.text(st.characters(codec="latin-1"), max_size=20))
def test_round_trip(codepage: str, text: str) -> None:
    encode = alphanumeric_encoder(size=20, codepage=codepage)
    try:
        raw = encode(text)
    except ValueError:
        return  # a character the page lacks (cp273 is not all of Latin-1)
    assert alphanumeric_decoder(codepage=codepage)(raw) == text.rstrip(" ")
