"""Record formats of mainframe and GnuCOBOL files: F / FB, V / VB (RDW, BDW), GnuCOBOL variable.

IBM z/OS DFSMS Using Data Sets, "Record formats": ``F`` records are all one length; ``FB``
groups them in blocks, which in a transferred file are simply back to back (so ``F`` and
``FB`` read the same). ``V`` records start with a 4-byte *record descriptor word* (RDW): a
2-byte big-endian length that includes the RDW, then two zero bytes. ``VB`` files are blocks,
each starting with a 4-byte *block descriptor word* (BDW) of the same shape (length including
the BDW) followed by RDW records; a BDW with the high bit set is the extended form, a 31-bit
length in 4 bytes. GnuCOBOL's variable ``ORGANIZATION RECORD SEQUENTIAL`` files
(``COB_VARSEQ_FORMAT`` 0, the default) prefix each record with a 2-byte big-endian length
that does *not* include the prefix, then two zero bytes.

Readers stream (a bounded buffer, never the whole file) and yield ``(record number, bytes)``
with 1-based record numbers; a malformed descriptor or a truncated record raises
:class:`RecordFormatError` with the record number and the byte offset in the file. Writers
frame records the same way.

>>> import io
>>> out = io.BytesIO()
>>> writer = RecordWriter(out, "V")
>>> writer.write(b"ABC"); writer.write(b"DE")
>>> out.getvalue().hex()
'00070000414243000600004445'
>>> [r for _, r in read_records(io.BytesIO(out.getvalue()), "V")]
[b'ABC', b'DE']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Final, Literal, get_args

from adapters.fixedwidth.errors import RecordDecodeError

__all__ = [
    "RECORD_FORMATS",
    "RecordFormat",
    "RecordFormatError",
    "RecordWriter",
    "read_records",
]

RecordFormat = Literal["F", "FB", "V", "VB", "gnucobol-variable"]
RECORD_FORMATS: Final[tuple[str, ...]] = get_args(RecordFormat)
"""Every supported record format name."""

_CHUNK: Final = 1 << 16
_MAX_BLOCK: Final = 32760


class RecordFormatError(RecordDecodeError):
    """A file that does not follow its record format (bad descriptor word, truncated record).

    ``offset`` is the byte offset in the file, ``record`` the number of the record at fault.
    """

    def __init__(self, reason: str, *, record: int, offset: int, field: str | None = None) -> None:
        super().__init__(reason, field=field, offset=offset, record=record)


class _Reader:
    """A bounded read buffer over a binary stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buffer = b""
        self.start = 0
        self.consumed = 0  # file offset of buffer[start]

    def take(self, size: int) -> bytes | None:
        """Exactly ``size`` bytes, b"" at a clean end of file, None when truncated."""
        while len(self.buffer) - self.start < size:
            chunk = self.stream.read(max(_CHUNK, size))
            if not chunk:
                break
            self.buffer = self.buffer[self.start :] + chunk
            self.start = 0
        available = len(self.buffer) - self.start
        if available == 0:
            return b""
        if available < size:
            return None
        data = self.buffer[self.start : self.start + size]
        self.start += size
        self.consumed += size
        return data


def _descriptor(word: bytes, what: str, record: int, offset: int) -> int:
    if word[0] & 0x80 and what == "BDW":
        return int.from_bytes(word, "big") & 0x7FFFFFFF
    if word[2:4] != b"\x00\x00":
        raise RecordFormatError(
            f"{what} bytes 3-4 are {word[2:4].hex()}, not 0000",
            record=record,
            offset=offset,
            field=what,
        )
    return int.from_bytes(word[:2], "big")


