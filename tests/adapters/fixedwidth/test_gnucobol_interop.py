"""Real COBOL: GnuCOBOL writes records that the codec decodes, and reads records it encoded.

``cobol/sample.cbl`` builds two SAMPLE-REC records (``cobol/sample.cpy``) with known values:
positive and negative COMP-3, unsigned COMP-3, every overpunched digit positive and negative,
SIGN LEADING / TRAILING SEPARATE, SIGN LEADING overpunch, COMP, COMP-5 (native, little-endian
on x86), OCCURS, and a REDEFINES chosen by a level-88 condition. In mode ``W`` it writes them,
in mode ``R`` it reads a file and compares every field numerically in COBOL. The EBCDIC files
are converted in the program (INSPECT CONVERTING to cp037), as the issue asks; the ASCII ones
use GnuCOBOL's own sign conventions (default: zone 7 negatives; ``-fsign=EBCDIC``: ``{A-I}J-R``).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.fixedwidth import Copybook, load_copybook
from adapters.fixedwidth.recordformat import RecordWriter, read_records
from tests.adapters.fixedwidth.gnucobol import COBOL_DIR, compile_program, run_program

COMMON: dict[str, Any] = {
    "S-ZONED-POS": [100 + i for i in range(10)],
    "S-ZONED-NEG": [-(200 + i) for i in range(10)],
    "S-ITEM-CODE": ["AA", "BB", "CC"],
    "S-ITEM-AMT": [Decimal("1.50"), Decimal("-2.25"), Decimal("0.00")],
}
EXPECTED: list[dict[str, Any]] = [
    {
        "S-NAME": "ALPHA",
        **COMMON,
        "S-LEAD-SEP": Decimal("-12345.6"),
        "S-TRAIL-SEP": -4321,
        "S-LEAD-OVER": -987,
        "S-UNSIGNED": 654321,
        "S-KIND": "T",
        "S-PACKED-POS": Decimal("1234567.89"),
        "S-PACKED-NEG": Decimal("-7654321.09"),
        "S-PACKED-UNS": 54321,
        "S-BINARY": -123456789,
        "S-NATIVE": -300,
        "S-TEXT-VIEW": "TEXTVIEW",
    },
    {
        "S-NAME": "BETA",
        **COMMON,
        "S-LEAD-SEP": Decimal("12345.6"),
        "S-TRAIL-SEP": 4321,
        "S-LEAD-OVER": 987,
        "S-UNSIGNED": 0,
        "S-KIND": "N",
        "S-PACKED-POS": Decimal("0.01"),
        "S-PACKED-NEG": Decimal("-0.01"),
        "S-PACKED-UNS": 0,
        "S-BINARY": 123456789,
        "S-NATIVE": 300,
        "S-NUM-A": -1234567,
        "S-NUM-B": 4321,
    },
]

# (test id, cobc options, program's code set argument, codec options)
VARIANTS = [
    ("ebcdic-cp037", ("-fsign=EBCDIC",), "EBCDIC", {"codepage": "cp037"}),
    # IBM dialect (binary truncation, reserved words...); ASSIGN stays a data name
    (
        "ebcdic-cp037-std-ibm",
        ("-std=ibm", "-fassign-clause=dynamic", "-fsign=EBCDIC"),
        "EBCDIC",
        {"codepage": "cp037"},
    ),
    ("ascii-gnucobol-signs", (), "ASCII", {"codepage": "ascii", "overpunch": "ascii"}),
    (
        "ascii-ebcdic-signs",
        ("-fsign=EBCDIC",),
        "ASCII",
        {"codepage": "ascii", "overpunch": "ebcdic"},
    ),
]


def _book(options: dict[str, Any]) -> Copybook:
    return load_copybook(
        COBOL_DIR / "sample.cpy",
        native_byteorder="little",
        redefines={"S-NUM-VIEW": "S-IS-NUM"},
        **options,
    )


@pytest.mark.parametrize(
    ("cobc_options", "codeset", "options"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS]
)
def test_codec_decodes_what_cobol_wrote(
    tmp_path: Path, cobc_options: tuple[str, ...], codeset: str, options: dict[str, Any]
) -> None:
    program = compile_program("sample", *cobc_options)
    run_program(program, "W", codeset, "written.dat", cwd=tmp_path)
    codec = _book(options).record("SAMPLE-REC")
    data = (tmp_path / "written.dat").read_bytes()
    assert len(data) == 2 * codec.length
    with (tmp_path / "written.dat").open("rb") as stream:
        decoded = [
            codec.decode(raw, record=n) for n, raw in read_records(stream, "F", length=codec.length)
        ]
    assert decoded == EXPECTED
    # byte-exact: the codec writes the very bytes COBOL wrote
    assert b"".join(codec.encode(values) for values in EXPECTED) == data


@pytest.mark.parametrize(
    ("cobc_options", "codeset", "options"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS]
)
def test_cobol_reads_what_codec_encoded(
    tmp_path: Path, cobc_options: tuple[str, ...], codeset: str, options: dict[str, Any]
) -> None:
    program = compile_program("sample", *cobc_options)
    codec = _book(options).record("SAMPLE-REC")
    with (tmp_path / "encoded.dat").open("wb") as stream:
        writer = RecordWriter(stream, "F", length=codec.length)
        for values in EXPECTED:
            writer.write(codec.encode(values))
    output = run_program(program, "R", codeset, "encoded.dat", cwd=tmp_path)
    assert "MISMATCH" not in output
    assert output.split() == ["CHECKED", "02"]


def test_cobol_check_catches_a_wrong_value(tmp_path: Path) -> None:
    """The COBOL side of the check can fail: one wrong packed value is reported."""
    program = compile_program("sample", "-fsign=EBCDIC")
    codec = _book({"codepage": "cp037"}).record("SAMPLE-REC")
    wrong = {**EXPECTED[0], "S-PACKED-NEG": Decimal("-7654321.08")}
    (tmp_path / "wrong.dat").write_bytes(codec.encode(wrong) + codec.encode(EXPECTED[1]))
    output = run_program(program, "R", "EBCDIC", "wrong.dat", cwd=tmp_path)
    assert "MISMATCH 01 S-PACKED-NEG" in output


ODO_EXPECTED: list[dict[str, Any]] = [
    {
        "O-ACCOUNT": "ACCT0001",
        "O-COUNT": count,
        "O-REF": [f"R0{i}" for i in range(1, count + 1)],
        "O-AMT": [Decimal(i) * Decimal("-1.25") for i in range(1, count + 1)],
    }
    for count in (0, 1, 3, 5)
]


def test_odo_records_in_a_gnucobol_variable_file(tmp_path: Path) -> None:
    """OCCURS DEPENDING ON, both ways, in GnuCOBOL's variable record format."""
    program = compile_program("odo")
    codec = load_copybook(COBOL_DIR / "odo.cpy", codepage="ascii").record("ODO-REC")
    assert (codec.min_length, codec.length) == (10, 45)
    run_program(program, "W", "written.dat", cwd=tmp_path)
    with (tmp_path / "written.dat").open("rb") as stream:
        records = list(read_records(stream, "gnucobol-variable"))
    assert [codec.decode(raw, record=n) for n, raw in records] == ODO_EXPECTED
    assert [codec.encode(values) for values in ODO_EXPECTED] == [raw for _, raw in records]

    with (tmp_path / "encoded.dat").open("wb") as stream:
        writer = RecordWriter(stream, "gnucobol-variable")
        for values in ODO_EXPECTED:
            writer.write(codec.encode({k: v for k, v in values.items() if k != "O-COUNT"}))
    assert (tmp_path / "encoded.dat").read_bytes() == (tmp_path / "written.dat").read_bytes()
    output = run_program(program, "R", "encoded.dat", cwd=tmp_path)
    assert output.split() == ["CHECKED", "04"]
