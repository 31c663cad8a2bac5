"""The framers of adapters.framing: wire layouts, partial reads, guards and errors."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.framing import (
    DEFAULT_MAX_PAYLOAD,
    FRAMERS,
    TPDU_SIZE,
    BadLengthHeaderError,
    Frame,
    FrameDecoder,
    Framer,
    FrameTooLargeError,
    FramingError,
    Len2BcdFramer,
    Len2BinaryFramer,
    Len2TpduFramer,
    Len4AsciiFramer,
    Len4BinaryFramer,
    UnknownFramingError,
    get_framer,
    tpdu_reply,
)

NAMES = sorted(FRAMERS)
TPDU = bytes.fromhex("6000030000")
# How many bytes of length prefix each framing writes.
PREFIX_SIZE = {
    "len2-binary": 2,
    "len4-binary": 4,
    "len4-ascii": 4,
    "len2-bcd": 2,
    "len2-tpdu": 2,
}


def header_for(name: str) -> bytes:
    """The header a frame of ``name`` carries: a TPDU for len2-tpdu, else none."""
    return TPDU if name == "len2-tpdu" else b""


def test_registry_holds_the_five_framings() -> None:
    assert set(FRAMERS) == set(PREFIX_SIZE)
    assert FRAMERS["len2-binary"] is Len2BinaryFramer
    assert FRAMERS["len4-binary"] is Len4BinaryFramer
    assert FRAMERS["len4-ascii"] is Len4AsciiFramer
    assert FRAMERS["len2-bcd"] is Len2BcdFramer
    assert FRAMERS["len2-tpdu"] is Len2TpduFramer


@pytest.mark.parametrize("name", NAMES)
def test_get_framer_builds_a_framer(name: str) -> None:
    framer = get_framer(name)
    assert isinstance(framer, Framer)
    assert framer.name == name
    assert framer.max_payload == DEFAULT_MAX_PAYLOAD
    assert get_framer(name, max_payload=100).max_payload == 100


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [0, 1, 123, DEFAULT_MAX_PAYLOAD])
def test_round_trip(name: str, size: int) -> None:
    framer = get_framer(name)
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    framed = framer.frame(payload, header_for(name))
    assert framer.deframe(framed) == (Frame(payload, header_for(name)), len(framed))


@pytest.mark.parametrize(
    ("name", "payload", "header", "wire"),
    [
        ("len2-binary", b"A" * 123, b"", b"\x00\x7b" + b"A" * 123),
        ("len2-binary", b"A" * 300, b"", b"\x01\x2c" + b"A" * 300),
        ("len4-binary", b"A" * 123, b"", b"\x00\x00\x00\x7b" + b"A" * 123),
        ("len4-binary", b"A" * 300, b"", b"\x00\x00\x01\x2c" + b"A" * 300),
        ("len4-ascii", b"A" * 123, b"", b"0123" + b"A" * 123),
        ("len4-ascii", b"0800", b"", b"00040800"),
        ("len2-bcd", b"A" * 123, b"", b"\x01\x23" + b"A" * 123),
        ("len2-bcd", b"A" * 9, b"", b"\x00\x09" + b"A" * 9),
        ("len2-tpdu", b"A" * 123, TPDU, b"\x00\x80" + TPDU + b"A" * 123),
        ("len2-tpdu", b"0800", TPDU, b"\x00\x09\x60\x00\x03\x00\x000800"),
        ("len2-tpdu", b"", TPDU, b"\x00\x05" + TPDU),
    ],
)
def test_wire_layout(name: str, payload: bytes, header: bytes, wire: bytes) -> None:
    framer = get_framer(name)
    assert framer.frame(payload, header) == wire
    assert framer.deframe(wire) == (Frame(payload, header), len(wire))


@pytest.mark.parametrize("name", NAMES)
def test_zero_length_is_an_empty_keep_alive_frame(name: str) -> None:
    framer = get_framer(name)
    wire = framer.frame(b"")
    assert wire == (b"0000" if name == "len4-ascii" else bytes(PREFIX_SIZE[name]))
    assert framer.deframe(wire + b"more") == (Frame(b""), PREFIX_SIZE[name])


@pytest.mark.parametrize("name", NAMES)
def test_deframe_waits_for_a_complete_frame(name: str) -> None:
    framer = get_framer(name)
    framed = framer.frame(b"0800 message", header_for(name))
    for cut in range(len(framed)):
        assert framer.deframe(framed[:cut]) == (None, 0)
    trailing = framed + b"\x00\x00\x00"
    assert framer.deframe(trailing) == (Frame(b"0800 message", header_for(name)), len(framed))


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_deframe_takes_any_bytes_like(kind: type[bytes | bytearray | memoryview]) -> None:
    framer = get_framer("len2-binary")
    assert framer.deframe(kind(b"\x00\x02hi")) == (Frame(b"hi"), 4)


@pytest.mark.parametrize("name", NAMES)
def test_partial_reads_one_byte_at_a_time(name: str) -> None:
    framer = get_framer(name)
    first = framer.frame(b"first", header_for(name))
    second = framer.frame(b"the second message", header_for(name))
    decoder = FrameDecoder(framer)
    got: list[tuple[int, Frame]] = []
    for index, byte in enumerate(first + second):
        got.extend((index, frame) for frame in decoder.feed(bytes([byte])))
    assert got == [
        (len(first) - 1, Frame(b"first", header_for(name))),
        (len(first) + len(second) - 1, Frame(b"the second message", header_for(name))),
    ]
    assert decoder.pending == 0


@pytest.mark.parametrize("name", NAMES)
def test_several_frames_in_one_read(name: str) -> None:
    framer = get_framer(name)
    payloads = [b"one", b"", b"three", b"x" * 500]
    stream = b"".join(framer.frame(p, header_for(name) if p else b"") for p in payloads)
    third_frame = framer.frame(b"partial", header_for(name))
    decoder = FrameDecoder(framer)
    frames = decoder.feed(stream + third_frame[:3])
    assert [f.payload for f in frames] == payloads
    assert decoder.pending == 3
    assert decoder.feed(third_frame[3:]) == [Frame(b"partial", header_for(name))]
    assert decoder.pending == 0
    assert decoder.framer is framer


@pytest.mark.parametrize("name", NAMES)
def test_frame_refuses_a_payload_above_max_payload(name: str) -> None:
    framer = get_framer(name, max_payload=100)
    pan = b"4111111111111111"
    framer.frame(pan * 6 + b"0000", header_for(name))
    with pytest.raises(FrameTooLargeError) as caught:
        framer.frame(pan * 6 + b"00000", header_for(name))
    overhead = len(header_for(name))
    assert caught.value.declared == 101 + overhead
    assert caught.value.maximum == 100 + overhead
    assert "4111" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("len2-binary", 0xFFFF),
        ("len4-binary", 0xFFFF_FFFF),
        ("len4-ascii", 9999),
        ("len2-bcd", 9999),
        ("len2-tpdu", 0xFFFF - TPDU_SIZE),
    ],
)
def test_max_payload_cannot_exceed_what_the_prefix_expresses(name: str, limit: int) -> None:
    assert get_framer(name, max_payload=limit).max_payload == limit
    with pytest.raises(ValueError, match="max_payload"):
        get_framer(name, max_payload=limit + 1)
    with pytest.raises(ValueError, match="max_payload"):
        get_framer(name, max_payload=-1)


def test_frame_refuses_what_the_prefix_cannot_express() -> None:
    framer = get_framer("len4-ascii", max_payload=9999)
    assert framer.frame(b"x" * 9999)[:4] == b"9999"
    with pytest.raises(FrameTooLargeError, match="10000"):
        framer.frame(b"x" * 10000)


@pytest.mark.parametrize(
    ("name", "prefix", "declared"),
    [
        ("len2-binary", b"\x00\x65", 101),
        ("len4-binary", b"\xff\xff\xff\xff", 0xFFFF_FFFF),
        ("len4-ascii", b"0101", 101),
        ("len2-bcd", b"\x01\x01", 101),
        ("len2-tpdu", b"\x00\x6a", 106),
    ],
)
def test_deframe_refuses_a_large_declared_length_at_once(
    name: str, prefix: bytes, declared: int
) -> None:
    framer = get_framer(name, max_payload=100)
    with pytest.raises(FrameTooLargeError) as caught:
        framer.deframe(prefix)  # only the prefix: it does not wait for the announced bytes
    error = caught.value
    assert (error.declared, error.maximum, error.offset) == (
        declared,
        100 + len(header_for(name)),
        0,
    )
    assert str(error) == (
        f"declared length {declared} exceeds the maximum of {error.maximum} (at offset 0)"
    )


def test_decoder_errors_give_the_stream_offset_and_keep_earlier_frames() -> None:
    framer = get_framer("len2-binary", max_payload=100)
    decoder = FrameDecoder(framer)
    assert decoder.feed(framer.frame(b"4111111111111111")) == [Frame(b"4111111111111111")]
    good = framer.frame(b"ok")
    with pytest.raises(FrameTooLargeError) as caught:
        decoder.feed(good + b"\x01\x00" + b"4111111111111111")
    error = caught.value
    assert error.offset == 18 + len(good)
    assert error.frames == (Frame(b"ok"),)
    assert "4111" not in str(error)
    # The bad bytes stay: the stream is out of step, feeding more raises the same again.
    with pytest.raises(FrameTooLargeError) as again:
        decoder.feed(b"\x00\x01x")
    assert again.value.offset == error.offset
    assert again.value.frames == ()


@pytest.mark.parametrize(
    "prefix", [b"01a3", b" 123", b"+123", b"-123", b"12.3", b"\xd9\xa1\xa2\xa3"]
)
def test_ascii_length_must_be_four_digits(prefix: bytes) -> None:
    with pytest.raises(BadLengthHeaderError, match="not an ASCII digit") as caught:
        get_framer("len4-ascii").deframe(prefix + b"payload")
    assert prefix.decode("latin-1") not in str(caught.value)
    assert "payload" not in str(caught.value)


@pytest.mark.parametrize(("prefix", "byte"), [(b"\x0a\x00", 0), (b"\x00\xa0", 1), (b"\x01\x2f", 1)])
def test_bcd_length_must_be_bcd_digits(prefix: bytes, byte: int) -> None:
    with pytest.raises(BadLengthHeaderError, match=f"byte {byte} .* not two BCD digits"):
        get_framer("len2-bcd").deframe(prefix)


@pytest.mark.parametrize("declared", [1, 2, 3, 4])
def test_tpdu_length_must_cover_the_tpdu(declared: int) -> None:
    with pytest.raises(BadLengthHeaderError, match="shorter than the 5-byte header"):
        get_framer("len2-tpdu").deframe(declared.to_bytes(2, "big"))


def test_decoder_offsets_bad_headers_in_the_stream() -> None:
    decoder = FrameDecoder(get_framer("len4-ascii"))
    with pytest.raises(BadLengthHeaderError) as caught:
        decoder.feed(b"0002ok00x2")
    assert caught.value.offset == 6
    assert caught.value.frames == (Frame(b"ok"),)
    assert (
        str(caught.value) == "byte 2 of the len4-ascii length is not an ASCII digit (at offset 6)"
    )


@pytest.mark.parametrize("header", [b"", b"\x60\x00\x03\x00", TPDU + b"\x00"])
def test_tpdu_frame_needs_a_five_byte_header(header: bytes) -> None:
    with pytest.raises(FramingError, match="5-byte header"):
        get_framer("len2-tpdu").frame(b"0800", header)


def test_tpdu_keep_alive_has_no_header() -> None:
    framer = get_framer("len2-tpdu")
    assert framer.frame(b"") == b"\x00\x00"
    assert framer.deframe(b"\x00\x00") == (Frame(b""), 2)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "len2-tpdu"])
def test_plain_framers_take_no_header(name: str) -> None:
    with pytest.raises(FramingError, match="no header"):
        get_framer(name).frame(b"0800", TPDU)


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownFramingError) as caught:
        get_framer("len2-bin")
    assert caught.value.name == "len2-bin"
    assert caught.value.suggestions[0] == "len2-binary"
    assert str(caught.value).startswith("unknown framing 'len2-bin'; did you mean 'len2-binary'")
    with pytest.raises(LookupError, match="did you mean 'len2-tpdu'"):
        get_framer("tpdu")


def test_unknown_name_without_close_match_lists_the_known_names() -> None:
    with pytest.raises(UnknownFramingError) as caught:
        get_framer("rdw")
    assert caught.value.suggestions == ()
    assert str(caught.value) == (
        "unknown framing 'rdw' (known: len2-bcd, len2-binary, len2-tpdu, len4-ascii, len4-binary)"
    )


def test_tpdu_reply_swaps_destination_and_source() -> None:
    request = bytes.fromhex("6000120034")
    assert tpdu_reply(request) == bytes.fromhex("6000340012")
    assert tpdu_reply(tpdu_reply(request)) == request


@pytest.mark.parametrize("header", [b"", b"\x60\x00\x12\x00", b"\x60\x00\x12\x00\x34\x00"])
def test_tpdu_reply_needs_five_bytes(header: bytes) -> None:
    with pytest.raises(FramingError, match="a TPDU is 5 bytes"):
        tpdu_reply(header)


def test_frame_repr_hides_the_payload() -> None:
    frame = Frame(b"4111111111111111", TPDU)
    assert repr(frame) == "Frame(payload=<16 bytes>, header=6000030000)"
    assert repr(Frame(b"4111111111111111")) == "Frame(payload=<16 bytes>)"


@pytest.mark.parametrize(
    "error",
    [
        FramingError("bad", offset=3),
        BadLengthHeaderError("bad header", offset=4),
        FrameTooLargeError(200, 100, offset=5),
        UnknownFramingError("len2-bin", FRAMERS),
    ],
)
def test_errors_survive_copy_and_pickle(error: Exception) -> None:
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(clone) is type(error)
        assert str(clone) == str(error)


def _frames(name: str) -> st.SearchStrategy[Frame]:
    payloads = st.binary(max_size=300)
    if name == "len2-tpdu":
        with_tpdu = st.builds(Frame, payloads, st.binary(min_size=TPDU_SIZE, max_size=TPDU_SIZE))
        return with_tpdu | st.just(Frame(b""))
    return st.builds(Frame, payloads)


def _chunks(stream: bytes, sizes: list[int]) -> list[bytes]:
    chunks = []
    position = 0
    for size in sizes:
        chunks.append(stream[position : position + size])
        position += size
    chunks.append(stream[position:])
    return chunks


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_framed_payloads_come_back_whatever_the_chunking(name: str, data: st.DataObject) -> None:
    framer = get_framer(name, max_payload=300)
    frames = data.draw(st.lists(_frames(name), max_size=10), label="frames")
    stream = b"".join(framer.frame(f.payload, f.header) for f in frames)
    sizes = data.draw(st.lists(st.integers(0, 64), max_size=len(stream)), label="chunk sizes")
    decoder = FrameDecoder(framer)
    got = [frame for chunk in _chunks(stream, sizes) for frame in decoder.feed(chunk)]
    assert got == frames
    assert decoder.pending == 0


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=200, deadline=None)
@given(stream=st.binary(max_size=400), sizes=st.lists(st.integers(1, 50), max_size=20))
def test_random_bytes_raise_nothing_but_framing_errors(
    name: str, stream: bytes, sizes: list[int]
) -> None:
    decoder = FrameDecoder(get_framer(name, max_payload=64))
    fed = 0
    error: FramingError | None = None
    try:
        for chunk in _chunks(stream, sizes):
            fed += len(chunk)
            for frame in decoder.feed(chunk):
                assert len(frame.payload) <= 64
            assert decoder.pending <= fed
    except FramingError as exc:
        error = exc
    if error is not None:
        assert 0 <= error.offset < len(stream)
        with pytest.raises(FramingError):  # the same again, not a BufferError
            decoder.feed(b"\x00")
