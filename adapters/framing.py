r"""Framing: how an edge (a TCP socket) delimits ISO 8583 messages on the wire.

A TCP stream has no message boundaries, so every ISO 8583 link puts a length in front of each
message. The adapters never see it (they take and give unframed bytes); the edge wraps what an
adapter encodes with :meth:`Framer.frame` and cuts what it reads into messages with a
:class:`FrameDecoder`. Five framings, by name (:data:`FRAMERS`, :func:`get_framer`)::

    name          wire layout                               the length counts
    len2-binary   LL LL | message                           the message
    len4-binary   LL LL LL LL | message                     the message
    len4-ascii    'D' 'D' 'D' 'D' | message                 the message
    len2-bcd      DD DD | message                           the message
    len2-tpdu     LL LL | 60 DD DD SS SS | message          the TPDU and the message

``LL``: an unsigned big-endian binary length. ``'D'``: one ASCII decimal digit (``"0123"``).
``DD DD``: four BCD digits, two per byte (``01 23`` is 123, so at most 9999).

``len2-tpdu`` is the "NAC" framing of POS and terminal links: the 2-byte length, then a
5-byte TPDU (Transport Protocol Data Unit) of an ID byte (``0x60``), a 2-byte destination
address and a 2-byte source address. The TPDU is handed over as :attr:`Frame.header`; a host
answers with destination and source swapped (:func:`tpdu_reply`). The ID byte is not checked,
since some networks use other values than ``0x60``.

The same 12-byte message (an MTI and half a bitmap) in each framing:

>>> message = b"080082200000"
>>> get_framer("len2-binary").frame(message).hex(" ")
'00 0c 30 38 30 30 38 32 32 30 30 30 30 30'
>>> get_framer("len4-binary").frame(message)[:4].hex(" ")
'00 00 00 0c'
>>> get_framer("len4-ascii").frame(message)
b'0012080082200000'
>>> get_framer("len2-bcd").frame(message)[:2].hex(" ")
'00 12'
>>> tpdu = bytes.fromhex("6000030000")
>>> framed = get_framer("len2-tpdu").frame(message, header=tpdu)
>>> framed[:7].hex(" ")
'00 11 60 00 03 00 00'
>>> get_framer("len2-tpdu").deframe(framed)
(Frame(payload=<12 bytes>, header=6000030000), 19)
>>> tpdu_reply(tpdu).hex(" ")
'60 00 00 00 03'

:meth:`Framer.deframe` works on whatever has arrived so far: it returns ``(None, 0)`` until
the buffer holds a whole frame, then the frame and the number of bytes it used.
:class:`FrameDecoder` keeps the buffer for you across reads:

>>> decoder = FrameDecoder(get_framer("len4-ascii"))
>>> decoder.feed(b"0004080")
[]
>>> decoder.feed(b"00005hello00")
[Frame(payload=<4 bytes>), Frame(payload=<5 bytes>)]
>>> decoder.pending
2

A declared length of zero is a valid, empty frame (``Frame(b"")``) in every framing: several
networks send a bare zero length as a keep-alive between messages, and it is for the edge to
ignore or echo it. ``frame(b"")`` writes one. In ``len2-tpdu`` a length of 1 to 4 cannot hold
the TPDU and is a :class:`BadLengthHeaderError`.

Every framer refuses a frame longer than its ``max_payload`` (:data:`DEFAULT_MAX_PAYLOAD`
unless configured; at most what its length prefix can express): :meth:`Framer.frame` at once,
and :meth:`Framer.deframe` as soon as the length prefix has arrived, without waiting for (or
buffering) the bytes it announces:

>>> get_framer("len2-binary", max_payload=100).deframe(b"\x01\x00")
Traceback (most recent call last):
...
adapters.framing.FrameTooLargeError: declared length 256 exceeds the maximum of 100 (at offset 0)

Errors (:class:`FramingError` and its subclasses) name the offset of the bad frame's length
prefix in the stream and a reason; their text never holds payload bytes (nor the bytes of a bad
length header, which on a stream out of step may well be payload). After one, the stream is
out of step: close the connection.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Final, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "FRAMERS",
    "TPDU_SIZE",
    "BadLengthHeaderError",
    "Frame",
    "FrameDecoder",
    "FrameTooLargeError",
    "Framer",
    "FixedRecordFramer",
    "FramingError",
    "Len2BcdFramer",
    "Len2BinaryFramer",
    "Len2TpduFramer",
    "Len4AsciiFramer",
    "Len4BinaryFramer",
    "UnknownFramingError",
    "get_framer",
    "tpdu_reply",
]

DEFAULT_MAX_PAYLOAD: Final = 8192
"""The largest message (TPDU excluded) a framer accepts unless configured otherwise."""

TPDU_SIZE: Final = 5
"""Bytes in a TPDU: ID byte, 2-byte destination address, 2-byte source address."""

_BytesLike: TypeAlias = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True, repr=False)
class Frame:
    """One message cut out of the stream.

    ``header`` holds the framing bytes other than the length (the TPDU in ``len2-tpdu``,
    otherwise empty). The repr shows the payload's size, never its bytes (they may hold card
    data), and a non-empty header in hex.
    """

    payload: bytes
    header: bytes = b""

    def __repr__(self) -> str:
        header = f", header={self.header.hex()}" if self.header else ""
        return f"Frame(payload=<{len(self.payload)} bytes>{header})"


class FramingError(ValueError):
    """Bytes that cannot be framed or deframed.

    ``offset``: where the bad frame's length prefix starts in the stream (in the buffer given
    to :meth:`Framer.deframe`; 0 for errors of :meth:`Framer.frame`). ``reason``: what is
    wrong, without payload bytes. ``frames``: when raised by :meth:`FrameDecoder.feed`, the
    complete frames that came before the bad one in the buffer (they are not lost).
    """

    def __init__(self, reason: str, *, offset: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
        self.frames: tuple[Frame, ...] = ()

    def __str__(self) -> str:
        return f"{self.reason} (at offset {self.offset})"


class FrameTooLargeError(FramingError):
    """A length above the framer's maximum (declared on the wire, or asked of ``frame``)."""

    def __init__(self, declared: int, maximum: int, *, offset: int = 0) -> None:
        super().__init__(
            f"declared length {declared} exceeds the maximum of {maximum}", offset=offset
        )
        self.args = (declared, maximum)  # what copy and pickle pass back to __init__
        self.declared = declared
        self.maximum = maximum


