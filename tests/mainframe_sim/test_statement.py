"""The end-of-day statement extract decodes with the copybook and agrees with the ledger."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.fixedwidth import load_layout
from mainframe_sim.ledger import Ledger
from mainframe_sim.records import Records
from mainframe_sim.seed import SEED_ACCOUNTS
from mainframe_sim.statement import write_statement
from mainframe_sim.transactions import process_batch
from tests.mainframe_sim.samples import ANNA, JONAS, OVERDRAFT, request

STATEMENT = load_layout("corebank_statement", codepage="cp037")


def minor(value: Decimal) -> int:
    return int(value.scaleb(2))


def extract(ledger: Ledger, day: dt.date) -> tuple[bytes, list[tuple[str, dict[str, Any]]]]:
    out = io.BytesIO()
    write_statement(ledger, Records(), day, out)
    data = out.getvalue()
    assert len(data) % 120 == 0
    return data, [STATEMENT.decode(data[i : i + 120]) for i in range(0, len(data), 120)]


def by_account(
    records: list[tuple[str, dict[str, Any]]],
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    current = ""
    for name, fields in records:
        if name == "STMT-HEADER":
            current = fields["SH-ACCOUNT-NO"]
        grouped.setdefault(current, []).append((name, fields))
    return grouped


def test_the_extract_totals_match_the_ledger(ledger: Ledger, clock: Any) -> None:
    clock.now = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
    replies = process_batch(
        ledger,
        [
            request("DEBT", "D1", amount="10"),
            request("CRDT", "C1", amount="5"),
            request("XFER", "T1", JONAS, "1", contra=ANNA),
            request("REVS", "R1", "", orig="C1"),
            request("HOLD", "H1", amount="7"),  # no entry: holds are not postings
        ],
    )
    assert {reply.result_code for reply in replies} == {"00"}
    _, records = extract(ledger, dt.date(2026, 11, 28))
    grouped = by_account(records)
    assert list(grouped) == sorted(seed.number for seed in SEED_ACCOUNTS)
    for number, account_records in grouped.items():
        names = [name for name, _ in account_records]
        assert names[0] == "STMT-HEADER"
        assert names[-1] == "STMT-TRAILER"
        assert set(names[1:-1]) <= {"STMT-DETAIL"}
        header, trailer = account_records[0][1], account_records[-1][1]
        details = [fields for _, fields in account_records[1:-1]]
        assert header["SH-STATEMENT-DATE"] == 20261128
        debits = sum(minor(d["SD-AMOUNT"]) for d in details if d["SD-DEBIT-CREDIT"] == "D")
        credits = sum(minor(d["SD-AMOUNT"]) for d in details if d["SD-DEBIT-CREDIT"] == "C")
        assert trailer["ST-ENTRY-COUNT"] == len(details)
        assert (minor(trailer["ST-TOTAL-DEBITS"]), minor(trailer["ST-TOTAL-CREDITS"])) == (
            debits, credits,
        )  # fmt: skip
        closing = minor(trailer["ST-CLOSING-BALANCE"])
        assert closing == minor(header["SH-OPENING-BALANCE"]) - debits + credits
        account = ledger.account(number)
        assert account is not None
        assert closing == account.ledger_balance
    anna = grouped[ANNA]
    assert anna[0][1]["SH-OPENING-BALANCE"] == Decimal("1123.45")
    assert anna[0][1]["SH-ACCOUNT-NAME"] == "Anna Schmidt"
    assert [(d["SD-POSTING-REF"], d["SD-DEBIT-CREDIT"], d["SD-AMOUNT"], d["SD-TRAN-CODE"])
            for _, d in anna[1:-1]] == [
        ("D1", "D", Decimal("10.00"), "DEBT"),
        ("C1", "C", Decimal("5.00"), "CRDT"),
        ("T1", "C", Decimal("1.00"), "XFER"),
        ("R1", "D", Decimal("5.00"), "REVS"),
    ]  # fmt: skip
    assert anna[1][1]["SD-BOOKING-DATE"] == anna[1][1]["SD-VALUE-DATE"] == 20261128


def test_an_earlier_date_shows_the_opening_postings_only(ledger: Ledger, clock: Any) -> None:
    clock.now = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
    process_batch(ledger, [request("DEBT", "D1", amount="10")])
    _, records = extract(ledger, dt.date(2026, 11, 27))
    anna = by_account(records)[ANNA]
    assert anna[0][1]["SH-OPENING-BALANCE"] == 0
    assert [d["SD-POSTING-REF"] for _, d in anna[1:-1]] == ["SEED-0001"]
    assert anna[-1][1]["ST-CLOSING-BALANCE"] == Decimal("1123.45")


LAYOUTS = Path(__file__).resolve().parents[2] / "adapters" / "fixedwidth" / "layouts"


@pytest.fixture(scope="module")
def stmtsum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cobol/stmtsum.cbl`` compiled by GnuCOBOL against the copybook the extract uses."""
    cobc = shutil.which("cobc")
    if cobc is None:
        pytest.fail(
            "cobc (GnuCOBOL) is not installed: run scripts/test, or apt-get install gnucobol3"
        )
    executable = tmp_path_factory.mktemp("cobol") / "stmtsum"
    subprocess.run(
        [cobc, "-x", "-I", str(LAYOUTS), "-o", str(executable),
         str(Path(__file__).parent / "cobol" / "stmtsum.cbl")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return executable


def cobol_check(program: Path, data: bytes, tmp_path: Path) -> list[list[str]]:
    extract_file = tmp_path / "STMT.ASC"
    extract_file.write_bytes(data)
    done = subprocess.run([str(program), str(extract_file)], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    return [line.split() for line in done.stdout.splitlines()]


def test_a_cobol_program_reads_the_extract_and_agrees(
    ledger: Ledger, clock: Any, stmtsum: Path, tmp_path: Path
) -> None:
    clock.now = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
    process_batch(
        ledger,
        [
            request("DEBT", "D1", OVERDRAFT, "2500"),  # a negative closing balance
            request("XFER", "T1", JONAS, "1", contra=ANNA),
            request("CRDT", "C1", amount="0.01"),
        ],
    )
    out = io.BytesIO()
    write_statement(ledger, Records("ascii"), dt.date(2026, 11, 28), out)
    lines = cobol_check(stmtsum, out.getvalue(), tmp_path)
    assert len(lines) == len(SEED_ACCOUNTS)
    for result, number, _count, closing in lines:
        account = ledger.account(number)
        assert account is not None
        assert result == "OK"
        assert Decimal(closing) == Decimal(account.ledger_balance).scaleb(-2), number
    assert {number: int(count) for _, number, count, _ in lines}[ANNA] == 2
    assert ledger.balances(OVERDRAFT) == (-37655, -37655, "EUR")
    # The check can fail: a detail amount changed on the way is caught by the trailer.
    tampered = bytearray(out.getvalue())
    first_detail = next(i for i in range(0, len(tampered), 120) if tampered[i : i + 1] == b"D")
    tampered[first_detail + 41] ^= 0x10  # a digit of SD-AMOUNT (COMP-3 at offset 41)
    assert "BAD" in {line[0] for line in cobol_check(stmtsum, bytes(tampered), tmp_path)}
