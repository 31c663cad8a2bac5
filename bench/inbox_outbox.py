"""Benchmark: exactly-once consuming (inbox + effect + outbox row) and the outbox relay.

Per message, in one transaction: :func:`routing.inbox.claim` of its id, the effect (one
ledger row), and one :func:`routing.outbox.add` row, as a consumer of postings would. Timed
with one message per transaction and with ``--batch`` messages per transaction (the batching
that ``ARCHITECTURE.md`` asks for), then the relay publishing every outbox row through a
publisher that only collects (so the figure is the relay's database cost, not a broker's).
Half of the second pass are redeliveries, which the inbox must skip.

Run::

    .venv/bin/python -m bench.inbox_outbox [--messages 3000] [--batch 50]
        [--postgres-url postgresql+psycopg://isobridge:isobridge@127.0.0.1:5432/isobridge_test]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, text
from sqlalchemy import create_engine as plain_engine

from routing.inbox import claim
from routing.outbox import OutboxRecord, OutboxRelay, add
from routing.store import create_engine, upgrade

_effects = MetaData()
_ledger = Table(
    "bench_routing_ledger",
    _effects,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
)


class Collector:
    """A publisher that keeps nothing but a count: the relay's own cost is measured."""

    def __init__(self) -> None:
        self.count = 0

    def publish(self, records: Sequence[OutboxRecord]) -> None:
        self.count += len(records)


def _consume(engine: Engine, ids: Sequence[str], batch: int) -> float:
    start = time.perf_counter()
    for at in range(0, len(ids), batch):
        chunk = ids[at : at + batch]
        with engine.begin() as connection:
            new = sorted(claim(connection, "bench", chunk))
            if new:
                connection.execute(insert(_ledger), [{"message_id": m} for m in new])
                add(connection, [OutboxRecord(m, "core.postings", b"{}") for m in new])
    return len(ids) / (time.perf_counter() - start)


def _run(label: str, engine: Engine, messages: int, batch: int) -> None:
    upgrade(engine)
    _effects.create_all(engine)
    run = secrets.token_hex(4)
    ids = [f"{run}-{i}" for i in range(messages)]
    single = _consume(engine, ids[: messages // 4], 1)
    batched = _consume(engine, ids[messages // 4 :], batch)
    again = ids[::2] + [f"{run}-new-{i}" for i in range(messages // 2)]
    redelivered = _consume(engine, again, batch)
    collector = Collector()
    start = time.perf_counter()
    relayed = OutboxRelay(engine, collector, batch_size=100).relay_pending()
    relay = relayed / (time.perf_counter() - start)
    print(f"{label:<11} {single:>10,.0f} {batched:>10,.0f} {redelivered:>12,.0f} {relay:>10,.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--postgres-url")
    args = parser.parse_args(argv)
    print(f"messages/s; batches of {args.batch}; relay batches of 100")
    print(f"{'database':<11} {'1 per tx':>10} {'batched':>10} {'half dupes':>12} {'relay':>10}")
    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite:///{Path(directory) / 'bench.db'}")
        _run("SQLite WAL", engine, args.messages, args.batch)
        engine.dispose()
    if args.postgres_url:
        schema = f"bench_{secrets.token_hex(4)}"
        admin = plain_engine(args.postgres_url)
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        engine = create_engine(
            args.postgres_url, connect_args={"options": f"-csearch_path={schema}"}
        )
        try:
            _run("PostgreSQL", engine, args.messages, args.batch)
        finally:
            engine.dispose()
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
