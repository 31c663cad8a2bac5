"""The outbox and its relay on SQLite and PostgreSQL, with a real in-process publisher."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from routing.inbox import apply_once
from routing.outbox import (
    OutboxRecord,
    OutboxRelay,
    add,
    pending_count,
    purge_sent_before,
)
from tests.routing.conftest import EngineFactory

T0 = dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)

effects = MetaData()
orders = Table(
    "test_routing_orders",
    effects,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reference", String(64), nullable=False),
)
postings = Table(
    "test_routing_postings",
    effects,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
)


class Collector:
    """A broker stand-in: keeps what it was given, in order; "confirms" by returning."""

    def __init__(self) -> None:
        self.published: list[OutboxRecord] = []
        self.calls = 0

    def publish(self, records: Sequence[OutboxRecord]) -> None:
        self.calls += 1
        self.published.extend(records)


class RelayCrashError(Exception):
    """The relay process dying: whatever the transaction held is rolled back."""


class CrashAfterConfirm(Collector):
    """The broker confirms everything, then the relay dies before it marks the rows sent."""

    def publish(self, records: Sequence[OutboxRecord]) -> None:
        super().publish(records)
        raise RelayCrashError


class RefusingBroker:
    """A broker that does not confirm (nack, lost connection): ``publish`` raises."""

    def publish(self, records: Sequence[OutboxRecord]) -> None:
        raise ConnectionError("broker nacked")


def record(i: int, destination: str = "core.postings") -> OutboxRecord:
    return OutboxRecord(
        f"m-{i}", destination, f'{{"n":{i}}}'.encode(), routing_key=f"acme/card/{i}",
        headers=(("tenant", "acme"), ("traceparent", f"00-{i:032x}-{i:016x}-01")),
    )  # fmt: skip


def place_order(engine: Engine, reference: str, messages: Sequence[OutboxRecord]) -> None:
    """The service's transaction: its own write and the messages that tell about it."""
    with engine.begin() as connection:
        connection.execute(insert(orders).values(reference=reference))
        add(connection, messages)


def without_position(records: Sequence[OutboxRecord]) -> list[OutboxRecord]:
    return [
        OutboxRecord(r.message_id, r.destination, r.body, r.routing_key, r.headers) for r in records
    ]


def test_records_are_published_in_order_with_everything_they_carry(engine: Engine) -> None:
    effects.create_all(engine)
    sent = [record(i) for i in range(7)]
    place_order(engine, "o-1", sent[:3])
    place_order(engine, "o-2", sent[3:])
    collector = Collector()
    assert OutboxRelay(engine, collector, batch_size=3).relay_pending() == 7
    assert without_position(collector.published) == sent
    positions = [r.position or 0 for r in collector.published]
    assert 0 not in positions
    assert positions == sorted(positions)
    assert collector.calls == 3  # batches of 3, 3, 1
    assert OutboxRelay(engine, collector).relay_pending() == 0
    with engine.connect() as connection:
        assert pending_count(connection) == 0


def test_a_rolled_back_transaction_leaves_nothing_to_publish(engine: Engine) -> None:
    effects.create_all(engine)
    with pytest.raises(IntegrityError):
        # same message id and destination twice: the whole transaction fails
        place_order(engine, "o-1", [record(1), record(1)])
    collector = Collector()
    assert OutboxRelay(engine, collector).relay_pending() == 0
    with engine.connect() as connection:
        assert connection.execute(select(orders)).all() == []


def test_one_message_may_go_to_several_destinations(engine: Engine) -> None:
    add_to = [record(1, "core.postings"), record(1, "journal.events")]
    with engine.begin() as connection:
        add(connection, add_to)
    collector = Collector()
    assert OutboxRelay(engine, collector).relay_pending() == 2
    assert without_position(collector.published) == add_to


def test_an_unconfirmed_batch_stays_pending(engine: Engine) -> None:
    with engine.begin() as connection:
        add(connection, [record(1), record(2)])
    with pytest.raises(ConnectionError, match="nacked"):
        OutboxRelay(engine, RefusingBroker()).relay_batch()
    with engine.connect() as connection:
        assert pending_count(connection) == 2
    collector = Collector()
    assert OutboxRelay(engine, collector).relay_pending() == 2
    assert [r.message_id for r in collector.published] == ["m-1", "m-2"]


