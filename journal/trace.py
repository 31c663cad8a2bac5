"""``isobridge trace ID``: a transaction's whole path through the hub, with timings.

``ID`` is any id the transaction is known by (:class:`~journal.events.TransactionIds`):
the hub's transaction id, the RRN or end-to-end id, the UETR (any letter case), or the
STAN and terminal id written ``STAN@TERMINAL`` (the STAN's leading zeros optional). An RRN
or a STAN is not unique for ever, so one id may name several transactions; each is shown.
The events table indexes each id.

:func:`format_trace` prints, per transaction, its read-model status and ids, then every
event with its time, the milliseconds since the first event and since the previous one,
and its body. Personal parts are not printed: only the names of their fields, or
``erased`` after crypto-shredding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from journal import read_model
from journal.events import Sealed, StoredEvent, body_text, format_time
from journal.keys import TenantKeyring
from journal.read_model import TransactionView
from journal.reading import read_events
from journal.schema import EVENTS

__all__ = ["MAX_TRANSACTIONS", "TransactionTrace", "find_transactions", "format_trace", "trace"]

MAX_TRANSACTIONS = 20
"""At most this many transactions are traced for one id (the oldest first)."""


@dataclass(frozen=True, slots=True)
class TransactionTrace:
    """One transaction: its read-model row and its events in sequence order."""

    view: TransactionView | None
    events: tuple[StoredEvent, ...]

    @property
    def duration(self) -> dt.timedelta:
        """From the first event to the last."""
        return self.events[-1].at - self.events[0].at if self.events else dt.timedelta(0)


def find_transactions(connection: Connection, identifier: str) -> list[str]:
    """The transaction ids that ``identifier`` names, oldest first."""
    identifier = identifier.strip()
    if not identifier:
        return []
    columns = EVENTS.c
    stan, at_sign, terminal = identifier.partition("@")
    if at_sign:
        # ISO 8583 field 11 is six digits: "123@T1" finds the STAN stored as "000123".
        stans = {stan, stan.zfill(6)} if stan.isdigit() else {stan}
        condition = and_(columns.stan.in_(sorted(stans)), columns.terminal_id == terminal)
    else:
        condition = or_(
            columns.transaction_id == identifier,
            columns.end_to_end_id == identifier,
            columns.uetr.in_({identifier, identifier.lower()}),
        )
    first_seq = func.min(columns.seq)
    query = (
        select(columns.transaction_id)
        .where(condition)
        .group_by(columns.transaction_id)
        .order_by(first_seq)
        .limit(MAX_TRANSACTIONS)
    )
    return list(connection.execute(query).scalars())


def trace(
    connection: Connection, keyring: TenantKeyring | None, identifier: str
) -> list[TransactionTrace]:
    """The transactions ``identifier`` names, each with all its events; empty if none."""
    found = find_transactions(connection, identifier)
    if not found:
        return []
    events: list[StoredEvent] = []
    after = 0
    while True:
        batch = read_events(connection, keyring, after=after, transaction_ids=found)
        events.extend(batch)
        if not batch:
            break
        after = batch[-1].seq
    return [
        TransactionTrace(
            read_model.transaction(connection, transaction_id),
            tuple(e for e in events if e.ids.transaction_id == transaction_id),
        )
        for transaction_id in found
    ]


def _milliseconds(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() * 1000:.1f}"


def _personal(event: StoredEvent) -> str:
    if event.personal is None:
        return ""
    if isinstance(event.personal, Sealed):
        return f"  personal: {event.personal.value}"
    return f"  personal: {', '.join(sorted(event.personal))}"


def format_trace(traces: Sequence[TransactionTrace]) -> str:
    """The traces as text, as ``isobridge trace`` prints them."""
    lines: list[str] = []
    for item in traces:
        view = item.view
        first = item.events[0] if item.events else None
        transaction_id = (
            view.transaction_id if view else (first.ids.transaction_id if first else "?")
        )
        lines.append(f"transaction {transaction_id}")
        if view is not None:
            amount = f"{view.amount} {view.currency or ''}".strip() if view.amount else "-"
            reason = f" ({view.reason_code})" if view.reason_code else ""
            lines.append(
                f"  tenant {view.tenant}  status {view.status}{reason}  amount {amount}"
                f"  attempts {view.attempts}"
            )
            ids = [
                f"end-to-end/RRN {view.end_to_end_id}" if view.end_to_end_id else "",
                f"STAN@terminal {view.stan}@{view.terminal_id or ''}" if view.stan else "",
                f"UETR {view.uetr}" if view.uetr else "",
            ]
            if any(ids):
                lines.append("  " + "  ".join(i for i in ids if i))
        else:
            lines.append("  (not in the read model: run `isobridge journal rebuild`)")
        lines.append(f"  {'seq':>8}  {'time (UTC)':<27}  {'+ms':>9}  {'step ms':>9}  event")
        previous = first
        for event in item.events:
            if first is None or previous is None:
                raise RuntimeError(
                    "internal error: expected first is not None and previous is not None"
                )
            body = body_text(event.body) if event.body else ""
            lines.append(
                f"  {event.seq:>8}  {format_time(event.at):<27}  "
                f"{_milliseconds(event.at - first.at):>9}  "
                f"{_milliseconds(event.at - previous.at):>9}  {event.kind.value}"
                f"{'  ' + body if body else ''}{_personal(event)}"
            )
            previous = event
        lines.append(f"  {len(item.events)} events over {_milliseconds(item.duration)} ms")
    return "\n".join(lines) + "\n"
