"""The read model (CQRS): one status row per transaction, built from the events only.

The gateway and the CLI query ``journal_transactions``; nothing writes it but
:func:`apply`, which folds events into it with :func:`project`. ``Journal.append`` calls
:func:`apply` in the transaction of the append, so the status a reader sees is never ahead
of or behind the events. :func:`rebuild` deletes the rows and folds every event again, in
chunks, through the same :func:`apply`; the result equals the live table (tested after
mixed runs), so the table can always be thrown away.

How an event changes a transaction's row (:func:`project`)
    ============  ===============================================================
    column        value
    ============  ===============================================================
    status        ``body["status"]`` if the event has one, else the event kind
                  (``received``, ``routed``, ``answered``, ``timed_out``...)
    reason_code   ``body["reason_code"]``, or none: a reason belongs to its status
    amount,       the latest ``body["amount"]`` (decimal string),
    currency,     ``body["currency"]`` (3 letters), ``body["destination"]``
    destination
    attempts      the number of ``sent`` events
    ids           the latest non-empty end-to-end id, STAN, terminal id, UETR
    first / last  sequence numbers and times of the first and the last event
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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from journal.events import EventKind, JsonObject, StoredEvent
from journal.schema import TRANSACTIONS

__all__ = ["TransactionView", "apply", "project", "rebuild", "transaction", "transactions"]

_IN_CHUNK: Final = 500
# Built once: see journal.store (_RESERVE).
_SELECT: Final = select(TRANSACTIONS).where(
    TRANSACTIONS.c.transaction_id.in_(bindparam("ids", expanding=True))
)
_INSERT: Final = insert(TRANSACTIONS)
_UPDATE: Final = update(TRANSACTIONS).where(TRANSACTIONS.c.transaction_id == bindparam("key"))


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
    body = event.body
    ids = event.ids
    status = _text(body, "status", 32) or str(event.kind)
    sent = 1 if event.kind is EventKind.SENT else 0
    if view is None:
        return TransactionView(
            transaction_id=ids.transaction_id,
            tenant=event.tenant,
            status=status,
            reason_code=_text(body, "reason_code", 35),
            amount=_text(body, "amount", 40),
            currency=_text(body, "currency", 3),
            destination=_text(body, "destination", 128),
            attempts=sent,
            end_to_end_id=ids.end_to_end_id,
            stan=ids.stan,
            terminal_id=ids.terminal_id,
            uetr=ids.uetr,
            first_seq=event.seq,
            last_seq=event.seq,
            event_count=1,
            first_at=event.at,
            last_at=event.at,
        )
    return dataclasses.replace(
        view,
        status=status,
        reason_code=_text(body, "reason_code", 35),
        amount=_text(body, "amount", 40) or view.amount,
        currency=_text(body, "currency", 3) or view.currency,
        destination=_text(body, "destination", 128) or view.destination,
        attempts=view.attempts + sent,
        end_to_end_id=ids.end_to_end_id or view.end_to_end_id,
        stan=ids.stan or view.stan,
        terminal_id=ids.terminal_id or view.terminal_id,
        uetr=ids.uetr or view.uetr,
        last_seq=event.seq,
        event_count=view.event_count + 1,
        last_at=event.at,
    )


_COLUMNS: Final = tuple(field.name for field in dataclasses.fields(TransactionView))


def _row(view: TransactionView) -> dict[str, Any]:
    # dataclasses.asdict deep-copies every value: a third of an append's time.
    return {name: getattr(view, name) for name in _COLUMNS}


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


def apply(connection: Connection, events: Iterable[StoredEvent]) -> int:
    """Fold ``events`` (any order; applied by ``seq``) into the read model; returns rows written.

    One query reads the rows concerned, one statement inserts the new ones and one updates
    the others: cheap enough to run inside every append.
    """
    ordered = sorted(events, key=lambda event: event.seq)
    if not ordered:
        return 0
    wanted = list(dict.fromkeys(event.ids.transaction_id for event in ordered))
    existing = _load(connection, wanted)
    views = dict(existing)
    for event in ordered:
        key = event.ids.transaction_id
        views[key] = project(views.get(key), event)
    new = [_row(v) for k, v in views.items() if k not in existing]
    changed = [{**_row(v), "key": k} for k, v in views.items() if k in existing]
    if new:
        connection.execute(_INSERT, new)
    if changed:
        for row in changed:
            del row["transaction_id"]
        connection.execute(_UPDATE, changed)
    return len(views)


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
    return _load(connection, [transaction_id]).get(transaction_id)