def test_a_crash_between_publish_and_mark_republishes_and_the_inbox_makes_it_once(
    make_engine: EngineFactory,
) -> None:
    sender, receiver = make_engine(), make_engine()
    effects.create_all(sender)
    place_order(sender, "o-1", [record(1), record(2)])
    place_order(sender, "o-2", [record(3)])

    broker: list[OutboxRecord] = []  # every copy the broker accepted, duplicates included
    crashing = CrashAfterConfirm()
    with pytest.raises(RelayCrashError):
        OutboxRelay(sender, crashing, batch_size=2).relay_batch()
    broker.extend(crashing.published)
    with sender.connect() as connection:
        assert pending_count(connection) == 3  # the crash lost the "sent" marks
    restarted = Collector()
    assert OutboxRelay(sender, restarted, batch_size=2).relay_pending() == 3
    broker.extend(restarted.published)
    assert [r.message_id for r in broker] == ["m-1", "m-2", "m-1", "m-2", "m-3"]

    def post(connection: Connection, new: Sequence[OutboxRecord]) -> None:
        if new:
            connection.execute(insert(postings), [{"message_id": r.message_id} for r in new])

    # The receiver gets every copy, in deliveries of two, and acks each after commit.
    applied: list[str] = []
    for start in range(0, len(broker), 2):
        delivered = broker[start : start + 2]
        applied += [
            r.message_id
            for r in apply_once(receiver, "postings", delivered, lambda r: r.message_id, post)
        ]
    assert applied == ["m-1", "m-2", "m-3"]
    with receiver.connect() as connection:
        rows = connection.execute(select(postings.c.message_id).order_by(postings.c.id))
        assert [m for (m,) in rows] == ["m-1", "m-2", "m-3"]


def test_several_relays_publish_each_record_once(make_engine: EngineFactory) -> None:
    first = make_engine()
    with first.begin() as connection:
        add(connection, [record(i) for i in range(300)])
    collectors = [Collector() for _ in range(3)]
    relays = [OutboxRelay(make_engine(), c, batch_size=10) for c in collectors]
    threads = [threading.Thread(target=relay.relay_pending) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [r.message_id for c in collectors for r in c.published]
    assert sorted(ids) == sorted(f"m-{i}" for i in range(300))  # each exactly once
    for collector in collectors:  # each relay's own publications keep the outbox order
        positions = [r.position or 0 for r in collector.published]
        assert positions == sorted(positions)


def test_run_relays_until_stopped_and_retries_after_a_failure(engine: Engine) -> None:
    with engine.begin() as connection:
        add(connection, [record(1), record(2), record(3)])
    stop = threading.Event()

    class FailsOnceThenStops(Collector):
        def publish(self, records: Sequence[OutboxRecord]) -> None:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("connection reset")
            self.published.extend(records)
            if len(self.published) == 3:
                stop.set()

    broker = FailsOnceThenStops()
    OutboxRelay(engine, broker, batch_size=2).run(stop, idle_wait=0.01)
    assert [r.message_id for r in broker.published] == ["m-1", "m-2", "m-3"]
    with engine.connect() as connection:
        assert pending_count(connection) == 0


def test_purge_deletes_only_sent_rows_older_than_the_cutoff(engine: Engine) -> None:
    with engine.begin() as connection:
        add(connection, [record(1), record(2)])
    OutboxRelay(engine, Collector(), clock=lambda: T0).relay_pending()
    with engine.begin() as connection:
        add(connection, [record(3)])
        assert purge_sent_before(connection, T0 + dt.timedelta(seconds=1)) == 2
        assert purge_sent_before(connection, T0 + dt.timedelta(days=365)) == 0
        assert pending_count(connection) == 1


def test_batch_size_must_be_positive(engine: Engine) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        OutboxRelay(engine, Collector(), batch_size=0)


def test_add_works_inside_an_orm_session(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        add(session, [record(1)])
    with Session(engine) as session, session.begin():
        assert pending_count(session) == 1
    collector = Collector()
    assert OutboxRelay(engine, collector).relay_pending() == 1
