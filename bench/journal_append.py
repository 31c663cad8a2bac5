"""Benchmark: the cost of journaling, against a raw insert of the same rows, in one run.

Floor: a raw SQLAlchemy Core insert of the same event rows into the same table
(``journal_events``, same indexes) of a second database of the same kind, batches of N in
one transaction, rows built before the clock starts: what storing the events costs at the
least.

Journal: :meth:`journal.store.Journal.append` of the same events, batches of N in one
transaction (group commit), everything included: checks (the clear-PAN scan), the chain
head lock, the SHA-256 chain, AES-256-GCM of the personal parts under the tenant key (two
events in nine carry one), a signed checkpoint every 1000 events, and the read-model
projection (one read and up to two writes per batch).

Events are those of card purchases (5 events each) and credit transfers with personal data
(4 events each), interleaved. Each figure is the median of ``--rounds`` rounds, each on
fresh databases. SQLite runs in a temporary directory (WAL, the embedded default); with
``--postgres-url`` PostgreSQL runs too, each round in its own schema.

Run::

    .venv/bin/python -m bench.journal_append [--events 20000] [--batches 1,10,100,500]
        [--rounds 3] [--postgres-url postgresql+psycopg://user:pw@host/db]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, create_engine, insert, text

from journal.events import Event, EventKind, TransactionIds, body_text
from journal.keys import StaticMasterKeys
from journal.migrate import upgrade
from journal.schema import EVENTS
from journal.store import Journal

START = dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)
KEYS = StaticMasterKeys({1: secrets.token_bytes(32)})


def _ids(number: int) -> TransactionIds:
    return TransactionIds(
        f"hub-{number:08d}",
        f"6333{number:08d}",
        f"{number % 1_000_000:06d}",
        "TERM0001",
        f"1b4e28ba-2fa1-41d2-883f-{number:012x}",
    )


def events(count: int) -> list[Event]:
    """``count`` events of interleaved card purchases and credit transfers."""
    personal = {"debtor": "Erika Mustermann", "creditor_iban": "DE89370400440532013000",
                "remittance": "invoice 2026-11-0042"}  # fmt: skip
    made: list[Event] = []
    number = 0
    while len(made) < count:
        number += 2
        card, transfer = _ids(number), _ids(number + 1)
        at = START + dt.timedelta(milliseconds=number)
        made += [
            Event(EventKind.RECEIVED, "acme", card, at, {"amount": "12.50", "currency": "EUR"}),
            Event(EventKind.RECEIVED, "acme", transfer, at, {"amount": "250.00"}, personal),
            Event(EventKind.TOKENIZED, "acme", card, at, {"token_masked": "411111******1111"}),
            Event(EventKind.SENT, "acme", transfer, at, {"destination": "clearing"}),
            Event(EventKind.ROUTED, "acme", card, at, {"destination": "core.cards"}),
            Event(EventKind.ANSWERED, "acme", transfer, at, {"status": "ACSC"}),
            Event(EventKind.SENT, "acme", card, at, {"attempt": 1}),
            Event(EventKind.STATUS_CHANGED, "acme", transfer, at, {"status": "ACCC"}, personal),
            Event(EventKind.ANSWERED, "acme", card, at, {"status": "approved", "latency_ms": 9.5}),
        ]
    return made[:count]


def floor_rows(items: list[Event]) -> list[dict[str, Any]]:
    """The rows of ``items`` as a plain insert would store them: no chain, no encryption."""
    return [
        {
            "seq": seq,
            "at": item.at,
            "kind": item.kind.value,
            "tenant": item.tenant,
            "transaction_id": item.ids.transaction_id,
            "end_to_end_id": item.ids.end_to_end_id,
            "stan": item.ids.stan,
            "terminal_id": item.ids.terminal_id,
            "uetr": item.ids.uetr,
            "body": body_text(item.body),
            "personal": None if item.personal is None else body_text(item.personal).encode(),
            "key_version": None if item.personal is None else 1,
            "prev_hash": "0" * 64,
            "hash": "0" * 64,
        }
        for seq, item in enumerate(items, start=1)
    ]


@contextmanager
def database(kind: str, postgres_url: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, engine options) of a fresh, empty database with the journal's schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="isobridge-bench-") as home:
            url = f"sqlite:///{Path(home) / 'journal.db'}"
            engine = Journal.create_engine(url)
            upgrade(engine)
            engine.dispose()
            yield url, {}
        return
    assert postgres_url is not None
    schema = f"journal_bench_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    options: dict[str, Any] = {"connect_args": {"options": f"-csearch_path={schema}"}}
    engine = Journal.create_engine(postgres_url, **options)
    upgrade(engine)
    engine.dispose()
    try:
        yield postgres_url, options
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _timed(operation: Callable[[], None]) -> float:
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


def measure_floor(engine: Engine, rows: list[dict[str, Any]], batch: int) -> float:
    def run() -> None:
        for start in range(0, len(rows), batch):
            with engine.begin() as connection:
                connection.execute(insert(EVENTS), rows[start : start + batch])

    return len(rows) / _timed(run)


def measure_journal(journal: Journal, items: list[Event], batch: int) -> float:
    def run() -> None:
        for start in range(0, len(items), batch):
            with journal.engine.begin() as connection:
                journal.append(connection, items[start : start + batch])

    return len(items) / _timed(run)


def run(
    kind: str, count: int, batches: list[int], rounds: int, postgres_url: str | None
) -> list[tuple[int, int, float, float]]:
    """(batch, events, floor events/s, journal events/s) for each batch size: medians."""
    results = []
    for batch in batches:
        # One commit per event is slow everywhere: fewer events keep the run short.
        size = min(count, 2000) if batch == 1 else count
        items = events(size)
        rows = floor_rows(items)
        floors, journals = [], []
        for _ in range(rounds):
            with database(kind, postgres_url) as (url, options):
                engine = Journal.create_engine(url, **options)
                floors.append(measure_floor(engine, rows, batch))
                engine.dispose()
            with database(kind, postgres_url) as (url, options):
                journal = Journal.open(url, KEYS, **options)
                journal.record(events(1))  # the tenant key exists before the clock starts
                journals.append(measure_journal(journal, items, batch))
                report = journal.verify()
                assert report.ok and report.events_checked == size + 1, report.problems
                journal.close()
        results.append((batch, size, statistics.median(floors), statistics.median(journals)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batches", default="1,10,100,500")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (a schema per round)")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    print(f"python {sys.version.split()[0]}, SQLAlchemy {sqlalchemy.__version__}")
    print(f"{args.events} events, median of {args.rounds} rounds\n")
    kinds = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    print(f"  {'database':<11} {'batch':>6} {'floor /s':>10} {'journal /s':>11} {'x floor':>8}")
    for kind in kinds:
        for batch, _size, floor, journal in run(
            kind, args.events, batches, args.rounds, args.postgres_url
        ):
            print(
                f"  {kind:<11} {batch:>6} {floor:>10,.0f} {journal:>11,.0f} {floor / journal:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
