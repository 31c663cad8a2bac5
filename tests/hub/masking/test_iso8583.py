"""Masking ISO 8583 captures: every sample masked, decodable, and free of its card data."""

from __future__ import annotations

import datetime as dt
import io

import iso8583
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import DecodeContext
from adapters.framing import FrameDecoder, get_framer
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.emv import parse_tlv
from adapters.iso8583.samples import SAMPLES, TEST_PANS, sample_bytes
from adapters.iso8583.specs import SPECS
from canonical_model.pan import luhn_valid
from hub.masking.iso8583 import Iso8583Masker
from hub.masking.values import Masker, MaskingKey, RecordMaskingError, luhn_check_digit
from vault.memory import InMemoryVault

MASKER = Masker(MaskingKey(bytes(range(32))))
NOW = dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC)


def capture(variant: str, framing: str, names: list[str] | None = None) -> bytes:
    framer = get_framer(framing)
    header = b"\x60\x00\x03\x00\x00" if framing == "len2-tpdu" else b""
    return b"".join(
        framer.frame(sample_bytes(name, variant), header) for name in names or list(SAMPLES)
    )


def masked_capture(data: bytes, variant: str = "ascii", framing: str = "len2-binary") -> bytes:
    sink = io.BytesIO()
    Iso8583Masker(MASKER, variant=variant, framing=framing).mask_stream(io.BytesIO(data), sink)
    return sink.getvalue()


def messages(data: bytes, variant: str, framing: str) -> list[dict[str, str]]:
    frames = FrameDecoder(get_framer(framing)).feed(data)
    return [iso8583.decode(frame.payload, SPECS[variant])[0] for frame in frames]


@pytest.mark.parametrize(
    ("variant", "framing"),
    [("ascii", "len2-binary"), ("ebcdic-cp037", "len4-binary"), ("ascii", "len2-tpdu")],
)
def test_every_sample_masks_and_still_decodes(variant: str, framing: str) -> None:
    original = capture(variant, framing)
    masked = masked_capture(original, variant, framing)
    before, after = messages(original, variant, framing), messages(masked, variant, framing)
    assert len(after) == len(SAMPLES)
    adapter = Iso8583Adapter(variant)
    vault = InMemoryVault()
    for frame in FrameDecoder(get_framer(framing)).feed(masked):
        adapter.decode(frame.payload, DecodeContext("t", vault, now=lambda: NOW))
    for old, new in zip(before, after, strict=True):
        assert old.keys() == new.keys()
        for field in ("t", "3", "4", "7", "11", "37", "41", "42", "43", "49", "90"):
            assert old.get(field) == new.get(field)


def test_no_card_data_survives() -> None:
    original = capture("ascii", "len2-binary")
    masked = masked_capture(original)
    for pan in TEST_PANS:
        assert pan.encode() not in masked
        assert pan[6:].encode() not in masked
    for secret in ("GB33BUKB20201555555555", "1A2B3C4D5E6F7081", "47617390010100"):
        assert secret.encode() not in masked
    assert b"=28122011234567890000" not in masked  # track 2 discretionary data


def test_the_same_card_is_masked_alike_in_every_field() -> None:
    masked = messages(masked_capture(capture("ascii", "len2-binary")), "ascii", "len2-binary")
    by_mti = {doc["t"] + doc.get("3", "") + doc["11"]: doc for doc in masked}
    authorization = by_mti["0100000000000001"]
    pan = authorization["2"]
    assert pan[:6] == TEST_PANS[0][:6] and luhn_valid(pan)
    chip = {tag.tag: tag.value for tag in parse_tlv(bytes.fromhex(authorization["55"]))}
    assert chip["5A"] == pan
    purchase = by_mti["0200000000000002"]
    track_pan, _, rest = purchase["35"].partition("=")
    assert luhn_valid(track_pan) and rest[:7] == "2812201"
    reversal = by_mti["0420000000000004"]
    assert reversal["2"] == track_pan  # 0200 track 2 and 0420 field 2: the same card


