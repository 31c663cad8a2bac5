"""BER-TLV for EMV chip data: known samples, errors with offsets, property-based round trips."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.iso8583 import emv
from adapters.iso8583.emv import MAX_VALUE_LENGTH, TlvError, build_tlv, build_tlv_hex, parse_tlv
from canonical_model.messages import EmvTag

# An ARQC request's field 55, object by object (tag, value), as a terminal sends it.
ARQC_SAMPLE: tuple[tuple[str, str], ...] = (
    ("9F26", "1A2B3C4D5E6F7081"),  # application cryptogram
    ("9F27", "80"),  # cryptogram information data: ARQC
    ("9F10", "0110A00003220000000000000000000000FF"),  # issuer application data, 18 bytes
    ("9F37", "9BADBCAB"),  # unpredictable number
    ("9F36", "0001"),  # application transaction counter
    ("95", "0000008000"),  # terminal verification results
    ("9A", "231128"),  # transaction date
    ("9C", "00"),  # transaction type
    ("9F02", "000000001050"),  # amount, authorised
    ("5F2A", "0978"),  # transaction currency code (EUR)
    ("82", "3900"),  # application interchange profile
    ("9F1A", "0276"),  # terminal country code
    ("9F03", "000000000000"),  # amount, other
    ("9F33", "E0F8C8"),  # terminal capabilities
    ("84", "A0000000041010"),  # dedicated file name (AID)
)


# The same, encoded by hand.
ARQC_SAMPLE_HEX = (
    "9F2608 1A2B3C4D5E6F7081"
    "9F2701 80"
    "9F1012 0110A00003220000000000000000000000FF"
    "9F3704 9BADBCAB"
    "9F3602 0001"
    "9505 0000008000"
    "9A03 231128"
    "9C01 00"
    "9F0206 000000001050"
    "5F2A02 0978"
    "8202 3900"
    "9F1A02 0276"
    "9F0306 000000000000"
    "9F3303 E0F8C8"
    "8407 A0000000041010"
)


def test_known_sample_parses_and_rebuilds() -> None:
    data = bytes.fromhex(ARQC_SAMPLE_HEX)
    tags = parse_tlv(data)
    assert tags == tuple(EmvTag(tag, value) for tag, value in ARQC_SAMPLE)
    assert build_tlv(tags) == data


@pytest.mark.parametrize(
    ("encoded", "tag", "value"),
    [
        ("9F26081A2B3C4D5E6F7081", "9F26", "1A2B3C4D5E6F7081"),
        ("9F0206000000001050", "9F02", "000000001050"),
        ("5F2A020978", "5F2A", "0978"),
        ("82023900", "82", "3900"),
        ("95050000008000", "95", "0000008000"),
        (
            "9F10120110A00003220000000000000000000000FF",
            "9F10",
            "0110A00003220000000000000000000000FF",
        ),
        ("DF810103ABCDEF", "DF8101", "ABCDEF"),  # three-byte tag
        ("9F0300", "9F03", ""),  # empty value
    ],
)
def test_known_elements(encoded: str, tag: str, value: str) -> None:
    data = bytes.fromhex(encoded)
    assert parse_tlv(data) == (EmvTag(tag, value),)
    assert build_tlv([EmvTag(tag, value)]) == data


def test_long_form_length_0x81() -> None:
    # Signed dynamic application data: as long as the ICC public key modulus (here 128).
    value = bytes(range(128))
    data = bytes.fromhex("9F4B8180") + value + bytes.fromhex("9F360200FF")
    tags = parse_tlv(data)
    assert tags == (EmvTag("9F4B", value.hex().upper()), EmvTag("9F36", "00FF"))
    assert build_tlv(tags) == data


def test_long_form_length_0x82() -> None:
    value = bytes(300)
    data = bytes.fromhex("DF01 82 012C") + value
    assert parse_tlv(data) == (EmvTag("DF01", "00" * 300),)
    assert build_tlv(parse_tlv(data)) == data


@pytest.mark.parametrize(
    ("length", "encoded_length"),
    [(0, "00"), (127, "7F"), (128, "8180"), (255, "81FF"), (256, "820100"), (65535, "82FFFF")],
)
def test_build_uses_the_minimal_length_form(length: int, encoded_length: str) -> None:
    built = build_tlv([EmvTag("C1", "00" * length)])
    assert built[: 1 + len(encoded_length) // 2] == bytes.fromhex("C1" + encoded_length)
    assert len(built) == 1 + len(encoded_length) // 2 + length


@pytest.mark.parametrize(
    ("non_minimal", "minimal"),
    [
        ("9F02 81 06 000000001050", "9F02 06 000000001050"),
        ("82 82 0002 3900", "82 02 3900"),
        ("9F4B 82 0080" + "00" * 128, "9F4B 81 80" + "00" * 128),
    ],
)
def test_non_minimal_lengths_are_accepted_and_normalised(non_minimal: str, minimal: str) -> None:
    tags = parse_tlv(bytes.fromhex(non_minimal))
    assert tags == parse_tlv(bytes.fromhex(minimal))
    assert build_tlv(tags) == bytes.fromhex(minimal)


def test_constructed_objects_stay_opaque() -> None:
    inner = "9F02060000000010505F2A020978"
    data = bytes.fromhex("70 0E" + inner + "9F2701 80")
    assert parse_tlv(data) == (EmvTag("70", inner), EmvTag("9F27", "80"))
    assert build_tlv(parse_tlv(data)) == data


def test_padding_bytes_between_objects_are_skipped() -> None:
    data = bytes.fromhex("00 00 9F2701 80 00 FF FF 82 02 3900 00")
    tags = parse_tlv(data)
    assert tags == (EmvTag("9F27", "80"), EmvTag("82", "3900"))
    assert build_tlv(tags) == bytes.fromhex("9F270180 82023900")
    assert parse_tlv(b"\x00\xff\x00") == ()


def test_empty_input() -> None:
    assert parse_tlv(b"") == ()
    assert build_tlv([]) == b""


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "offset", "reason"),
    [
        # truncated tag
        ("9F", 0, "tag truncated"),
        ("DF81", 0, "tag truncated"),
        ("9F2701 80 5F", 4, "tag truncated"),
        # truncated length
        ("9F02", 2, "length missing"),
        ("9F2701 80 82", 5, "length missing"),
        ("9F02 81", 2, "length truncated"),
        ("9F02 82 01", 2, "length truncated"),
        ("82 80 3900 0000", 1, "indefinite length"),
        ("82 83 000002 3900", 1, "at most 3"),
        # value past the end
        ("9F02 06 0000000010", 3, "past the end"),
        ("9F2701 80 9F4B 81 80 00", 8, "past the end"),
        ("9F10 82 0100" + "00" * 255, 5, "past the end"),
    ],
)
def test_errors_carry_the_offset(encoded: str, offset: int, reason: str) -> None:
    with pytest.raises(TlvError) as caught:
        parse_tlv(bytes.fromhex(encoded))
    assert caught.value.offset == offset
    assert reason in caught.value.reason
    assert str(caught.value) == f"BER-TLV error at offset {offset}: {caught.value.reason}"


def test_errors_never_contain_the_data() -> None:
    secret = "4111111111111111"
    data = bytes.fromhex("5A08" + secret + "57 13" + secret + "D2512101")
    with pytest.raises(TlvError) as caught:
        parse_tlv(data)
    error = caught.value
    for text in (str(error), repr(error), error.reason):
        assert "4111" not in text
        assert "D2512" not in text
        assert data.hex() not in text.lower()
    assert isinstance(error, ValueError)


def test_tlv_error_pickles() -> None:
    error = TlvError(7, "value of 6 bytes runs past the end")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.offset, copy.reason, str(copy)) == (error.offset, error.reason, str(error))


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        ("9F0", "00", "hex"),
        ("9F 02", "00", "hex"),
        ("XY", "00", "hex"),
        ("9F02", "0", "hex"),
        ("9F02", "ZZ", "hex"),
        ("9F02", "00 11", "hex"),
        ("", "00", "empty tag"),
        ("00", "00", "00 or FF"),
        ("FF01", "00", "00 or FF"),
        ("9F", "00", "has none"),
        ("0102", "00", "trailing"),
        ("9F82", "00", "bit 8"),
        ("DF0181", "00", "bit 8"),
    ],
)
def test_build_refuses_malformed_objects(tag: str, value: str, reason: str) -> None:
    good = EmvTag("9F27", "80")
    with pytest.raises(TlvError) as caught:
        build_tlv([good, EmvTag(tag, value)])
    assert caught.value.offset == 4  # where the second object would start
    assert reason in caught.value.reason


def test_build_refuses_too_long_values() -> None:
    with pytest.raises(TlvError, match="exceeds"):
        build_tlv([EmvTag("DF01", "00" * (MAX_VALUE_LENGTH + 1))])


def test_build_accepts_lower_case_hex_and_parse_gives_upper_case() -> None:
    built = build_tlv([EmvTag("9f26", "1a2b3c4d5e6f7081")])
    assert built == bytes.fromhex("9F26081A2B3C4D5E6F7081")
    assert parse_tlv(built) == (EmvTag("9F26", "1A2B3C4D5E6F7081"),)


# --- properties --------------------------------------------------------------------------------


@st.composite
def ber_tags(draw: st.DrawFn) -> str:
    """A well-formed BER tag (1 to 4 bytes) that does not start with a padding byte."""
    first = draw(st.integers(min_value=0x01, max_value=0xFE))
    if first & 0x1F != 0x1F:
        return f"{first:02X}"
    middle = draw(st.lists(st.integers(min_value=0x80, max_value=0xFF), max_size=2))
    last = draw(st.integers(min_value=0x00, max_value=0x7F))
    return bytes([first, *middle, last]).hex().upper()


emv_tags = st.builds(
    EmvTag,
    tag=ber_tags(),
    value=st.binary(max_size=300).map(lambda value: value.hex().upper()),
)


@given(st.lists(emv_tags, max_size=8))
def test_round_trip_of_random_tag_lists(tags: list[EmvTag]) -> None:
    data = build_tlv(tags)
    assert parse_tlv(data) == tuple(tags)
    assert build_tlv(parse_tlv(data)) == data


@given(st.lists(emv_tags, min_size=1, max_size=6), st.data())
def test_truncation_inside_an_object_is_an_error_at_or_before_the_cut(
    tags: list[EmvTag], data: st.DataObject
) -> None:
    encoded = build_tlv(tags)
    starts = [0]
    for tag in tags:
        starts.append(starts[-1] + len(build_tlv([tag])))
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    if cut in starts:
        assert parse_tlv(encoded[:cut]) == tuple(tags[: starts.index(cut)])
        return
    truncated_start = max(start for start in starts if start < cut)
    with pytest.raises(TlvError) as caught:
        parse_tlv(encoded[:cut])
    assert truncated_start <= caught.value.offset <= cut


@given(st.binary(max_size=600))
def test_random_bytes_raise_nothing_but_tlv_error(data: bytes) -> None:
    outcome: tuple[EmvTag, ...] | TlvError
    try:
        outcome = parse_tlv(data)
    except TlvError as error:  # anything else fails the test
        outcome = error
    if isinstance(outcome, TlvError):
        assert 0 <= outcome.offset <= len(data)
    else:
        assert parse_tlv(build_tlv(outcome)) == outcome
        assert len(build_tlv(outcome)) <= len(data)


_ODD_TAGS = ["", "9F", "9f26", "00", "FF", "1F", "9F8", "9F2G", "5F2A00", "\u00e9\u00e9", "DF8101"]
_ODD_VALUES = ["", "A", "0a", "GG", "0 ", "\u00e9\u00e9", "AB" * 300, "ab" * 0x80]


@given(
    st.lists(
        st.builds(
            EmvTag,
            tag=st.sampled_from(_ODD_TAGS) | ber_tags(),
            value=st.sampled_from(_ODD_VALUES) | st.binary(max_size=140).map(bytes.hex),
        ),
        max_size=6,
    )
)
def test_build_gives_the_checked_builds_output_or_error(tags: list[EmvTag]) -> None:
    # build_tlv_hex joins and checks the whole at once; its checked twin goes object by
    # object and names the one at fault. Both must agree on everything.
    outcomes: list[str | tuple[int, str]] = []
    for build in (build_tlv_hex, emv._checked_build_tlv_hex):
        try:
            outcomes.append(build(tuple(tags)))
        except TlvError as error:
            outcomes.append((error.offset, error.reason))
    assert outcomes[0] == outcomes[1]
