"""Record formats: F / FB, V / VB (RDW, BDW, extended BDW), GnuCOBOL variable; bad files."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.fixedwidth.recordformat import (
    RECORD_FORMATS,
    RecordFormatError,
    RecordWriter,
    read_records,
)


def frame(records: list[bytes], record_format: str, **options: int) -> bytes:
    out = io.BytesIO()
    writer = RecordWriter(out, record_format, **options)
    for record in records:
        writer.write(record)
    writer.close()
    return out.getvalue()


def read(data: bytes, record_format: str, length: int | None = None) -> list[bytes]:
    return [r for _, r in read_records(io.BytesIO(data), record_format, length=length)]


def test_known_framings() -> None:
    assert frame([b"AB", b"C"], "V") == bytes.fromhex("0006000041420005000043")
    assert frame([b"AB", b"C"], "VB") == bytes.fromhex("000f00000006000041420005000043")
    assert frame([b"AB", b"C"], "gnucobol-variable") == bytes.fromhex("0002000041420001000043")
    assert frame([b"AB", b"CD"], "F", length=2) == b"ABCD"


def test_vb_blocks_split_at_block_size() -> None:
    data = frame([b"A" * 10] * 3, "VB", block_size=4 + 2 * 14)
    assert data[:4] == bytes.fromhex("00200000")  # two records of 14 bytes + the BDW
    assert read(data, "VB") == [b"A" * 10] * 3


def test_extended_bdw() -> None:
    data = bytes.fromhex("8000000d00090000") + b"HELLO"
    assert read(data, "VB") == [b"HELLO"]


@pytest.mark.parametrize(
    ("data", "record_format", "record", "offset", "reason"),
    [
        (b"ABCDE", "F", 3, 4, "ends inside a record (1 of 2 bytes)"),
        (bytes.fromhex("00060001") + b"AB", "V", 1, 0, "RDW bytes 3-4 are 0001"),
        (bytes.fromhex("00030000"), "V", 1, 0, "RDW length 3 is less than 4"),
        (bytes.fromhex("00090000") + b"AB", "V", 1, 0, "ends inside a record of 5 bytes"),
        (bytes.fromhex("0006000041420009"), "V", 2, 6, "ends inside an RDW"),
        (bytes.fromhex("000a000000080000") + b"ABCD", "VB", 1, 4, "crosses its block"),
        (bytes.fromhex("00050000") + b"AB", "gnucobol-variable", 1, 0, "of 5 bytes"),
    ],
)
def test_bad_files_name_record_and_offset(
    data: bytes, record_format: str, record: int, offset: int, reason: str
) -> None:
    with pytest.raises(RecordFormatError, match=re.escape(reason)) as info:
        read(data, record_format, length=2)
    assert (info.value.record, info.value.offset) == (record, offset)


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown record format 'U'"):
        read(b"", "U")
    with pytest.raises(ValueError, match="record length"):
        read(b"AB", "F")


@given(
    st.sampled_from([f for f in RECORD_FORMATS if f not in ("F", "FB")]),
    st.lists(st.binary(max_size=300), max_size=30),
)
def test_round_trip_variable(record_format: str, records: list[bytes]) -> None:
    if record_format in ("V", "VB"):
        records = [r or b"x" for r in records]
    assert read(frame(records, record_format), record_format) == records


@given(st.integers(1, 50), st.integers(0, 100), st.data())
def test_round_trip_fixed(length: int, count: int, data: st.DataObject) -> None:
    records = data.draw(st.lists(st.binary(min_size=length, max_size=length), max_size=count))
    assert read(frame(records, "FB", length=length), "FB", length=length) == records
