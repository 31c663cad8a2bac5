"""Benchmark: the cost of journaling, against a raw insert of the same rows, in one run.

Floor: a raw SQLAlchemy Core insert of the same event rows into the same table
(``journal_events``, same indexes) of a second database of the same kind, batches of N in
one transaction, rows built before the clock starts: what storing the events costs at the
least.

Journal: :meth:`journal.store.Journal.append` of the same events, batches of N in one
transaction (group commit), everything included: checks (the clear-PAN scan), the chain
head lock, the SHA-256 chain, AES-256-GCM of the personal parts under the tenant key, a
signed checkpoint every 1000 events, and the read-model projection (one upsert per batch).

Events (``--mix``): ``mixed`` interleaves card purchases (5 events each) and credit
transfers with personal data (4 events each, two of them with a personal part); ``hub`` is
what the running hub writes for each card payment (``hub/service.py``): received, routed,
answered, no personal part. Each figure is the median of ``--rounds`` rounds, each on fresh
databases. SQLite runs in a temporary directory (WAL, the embedded default); with
``--postgres-url`` PostgreSQL runs too, each round in its own schema.

Besides events per second, the journal's CPU time per event is shown: this process's CPU
time (``time.process_time``) over the appends, which is what journaling takes from the hub
(PostgreSQL's own CPU is not in it; SQLite's is, it runs in the process).

Run::

    .venv/bin/python -m bench.journal_append [--events 20000] [--batches 1,10,100,500]
        [--rounds 3] [--mix mixed|hub] [--postgres-url postgresql+psycopg://user:pw@host/db]
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
from typing import Any, NamedTuple

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


def hub_events(count: int) -> list[Event]:
    """``count`` events of card payments as the hub journals them (hub/service.py): one
    payment received every millisecond and answered 9 ms later, so that a payment's answer
    comes after nine later payments' receipts (and often in a later batch)."""
    made: list[Event] = []
    for number in range(1, count // 3 + 2):
        ids = _ids(number)
        at = START + dt.timedelta(milliseconds=number)
        made += [
            Event(EventKind.RECEIVED, "acme", ids, at, {"message_kind": "financial",
                  "function": "request", "amount": "12.50", "currency": "EUR"}),
            Event(EventKind.ROUTED, "acme", ids, at + dt.timedelta(microseconds=300),
                  {"destination": "core", "rule": "cards-to-core"}),
            Event(EventKind.ANSWERED, "acme", ids, at + dt.timedelta(microseconds=9_100),
                  {"status": "ACSC", "response_code": "00", "latency_ms": 9.1}),
        ]  # fmt: skip
    return sorted(made, key=lambda event: event.at)[:count]


MIXES: dict[str, Callable[[int], list[Event]]] = {"mixed": events, "hub": hub_events}


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


class Measured(NamedTuple):
    """What one run of a batch size gave: its medians over the rounds."""

    batch: int
    events: int
    floor_per_second: float
    journal_per_second: float
    journal_cpu_us: float
    """This process's CPU time per event appended (microseconds)."""


def _timed(operation: Callable[[], None]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) that ``operation`` took."""
    wall, cpu = time.perf_counter(), time.process_time()
    operation()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_floor(engine: Engine, rows: list[dict[str, Any]], batch: int) -> float:
    def run() -> None:
        for start in range(0, len(rows), batch):
            with engine.begin() as connection:
                connection.execute(insert(EVENTS), rows[start : start + batch])

    wall, _cpu = _timed(run)
    return len(rows) / wall


def measure_journal(journal: Journal, items: list[Event], batch: int) -> tuple[float, float]:
    """(events per second, CPU microseconds per event)."""

    def run() -> None:
        for start in range(0, len(items), batch):
            with journal.engine.begin() as connection:
                journal.append(connection, items[start : start + batch])

    wall, cpu = _timed(run)
    return len(items) / wall, cpu / len(items) * 1e6


def run(
    kind: str,
    count: int,
    batches: list[int],
    rounds: int,
    postgres_url: str | None,
    mix: Callable[[int], list[Event]] = events,
) -> list[Measured]:
    """The medians of each batch size."""
    results = []
    for batch in batches:
        # One commit per event is slow everywhere: fewer events keep the run short.
        size = min(count, 2000) if batch == 1 else count
        items = mix(size)
        rows = floor_rows(items)
        floors, journals, cpus = [], [], []
        for _ in range(rounds):
            with database(kind, postgres_url) as (url, options):
                engine = Journal.create_engine(url, **options)
                floors.append(measure_floor(engine, rows, batch))
                engine.dispose()
            with database(kind, postgres_url) as (url, options):
                journal = Journal.open(url, KEYS, **options)
                journal.record(events(2))  # the tenant key exists before the clock starts
                per_second, cpu_us = measure_journal(journal, items, batch)
                journals.append(per_second)
                cpus.append(cpu_us)
                report = journal.verify()
                assert report.ok and report.events_checked == size + 2, report.problems
                journal.close()
        results.append(
            Measured(
                batch,
                size,
                statistics.median(floors),
                statistics.median(journals),
                statistics.median(cpus),
            )
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batches", default="1,10,100,500")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mix", choices=sorted(MIXES), default="mixed")
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (a schema per round)")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    print(f"python {sys.version.split()[0]}, SQLAlchemy {sqlalchemy.__version__}")
    print(f"{args.events} events ({args.mix}), median of {args.rounds} rounds\n")
    kinds = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    print(
        f"  {'database':<11} {'batch':>6} {'floor /s':>10} {'journal /s':>11} {'x floor':>8}"
        f" {'cpu us/event':>13}"
    )
    for kind in kinds:
        for measured in run(
            kind, args.events, batches, args.rounds, args.postgres_url, MIXES[args.mix]
        ):
            floor, journal = measured.floor_per_second, measured.journal_per_second
            print(
                f"  {kind:<11} {measured.batch:>6} {floor:>10,.0f} {journal:>11,.0f}"
                f" {floor / journal:>8.2f} {measured.journal_cpu_us:>13.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
