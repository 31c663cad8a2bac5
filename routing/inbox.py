"""The inbox: makes a consumer idempotent, so that a redelivered message has no second effect.

A broker delivers *at least once*: after a crash, a lost connection or a nack, a message comes
again. The consumer records the id of every message it applies in ``routing_inbox``, **in the
same database transaction as the effect**: either both commit or neither does. A message whose
id is already there was applied before; the consumer skips its effect and acks it.

:func:`claim` does the recording for a whole batch in one statement,
``INSERT ... ON CONFLICT DO NOTHING RETURNING message_id`` (SQLite 3.35+ and PostgreSQL), and
returns the ids that were *not* seen before. The ``RETURNING`` list is the answer: the
statement's ``rowcount`` is not used, since with psycopg 3 it came back -1 for such an insert
(``ARCHITECTURE.md``, field notes), which would hide duplicates.

Consuming (the transport's consumer does this; :func:`apply_once` is the database half):

1. take up to *prefetch* deliveries (manual acks; the prefetch bounds what is in flight);
2. in **one** transaction: ``claim`` their ids, apply the effect of the new ones only, write
   the events and outbox rows the effect produces, commit;
3. only then ack them (``multiple=True`` up to the last delivery tag). A crash before the
   commit leaves nothing applied, and the broker redelivers; a crash after the commit and
   before the ack redelivers messages that the next claim reports as seen.

Batching matters: the database is the ceiling (about 430 transactions/s on PostgreSQL with one
message each, 750 messages/s with 50 per transaction), so a consumer groups deliveries into a
bounded batch with a short deadline and commits them together.

Rows are kept for a retention period and then deleted with :func:`purge_received_before`. The
period must be longer than the longest time a message can come again (redelivery, a replay
from the dead-letter queue): a message redelivered after its row was purged is applied again.

>>> from routing.store import create_engine, upgrade
>>> engine = create_engine("sqlite://")
>>> upgrade(engine)
>>> with engine.begin() as connection:
...     sorted(claim(connection, "postings", ["m-1", "m-2"]))
['m-1', 'm-2']
>>> with engine.begin() as connection:
...     sorted(claim(connection, "postings", ["m-2", "m-3"]))
['m-3']
>>> with engine.begin() as connection:  # another consumer keeps its own record
...     sorted(claim(connection, "journal", ["m-2"]))
['m-2']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from routing.store import inbox_table

__all__ = ["CLAIM_CHUNK", "apply_once", "claim", "purge_received_before", "seen_count"]

CLAIM_CHUNK = 1000
"""Ids per ``INSERT`` statement (three parameters each: well within SQLite's limit)."""

T = TypeVar("T")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def claim(
    connection: Connection | Session,
    consumer: str,
    message_ids: Iterable[str],
    *,
    now: dt.datetime | None = None,
) -> set[str]:
    """Record ``message_ids`` as applied by ``consumer``; return those not recorded before.

    Runs in the caller's transaction (a :class:`~sqlalchemy.engine.Connection` or an ORM
    :class:`~sqlalchemy.orm.Session`): the claim commits or rolls back with the effect. An id
    given twice in one call counts once. A claim of ids that another transaction is claiming
    at the same moment waits for it (the primary key), then reports them as seen if it
    committed, new if it rolled back. Ids are inserted in sorted order, so that two claims of
    overlapping batches cannot deadlock each other.
    """
    # Sorted: concurrent claims of overlapping batches then take the key locks in the same
    # order, so on PostgreSQL they wait for each other instead of deadlocking.
    unique = sorted(set(message_ids))
    if not unique:
        return set()
    received_at = now or _now()
    bind = connection.get_bind() if isinstance(connection, Session) else connection
    dialect = bind.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"the inbox supports SQLite and PostgreSQL, not {dialect}")
    fresh: set[str] = set()
    for start in range(0, len(unique), CLAIM_CHUNK):
        rows = [
            {"consumer": consumer, "message_id": message_id, "received_at": received_at}
            for message_id in unique[start : start + CLAIM_CHUNK]
        ]
        insert = (
            postgresql.insert(inbox_table)
            if dialect == "postgresql"
            else sqlite.insert(inbox_table)
        )
        statement = (
            insert.values(rows)
            .on_conflict_do_nothing(index_elements=["consumer", "message_id"])
            .returning(inbox_table.c.message_id)
        )
        fresh.update(connection.execute(statement).scalars())
    return fresh


def apply_once(
    engine: Engine,
    consumer: str,
    items: Sequence[T],
    message_id: Callable[[T], str],
    effect: Callable[[Connection, Sequence[T]], None],
) -> list[T]:
    """Apply ``effect`` to the items of ``items`` not applied before, in one transaction.

    ``effect`` gets the open connection and the new items (in their order; possibly none) and
    writes through that connection. Returns the items applied now. When this returns, the
    transaction has committed and every item of ``items`` may be acked; when it raises,
    nothing was recorded and none may be acked.
    """
    with engine.begin() as connection:
        fresh = claim(connection, consumer, [message_id(item) for item in items])
        new: list[T] = []
        for item in items:
            key = message_id(item)
            if key in fresh:
                fresh.discard(key)  # the first of duplicates within the batch counts
                new.append(item)
        effect(connection, new)
    return new


def purge_received_before(connection: Connection | Session, cutoff: dt.datetime) -> int:
    """Delete inbox rows received before ``cutoff`` (all consumers); returns how many.

    Choose ``cutoff`` older than the longest possible redelivery or replay (see above).
    """
    result = connection.execute(
        delete(inbox_table)
        .where(inbox_table.c.received_at < cutoff)
        .returning(inbox_table.c.message_id)
    )
    return len(result.all())


def seen_count(connection: Connection | Session, consumer: str) -> int:
    """How many message ids ``consumer`` has recorded."""
    statement = (
        select(func.count()).select_from(inbox_table).where(inbox_table.c.consumer == consumer)
    )
    return int(connection.execute(statement).scalar_one())