class BadLengthHeaderError(FramingError):
    """A length prefix that is not a length, or a length too short for the framing."""


class UnknownFramingError(LookupError):
    """No framer by that name; ``suggestions`` holds close names (also in the message)."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        known = tuple(sorted(known))
        super().__init__(name, known)
        self.name = name
        self.suggestions = tuple(difflib.get_close_matches(name, known, n=3, cutoff=0.6))
        if self.suggestions:
            *others, last = map(repr, self.suggestions)
            listed = f"{', '.join(others)} or {last}" if others else last
            hint = f"; did you mean {listed}?"
        else:
            hint = f" (known: {', '.join(known)})"
        self.message = f"unknown framing {name!r}{hint}"

    def __str__(self) -> str:
        return self.message


@runtime_checkable
class Framer(Protocol):
    """Puts a length (and maybe a header) in front of a message, and takes it off again.

    ``name`` and ``max_payload`` are read-only: a framer is immutable and may be shared by
    every connection of an edge.
    """

    @property
    def name(self) -> str:
        """The framing's name in :data:`FRAMERS`."""
        ...

    @property
    def max_payload(self) -> int:
        """The largest message, in bytes, accepted by :meth:`frame` and :meth:`deframe`."""
        ...

    def frame(self, payload: bytes, header: bytes = b"") -> bytes:
        """``payload`` with its length prefix (and ``header``) in front.

        Raises :class:`FrameTooLargeError` above ``max_payload``, :class:`FramingError` when
        ``header`` does not fit the framing.
        """
        ...

    def deframe(self, buffer: _BytesLike) -> tuple[Frame | None, int]:
        """The first frame in ``buffer`` and the number of bytes it takes.

        ``(None, 0)`` while ``buffer`` holds no complete frame yet. Raises
        :class:`FramingError` as soon as the length prefix is bad or too large.
        """
        ...


