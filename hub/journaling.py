"""What the running hub writes to the journal, and how: group commit off the event loop.

The hub records each request's path (:mod:`journal`, ``isobridge trace``): ``received``
(edge, kind, amount), ``routed`` (destination and rule), then ``answered`` (ISO 20022 status,
reason and the source protocol's code, latency) or ``timed_out``; the core banking worker
adds ``reversed`` when a reversal of the posting is stored for forwarding.

One database commit per event would bound the hub by the database (ARCHITECTURE.md, field
notes). :class:`JournalWriter` buffers the events and appends them every ``interval``
seconds (or as soon as ``batch`` are waiting) in one transaction, on a worker thread. A
flush that fails keeps its events and is tried again; the buffer is bounded (``limit``):
beyond it the writer logs the loss loudly rather than let memory grow without end. An event
that the journal refuses (a clear card number in its ids or body, an id too long) can never
be written: it is left out with an error log naming its kind and transaction and why (never
the values), counted in ``refused``, and the rest of its batch is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence

from canonical_model.messages import CanonicalMessage
from journal import Event, EventKind, Journal, TransactionIds
from journal.events import check_event

__all__ = ["JournalWriter", "transaction_ids"]

_log = logging.getLogger("isobridge.journal")


def transaction_ids(message: CanonicalMessage, transaction_id: str | None = None) -> TransactionIds:
    """The ids by which ``message``'s transaction is found again."""
    ids = message.ids
    terminal = message.acceptor.terminal_id if message.acceptor is not None else None
    return TransactionIds(
        transaction_id or ids.message_id,
        end_to_end_id=ids.end_to_end_id,
        stan=ids.instruction_id,
        terminal_id=terminal,
        uetr=ids.uetr,
    )


class JournalWriter:
    """See the module docstring. ``await start()``, ``emit(...)`` from the loop, ``await
    close()`` flushes what is left."""

    def __init__(
        self,
        journal: Journal,
        *,
        interval: float = 0.02,
        batch: int = 500,
        limit: int = 200_000,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.journal = journal
        self.interval = interval
        self.batch = batch
        self.limit = limit
        self.written = 0
        self.lost = 0
        self.refused = 0
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the flushing task."""
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Flush everything buffered, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def emit(
        self,
        kind: EventKind,
        message: CanonicalMessage,
        body: dict[str, object] | None = None,
        *,
        transaction_id: str | None = None,
    ) -> None:
        """Record that ``message``'s transaction went through ``kind`` (no I/O here)."""
        if len(self._pending) >= self.limit:
            self.lost += 1
            _log.error("journal buffer full (%d events): an event was not recorded", self.limit)
            return
        self._pending.append(
            Event(
                kind,
                message.tenant,
                transaction_ids(message, transaction_id),
                self._now(),
                {key: value for key, value in (body or {}).items() if value is not None},
            )
        )
        if len(self._pending) >= self.batch:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            if self._pending:
                events, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self._record, events)
                except Exception:
                    _log.exception("journal append failed; %d events kept for retry", len(events))
                    self._pending[:0] = events
                    await asyncio.sleep(0.5)
                    continue
            if self._closing and not self._pending:
                return

    def _record(self, events: Sequence[Event]) -> None:
        try:
            self.journal.record(events)
        except ValueError:
            events = self._without_refused(events)
            self.journal.record(events)
        self.written += len(events)

    def _without_refused(self, events: Sequence[Event]) -> list[Event]:
        kept = []
        for event in events:
            try:
                check_event(event)
            except ValueError as exc:
                self.refused += 1
                _log.error(
                    "journal refused a %s event of transaction %s: %s; left out",
                    event.kind.value,
                    event.ids.transaction_id if len(event.ids.transaction_id) <= 64 else "?",
                    exc,
                )
            else:
                kept.append(event)
        return kept
