"""COMP / COMP-4 / BINARY and COMP-5: IBM sizes, byte order, limits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.fixedwidth.binary import binary_decoder, binary_encoder, binary_size


@pytest.mark.parametrize(("digits", "size"), [(1, 2), (4, 2), (5, 4), (9, 4), (10, 8), (18, 8)])
def test_ibm_sizes(digits: int, size: int) -> None:
    assert binary_size(digits) == size


def test_more_than_18_digits_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 18"):
        binary_size(19)


def test_big_and_little_endian() -> None:
    assert binary_encoder(digits=4, scale=0, signed=True, native=False)(258).hex() == "0102"
    little = binary_encoder(digits=4, scale=0, signed=True, native=True, byteorder="little")
    assert little(258).hex() == "0201"
    assert binary_decoder(digits=4, scale=0, signed=True, byteorder="little")(b"\x02\x01") == 258


def test_comp_is_limited_by_the_picture_comp5_by_the_bytes() -> None:
    with pytest.raises(ValueError, match="more than 4 digits"):
        binary_encoder(digits=4, scale=0, signed=True, native=False)(10000)
    assert binary_encoder(digits=4, scale=0, signed=True, native=True)(32767).hex() == "7fff"
    with pytest.raises(ValueError, match="does not fit in 2 bytes"):
        binary_encoder(digits=4, scale=0, signed=True, native=True)(32768)
    assert binary_decoder(digits=4, scale=0, signed=False)(b"\xff\xff") == 65535


def test_scaled_binary() -> None:
    assert binary_encoder(digits=7, scale=2, signed=True, native=False)(Decimal("-12.34")) == (
        (-1234).to_bytes(4, "big", signed=True)
    )
    assert binary_decoder(digits=4, scale=-2, signed=True)(b"\x00\x05") == 500


@given(st.integers(1, 18), st.booleans(), st.data())
def test_round_trip(digits: int, signed: bool, data: st.DataObject) -> None:
    limit = 10**digits - 1
    value = data.draw(st.integers(-limit if signed else 0, limit))
    raw = binary_encoder(digits=digits, scale=0, signed=signed, native=False)(value)
    assert len(raw) == binary_size(digits)
    assert binary_decoder(digits=digits, scale=0, signed=signed)(raw) == value
