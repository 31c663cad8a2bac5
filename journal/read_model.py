"""The read model (CQRS): one status row per transaction, built from the events only.

The gateway and the CLI query ``journal_transactions``; nothing writes it but
:func:`apply`, which folds events into it with :func:`project`. ``Journal.append`` calls
:func:`apply` in the transaction of the append, so the status a reader sees is never ahead
of or behind the events. :func:`rebuild` deletes the rows and folds every event again, in
chunks, through the same :func:`apply`; the result equals the live table (tested after
mixed runs), so the table can always be thrown away.

How a batch is written
    :func:`apply` folds a batch's events per transaction in Python, from no row, and writes
    the results with one upsert (``INSERT ... ON CONFLICT (transaction_id) DO UPDATE``,
    SQLite and PostgreSQL, :mod:`journal.driver_sql`). Where the transaction has a row
    already the upsert merges the two in SQL exactly as :func:`project` would have gone on
    folding: the batch's status and reason code win unless the row's are from a later time;
    the last sequence number is the batch's; an amount, currency, destination or id the
    batch does not name is kept; attempts and event counts add up; the earliest and the
    latest times are kept; tenant and first sequence number stay. No row is read.

Why the status goes by time, not by arrival
    Events of one transaction reach the journal from writers that commit at different
    moments: the hub's :class:`~hub.journaling.JournalWriter` appends its ``received`` /
    ``answered`` events in batches up to its interval later, while a saga's transitions
    (``ACSC``, ``RJCT``) commit as they happen. A payment that settles within that interval
    would otherwise read ``RCVD`` again once the late batch lands. So the status is the one
    of the event that happened last (its ``at``; of two at the same microsecond, the later
    appended), whatever the order they were appended in.

How an event changes a transaction's row (:func:`project`)
    ============  ===============================================================
    column        value
    ============  ===============================================================
    status        of the event that happened last: ``body["status"]`` if it has
                  one, else the event kind (``received``, ``routed``,
                  ``answered``, ``timed_out``...)
    reason_code   that event's ``body["reason_code"]``, or none: a reason belongs
                  to its status
    amount,       the latest ``body["amount"]`` (decimal string),
    currency,     ``body["currency"]`` (3 letters), ``body["destination"]``
    destination
    attempts      the number of ``sent`` events
    ids           the latest non-empty end-to-end id, STAN, terminal id, UETR
    first_seq,    sequence numbers of the first and the last event appended
    last_seq
    first_at,     the earliest and the latest event time (``last_at``: when the
    last_at       status was reached)
    ============  ===============================================================

Body values that are not strings of the column's size are ignored by the projection (they
stay in the event). The personal part never reaches the read model.

>>> import datetime as dt
>>> from journal.events import TransactionIds
>>> at = dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)
>>> def stored(seq, kind, body):
...     return StoredEvent(seq, kind, "acme", TransactionIds("m-1"), at, body, None, "", "")
>>> view = project(None, stored(1, EventKind.RECEIVED, {"amount": "5.00", "currency": "EUR"}))
>>> view = project(view, stored(2, EventKind.SENT, {"destination": "core"}))
>>> view = project(view, stored(3, EventKind.ANSWERED, {"status": "RJCT", "reason_code": "AM04"}))
>>> view.status, view.reason_code, view.amount, view.destination, view.attempts, view.event_count
('RJCT', 'AM04', '5.00', 'core', 1, 3)

An event appended late that happened earlier counts, but does not take the status back:

>>> earlier = at - dt.timedelta(milliseconds=5)
>>> late = StoredEvent(4, EventKind.ANSWERED, "acme", TransactionIds("m-1"), earlier,
...                    {"status": "RCVD"}, None, "", "")
>>> view = project(view, late)
>>> view.status, view.reason_code, view.last_seq, view.event_count, view.first_at == earlier
('RJCT', 'AM04', 4, 4, True)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.engine import Connection, Dialect, Row

from journal.driver_sql import DriverInsert, per_dialect, quote
from journal.events import EventKind, JsonObject, StoredEvent
from journal.schema import TRANSACTIONS

__all__ = ["TransactionView", "apply", "project", "rebuild", "transaction", "transactions"]

_IN_CHUNK: Final = 500
# Built once: see journal.store (_RESERVE).
_SELECT: Final = select(TRANSACTIONS).where(
    TRANSACTIONS.c.transaction_id.in_(bindparam("ids", expanding=True))
)
_SELECT_ONE: Final = select(TRANSACTIONS).where(TRANSACTIONS.c.transaction_id == bindparam("id"))
"""One row: an expanding ``IN`` is rendered again at every execution (measured: most of
a one-row read's time)."""


@dataclass(frozen=True, slots=True)
class TransactionView:
    """One row of the read model: a transaction's current state."""

    transaction_id: str
    tenant: str
    status: str
    reason_code: str | None
    amount: str | None
    currency: str | None
    destination: str | None
    attempts: int
    end_to_end_id: str | None
    stan: str | None
    terminal_id: str | None
    uetr: str | None
    first_seq: int
    last_seq: int
    event_count: int
    first_at: dt.datetime
    last_at: dt.datetime


def _text(body: JsonObject, key: str, longest: int) -> str | None:
    value = body.get(key)
    if isinstance(value, str) and 0 < len(value) <= longest:
        return value
    return None


def project(view: TransactionView | None, event: StoredEvent) -> TransactionView:
    """The state of ``view``'s transaction after ``event`` (pure; ``None``: no event yet)."""
    return _fold(view, (event,))


def _fold(view: TransactionView | None, events: Sequence[StoredEvent]) -> TransactionView:
    """:func:`project` of each of ``events`` (one transaction's, by seq, at least one) in
    turn, with one view built at the end instead of one per event."""
    return TransactionView(*_folded_values(view, events))


def _folded_values(view: TransactionView | None, events: Sequence[StoredEvent]) -> tuple[Any, ...]:
    """:func:`_fold`'s view as its values in ``_COLUMNS`` order (what the upsert writes),
    without building the frozen view itself."""
    status: str = ""
    reason_code: str | None = None
    latest: dt.datetime | None = None
    if view is None:
        first = events[0]
        transaction_id, tenant = first.ids.transaction_id, first.tenant
        first_seq, first_at = first.seq, first.at
        amount: str | None = None
        currency: str | None = None
        destination: str | None = None
        attempts = event_count = 0
        ids = first.ids
        end_to_end_id, stan, terminal_id, uetr = (
            ids.end_to_end_id,
            ids.stan,
            ids.terminal_id,
            ids.uetr,
        )
    else:
        transaction_id, tenant = view.transaction_id, view.tenant
        first_seq, first_at = view.first_seq, view.first_at
        status, reason_code, latest = view.status, view.reason_code, view.last_at
        amount, currency, destination = view.amount, view.currency, view.destination
        attempts, event_count = view.attempts, view.event_count
        end_to_end_id, stan, terminal_id, uetr = (
            view.end_to_end_id,
            view.stan,
            view.terminal_id,
            view.uetr,
        )
    for event in events:
        body = event.body
        ids = event.ids
        at = event.at
        if latest is None or at >= latest:
            latest = at
            # _text(body, "status", 32) or the kind, _text(body, "reason_code", 35), inline
            found = body.get("status")
            status = found if isinstance(found, str) and 0 < len(found) <= 32 else str(event.kind)
            reason = body.get("reason_code")
            reason_code = reason if isinstance(reason, str) and 0 < len(reason) <= 35 else None
        elif at < first_at:
            first_at = at
        # Most bodies name none of these: one look each before _text's checks.
        if "amount" in body:
            amount = _text(body, "amount", 40) or amount
        if "currency" in body:
            currency = _text(body, "currency", 3) or currency
        if "destination" in body:
            destination = _text(body, "destination", 128) or destination
        if event.kind is EventKind.SENT:
            attempts += 1
        # A falsy id keeps the one before (an empty one too), as the first event's stays.
        end_to_end_id = ids.end_to_end_id or end_to_end_id
        stan = ids.stan or stan
        terminal_id = ids.terminal_id or terminal_id
        uetr = ids.uetr or uetr
        event_count += 1
    return (
        transaction_id,
        tenant,
        status,
        reason_code,
        amount,
        currency,
        destination,
        attempts,
        end_to_end_id,
        stan,
        terminal_id,
        uetr,
        first_seq,
        events[-1].seq,
        event_count,
        first_at,
        latest,
    )


_COLUMNS: Final = tuple(field.name for field in dataclasses.fields(TransactionView))
_SEQ: Final = attrgetter("seq")

# How the upsert merges a transaction's row with a batch's fold of it (``excluded``): what
# project() would have made of the row by folding the batch's events into it one by one.
_MERGE: Final = {
    # the status of the later event (the batch's at the same time): see the docstring
    "status": "CASE WHEN {new_last_at} >= {old_last_at} THEN {new} ELSE {old} END",
    "reason_code": "CASE WHEN {new_last_at} >= {old_last_at} THEN {new} ELSE {old} END",
    "amount": "COALESCE({new}, {old})",
    "currency": "COALESCE({new}, {old})",
    "destination": "COALESCE({new}, {old})",
    "attempts": "{old} + {new}",
    # project() keeps the row's id when the batch's is None or empty (falsy), not only None
    "end_to_end_id": "COALESCE(NULLIF({new}, ''), {old})",
    "stan": "COALESCE(NULLIF({new}, ''), {old})",
    "terminal_id": "COALESCE(NULLIF({new}, ''), {old})",
    "uetr": "COALESCE(NULLIF({new}, ''), {old})",
    "last_seq": "{new}",
    "event_count": "{old} + {new}",
    "first_at": "{least}({new}, {old})",
    "last_at": "{greatest}({new}, {old})",
}  # transaction_id, tenant and first_seq stay as they are


@per_dialect
def _upsert(dialect: Dialect) -> DriverInsert:
    table = dialect.identifier_preparer.format_table(TRANSACTIONS)
    last_at = quote(dialect, "last_at")
    # SQLite's two-argument MIN and MAX are scalar functions, PostgreSQL's are LEAST and
    # GREATEST (both compare the stored times: same zone, same text form in SQLite).
    sqlite = dialect.name == "sqlite"
    merged = ", ".join(
        f"{quote(dialect, name)} = "
        + merge.format(
            new=f"excluded.{quote(dialect, name)}",
            old=f"{table}.{quote(dialect, name)}",
            new_last_at=f"excluded.{last_at}",
            old_last_at=f"{table}.{last_at}",
            least="MIN" if sqlite else "LEAST",
            greatest="MAX" if sqlite else "GREATEST",
        )
        for name, merge in _MERGE.items()
    )
    key = quote(dialect, "transaction_id")
    return DriverInsert.of(
        dialect, TRANSACTIONS, _COLUMNS, suffix=f" ON CONFLICT ({key}) DO UPDATE SET {merged}"
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _view(row: Row[Any]) -> TransactionView:
    values = row._asdict()
    values["first_at"] = _aware(values["first_at"])
    values["last_at"] = _aware(values["last_at"])
    return TransactionView(**values)


def _load(connection: Connection, transaction_ids: Sequence[str]) -> dict[str, TransactionView]:
    found: dict[str, TransactionView] = {}
    for start in range(0, len(transaction_ids), _IN_CHUNK):
        chunk = transaction_ids[start : start + _IN_CHUNK]
        for row in connection.execute(_SELECT, {"ids": chunk}):
            found[row.transaction_id] = _view(row)
    return found


def apply(
    connection: Connection, events: Iterable[StoredEvent], *, in_seq_order: bool = False
) -> int:
    """Fold ``events`` (any order; applied by ``seq``) into the read model; returns rows written.

    One statement, whatever the batch (see "How a batch is written" above): cheap enough to
    run inside every append. ``in_seq_order``: the caller guarantees ``events`` come by
    ``seq`` already (an append's), so they are not sorted again.
    """
    by_transaction: dict[str, list[StoredEvent]] = {}
    for event in events if in_seq_order else sorted(events, key=_SEQ):
        transaction_id = event.ids.transaction_id
        batch = by_transaction.get(transaction_id)
        if batch is None:
            by_transaction[transaction_id] = [event]
        else:
            batch.append(event)
    rows = [_folded_values(None, batch) for batch in by_transaction.values()]
    _upsert(connection.dialect).execute(connection, rows)
    return len(rows)


def rebuild(connection: Connection, events: Iterable[Sequence[StoredEvent]]) -> int:
    """Delete the read model and fold ``events`` (chunks in ``seq`` order) into it again.

    Returns the number of transactions. ``Journal.rebuild`` runs it with the chain head
    locked, so no append interleaves.
    """
    connection.execute(delete(TRANSACTIONS))
    for chunk in events:
        apply(connection, chunk)
    return int(connection.execute(select(func.count()).select_from(TRANSACTIONS)).scalar_one())


def transactions(connection: Connection) -> list[TransactionView]:
    """Every row of the read model, by transaction id."""
    query = select(TRANSACTIONS).order_by(TRANSACTIONS.c.transaction_id)
    return [_view(row) for row in connection.execute(query)]


def transaction(connection: Connection, transaction_id: str) -> TransactionView | None:
    """The row of ``transaction_id``, if the journal has seen it."""
    row = connection.execute(_SELECT_ONE, {"id": transaction_id}).first()
    return None if row is None else _view(row)
