"""The append's driver SQL: the rows it stores are those SQLAlchemy Core stores, byte for
byte, on SQLite and PostgreSQL; the SQL is written in each dialect's placeholder style."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from journal.driver_sql import DriverInsert, per_dialect, placeholders
from journal.events import body_text
from journal.schema import EVENTS, HEAD, TRANSACTIONS
from journal.store import Journal
from tests.journal.factories import mixed_run


def stored_rows(connection: Connection, table: str, order: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` as the driver hands it back (SQLite: times as stored text)."""
    return [
        tuple(row) for row in connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")
    ]


def test_appended_events_are_the_rows_core_writes(journal: Journal) -> None:
    events = list(mixed_run(3))  # card purchases and credit transfers with personal parts
    stored = journal.record(events[:5]) + journal.record(events[5:])
    with journal.engine.connect() as connection, connection.begin() as transaction:
        written = stored_rows(connection, "journal_events", "seq")
        core_rows = [
            {
                "seq": kept.seq,
                "at": event.at,
                "kind": event.kind.value,
                "tenant": event.tenant,
                "transaction_id": event.ids.transaction_id,
                "end_to_end_id": event.ids.end_to_end_id,
                "stan": event.ids.stan,
                "terminal_id": event.ids.terminal_id,
                "uetr": event.ids.uetr,
                "body": body_text(event.body),
                "personal": row[10],
                "key_version": row[11],
                "prev_hash": kept.prev_hash,
                "hash": kept.hash,
            }
            for event, kept, row in zip(events, stored, written, strict=True)
        ]
        assert any(row["personal"] is not None for row in core_rows)
        connection.execute(delete(EVENTS))
        connection.execute(insert(EVENTS), core_rows)
        assert stored_rows(connection, "journal_events", "seq") == written
        transaction.rollback()
    assert journal.verify().ok


def test_the_read_model_upserts_the_rows_core_writes(journal: Journal) -> None:
    events = list(mixed_run(5))
    for start in range(0, len(events), 4):  # transactions split across batches: updates too
        journal.record(events[start : start + 4])
    live = journal.transactions()
    with journal.engine.connect() as connection, connection.begin() as transaction:
        written = stored_rows(connection, "journal_transactions", "transaction_id")
        connection.execute(delete(TRANSACTIONS))
        connection.execute(insert(TRANSACTIONS), [dataclasses.asdict(view) for view in live])
        assert stored_rows(connection, "journal_transactions", "transaction_id") == written
        transaction.rollback()


def test_the_sql_is_written_in_each_dialects_placeholder_style() -> None:
    columns = ("id", "seq")
    assert DriverInsert.of(sqlite.dialect(), HEAD, columns).sql == (
        "INSERT INTO journal_head (id, seq) VALUES (?, ?)"
    )
    psycopg = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    assert DriverInsert.of(psycopg, HEAD, columns).sql == (
        "INSERT INTO journal_head (id, seq) VALUES (%s, %s)"
    )
    assert placeholders(sqlite.dialect(paramstyle="numeric"), 2, first=3) == [":3", ":4"]
    with pytest.raises(ValueError, match="positional parameters; pysqlite uses 'named'"):
        placeholders(sqlite.dialect(paramstyle="named"), 1)


def test_statements_are_built_once_per_dialect() -> None:
    built: list[str] = []

    @per_dialect
    def statement(dialect: Any) -> str:
        built.append(dialect.name)
        return f"SELECT 1 -- {dialect.name}"

    first, second = sqlite.dialect(), sqlite.dialect()
    assert statement(first) == statement(first) == statement(second)
    assert built == ["sqlite", "sqlite"]


ZONES = st.none() | st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=45))])


@given(st.builds(lambda at, zone: at.replace(tzinfo=zone), st.datetimes(), ZONES))
def test_sqlite_times_are_bound_as_the_dialects_processor_binds_them(at: dt.datetime) -> None:
    dialect = sqlite.dialect()
    processor = EVENTS.c.at.type.dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    ((position, convert),) = DriverInsert.of(dialect, EVENTS, ("seq", "at")).conversions
    assert position == 1
    assert convert(at) == processor(at)
    assert convert(None) is processor(None) is None
