"""The transactional outbox: "write to the database, then publish" without loss or duplicates.

A service that changes the database and must tell others cannot publish inside its
transaction (the broker is not part of it) nor after it (a crash in between loses the message).
Instead it writes the message into ``routing_outbox`` with :func:`add`, **in the same
transaction as its change**. A relay (:class:`OutboxRelay`) later reads pending rows and
publishes them:

1. in one transaction, read up to ``batch_size`` pending rows in the order they were added
   (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several relays share the work without
   publishing a row twice; SQLite: the transaction starts with ``BEGIN IMMEDIATE``, so relays
   take turns: SQLite has one writer);
2. hand them to the :class:`Publisher` seam, which returns only when the broker has confirmed
   every one (publisher confirms) and raises otherwise;
3. mark them sent and commit.

If publishing fails, the transaction rolls back and the rows stay pending for the next
attempt. If the relay dies after the broker confirmed and before the commit, the rows are
published again by the next relay: delivery is **at least once**, and each record carries its
message id (the AMQP ``message_id``) so that the receiver's inbox (:mod:`routing.inbox`) drops
the copy. Effects happen exactly once.

Order: one relay publishes in the order of :func:`add` (the row id). Several relays on
PostgreSQL each publish their batches in order, but batches may overtake each other; where
order matters per account (:mod:`routing.ordering`), run one relay, or one per shard.

Sent rows are kept (``sent_at`` set) for inspection and deleted with :func:`purge_sent_before`.

>>> from routing.store import create_engine, upgrade
>>> engine = create_engine("sqlite://")
>>> upgrade(engine)
>>> with engine.begin() as connection:
...     # ... the change the messages tell about, written through the same connection ...
...     add(connection, [OutboxRecord("m-1", "core.postings", b"{}", routing_key="acme")])
>>> class Collector:
...     def __init__(self) -> None:
...         self.published: list[OutboxRecord] = []
...     def publish(self, records: Sequence[OutboxRecord]) -> None:
...         self.published.extend(records)
>>> collector = Collector()
>>> OutboxRelay(engine, collector).relay_pending()
1
>>> [(r.message_id, r.destination, r.body) for r in collector.published]
[('m-1', 'core.postings', b'{}')]
>>> OutboxRelay(engine, collector).relay_pending()
0
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from routing.store import outbox_table

__all__ = [
    "OutboxRecord",
    "OutboxRelay",
    "Publisher",
    "add",
    "pending_count",
    "purge_sent_before",
]

_log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One message to publish: its id (the receiver's inbox key), destination (an exchange
    or queue name), routing key, headers and body.

    ``position`` is the row's id, set on the records a relay reads (``None`` before
    :func:`add`): publication order, and a stable name for the row in logs.
    """

    message_id: str
    destination: str
    body: bytes
    routing_key: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    position: int | None = None


class Publisher(Protocol):
    """The seam between the relay and a broker: one method.

    ``publish`` sends every record (in order) and returns only when the broker has confirmed
    them all; it raises if any was not confirmed. It may be called again with records it
    already published (after a failure or a relay crash): receivers deduplicate by message id.
    """

    def publish(self, records: Sequence[OutboxRecord]) -> None: ...


def add(
    connection: Connection | Session,
    records: Iterable[OutboxRecord],
    *,
    now: dt.datetime | None = None,
) -> None:
    """Write ``records`` to the outbox in the caller's transaction (one statement).

    A record whose (message id, destination) is already in the outbox is refused by the
    unique constraint (:class:`sqlalchemy.exc.IntegrityError`), like any other failed write
    of the transaction.
    """
    created_at = now or _now()
    rows = [
        {
            "message_id": record.message_id,
            "destination": record.destination,
            "routing_key": record.routing_key,
            "headers": json.dumps(dict(record.headers), separators=(",", ":")),
            "body": record.body,
            "created_at": created_at,
            "sent_at": None,
        }
        for record in records
    ]
    if rows:
        connection.execute(insert(outbox_table), rows)


def _record(row: object) -> OutboxRecord:
    values = row._mapping  # type: ignore[attr-defined]
    headers = json.loads(values["headers"])
    return OutboxRecord(
        message_id=values["message_id"],
        destination=values["destination"],
        body=bytes(values["body"]),
        routing_key=values["routing_key"],
        headers=tuple((str(k), str(v)) for k, v in headers.items()),
        position=int(values["id"]),
    )


class OutboxRelay:
    """Publishes pending outbox rows through a :class:`Publisher`, then marks them sent.

    Several relays may run on one PostgreSQL database; on SQLite they take turns. See the
    module docstring for the guarantees.
    """

    def __init__(
        self,
        engine: Engine,
        publisher: Publisher,
        *,
        batch_size: int = 100,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._engine = engine
        self._publisher = publisher
        self._batch_size = batch_size
        self._clock = clock

    def relay_batch(self) -> int:
        """Publish one batch of pending rows and mark them sent; returns how many (0: none
        pending, or all pending rows are being published by other relays).

        Raises what the publisher raised; the rows then stay pending.
        """
        table = outbox_table
        with self._engine.begin() as connection:
            query = (
                select(table)
                .where(table.c.sent_at.is_(None))
                .order_by(table.c.id)
                .limit(self._batch_size)
            )
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            records = [_record(row) for row in connection.execute(query)]
            if not records:
                return 0
            self._publisher.publish(records)
            connection.execute(
                update(table)
                .where(table.c.id.in_([r.position for r in records]))
                .values(sent_at=self._clock())
            )
        return len(records)

    def relay_pending(self) -> int:
        """Relay batches until none is pending; returns how many records were published."""
        total = 0
        while count := self.relay_batch():
            total += count
        return total

    def run(
        self,
        stop: threading.Event,
        *,
        idle_wait: float = 0.2,
        max_backoff: float = 30.0,
    ) -> None:
        """Relay until ``stop`` is set: batches back to back while rows are pending, a wait of
        ``idle_wait`` seconds when none is, and on a publish failure a wait that doubles up to
        ``max_backoff`` (the rows stay pending and are tried again)."""
        backoff = idle_wait
        while not stop.is_set():
            try:
                count = self.relay_batch()
            except Exception as exc:  # the publisher's failure, whatever the broker library
                _log.warning("outbox relay: publish failed, retrying in %.1fs: %s", backoff, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            backoff = idle_wait
            if count == 0:
                stop.wait(idle_wait)


def pending_count(connection: Connection | Session) -> int:
    """How many outbox rows wait to be published."""
    statement = (
        select(func.count()).select_from(outbox_table).where(outbox_table.c.sent_at.is_(None))
    )
    return int(connection.execute(statement).scalar_one())


def purge_sent_before(connection: Connection | Session, cutoff: dt.datetime) -> int:
    """Delete rows sent before ``cutoff``; returns how many. Pending rows are never deleted."""
    result = connection.execute(
        delete(outbox_table)
        .where(outbox_table.c.sent_at.is_not(None), outbox_table.c.sent_at < cutoff)
        .returning(outbox_table.c.id)
    )
    return len(result.all())
