"""The end-of-day statement extract: a fixed-width file, FB LRECL 120, EBCDIC.

For a booking date, every customer account (by number, closed ones included) gets a header
record (``H``: account, currency, date, opening balance = all entries booked before that
date, name), one detail record (``D``) per entry booked on that date in booking order
(posting reference, booking and value date, amount, ``D`` debit or ``C`` credit, tran code,
narrative), and a trailer (``T``: entry count, total debits, total credits, closing balance =
opening - debits + credits). The layouts are ``corebank_statement.cpy``
(``STMT-HEADER``, ``STMT-DETAIL``, ``STMT-TRAILER``); records follow each other without
separators (fixed block), so the file is 120 bytes times the record count.

``python -m mainframe_sim extract --date 2026-11-27 --out STMT.DAT`` writes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO

from sqlalchemy import func, select

from mainframe_sim.ledger import Ledger, accounts, entries, postings
from mainframe_sim.records import Records

__all__ = ["ExtractTotals", "statement_records", "write_statement"]


def _money(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)


@dataclass
class ExtractTotals:
    """What an extract holds: accounts, detail records, and closing balances by account."""

    accounts: int = 0
    details: int = 0
    closing: dict[str, int] = field(default_factory=dict)


def statement_records(
    ledger: Ledger, records: Records, date: dt.date, totals: ExtractTotals | None = None
) -> Iterator[bytes]:
    """The extract's records for booking ``date``, in file order (``totals`` filled in)."""
    day = int(date.strftime("%Y%m%d"))
    totals = totals if totals is not None else ExtractTotals()
    with ledger.engine.connect() as connection:
        customers = connection.execute(
            select(accounts.c.number, accounts.c.name, accounts.c.currency)
            .where(accounts.c.kind == "customer")
            .order_by(accounts.c.number)
        ).all()
        openings = dict(
            connection.execute(
                select(entries.c.account, func.sum(entries.c.amount))
                .where(entries.c.booking_date < day)
                .group_by(entries.c.account)
            ).all()
        )
        for number, name, currency in customers:
            opening = int(openings.get(number, 0))
            yield records.statement_header.encode(
                {
                    "SH-REC-TYPE": "H", "SH-ACCOUNT-NO": number, "SH-CURRENCY": currency,
                    "SH-STATEMENT-DATE": day, "SH-OPENING-BALANCE": _money(opening),
                    "SH-ACCOUNT-NAME": name,
                }
            )  # fmt: skip
            debits = credits = count = 0
            rows = connection.execute(
                select(
                    entries.c.posting_ref,
                    entries.c.amount,
                    postings.c.booking_date,
                    postings.c.value_date,
                    postings.c.tran_code,
                    postings.c.narrative,
                )
                .join(postings, entries.c.posting_ref == postings.c.reference)
                .where(entries.c.account == number, entries.c.booking_date == day)
                .order_by(entries.c.id)
            )
            for reference, amount, booking_date, value_date, tran_code, narrative in rows:
                count += 1
                if amount < 0:
                    debits -= amount
                else:
                    credits += amount
                yield records.statement_detail.encode(
                    {
                        "SD-REC-TYPE": "D", "SD-POSTING-REF": reference,
                        "SD-BOOKING-DATE": booking_date, "SD-VALUE-DATE": value_date,
                        "SD-AMOUNT": _money(abs(amount)),
                        "SD-DEBIT-CREDIT": "D" if amount < 0 else "C",
                        "SD-TRAN-CODE": tran_code, "SD-NARRATIVE": narrative,
                    }
                )  # fmt: skip
            closing = opening - debits + credits
            yield records.statement_trailer.encode(
                {
                    "ST-REC-TYPE": "T", "ST-ENTRY-COUNT": count,
                    "ST-TOTAL-DEBITS": _money(debits), "ST-TOTAL-CREDITS": _money(credits),
                    "ST-CLOSING-BALANCE": _money(closing),
                }
            )  # fmt: skip
            totals.accounts += 1
            totals.details += count
            totals.closing[number] = closing


def write_statement(
    ledger: Ledger, records: Records, date: dt.date, out: BinaryIO
) -> ExtractTotals:
    """Write the extract for booking ``date`` to ``out``; what it holds."""
    totals = ExtractTotals()
    for record in statement_records(ledger, records, date, totals):
        out.write(record)
    return totals
