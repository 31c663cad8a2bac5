"""COMP-3: known bytes, every sign nibble, errors naming the byte, property round trips."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.fixedwidth.errors import FieldValueError
from adapters.fixedwidth.packed import packed_decoder, packed_encoder, packed_size


@pytest.mark.parametrize(
    ("hex_bytes", "signed", "value"),
    [
        ("12345c", True, Decimal("123.45")),
        ("12345d", True, Decimal("-123.45")),
        ("12345f", True, Decimal("123.45")),
        ("12345a", True, Decimal("123.45")),
        ("12345e", True, Decimal("123.45")),
        ("12345b", True, Decimal("-123.45")),
        ("12345f", False, Decimal("123.45")),
        ("12345c", False, Decimal("123.45")),
        ("00000c", True, Decimal("0.00")),
    ],
)
def test_sign_nibbles(hex_bytes: str, signed: bool, value: Decimal) -> None:
    assert packed_decoder(digits=5, scale=2, signed=signed)(bytes.fromhex(hex_bytes)) == value


def test_preferred_signs_are_written() -> None:
    assert packed_encoder(digits=5, scale=2, signed=True)(Decimal("-1.5")).hex() == "00150d"
    assert packed_encoder(digits=5, scale=2, signed=True)(Decimal("1.5")).hex() == "00150c"
    assert packed_encoder(digits=5, scale=0, signed=False)(7).hex() == "00007f"
    assert packed_encoder(digits=4, scale=0, signed=True)(-1234).hex() == "01234d"


@pytest.mark.parametrize(
    ("hex_bytes", "signed", "position", "reason"),
    [
        ("1a345c", True, 0, "digit nibble 0xa"),
        ("12f45c", True, 1, "digit nibble 0xf"),
        ("123453", True, 2, "sign nibble 0x3"),
        ("12345d", False, 2, "negative sign nibble"),
    ],
)
def test_invalid_nibbles_name_the_byte(
    hex_bytes: str, signed: bool, position: int, reason: str
) -> None:
    with pytest.raises(FieldValueError, match=reason) as info:
        packed_decoder(digits=5, scale=0, signed=signed)(bytes.fromhex(hex_bytes))
    assert info.value.position == position


def test_even_digit_counts_need_a_zero_pad_nibble() -> None:
    decode = packed_decoder(digits=4, scale=0, signed=True)
    assert decode(bytes.fromhex("01234c")) == 1234
    with pytest.raises(FieldValueError, match="pad nibble"):
        decode(bytes.fromhex("11234c"))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (Decimal("1000.00"), "more than 5 digits"),
        (Decimal("0.001"), "decimal places"),
        (1.5, "expected an int or a Decimal"),
        (True, "boolean"),
    ],
)
def test_values_that_do_not_fit(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        packed_encoder(digits=5, scale=2, signed=True)(value)


@given(
    st.integers(1, 31).flatmap(
        lambda digits: st.tuples(
            st.just(digits),
            st.integers(0, digits),
            st.integers(-(10**digits) + 1, 10**digits - 1),
        )
    )
)
def test_round_trip(case: tuple[int, int, int]) -> None:
    digits, scale, unscaled = case
    value = Decimal(f"{unscaled}E-{scale}") if scale else unscaled
    raw = packed_encoder(digits=digits, scale=scale, signed=True)(value)
    assert len(raw) == packed_size(digits)
    assert packed_decoder(digits=digits, scale=scale, signed=True)(raw) == value


@given(st.binary(min_size=1, max_size=10))
def test_any_bytes_decode_or_raise_field_value_error(raw: bytes) -> None:
    digits = len(raw) * 2 - 1
    try:
        value = packed_decoder(digits=digits, scale=0, signed=True)(raw)
    except FieldValueError as exc:
        assert 0 <= exc.position < len(raw)
    else:
        assert (
            packed_encoder(digits=digits, scale=0, signed=True)(value) == raw
            or raw.hex()[-1] in "abef"  # alternative signs are written as C / D
            or value == 0  # an int has no negative zero
        )