def test_private_fields_need_a_rule() -> None:
    raw = bytes(
        iso8583.encode({"t": "0200", "11": "000001", "48": "CUSTOMER DATA"}, SPECS["ascii"])[0]
    )
    data = get_framer("len2-binary").frame(raw)
    with pytest.raises(RecordMaskingError, match="message 1, field 48: additional or private"):
        masked_capture(data)
    sink = io.BytesIO()
    Iso8583Masker(MASKER, rules={"48": "text"}).mask_stream(io.BytesIO(data), sink)
    assert b"CUSTOMER DATA" not in sink.getvalue()
    dropped = io.BytesIO()
    Iso8583Masker(MASKER, rules={"48": "drop"}).mask_stream(io.BytesIO(data), dropped)
    assert "48" not in messages(dropped.getvalue(), "ascii", "len2-binary")[0]


def test_a_card_number_in_a_kept_field_fails() -> None:
    raw = bytes(
        iso8583.encode({"t": "0200", "11": "000001", "44": "4111111111111111"}, SPECS["ascii"])[0]
    )
    with pytest.raises(RecordMaskingError, match="field 44: holds a card number"):
        masked_capture(get_framer("len2-binary").frame(raw))


def test_bad_input_names_message_field_and_offset() -> None:
    good = capture("ascii", "len2-binary", ["0800-echo"])
    bad = get_framer("len2-binary").frame(b"0200" + b"7" * 16 + b"xx")
    with pytest.raises(RecordMaskingError, match=r"message 2, field .* \(offset \d+\)") as caught:
        masked_capture(good + bad)
    assert caught.value.record == 2
    with pytest.raises(RecordMaskingError, match="ends inside a frame"):
        masked_capture(good + b"\x00\x40abc")


def test_hex_lines() -> None:
    text = "\n".join(sample_bytes(name, "ascii").hex() for name in SAMPLES).encode() + b"\n"
    sink = io.BytesIO()
    count = Iso8583Masker(MASKER, framing="hex-lines").mask_stream(io.BytesIO(text), sink)
    assert count == len(SAMPLES)
    lines = sink.getvalue().split()
    assert all(TEST_PANS[0].encode().hex().encode() not in line.lower() for line in lines)
    assert iso8583.decode(bytes.fromhex(lines[0].decode()), SPECS["ascii"])[0]["t"] == "0100"


@st.composite
def purchases(draw: st.DrawFn) -> dict[str, str]:
    body = draw(st.text(alphabet="0123456789", min_size=12, max_size=18))
    pan = body + luhn_check_digit(body)
    expiry = draw(st.from_regex(r"[0-9]{2}(0[1-9]|1[0-2])", fullmatch=True))
    discretionary = draw(st.text(alphabet="0123456789", max_size=37 - len(pan) - 8))
    return {
        "t": "0200",
        "2": pan,
        "3": "000000",
        "4": draw(st.from_regex(r"[0-9]{12}", fullmatch=True)),
        "11": draw(st.from_regex(r"[0-9]{6}", fullmatch=True)),
        "35": f"{pan}={expiry}101{discretionary}",
        "41": "TERM0001",
        "49": "978",
    }


@settings(max_examples=50)
@given(purchases())
def test_masked_messages_round_trip(fields: dict[str, str]) -> None:
    raw = bytes(iso8583.encode(dict(fields), SPECS["ascii"])[0])
    masker = Iso8583Masker(MASKER)
    masked = masker.mask_message(raw)
    assert masker.mask_message(raw) == masked
    doc = iso8583.decode(masked, SPECS["ascii"])[0]
    pan = doc["2"]
    assert len(pan) == len(fields["2"]) and luhn_valid(pan) and pan != fields["2"]
    assert pan[: min(6, len(pan) - 7)] == fields["2"][: min(6, len(pan) - 7)]
    track_pan, _, rest = doc["35"].partition("=")
    assert track_pan == pan and rest[:7] == fields["35"].partition("=")[2][:7]
    assert len(doc["35"]) == len(fields["35"])
    for key in ("t", "3", "4", "11", "41", "49"):
        assert doc[key] == fields[key]
