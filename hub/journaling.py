"""What the running hub writes to the journal, and how: group commit off the event loop.

The hub records each request's path (:mod:`journal`, ``isobridge trace``): ``received``
(edge, kind, amount), ``routed`` (destination and rule), then ``answered`` (ISO 20022 status,
reason and the source protocol's code, latency) or ``timed_out``; the core banking worker
adds ``reversed`` when a reversal of the posting is stored for forwarding.

One database commit per event would bound the hub by the database (ARCHITECTURE.md, field
notes). :class:`JournalWriter` buffers the events and appends them in one transaction
``interval`` seconds after the first of them (or as soon as ``batch`` are waiting); a hub
with nothing to record has no timer running for it. A flush that fails keeps
its events and is tried again; the buffer is bounded (``limit``): beyond it the writer logs
the loss loudly rather than let memory grow without end. An event that the journal refuses
(a clear card number in its ids or body, an id too long) can never be written: it is left
out with an error log naming its kind and transaction and why (never the values), counted
in ``refused``, and the rest of its batch is written.

Where the appends run
    ``process=False``: on a worker thread of the hub. ``process=True`` (what ``isobridge
    run`` uses): in a journal writer process of the hub's own (``python -m
    hub.journaling``, started by :meth:`JournalWriter.start`), so that hashing, card number
    checks, serialising and the database's work share neither the event loop's interpreter
    lock nor its core (``bench/journal_cost.py``). The loop captures each event as a
    tuple (its kind, tenant, ids, time in microseconds since the epoch and body:
    :meth:`JournalWriter.emit`; an integer pickles in a third of a ``datetime``'s time)
    and hands a batch over as one pickled message on the child's standard input; the
    child appends it and answers with what it wrote and refused, and the next batch goes
    only after that answer. So what can be lost is what it was before: the events
    buffered in the hub (at most ``interval`` seconds of them) when the hub dies; a batch
    the child has is appended even then (it finishes, then sees its input end and exits).
    A child that dies is started again and its unanswered batch handed over again
    (appended once even if the child died between its commit and its answer: below). An
    in-memory SQLite journal cannot be shared with another process: its appends stay on a
    thread.

A batch handed over again
    A flush whose outcome is unknown (the database connection cut off during its commit,
    PostgreSQL restarting, the writer process dying before it answered) may have been
    committed. Its events are tried again with the next flush, marked as such: an event
    among them that the journal already holds (the same kind, transaction id and time to
    the microsecond, looked up by the transaction id's index) is not appended again, and is
    counted in ``written``. So an event is appended once, whatever failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final

from sqlalchemy import select

from canonical_model.messages import CanonicalMessage
from journal import Event, EventKind, Journal, TransactionIds
from journal.events import check_event
from journal.keys import MasterKeys
from journal.schema import EVENTS

__all__ = ["JournalWriter", "transaction_ids"]

_log = logging.getLogger("isobridge.journal")

_Captured = tuple[
    str, str, str, str | None, str | None, str | None, str | None, int, dict[str, Any]
]
"""An event as :meth:`JournalWriter.emit` captures it: kind (its value: a plain string
pickles in half the time of the enum), tenant, the five ids
(:class:`~journal.events.TransactionIds` order), time (UTC, microseconds since the epoch:
an integer pickles in a third of the time of a ``datetime``), body."""

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH: Final = dt.datetime(1970, 1, 1)
_MICROSECOND: Final = dt.timedelta(microseconds=1)

_KINDS: Final = {kind.value: kind for kind in EventKind}

_Refusal = tuple[str, str, str]
"""An event the journal refused: its kind, its transaction id (``?`` if too long), why."""

_LENGTH: Final = 4  # the big-endian length before each pickled message on the child's pipes


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


def _micros(at: dt.datetime) -> int:
    """``at`` (timezone-aware) in microseconds since the epoch, exactly."""
    return (at - _EPOCH) // _MICROSECOND


def _event(captured: _Captured) -> Event:
    kind, tenant, transaction_id, end_to_end_id, stan, terminal_id, uetr, at, body = captured
    return Event(
        _KINDS[kind],
        tenant,
        TransactionIds(transaction_id, end_to_end_id, stan, terminal_id, uetr),
        _EPOCH + dt.timedelta(microseconds=at),
        body,
    )


def _utc(at: dt.datetime) -> dt.datetime:
    """``at`` as a naive UTC time (SQLite gives stored times back naive)."""
    return at if at.tzinfo is None else at.astimezone(dt.UTC).replace(tzinfo=None)


def _appended_before(journal: Journal, captured: Sequence[_Captured]) -> set[int]:
    """The positions in ``captured`` of the events the journal already holds (module
    docstring, "A batch handed over again")."""
    wanted = {
        (item[0], item[2], _NAIVE_EPOCH + dt.timedelta(microseconds=item[7])): index
        for index, item in enumerate(captured)
    }
    ids = sorted({item[2] for item in captured if len(item[2]) <= 64})
    found: set[int] = set()
    columns = (EVENTS.c.kind, EVENTS.c.transaction_id, EVENTS.c.at)
    with journal.engine.connect() as connection:
        for start in range(0, len(ids), 500):
            query = select(*columns).where(EVENTS.c.transaction_id.in_(ids[start : start + 500]))
            for kind, transaction_id, at in connection.execute(query):
                index = wanted.get((kind, transaction_id, _utc(at)))
                if index is not None:
                    found.add(index)
    return found


def _record(
    journal: Journal, captured: Sequence[_Captured], resent: int = 0
) -> tuple[int, list[_Refusal]]:
    """Append ``captured`` in one transaction; an event the journal refuses is left out.
    The first ``resent`` were handed over before, with an unknown outcome: those the
    journal already holds are not appended again (counted as written).

    Returns how many were written and the refusals (never the refused values)."""
    before = 0
    if resent:
        held = _appended_before(journal, captured[:resent])
        if held:
            before = len(held)
            captured = [item for index, item in enumerate(captured) if index not in held]
            _log.warning(
                "journal: %d events of a batch handed over again were appended before", before
            )
    written, refusals = _append(journal, captured)
    return before + written, refusals


def _append(journal: Journal, captured: Sequence[_Captured]) -> tuple[int, list[_Refusal]]:
    events = [_event(item) for item in captured]
    try:
        journal.record(events)
    except ValueError:
        refusals: list[_Refusal] = []
        kept = []
        for event in events:
            try:
                check_event(event)
            except ValueError as exc:
                ids = event.ids
                shown = ids.transaction_id if len(ids.transaction_id) <= 64 else "?"
                refusals.append((event.kind.value, shown, str(exc)))
            else:
                kept.append(event)
        journal.record(kept)
        return len(kept), refusals
    return len(events), []


class _WriterProcess:
    """The parent's end of a journal writer process (``python -m hub.journaling``)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        if process.stdin is None or process.stdout is None:
            raise RuntimeError("internal error: the journal writer process has no pipes")
        self._input = process.stdin
        self._output = process.stdout

    @classmethod
    async def start(cls, url: str, keys: MasterKeys) -> _WriterProcess:
        # The child imports this module as the hub did, wherever the hub was started from.
        root = str(Path(__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.journaling",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        child = cls(process)
        try:
            # The URL (with any password) and the keys go over the pipe, not the command line.
            await child.call(("open", url, keys))
        except BaseException:
            await child.close()
            raise
        return child

    async def call(self, message: tuple[Any, ...]) -> Any:
        """Send ``message``, return the child's answer; raises if the child failed or died."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._input.write(len(data).to_bytes(_LENGTH, "big") + data)
            await self._input.drain()
            size = int.from_bytes(await self._output.readexactly(_LENGTH), "big")
            ok, answer = pickle.loads(await self._output.readexactly(size))  # noqa: S301
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ConnectionError(
                f"the journal writer process ended (exit status {self.process.returncode})"
            ) from exc
        if not ok:
            raise RuntimeError(f"the journal writer process failed: {answer}")
        return answer

    async def close(self, timeout: float = 30.0) -> None:
        """End the child: its input ends, it finishes and exits (killed after ``timeout``)."""
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                self._input.close()
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                _log.error("the journal writer process did not exit in %.0f s: killed", timeout)
                self.process.kill()
                await self.process.wait()


class JournalWriter:
    """See the module docstring. ``await start()``, ``emit(...)`` from the loop, ``await
    close()`` flushes what is left."""

    def __init__(
        self,
        journal: Journal,
        *,
        interval: float = 0.1,
        batch: int = 500,
        limit: int = 200_000,
        now: Callable[[], dt.datetime] | None = None,
        process: bool = False,
    ) -> None:
        self.journal = journal
        self.interval = interval
        self.batch = batch
        self.limit = limit
        self.written = 0
        self.lost = 0
        self.refused = 0
        # The capture's clock: microseconds since the epoch (``now``, timezone-aware, in tests)
        self._micros: Callable[[], int] = (
            (lambda: time.time_ns() // 1000) if now is None else (lambda: _micros(now()))
        )
        self._pending: list[_Captured] = []
        self._resent = 0  # the first events of _pending were handed over before (unknown)
        self._wake = asyncio.Event()
        # Set ``interval`` after the first event of a batch: an idle hub has no timer.
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        url = journal.engine.url
        # An in-memory SQLite database lives in this process only.
        self.process = process and not (url.get_backend_name() == "sqlite" and not url.database)
        self._child: _WriterProcess | None = None

    @property
    def process_id(self) -> int | None:
        """The writer process's id while it runs (``None``: appends on a thread)."""
        return self._child.process.pid if self._child is not None else None

    async def start(self) -> None:
        """Start the flushing task (and the writer process, with ``process=True``)."""
        if self.process:
            self._child = await self._start_child()
        self._loop = asyncio.get_running_loop()
        if self._pending:
            self._wake.set()
        self._task = self._loop.create_task(self._run())

    async def close(self) -> None:
        """Flush everything buffered, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._child is not None:
            child, self._child = self._child, None
            await child.close()

    async def _start_child(self) -> _WriterProcess:
        url = self.journal.engine.url.render_as_string(hide_password=False)
        return await _WriterProcess.start(url, self.journal.keys)

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
        ids = message.ids
        acceptor = message.acceptor
        # What transaction_ids() names, as a tuple: the Event is built where it is appended.
        self._pending.append(
            (
                kind.value,
                message.tenant,
                transaction_id or ids.message_id,
                ids.end_to_end_id,
                ids.instruction_id,
                acceptor.terminal_id if acceptor is not None else None,
                ids.uetr,
                self._micros(),
                {key: value for key, value in body.items() if value is not None} if body else {},
            )
        )
        waiting = len(self._pending)
        if waiting >= self.batch:
            self._wake.set()
        elif waiting == 1 and self._timer is None and self._loop is not None:
            # The first event of a batch waits at most ``interval`` for the others.
            self._timer = self._loop.call_later(self.interval, self._wake.set)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pending:
                events, self._pending = self._pending, []
                try:
                    written, refusals = await self._flush(events, self._resent)
                except Exception:
                    _log.exception("journal append failed; %d events kept for retry", len(events))
                    self._pending[:0] = events
                    self._resent = len(events)  # committed or not: the next flush looks
                    await asyncio.sleep(0.5)
                    self._wake.set()
                    continue
                self._resent = 0
                self.written += written
                self._log_refusals(refusals)
            if self._closing and not self._pending:
                return

    async def _flush(self, events: list[_Captured], resent: int) -> tuple[int, list[_Refusal]]:
        if not self.process:
            return await asyncio.to_thread(_record, self.journal, events, resent)
        if self._child is None:
            self._child = await self._start_child()
        try:
            written, refusals = await self._child.call(("record", events, resent))
        except ConnectionError:
            child, self._child = self._child, None
            await child.close()
            raise
        return int(written), list(refusals)

    def _log_refusals(self, refusals: Sequence[_Refusal]) -> None:
        for kind, transaction_id, why in refusals:
            self.refused += 1
            _log.error(
                "journal refused a %s event of transaction %s: %s; left out",
                kind,
                transaction_id,
                why,
            )


def _read(pipe: BinaryIO) -> Any:
    header = pipe.read(_LENGTH)
    if len(header) < _LENGTH:
        return None  # the hub closed its end (or died): nothing more will come
    data = pipe.read(int.from_bytes(header, "big"))
    return pickle.loads(data)  # noqa: S301  (from the hub process that started this one)


def _write(pipe: BinaryIO, message: tuple[bool, Any]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(len(data).to_bytes(_LENGTH, "big") + data)
    pipe.flush()


def _serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The writer process: open the journal, then append each batch the hub sends."""
    journal: Journal | None = None
    try:
        while (message := _read(requests)) is not None:
            try:
                if message[0] == "open":
                    _, url, keys = message
                    journal = Journal.open(url, keys)
                    answer: Any = None
                elif journal is None:
                    raise RuntimeError("no journal opened")
                else:
                    answer = _record(journal, message[1], message[2])
            except Exception as exc:  # the hub logs it and sends the batch again
                _write(answers, (False, f"{type(exc).__name__}: {exc}"))
            else:
                _write(answers, (True, answer))
    finally:
        if journal is not None:
            journal.close()


if __name__ == "__main__":
    # The hub ends this process by closing its input, after the last batch: a signal to the
    # whole process group (Ctrl-C, a supervisor's SIGTERM) must not cut a batch short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The answers own the real standard output; a stray print goes to standard error.
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, answers)
