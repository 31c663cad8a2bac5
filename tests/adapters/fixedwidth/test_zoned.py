"""Zoned decimal: every overpunched digit in EBCDIC and both ASCII conventions, SIGN
LEADING / TRAILING, SEPARATE, errors naming the byte, property round trips."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.fixedwidth.errors import FieldValueError
from adapters.fixedwidth.zoned import (
    Overpunch,
    separate_sign_decoder,
    separate_sign_encoder,
    zoned_decoder,
    zoned_encoder,
)

# last byte of +1d / -1d for d = 0..9, per convention (IBM, GnuCOBOL -fsign=EBCDIC, GnuCOBOL)
EBCDIC_POSITIVE = bytes(range(0xC0, 0xCA))
EBCDIC_NEGATIVE = bytes(range(0xD0, 0xDA))
TEXT_POSITIVE = b"{ABCDEFGHI"
TEXT_NEGATIVE = b"}JKLMNOPQR"
GNU_NEGATIVE = b"pqrstuvwxy"


@pytest.mark.parametrize("digit", range(10))
def test_every_overpunched_digit(digit: int) -> None:
    ebcdic = zoned_decoder(digits=2, scale=0, signed=True, codepage="cp037")
    assert ebcdic(bytes((0xF1, EBCDIC_POSITIVE[digit]))) == 10 + digit
    assert ebcdic(bytes((0xF1, EBCDIC_NEGATIVE[digit]))) == -(10 + digit)
    assert ebcdic(bytes((0xF1, 0xF0 + digit))) == 10 + digit
    text = zoned_decoder(digits=2, scale=0, signed=True, codepage="ascii", overpunch="ebcdic")
    assert text(b"1" + TEXT_POSITIVE[digit : digit + 1]) == 10 + digit
    assert text(b"1" + TEXT_NEGATIVE[digit : digit + 1]) == -(10 + digit)
    gnu = zoned_decoder(digits=2, scale=0, signed=True, codepage="ascii", overpunch="ascii")
    assert gnu(b"1" + bytes((0x30 + digit,))) == 10 + digit
    assert gnu(b"1" + GNU_NEGATIVE[digit : digit + 1]) == -(10 + digit)
    for codepage, overpunch, negative in [
        ("cp037", "ebcdic", EBCDIC_NEGATIVE),
        ("ascii", "ebcdic", TEXT_NEGATIVE),
        ("ascii", "ascii", GNU_NEGATIVE),
    ]:
        encode = zoned_encoder(
            digits=2,
            scale=0,
            signed=True,
            codepage=codepage,
            overpunch=overpunch,  # type: ignore[arg-type]
        )
        assert encode(-(10 + digit))[-1] == negative[digit]


def test_sign_leading_overpunch() -> None:
    decode = zoned_decoder(digits=4, scale=0, signed=True, codepage="cp037", leading=True)
    encode = zoned_encoder(digits=4, scale=0, signed=True, codepage="cp037", leading=True)
    assert encode(-987).hex() == "d0f9f8f7"
    assert decode(bytes.fromhex("d0f9f8f7")) == -987
    assert decode(bytes.fromhex("c1f2f3f4")) == 1234


def test_sign_separate_leading_and_trailing() -> None:
    lead = separate_sign_encoder(digits=5, scale=1, leading=True, codepage="cp037")
    trail = separate_sign_encoder(digits=5, scale=0, leading=False, codepage="ascii")
    assert lead(Decimal("-1234.5")).hex() == "60f1f2f3f4f5"
    assert trail(4321) == b"04321+"
    assert (
        separate_sign_decoder(digits=5, scale=0, leading=False, codepage="ascii")(b"04321-")
        == -4321
    )
    with pytest.raises(FieldValueError, match="separate sign byte 0x20") as info:
        separate_sign_decoder(digits=5, scale=0, leading=False, codepage="ascii")(b"04321 ")
    assert info.value.position == 5
    with pytest.raises(FieldValueError, match="zoned digit byte 0x41") as info:
        separate_sign_decoder(digits=5, scale=0, leading=True, codepage="ascii")(b"+04A21")
    assert info.value.position == 3


@pytest.mark.parametrize(
    ("raw", "signed", "position", "reason"),
    [
        (bytes.fromhex("f1404040"), True, 1, "zoned digit byte 0x40"),
        (bytes.fromhex("f1f2f34b"), True, 3, "zoned sign byte 0x4b"),
        (bytes.fromhex("f1f2f3d4"), False, 3, "negative zone"),
        (bytes.fromhex("f1c2f3c4"), True, 1, "zoned digit byte 0xc2"),
    ],
)
def test_invalid_bytes_are_named(raw: bytes, signed: bool, position: int, reason: str) -> None:
    with pytest.raises(FieldValueError, match=reason) as info:
        zoned_decoder(digits=4, scale=0, signed=signed, codepage="cp037")(raw)
    assert info.value.position == position


def test_unsigned_fields_write_the_f_zone() -> None:
    assert zoned_encoder(digits=3, scale=0, signed=False, codepage="cp037")(42).hex() == "f0f4f2"
    with pytest.raises(ValueError, match="negative value"):
        zoned_encoder(digits=3, scale=0, signed=False, codepage="cp037")(-1)


CONVENTIONS = [
    ("cp037", "ebcdic"),
    ("cp500", "ebcdic"),
    ("cp1047", "ebcdic"),
    ("cp273", "ebcdic"),
    ("ascii", "ebcdic"),
    ("ascii", "ascii"),
]


@given(
    st.sampled_from(CONVENTIONS),
    st.booleans(),
    st.integers(1, 18).flatmap(
        lambda d: st.tuples(st.just(d), st.integers(0, d), st.integers(-(10**d) + 1, 10**d - 1))
    ),
)
def test_round_trip(
    convention: tuple[str, Overpunch], leading: bool, case: tuple[int, int, int]
) -> None:
    codepage, overpunch = convention
    digits, scale, unscaled = case
    value = Decimal(f"{unscaled}E-{scale}") if scale else unscaled
    options = {"digits": digits, "scale": scale, "signed": True, "codepage": codepage}
    raw = zoned_encoder(leading=leading, overpunch=overpunch, **options)(value)  # type: ignore[arg-type]
    assert len(raw) == digits
    assert zoned_decoder(leading=leading, overpunch=overpunch, **options)(raw) == value  # type: ignore[arg-type]
    separate = separate_sign_encoder(digits=digits, scale=scale, leading=leading, codepage=codepage)
    back = separate_sign_decoder(digits=digits, scale=scale, leading=leading, codepage=codepage)
    assert back(separate(value)) == value