def read_records(
    stream: BinaryIO, record_format: RecordFormat | str, *, length: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """Every record of ``stream`` as (1-based number, bytes); ``length`` for F / FB."""
    fmt = (
        record_format.upper()
        if record_format.upper() in ("F", "FB", "V", "VB")
        else (record_format)
    )
    reader = _Reader(stream)
    number = 0
    if fmt in ("F", "FB"):
        if not length or length < 1:
            raise ValueError("F / FB records need the record length")
        while True:
            offset = reader.consumed
            data = reader.take(length)
            number += 1
            if data == b"":
                return
            if data is None:
                rest = len(reader.buffer) - reader.start
                raise RecordFormatError(
                    f"the file ends inside a record ({rest} of {length} bytes)",
                    record=number,
                    offset=offset,
                )
            yield number, data
    elif fmt == "V":
        while True:
            number += 1
            record = _read_rdw_record(reader, number)
            if record is None:
                return
            yield number, record
    elif fmt == "VB":
        while True:
            offset = reader.consumed
            word = reader.take(4)
            if word == b"":
                return
            if word is None:
                raise RecordFormatError(
                    "the file ends inside a BDW", record=number + 1, offset=offset
                )
            block = _descriptor(word, "BDW", number + 1, offset)
            if block < 4:
                raise RecordFormatError(
                    f"BDW length {block} is less than 4", record=number + 1, offset=offset
                )
            end = offset + block
            while reader.consumed < end:
                number += 1
                record = _read_rdw_record(reader, number, limit=end)
                if record is None:
                    raise RecordFormatError(
                        "the file ends inside a block", record=number, offset=reader.consumed
                    )
                yield number, record
    elif fmt == "gnucobol-variable":
        while True:
            offset = reader.consumed
            word = reader.take(4)
            number += 1
            if word == b"":
                return
            if word is None:
                raise RecordFormatError(
                    "the file ends inside a record header", record=number, offset=offset
                )
            size = _descriptor(word, "record header", number, offset)
            data = reader.take(size) if size else b""
            if data is None or (size and data == b""):
                raise RecordFormatError(
                    f"the file ends inside a record of {size} bytes", record=number, offset=offset
                )
            yield number, data
    else:
        raise ValueError(
            f"unknown record format {record_format!r} (known: {', '.join(RECORD_FORMATS)})"
        )


def _read_rdw_record(reader: _Reader, number: int, limit: int | None = None) -> bytes | None:
    offset = reader.consumed
    word = reader.take(4)
    if word == b"":
        return None
    if word is None:
        raise RecordFormatError("the file ends inside an RDW", record=number, offset=offset)
    size = _descriptor(word, "RDW", number, offset)
    if size < 4:
        raise RecordFormatError(f"RDW length {size} is less than 4", record=number, offset=offset)
    if limit is not None and offset + size > limit:
        raise RecordFormatError("a record crosses its block's end", record=number, offset=offset)
    data = reader.take(size - 4) if size > 4 else b""
    if data is None or (size > 4 and data == b""):
        raise RecordFormatError(
            f"the file ends inside a record of {size - 4} bytes", record=number, offset=offset
        )
    return data


class RecordWriter:
    """Writes records to a binary stream in a record format (VB: one record per block
    unless ``block_size`` packs several, up to 32,760 bytes)."""

    def __init__(
        self,
        stream: BinaryIO,
        record_format: RecordFormat | str,
        *,
        length: int | None = None,
        block_size: int = _MAX_BLOCK,
    ) -> None:
        if record_format not in RECORD_FORMATS:
            raise ValueError(
                f"unknown record format {record_format!r} (known: {', '.join(RECORD_FORMATS)})"
            )
        self.stream = stream
        self.format = record_format
        self.length = length
        self.block_size = block_size
        self._block: list[bytes] = []
        self._block_bytes = 4

    def write(self, record: bytes) -> None:
        """Frame and write one record."""
        fmt = self.format
        if fmt in ("F", "FB"):
            if self.length is not None and len(record) != self.length:
                raise ValueError(f"an F record must be {self.length} bytes, not {len(record)}")
            self.stream.write(record)
        elif fmt == "gnucobol-variable":
            self.stream.write(len(record).to_bytes(2, "big") + b"\x00\x00" + record)
        else:
            if len(record) + 4 > 0xFFFF:
                raise ValueError(f"a V record holds at most {0xFFFF - 4} bytes")
            framed = (len(record) + 4).to_bytes(2, "big") + b"\x00\x00" + record
            if fmt == "V":
                self.stream.write(framed)
                return
            if self._block and self._block_bytes + len(framed) > self.block_size:
                self._flush_block()
            self._block.append(framed)
            self._block_bytes += len(framed)

    def _flush_block(self) -> None:
        if not self._block:
            return
        self.stream.write(self._block_bytes.to_bytes(2, "big") + b"\x00\x00")
        for framed in self._block:
            self.stream.write(framed)
        self._block = []
        self._block_bytes = 4

    def close(self) -> None:
        """Write the last block (VB); the stream stays open."""
        self._flush_block()