class _LengthPrefixFramer:
    """A length prefix, then ``header_size`` header bytes, then the message.

    The length counts the header and the message; subclasses say how the prefix is written
    and read.
    """

    __slots__ = ("_max_payload",)

    name: ClassVar[str]
    prefix_size: ClassVar[int]
    capacity: ClassVar[int]
    """The largest length the prefix can express."""
    header_size: ClassVar[int] = 0

    def __init__(self, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        limit = self.capacity - self.header_size
        if not 0 <= max_payload <= limit:
            raise ValueError(f"{self.name}: max_payload must be between 0 and {limit}")
        self._max_payload = max_payload

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_payload={self._max_payload})"

    @property
    def max_payload(self) -> int:
        """The largest message, in bytes (header excluded), this framer accepts."""
        return self._max_payload

    def _write_length(self, length: int) -> bytes:
        raise NotImplementedError

    def _read_length(self, prefix: memoryview) -> int:
        """The length in ``prefix``; :class:`BadLengthHeaderError` if it is none."""
        raise NotImplementedError

    def frame(self, payload: bytes, header: bytes = b"") -> bytes:
        """``payload`` with its length prefix (and ``header``) in front."""
        if not payload and not header:
            return self._write_length(0)  # a keep-alive, in every framing
        if len(header) != self.header_size:
            wanted = f"a {self.header_size}-byte header" if self.header_size else "no header"
            raise FramingError(f"{self.name} takes {wanted}, not {len(header)} bytes")
        if len(payload) > self._max_payload:
            raise FrameTooLargeError(
                self.header_size + len(payload), self.header_size + self._max_payload
            )
        return b"".join((self._write_length(self.header_size + len(payload)), header, payload))

    def deframe(self, buffer: _BytesLike) -> tuple[Frame | None, int]:
        """The first frame in ``buffer`` and the number of bytes it takes, or ``(None, 0)``."""
        # Released on the way out, even on error: a live view would pin a caller's bytearray
        # (FrameDecoder resizes its buffer after calling this).
        with memoryview(buffer) as view:
            if len(view) < self.prefix_size:
                return None, 0
            with view[: self.prefix_size] as prefix:
                length = self._read_length(prefix)
            if length == 0:
                return Frame(b""), self.prefix_size
            if length < self.header_size:
                raise BadLengthHeaderError(
                    f"declared length {length} is shorter than the {self.header_size}-byte"
                    f" header of {self.name}"
                )
            maximum = self.header_size + self._max_payload
            if length > maximum:
                raise FrameTooLargeError(length, maximum)
            end = self.prefix_size + length
            if len(view) < end:
                return None, 0
            start = self.prefix_size + self.header_size
            header = view[self.prefix_size : start].tobytes()
            return Frame(view[start:end].tobytes(), header), end


class _BinaryLengthFramer(_LengthPrefixFramer):
    """An unsigned big-endian binary length of ``prefix_size`` bytes."""

    __slots__ = ()

    def _write_length(self, length: int) -> bytes:
        return length.to_bytes(self.prefix_size, "big")

    def _read_length(self, prefix: memoryview) -> int:
        return int.from_bytes(prefix, "big")


class Len2BinaryFramer(_BinaryLengthFramer):
    """``len2-binary``: a 2-byte big-endian binary length, then the message."""

    __slots__ = ()
    name = "len2-binary"
    prefix_size = 2
    capacity = 0xFFFF


class Len4BinaryFramer(_BinaryLengthFramer):
    """``len4-binary``: a 4-byte big-endian binary length, then the message."""

    __slots__ = ()
    name = "len4-binary"
    prefix_size = 4
    capacity = 0xFFFF_FFFF


class Len2TpduFramer(_BinaryLengthFramer):
    """``len2-tpdu``: a 2-byte binary length, the 5-byte TPDU (:attr:`Frame.header`), the message.

    The length counts the TPDU and the message; ``max_payload`` counts the message only.
    """

    __slots__ = ()
    name = "len2-tpdu"
    prefix_size = 2
    capacity = 0xFFFF
    header_size = TPDU_SIZE


class Len4AsciiFramer(_LengthPrefixFramer):
    """``len4-ascii``: the length in 4 ASCII decimal digits (``b"0123"``), then the message."""

    __slots__ = ()
    name = "len4-ascii"
    prefix_size = 4
    capacity = 9999

    def _write_length(self, length: int) -> bytes:
        return b"%04d" % length

    def _read_length(self, prefix: memoryview) -> int:
        digits = prefix.tobytes()
        if not digits.isdigit():  # bytes.isdigit() is ASCII only
            position = next(i for i, byte in enumerate(digits) if not 0x30 <= byte <= 0x39)
            raise BadLengthHeaderError(
                f"byte {position} of the {self.name} length is not an ASCII digit"
            )
        return int(digits)


class Len2BcdFramer(_LengthPrefixFramer):
    """``len2-bcd``: the length in 4 BCD digits, 2 bytes (``01 23`` is 123), then the message."""

    __slots__ = ()
    name = "len2-bcd"
    prefix_size = 2
    capacity = 9999

    def _write_length(self, length: int) -> bytes:
        return bytes.fromhex(f"{length:04d}")

    def _read_length(self, prefix: memoryview) -> int:
        length = 0
        for position, byte in enumerate(prefix):
            high, low = divmod(byte, 16)
            if high > 9 or low > 9:
                raise BadLengthHeaderError(
                    f"byte {position} of the {self.name} length is not two BCD digits"
                )
            length = length * 100 + high * 10 + low
        return length


