"""``isobridge copybook show`` and ``isobridge convert``."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.fixedwidth import load_layout
from adapters.fixedwidth.recordformat import RecordWriter
from hub.cli import main
from tests.adapters.fixedwidth.samples import broken_detail, statement_records

REQUEST = load_layout("corebank_request").record("CB-REQUEST")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def write(path: Path, records: list[bytes], record_format: str = "F") -> Path:
    with path.open("wb") as stream:
        writer = RecordWriter(stream, record_format)
        for record in records:
            writer.write(record)
        writer.close()
    return path


def test_show_prints_the_layout_table() -> None:
    status, out, _ = run("copybook", "show", "corebank_request")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "CB-REQUEST  (200 bytes)"
    assert lines[1].split() == ["FIELD", "OFFSET", "LENGTH", "TYPE"]
    assert "05 CB-AMOUNT" in out
    amount = next(line for line in lines if "CB-AMOUNT" in line).split()
    assert amount[2:] == ["120", "8", "PIC", "S9(13)V99", "COMP-3"]
    assert "88 CB-DEBIT-POSTING: CB-TRAN-CODE = 'DEBT'" in out


def test_show_reports_syntax_errors_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.cpy"
    path.write_text("       01  R.\n           05  A  PIC ZZ9.99.\n")
    status, _, err = run("copybook", "show", str(path))
    assert status == 1
    assert "line 2, column 23" in err
    assert "editing symbol 'Z'" in err


def test_convert_to_jsonl(tmp_path: Path) -> None:
    source = write(tmp_path / "stmt.dat", statement_records())
    status, out, err = run(
        "convert", str(source), "--copybook", "corebank_statement", "--to", "jsonl"
    )
    assert status == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["_layout"] for row in rows] == [
        "STMT-HEADER",
        "STMT-DETAIL",
        "STMT-DETAIL",
        "STMT-TRAILER",
    ]
    assert rows[1]["SD-AMOUNT"] == "125.40"
    assert rows[3]["ST-ENTRY-COUNT"] == 2
    assert "4 records converted" in err


@pytest.mark.parametrize("record_format", ["V", "VB", "gnucobol-variable", "FB"])
def test_convert_reads_every_record_format(tmp_path: Path, record_format: str) -> None:
    source = write(tmp_path / "stmt.dat", statement_records(), record_format)
    status, out, err = run(
        "convert", str(source), "--copybook", "corebank_statement", "--to", "jsonl",
        "--record-format", record_format,
    )  # fmt: skip
    assert status == 0, err
    assert len(out.splitlines()) == 4


def test_convert_to_csv_with_one_record_layout(tmp_path: Path) -> None:
    records = [
        REQUEST.encode({"CB-DEBIT-POSTING": True, "CB-AMOUNT": Decimal(i)}) for i in range(3)
    ]
    source = write(tmp_path / "req.dat", records)
    status, out, _ = run("convert", str(source), "--copybook", "corebank_request", "--to", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["CB-AMOUNT"] for row in rows] == ["0.00", "1.00", "2.00"]
    assert rows[0]["CB-TRAN-CODE"] == "DEBT"


def test_convert_to_canonical_json_with_a_mapping(tmp_path: Path) -> None:
    record = REQUEST.encode(
        {"CB-CREDIT-POSTING": True, "CB-POSTING-REF": "R-1", "CB-AMOUNT": Decimal("9.99"),
         "CB-CURRENCY": "GBP"}
    )  # fmt: skip
    source = write(tmp_path / "req.dat", [record])
    status, out, err = run(
        "--tenant", "acme", "convert", str(source), "--copybook", "corebank_request",
        "--mapping", "corebank-request", "--to", "canonical-json",
    )  # fmt: skip
    assert status == 0, err
    message = json.loads(out)
    assert message["tenant"] == "acme"
    assert message["kind"] == "financial"
    assert message["amount"] == {"amount": "9.99", "currency": "GBP"}
    assert message["ids"]["transaction_id"] == "R-1"


def test_canonical_json_needs_a_mapping(tmp_path: Path) -> None:
    source = write(tmp_path / "req.dat", [REQUEST.encode({})])
    status, _, err = run(
        "convert", str(source), "--copybook", "corebank_request", "--to", "canonical-json"
    )
    assert status == 2
    assert "needs --mapping" in err


def test_convert_to_camt053_is_a_valid_statement(tmp_path: Path) -> None:
    source = write(tmp_path / "stmt.dat", statement_records())
    target = tmp_path / "stmt.xml"
    status, _, err = run(
        "convert", str(source), "--copybook", "corebank_statement", "--to", "camt.053",
        "--output", str(target),
    )  # fmt: skip
    assert status == 0, err
    status, out, _ = run("validate", str(target))
    assert status == 0
    assert "VALID camt.053.001.08" in out
    xml = target.read_text()
    assert "<Cd>OPBD</Cd>" in xml
    assert "<Cd>CLBD</Cd>" in xml
    assert '<Amt Ccy="EUR">924.60</Amt>' in xml
    assert xml.count("<Ntry>") == 2


def test_a_bad_record_stops_with_record_field_and_offset(tmp_path: Path) -> None:
    records = statement_records()
    source = write(tmp_path / "stmt.dat", [records[0], broken_detail(), *records[2:]])
    status, _, err = run(
        "convert", str(source), "--copybook", "corebank_statement", "--to", "jsonl"
    )
    assert status == 1
    assert "record 2, field SD-AMOUNT, offset 45" in err


@pytest.mark.parametrize("target", ["jsonl", "csv", "camt.053"])
def test_rejects_are_written_and_counted(tmp_path: Path, target: str) -> None:
    records = statement_records()
    bad = broken_detail()
    source = write(tmp_path / "stmt.dat", [records[0], bad, *records[1:]])
    rejects = tmp_path / "rejects.dat"
    status, _, err = run(
        "convert", str(source), "--copybook", "corebank_statement", "--to", target,
        "--rejects", str(rejects), "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert status == 0
    assert rejects.read_bytes() == bad
    assert "rejected: fixedwidth: cannot decode (record 2, field SD-AMOUNT, offset 45)" in err
    assert "4 records converted, 1 rejected" in err


def test_wrong_record_length_in_an_f_file(tmp_path: Path) -> None:
    source = tmp_path / "short.dat"
    source.write_bytes(statement_records()[0] + b"\x40" * 50)
    status, _, err = run(
        "convert", str(source), "--copybook", "corebank_statement", "--to", "jsonl"
    )
    assert status == 1
    assert "record 2" in err
    assert "ends inside a record (50 of 120 bytes)" in err


def test_convert_streams_in_bounded_memory(tmp_path: Path) -> None:
    """A 6 MB file converts with a peak of traced allocations under 1.5 MB."""
    records = [
        REQUEST.encode(
            {"CB-DEBIT-POSTING": True, "CB-POSTING-REF": f"REF-{i:06d}",
             "CB-AMOUNT": Decimal(i) / 100, "CB-CURRENCY": "EUR", "CB-NARRATIVE": "RENT"}
        )
        for i in range(100)
    ]  # fmt: skip
    source = tmp_path / "big.dat"
    with source.open("wb") as stream:
        for _ in range(300):
            stream.write(b"".join(records))
    size = source.stat().st_size
    assert size == 30_000 * 200
    target = tmp_path / "big.jsonl"
    tracemalloc.start()
    try:
        status, _, err = run(
            "convert", str(source), "--copybook", "corebank_request", "--to", "jsonl",
            "--output", str(target),
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 0, err
    assert "30000 records converted" in err
    assert peak < 1_500_000 < size
    with target.open() as converted:
        assert sum(1 for _ in converted) == 30_000


@pytest.mark.parametrize("record_format", ["F", "VB", "gnucobol-variable"])
def test_jsonl_back_to_records_is_byte_exact(tmp_path: Path, record_format: str) -> None:
    source = write(tmp_path / "stmt.dat", statement_records(), record_format)
    common = ("--copybook", "corebank_statement", "--record-format", record_format)
    status, _, err = run(
        "convert", str(source), *common, "--to", "jsonl", "--output", str(tmp_path / "s.jsonl")
    )
    assert status == 0, err
    status, _, err = run(
        "convert", str(tmp_path / "s.jsonl"), *common, "--to", "records",
        "--output", str(tmp_path / "back.dat"),
    )  # fmt: skip
    assert status == 0, err
    assert "4 records written" in err
    assert (tmp_path / "back.dat").read_bytes() == source.read_bytes()


def test_records_from_bad_json_lines(tmp_path: Path) -> None:
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        '{"CB-TRAN-CODE": "DEBT", "CB-AMOUNT": "1.00"}\n'
        '{"CB-TRAN-CODE": "DEBT", "CB-AMOUNT": "1.001"}\n'
        "not json\n"
        '{"CB-TRAN-CODE": "TOO-LONG"}\n'
    )
    args = ("convert", str(lines), "--copybook", "corebank_request", "--to", "records")
    status, _, err = run(*args, "--output", str(tmp_path / "out.dat"))
    assert status == 1
    assert "line 2: fixedwidth: cannot encode (field CB-AMOUNT)" in err
    status, _, err = run(
        *args, "--output", str(tmp_path / "out.dat"), "--rejects", str(tmp_path / "bad.jsonl")
    )
    assert status == 0
    assert "1 records written, 3 rejected" in err
    assert "line 3: not JSON" in err
    assert len((tmp_path / "out.dat").read_bytes()) == 200
    assert len((tmp_path / "bad.jsonl").read_text().splitlines()) == 3


def test_record_rules_and_redefines_from_the_command_line(tmp_path: Path) -> None:
    copybook = tmp_path / "two.cpy"
    copybook.write_text(
        "       01  A-REC.\n"
        "           05  A-KIND      PIC X.\n"
        "               88  A-IS-A          VALUE 'A'.\n"
        "           05  A-VIEW      PIC X(4).\n"
        "           05  A-NUM       REDEFINES A-VIEW PIC S9(7) COMP-3.\n"
        "           05  A-NUMERIC   PIC X.\n"
        "               88  A-IS-NUM        VALUE 'Y'.\n"
        "       01  B-REC.\n"
        "           05  B-FILL      PIC X(5).\n"
        "           05  B-KIND      PIC X.\n"
        "               88  B-IS-B          VALUE 'B'.\n"
    )
    records = [
        "AABCDN".encode("cp037"),
        "A".encode("cp037") + bytes.fromhex("0012345c") + "Y".encode("cp037"),
        "XXXXXB".encode("cp037"),
    ]
    source = write(tmp_path / "two.dat", records)
    status, out, err = run(
        "convert", str(source), "--copybook", str(copybook), "--to", "jsonl",
        "--record-rule", "A-REC=A-IS-A", "--record-rule", "B-REC=B-IS-B",
        "--redefines", "A-NUM=A-IS-NUM",
    )  # fmt: skip
    assert status == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0] == {"_layout": "A-REC", "A-KIND": "A", "A-VIEW": "ABCD", "A-NUMERIC": "N"}
    assert rows[1]["A-NUM"] == 12345
    assert rows[2]["_layout"] == "B-REC"
    status, _, err = run(
        "convert", str(source), "--copybook", str(copybook), "--to", "jsonl",
        "--record-rule", "A-REC",
    )  # fmt: skip
    assert status == 2
    assert "NAME=CONDITION" in err


def test_canonical_json_refuses_a_mapping_with_card_numbers(tmp_path: Path) -> None:
    from tests.adapters.fixedwidth.test_adapter import CARD_COPYBOOK, CARD_MAPPING

    (tmp_path / "card.cpy").write_text(CARD_COPYBOOK)
    (tmp_path / "card.toml").write_text(CARD_MAPPING)
    source = write(tmp_path / "cards.dat", [b"\x40" * 57])
    status, _, err = run(
        "convert", str(source), "--copybook", str(tmp_path / "card.cpy"),
        "--mapping", str(tmp_path / "card.toml"), "--to", "canonical-json",
    )  # fmt: skip
    assert status == 2
    assert "needs the vault" in err