class FixedRecordFramer:
    """No length prefix: a fixed-size header, then a record of a fixed length.

    The framing of CICS sockets links to a mainframe: a 4-character transaction id, then
    the record (``FixedRecordFramer(200, header_size=4)``); the reply is often the bare
    record (``header_size=0``). Not in :data:`FRAMERS`, since it needs the record length.

    >>> framer = FixedRecordFramer(3, header_size=2)
    >>> framer.frame(b"abc", header=b"ID")
    b'IDabc'
    >>> framer.deframe(b"IDabcID")
    (Frame(payload=<3 bytes>, header=4944), 5)
    >>> framer.frame(b"ab", header=b"ID")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adapters.framing.FramingError: fixed-record takes a 2-byte header and a 3-byte record, ...
    """

    __slots__ = ("_header_size", "_record_length")

    def __init__(self, record_length: int, *, header_size: int = 0) -> None:
        if record_length < 1 or header_size < 0:
            raise ValueError("record_length must be >= 1 and header_size >= 0")
        self._record_length = record_length
        self._header_size = header_size

    @property
    def name(self) -> str:
        """``fixed-record``."""
        return "fixed-record"

    @property
    def max_payload(self) -> int:
        """The record length: every payload is exactly this long."""
        return self._record_length

    @property
    def header_size(self) -> int:
        """Bytes of header before each record."""
        return self._header_size

    def frame(self, payload: bytes, header: bytes = b"") -> bytes:
        """``header`` + ``payload``, each of its fixed size."""
        if len(header) != self._header_size or len(payload) != self._record_length:
            raise FramingError(
                f"fixed-record takes a {self._header_size}-byte header and a"
                f" {self._record_length}-byte record, not {len(header)} + {len(payload)}"
            )
        return header + payload

    def deframe(self, buffer: _BytesLike) -> tuple[Frame | None, int]:
        """The next header and record once the buffer holds them."""
        size = self._header_size + self._record_length
        if len(buffer) < size:
            return None, 0
        data = bytes(buffer[:size])
        return Frame(data[self._header_size :], data[: self._header_size]), size

    def __repr__(self) -> str:
        return f"FixedRecordFramer({self._record_length}, header_size={self._header_size})"


FRAMERS: Final[Mapping[str, Callable[..., Framer]]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            Len2BinaryFramer,
            Len4BinaryFramer,
            Len4AsciiFramer,
            Len2BcdFramer,
            Len2TpduFramer,
        )
    }
)
"""Framer classes by name; each takes a keyword-only ``max_payload``."""


def get_framer(name: str, *, max_payload: int | None = None) -> Framer:
    """The framer called ``name``; ``max_payload`` defaults to :data:`DEFAULT_MAX_PAYLOAD`.

    >>> get_framer("len2-bcd", max_payload=4096)
    Len2BcdFramer(max_payload=4096)
    >>> get_framer("len4ascii")
    Traceback (most recent call last):
    ...
    adapters.framing.UnknownFramingError: unknown framing 'len4ascii'; did you mean 'len4-ascii'?
    """
    factory = FRAMERS.get(name)
    if factory is None:
        raise UnknownFramingError(name, FRAMERS)
    return factory() if max_payload is None else factory(max_payload=max_payload)


def tpdu_reply(header: bytes) -> bytes:
    """The TPDU of the answer to ``header``: same ID byte, destination and source swapped.

    >>> tpdu_reply(bytes.fromhex("6000120034")).hex()
    '6000340012'
    """
    if len(header) != TPDU_SIZE:
        raise FramingError(f"a TPDU is {TPDU_SIZE} bytes, not {len(header)}")
    return header[:1] + header[3:5] + header[1:3]


class FrameDecoder:
    """Cuts a byte stream into frames, across reads of any size.

    :meth:`feed` each read; it returns the frames completed so far and keeps the rest. Offsets
    in its errors count from the first byte ever fed. After an error the bad bytes stay
    buffered (feeding more raises again): the stream is out of step, close the connection.
    """

    __slots__ = ("_buffer", "_consumed", "_framer")

    def __init__(self, framer: Framer) -> None:
        self._framer = framer
        self._buffer = bytearray()
        self._consumed = 0

    @property
    def framer(self) -> Framer:
        """The framer this decoder applies."""
        return self._framer

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet part of a complete frame."""
        return len(self._buffer)

    def feed(self, data: _BytesLike) -> list[Frame]:
        """Add ``data``; every frame it completes, in order (possibly none).

        Raises :class:`FramingError` (with the frames decoded before the bad one in
        ``error.frames``) on a bad length prefix or a frame above ``max_payload``.
        """
        self._buffer += data
        frames: list[Frame] = []
        position = 0
        error: FramingError | None = None
        # Slices of one view, not copies: each deframe call looks at the remainder in place.
        with memoryview(self._buffer) as view:
            while position < len(view):
                with view[position:] as rest:
                    try:
                        frame, used = self._framer.deframe(rest)
                    except FramingError as exc:
                        exc.offset += self._consumed + position
                        exc.frames = tuple(frames)
                        error = exc
                        break
                if frame is None:
                    break
                frames.append(frame)
                position += used
        # One deletion per feed, after the view is released (bytearray cannot resize while
        # exported); deleting from the front of a bytearray does not move the remainder.
        del self._buffer[:position]
        self._consumed += position
        if error is not None:
            raise error
        return frames
