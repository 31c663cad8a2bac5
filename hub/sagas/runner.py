"""The saga runner: it interprets :class:`~hub.sagas.definition.SagaDefinition` s, one
transition at a time, each one recorded in the journal before the next step starts.

How a saga moves (:meth:`SagaRunner.run_once`, or :meth:`SagaRunner.run` in a loop):

1. take the lease of the due sagas (:meth:`SagaStore.claim_due`, one statement: safe with
   several hub processes on one database);
2. an **action step**: call its action with a :class:`StepContext` (saga id, step, attempt,
   the saga's values, its personal data on demand, and :attr:`StepContext.key` /
   :meth:`StepContext.reference`, the ids the other side deduplicates on). The outcome picks
   the next step through the step's ``on``; an exception is a failed attempt, tried again
   after ``retry_after`` seconds (doubling), and after ``max_attempts`` the saga stops in
   ``attention`` with the error;
3. a **wait step**: the oldest pending signal its ``on`` names moves it on (signals it does
   not name are ignored: late or repeated answers); past its deadline the signal is
   ``timeout``;
4. :class:`~hub.sagas.definition.Compensate`: the compensations of the action steps done,
   newest first, each an action step as above, then the saga finishes;
5. each transition is saved with its journal event in one transaction
   (:meth:`SagaStore.save_in`), conditional on the lease: a process that lost its lease
   stops, and the next one starts again from the last recorded transition.
6. a transition the journal refuses (its event holds what looks like a card number: an
   end-to-end id or a reason code from outside with a Luhn-valid 13-19 digit run) can never
   be saved: the saga stops in ``attention`` at once, with an event that names the refusal
   and none of the refused values. A save that fails otherwise (the database) is tried
   again on the next passes; after ``max_save_failures`` failures in a row for one saga
   while the journal takes its ``attention`` event, it stops there too: never an endless
   loop.

Group commit: the transitions, starts and signals of all the sagas a process is moving
are written in one database transaction when they come together (:class:`_GroupCommit`;
one commit instead of one each, ``bench/RESULTS.md``, "Payment sagas"). Each caller still
waits for the commit of its own write: no step starts before the transition that leads to
it is durable, and a signal is durable before :meth:`SagaRunner.signal` returns (and the
broker message that brought it is acknowledged).

While :meth:`SagaRunner.run` runs, the process that starts a saga leases it to itself in
the transaction that creates it and moves it at once, and the process that stores an
answer for a waiting saga leases it and makes the wait transition in that same
transaction (:meth:`SagaRunner.signal`, :meth:`SagaRunner.signal_found`); sagas made due
otherwise (timeouts, retries, a lease run out) are claimed every ``idle`` seconds.

A process that dies part way leaves the lease to run out (``lease`` seconds); another
process (or the same one restarted) then claims the saga and repeats the interrupted step,
which is why steps must be idempotent (module docstring of :mod:`hub.sagas.definition`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

from sqlalchemy.engine import Connection

from adapters.base import scrub
from canonical_model.pan import contains_clear_pan
from hub.sagas.definition import TIMEOUT, Compensate, Finish, Goto, SagaDefinition, Step, Target
from hub.sagas.store import NewSaga, Phase, SagaRecord, SagaStore, Signal, SignalState
from journal import Event, EventKind, TransactionIds

__all__ = [
    "Action",
    "SagaRunner",
    "StepContext",
    "StepFailedError",
    "StepResult",
    "posting_reference",
]

_log = logging.getLogger("isobridge.sagas")

_ERROR_LIMIT: Final = 200
_PERSONAL_CACHE: Final = 10_000

_T = TypeVar("_T")


def posting_reference(saga_id: str, step: str) -> str:
    """The 24-character reference (a mainframe ``CB-POSTING-REF``) of ``step`` of a saga.

    >>> posting_reference("pmt-1", "hold") == posting_reference("pmt-1", "hold")
    True
    >>> len(posting_reference("pmt-1", "hold")), posting_reference("pmt-1", "settle") != (
    ...     posting_reference("pmt-1", "hold"))
    (24, True)
    """
    digest = hashlib.blake2b(f"saga\x1f{saga_id}\x1f{step}".encode(), digest_size=12)
    return digest.hexdigest().upper()


class StepFailedError(Exception):
    """A step that did not get done this time (no answer, a broker down): tried again.

    The message says why, without any payload (it is journaled and shown to operators).
    """


@dataclass(frozen=True, slots=True)
class StepResult:
    """What an action did: its ``outcome`` (a key of the step's ``on``) and ``values`` to
    merge into the saga's values (non-personal: references, reason codes)."""

    outcome: str = "ok"
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepContext:
    """What an action is given."""

    saga_id: str
    tenant: str
    step: str
    attempt: int
    values: Mapping[str, Any]
    end_to_end_id: str | None
    uetr: str | None
    _personal: Callable[[], Awaitable[Mapping[str, Any] | None]] = field(repr=False)

    @property
    def key(self) -> str:
        """``<saga id>/<step>``: the id the receiving side deduplicates this step on."""
        return f"{self.saga_id}/{self.step}"

    def reference(self, step: str | None = None) -> str:
        """The 24-character posting reference of ``step`` (default: this one)."""
        return posting_reference(self.saga_id, step or self.step)

    async def personal(self) -> Mapping[str, Any]:
        """The saga's personal data (from its encrypted ``saga_started`` event)."""
        personal = await self._personal()
        if personal is None:
            raise StepFailedError("the saga's personal data is not readable (erased or damaged)")
        return personal


Action = Callable[[StepContext], Awaitable[StepResult]]
"""An action step's function."""


def _default_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _GroupCommit:
    """Writes of many sagas in one database transaction, like the hub's journal writer
    (:class:`hub.journaling.JournalWriter`), but each caller awaits the commit of its own
    write: a transition is durable before the step after it starts, a signal before the
    broker message that brought it is acknowledged.

    The first write starts a flush at once; writes that come while a flush is in progress
    go together into the next one (no timer: one saga alone waits for no other). When a
    batch fails, each of its writes is tried again in a transaction of its own, so that one
    refused write fails alone.
    """

    def __init__(self, store: SagaStore) -> None:
        self.store = store
        self._queue: list[tuple[Callable[[Connection, list[Event]], Any], asyncio.Future[Any]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def __call__(self, work: Callable[[Connection, list[Event]], _T]) -> _T:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return cast(_T, await future)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await asyncio.to_thread(
                    self.store.in_one_transaction, [work for work, _ in batch]
                )
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], error=exc)
                    continue
                for work, future in batch:
                    try:
                        (result,) = await asyncio.to_thread(self.store.in_one_transaction, [work])
                    except Exception as alone:
                        _settle(future, error=alone)
                    else:
                        _settle(future, result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)


def _settle(
    future: asyncio.Future[Any], result: Any = None, *, error: Exception | None = None
) -> None:
    if future.done():  # its caller was cancelled; the write stands, as after a crash
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass(frozen=True, slots=True)
class _Write:
    """A transition to save: the saga before and after it, its event, signal states."""

    before: SagaRecord
    after: SagaRecord
    event: Event
    signals: Mapping[str, SignalState] | None


class SagaRunner:
    """Runs the sagas of ``definitions`` with ``actions`` (by name) on ``store``.

    ``owner`` names this process in leases (default: host, pid and a random suffix);
    ``lease`` is how long (seconds) a claim lasts without a transition.
    """

    def __init__(
        self,
        store: SagaStore,
        definitions: Sequence[SagaDefinition],
        actions: Mapping[str, Action],
        *,
        owner: str | None = None,
        lease: float = 30.0,
        batch: int = 32,
        idle: float = 0.2,
        max_save_failures: int = 5,
    ) -> None:
        self.store = store
        self.definitions = {definition.name: definition for definition in definitions}
        for definition in definitions:
            for step in definition.steps:
                if step.action is not None and step.action not in actions:
                    raise ValueError(
                        f"saga {definition.name}: step {step.name} needs the action "
                        f"{step.action}, which the runner was not given"
                    )
        self.actions = dict(actions)
        self._names = tuple(self.definitions)
        self.owner = (owner or _default_owner())[:64]
        self.lease = lease
        self.batch = batch
        self.idle = idle
        self.max_save_failures = max_save_failures
        self.transitions = 0
        self._save_failures: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._personal: dict[str, Mapping[str, Any]] = {}
        self._commit = _GroupCommit(store)
        self._ready: list[SagaRecord] = []
        self._running = False

    # -- starting and signalling ----------------------------------------------------------

    async def start_saga(
        self,
        definition: str,
        saga_id: str,
        tenant: str,
        values: Mapping[str, Any],
        *,
        personal: Mapping[str, Any] | None = None,
        end_to_end_id: str | None = None,
        uetr: str | None = None,
        status: str | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> bool:
        """Start a saga (its ``saga_started`` event carries ``summary`` in clear and
        ``personal`` encrypted); ``False`` if one with this id exists (a repeat: nothing
        changes)."""
        new, event = self.new_saga(
            definition,
            saga_id,
            tenant,
            values,
            personal=personal,
            end_to_end_id=end_to_end_id,
            uetr=uetr,
            status=status,
            summary=summary,
        )
        owner = self.owner if self._running else None
        created = await self._commit(
            lambda connection, later: self.store.create_in(
                connection, new, event, owner=owner, lease=self.lease, journal_later=later
            )
        )
        if created is None:
            return False
        if personal is not None:
            self._remember(saga_id, personal)
        if created.lease_owner is not None:
            self._ready.append(created)
        self.wake()
        return True

    def new_saga(
        self,
        definition: str,
        saga_id: str,
        tenant: str,
        values: Mapping[str, Any],
        *,
        personal: Mapping[str, Any] | None = None,
        end_to_end_id: str | None = None,
        uetr: str | None = None,
        status: str | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> tuple[NewSaga, Event]:
        """The row and the ``saga_started`` event of a new saga (:meth:`start_saga`), for a
        caller that stores them itself, off the event loop (``SagaStore.create``).

        An end-to-end id or UETR from outside that holds a card-like digit run (which the
        journal refuses in any event) is left out of the saga's ids: the saga still starts,
        and the id stays in its encrypted personal data, where its steps find it."""
        if end_to_end_id is not None and contains_clear_pan(end_to_end_id):
            _log.warning("saga %s: its end-to-end id looks like a card number: not kept", saga_id)
            end_to_end_id = None
        if uetr is not None and contains_clear_pan(uetr):
            uetr = None
        saga = self.definitions[definition]
        first = saga.step(saga.first)
        now = self.store.now()
        ids = TransactionIds(saga_id, end_to_end_id=end_to_end_id, uetr=uetr)
        body: dict[str, Any] = {"saga": definition, "step": first.name, **(summary or {})}
        if status is not None:
            body["status"] = status
        event = Event(EventKind.SAGA_STARTED, tenant, ids, now, body, personal)
        waiting = first.is_wait
        new = NewSaga(
            saga_id,
            tenant,
            definition,
            first.name,
            Phase.WAITING if waiting else Phase.ACTIVE,
            values,
            end_to_end_id=end_to_end_id,
            uetr=uetr,
            status=status,
            deadline=now + dt.timedelta(seconds=first.timeout or 0) if waiting else None,
        )
        return new, event

    async def signal(
        self, saga_id: str, signal: str, key: str, body: Mapping[str, Any] | None = None
    ) -> bool:
        """Give ``saga_id`` the signal ``signal`` (deduplicated on ``key``); ``False`` for a
        repeat (nothing changes)."""
        owner = self.owner if self._running else None
        new, claimed, moved = await self._commit(
            lambda connection, later: self._signal_in(
                connection, later, saga_id, key, signal, body or {}, owner
            )
        )
        self._took(claimed, moved)
        if new:
            self.wake()
        return new

    def _signal_in(
        self,
        connection: Connection,
        later: list[Event],
        saga_id: str,
        key: str,
        signal: str,
        body: Mapping[str, Any],
        owner: str | None,
    ) -> tuple[bool, SagaRecord | None, bool]:
        """Store a signal and, when that leased its saga to ``owner``, make the saga's wait
        transition in the same transaction (a stored answer consumed in one step): whether
        the signal is new, the saga now held (or ``None``), whether it moved."""
        new, claimed = self.store.add_signal_in(
            connection, saga_id, key, signal, body, owner=owner, lease=self.lease
        )
        if claimed is None:
            return new, None, False
        definition = self.definitions.get(claimed.definition)
        if definition is None or not definition.has_step(claimed.step):
            return new, claimed, False
        step = definition.step(claimed.step)
        pending = self.store.signals_in(connection, saga_id, pending_only=True)
        write = self._plan_wait(definition, step, claimed, self.store.now(), pending)
        saved = None if write is None else self._write_in(connection, later, write)
        return new, saved or claimed, saved is not None

    def _took(self, record: SagaRecord | None, moved: bool) -> None:
        """A saga that a signal leased to this runner (and moved, if ``moved``)."""
        if record is None:
            return
        if moved:
            self.transitions += 1
        if record.lease_owner is not None:
            self._ready.append(record)
        elif record.phase is Phase.DONE:
            self._personal.pop(record.saga_id, None)

    async def signal_found(
        self,
        signal: str,
        key: Callable[[str], str],
        body: Mapping[str, Any] | None = None,
        *,
        saga_id: str | None = None,
        uetr: str | None = None,
        end_to_end_id: str | None = None,
        definitions: Collection[str] | None = None,
    ) -> tuple[SagaRecord | None, bool]:
        """:meth:`signal` for the saga that :meth:`SagaStore.find` finds by ``saga_id``,
        ``uetr`` or ``end_to_end_id`` (one of ``definitions``, if given), deduplicated on
        ``key(<its saga id>)``; finding and storing in one transaction. The saga as found
        (``None``: no such saga, nothing stored) and whether the signal is new."""

        def find_and_store(
            connection: Connection, later: list[Event]
        ) -> tuple[SagaRecord | None, bool, SagaRecord | None, bool]:
            found = self.store.find_in(
                connection, saga_id=saga_id, uetr=uetr, end_to_end_id=end_to_end_id
            )
            if found is None or (definitions is not None and found.definition not in definitions):
                return None, False, None, False
            new, claimed, moved = self._signal_in(
                connection, later, found.saga_id, key(found.saga_id), signal, body or {}, owner
            )
            return found, new, claimed, moved

        owner = self.owner if self._running else None
        found, new, claimed, moved = await self._commit(find_and_store)
        self._took(claimed, moved)
        if new:
            self.wake()
        return found, new

    def wake(self) -> None:
        """Look for due sagas now (a saga was started or signalled)."""
        self._wake.set()

    # -- running --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run due sagas until ``stop`` is set, then finish the steps under way.

        While it runs, the runner takes the lease of the sagas it starts (and of the waiting
        ones it stores a signal for) in that same transaction and moves them at once; the
        others it claims at most every ``idle`` seconds (:meth:`SagaStore.claim_due`). Each
        saga moves in a task of its own, so one slow step holds up no other saga.
        """
        working: set[asyncio.Task[int]] = set()
        claimed_at = -float("inf")
        self._running = True
        stopping = asyncio.create_task(self._wake_on(stop))
        try:
            while not stop.is_set():
                self._wake.clear()
                claim = time.monotonic() - claimed_at >= self.idle
                if claim:
                    claimed_at = time.monotonic()
                try:
                    records = await self._take(claim, max(self.batch - len(working), 1))
                except Exception:  # the database went away: log, wait, go on
                    _log.exception("saga runner pass failed")
                    records = []
                for record in records:
                    task = asyncio.create_task(self._advance_logged(record))
                    working.add(task)
                    task.add_done_callback(working.discard)
                if self._ready:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle)
        finally:
            self._running = False
            stopping.cancel()
            if working:
                await asyncio.gather(*working, return_exceptions=True)
            left, self._ready = self._ready, []
            for record in left:  # claimed as the loop stopped: due again for anyone
                await asyncio.to_thread(self.store.release, record)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def run_once(self) -> int:
        """Claim the due sagas and move each as far as it can go now; transitions made."""
        claimed = await self._take(True, self.batch)
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._advance_claimed(record) for record in claimed))
        return sum(results)

    async def _take(self, claim: bool, room: int) -> list[SagaRecord]:
        """The sagas leased at their start or signal, and (``claim``) up to ``room`` due
        ones claimed now."""
        records, self._ready = self._ready, []
        if claim and room > 0:
            records += await self._commit(
                lambda connection, _: self.store.claim_due_in(
                    connection, self.owner, self.lease, room, self._names
                )
            )
        return records

    async def _advance_logged(self, record: SagaRecord) -> int:
        try:
            return await self._advance_claimed(record)
        except Exception:
            _log.exception("saga %s: a transition failed", record.saga_id)
            return 0

    async def _advance_claimed(self, record: SagaRecord) -> int:
        moved = 0
        try:
            while True:
                after = await self._advance(record)
                if after is None:
                    break
                if after is record:
                    return moved  # the lease was lost: the new holder goes on
                moved += 1
                record = after
                self.transitions += 1
                if record.lease_owner is None:
                    break  # saved and released in one go: nothing more to do now
        finally:
            if record.lease_owner is not None:
                await asyncio.to_thread(self.store.release, record)
            if record.phase is Phase.DONE:
                self._personal.pop(record.saga_id, None)
        return moved

    async def _advance(self, record: SagaRecord) -> SagaRecord | None:
        """One transition of ``record``: the saga after it (saved), ``None`` when there is
        nothing to do now, ``record`` itself when the save found the lease gone."""
        definition = self.definitions.get(record.definition)
        if definition is None or not definition.has_step(record.step):
            return None  # another version of the hub knows it; leave it alone
        step = definition.step(record.step)
        now = self.store.now()
        if record.phase in (Phase.ACTIVE, Phase.COMPENSATING):
            if record.next_at > now:
                return None
            return await self._run_action(definition, step, record)
        if record.phase is Phase.WAITING:
            return await self._wait(definition, step, record, now)
        return None

    async def _run_action(
        self, definition: SagaDefinition, step: Step, record: SagaRecord
    ) -> SagaRecord | None:
        if step.action is None:
            raise RuntimeError("internal error: expected step.action is not None")
        tries = dict(record.data.get("tries", {}))
        attempt = int(tries.get(step.name, 0)) + 1
        if attempt > step.max_attempts:  # reached again through a loop (recall, recall...)
            reason = f"{step.name} reached {attempt} times (at most {step.max_attempts})"
            return await self._write(
                self._plan_attention(
                    record, dict(record.data), {"step": step.name}, reason, record.phase
                )
            )
        tries[step.name] = attempt
        context = StepContext(
            record.saga_id,
            record.tenant,
            step.name,
            attempt,
            record.values,
            record.end_to_end_id,
            record.uetr,
            lambda: self._personal_of(record.saga_id),
        )
        try:
            result = await self.actions[step.action](context)
        except Exception as exc:
            reason = scrub(
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, StepFailedError) else str(exc)
            )
            return await self._failed(step, record, tries, attempt, reason[:_ERROR_LIMIT])
        data = {**record.data, "tries": tries}
        values = {**record.values, **result.values}
        data["values"] = values
        compensating = record.phase is Phase.COMPENSATING
        body: dict[str, Any] = {"step": step.name, "outcome": result.outcome, "attempt": attempt}
        if compensating:
            undo = list(data.get("undo", []))
            if undo:
                target: Target = Goto(undo.pop(0))
                data["undo"] = undo
                return await self._write(
                    self._plan_save(definition, record, data, target, body, compensation=True)
                )
            finish = data.get("finish") or {}
            target = Finish(str(finish.get("outcome", "compensated")), finish.get("status"))
            return await self._write(self._plan_save(definition, record, data, target, body))
        target_or_none = step.on.get(result.outcome)
        if target_or_none is None:
            reason = (
                f"step {step.name}: outcome {result.outcome} leads nowhere in {definition.name}"
            )
            return await self._write(self._plan_attention(record, data, body, reason, Phase.ACTIVE))
        if step.compensation is not None:
            data["done"] = [*data.get("done", []), step.name]
        return await self._write(self._plan_save(definition, record, data, target_or_none, body))

    async def _wait(
        self, definition: SagaDefinition, step: Step, record: SagaRecord, now: dt.datetime
    ) -> SagaRecord | None:
        pending = await asyncio.to_thread(self.store.signals, record.saga_id, pending_only=True)
        write = self._plan_wait(definition, step, record, now, pending)
        return None if write is None else await self._write(write)

    def _plan_wait(
        self,
        definition: SagaDefinition,
        step: Step,
        record: SagaRecord,
        now: dt.datetime,
        pending: Sequence[Signal],
    ) -> _Write | None:
        """The transition of a waiting saga given its ``pending`` signals (``None``: it
        waits on)."""
        states: dict[str, SignalState] = {}
        chosen: Signal | None = None
        for signal in pending:
            if signal.signal in step.on:
                chosen = signal
                states[signal.key] = SignalState.CONSUMED
                break
            states[signal.key] = SignalState.IGNORED
        data = dict(record.data)
        body: dict[str, Any] = {"step": step.name}
        if chosen is not None:
            data["values"] = {**record.values, **chosen.body}
            # The answer's own ids stay in the signal table: they come from outside, and an
            # event holding a long digit run would be refused as a card number.
            body.update(signal=chosen.signal, ignored=len(states) - 1)
            target = step.on[chosen.signal]
        elif record.deadline is not None and record.deadline <= now and TIMEOUT in step.on:
            body["signal"] = TIMEOUT
            target = step.on[TIMEOUT]
        elif record.deadline is not None and record.deadline <= now:
            return self._plan_attention(
                record, data, body, f"step {step.name}: no answer in time", Phase.WAITING, states
            )
        else:
            if states:  # only ignored signals: note them, keep waiting
                body.update(ignored=len(states))
                after = dataclasses.replace(record, next_at=record.deadline or now)
                return self._plan(record, after, EventKind.SAGA_SIGNAL, body, states)
            return None
        return self._plan_save(
            definition, record, data, target, body, kind=EventKind.SAGA_SIGNAL, signals=states
        )

    async def _failed(
        self, step: Step, record: SagaRecord, tries: dict[str, int], attempt: int, reason: str
    ) -> SagaRecord | None:
        data = {**record.data, "tries": tries}
        body: dict[str, Any] = {"step": step.name, "attempt": attempt, "failed": reason}
        if attempt >= step.max_attempts:
            return await self._write(
                self._plan_attention(
                    record,
                    data,
                    body,
                    f"{step.name} failed {attempt} times: {reason}",
                    record.phase,
                )
            )
        delay = step.retry_after * 2 ** (attempt - 1)
        if step.max_retry_after is not None:
            delay = min(delay, step.max_retry_after)
        after = dataclasses.replace(
            record,
            attempts=attempt,
            next_at=self.store.now() + dt.timedelta(seconds=delay),
            data=data,
            last_error=reason,
        )
        _log.warning("saga %s: %s", record.saga_id, body["failed"])
        return await self._write(self._plan(record, after, EventKind.SAGA_STEP, body))

    def _plan_attention(
        self,
        record: SagaRecord,
        data: dict[str, Any],
        body: dict[str, Any],
        reason: str,
        resume: Phase,
        signals: Mapping[str, SignalState] | None = None,
    ) -> _Write:
        data["resume"] = resume.value
        body = {**body, "attention": reason[:_ERROR_LIMIT]}
        tries = data.get("tries", {})
        after = dataclasses.replace(
            record,
            phase=Phase.ATTENTION,
            attempts=int(tries.get(record.step, record.attempts)),
            data=data,
            last_error=reason[:_ERROR_LIMIT],
        )
        _log.error("saga %s needs attention: %s", record.saga_id, reason)
        return self._plan(record, after, EventKind.SAGA_ATTENTION, body, signals)

    def _plan_save(
        self,
        definition: SagaDefinition,
        record: SagaRecord,
        data: dict[str, Any],
        target: Target,
        body: dict[str, Any],
        *,
        kind: EventKind = EventKind.SAGA_STEP,
        compensation: bool = False,
        signals: Mapping[str, SignalState] | None = None,
    ) -> _Write:
        now = self.store.now()
        if isinstance(target, Compensate):
            undo = [
                compensating
                for done in reversed(data.get("done", []))
                if (compensating := definition.step(done).compensation) is not None
            ]
            data["finish"] = {"outcome": target.outcome, "status": target.status}
            if not undo:
                target = Finish(target.outcome, target.status)
            else:
                data["undo"] = undo[1:]
                if target.status is not None:
                    data["status"] = target.status
                body["next"] = undo[0]
                body["compensating"] = True
                after = self._at_step(
                    definition.step(undo[0]), record, data, now, Phase.COMPENSATING
                )
                return self._plan(record, after, kind, body, signals)
        if isinstance(target, Finish):
            if target.status is not None:
                data["status"] = target.status
            body["finished"] = target.outcome
            after = dataclasses.replace(
                record,
                phase=Phase.DONE,
                outcome=target.outcome,
                attempts=0,
                next_at=now,
                deadline=None,
                data=data,
                last_error=None,
            )
            final_kind = EventKind.SAGA_FINISHED
            return self._plan(record, after, final_kind, body, signals)
        next_step = definition.step(target.step)
        if next_step.status is not None:
            data["status"] = next_step.status
        body["next"] = next_step.name
        phase = Phase.COMPENSATING if compensation else Phase.ACTIVE
        after = self._at_step(next_step, record, data, now, phase)
        return self._plan(record, after, kind, body, signals)

    @staticmethod
    def _at_step(
        step: Step, record: SagaRecord, data: dict[str, Any], now: dt.datetime, phase: Phase
    ) -> SagaRecord:
        tries = data.get("tries", {})
        if step.is_wait:
            deadline = now + dt.timedelta(seconds=step.timeout or 0)
            return dataclasses.replace(
                record,
                step=step.name,
                phase=Phase.WAITING,
                attempts=int(tries.get(step.name, 0)),
                next_at=now,  # pending signals are looked at at once
                deadline=deadline,
                data=data,
                last_error=None,
            )
        return dataclasses.replace(
            record,
            step=step.name,
            phase=phase,
            attempts=int(tries.get(step.name, 0)),
            next_at=now,
            deadline=None,
            data=data,
            last_error=None,
        )

    def _plan(
        self,
        record: SagaRecord,
        after: SagaRecord,
        kind: EventKind,
        body: dict[str, Any],
        signals: Mapping[str, SignalState] | None = None,
    ) -> _Write:
        status = after.data.get("status")
        values = after.values
        event_body: dict[str, Any] = {"saga": record.definition, **body}
        if status is not None:
            event_body["status"] = status
            reason = values.get("reason_code")
            if status == "RJCT" and isinstance(reason, str):
                event_body["reason_code"] = reason
        event = Event(
            kind,
            record.tenant,
            TransactionIds(record.saga_id, end_to_end_id=record.end_to_end_id, uetr=record.uetr),
            self.store.now(),
            event_body,
        )
        return _Write(record, after, event, signals)

    def _write_in(
        self, connection: Connection, later: list[Event], write: _Write
    ) -> SagaRecord | None:
        return self.store.save_in(
            connection,
            write.before,
            write.after,
            [write.event],
            lease=self.lease,
            signals=write.signals,
            journal_later=later,
        )

    async def _write(self, write: _Write) -> SagaRecord:
        """Save ``write`` (group commit): the saga as saved, or ``write.before`` when the
        lease was lost meanwhile (nothing written). A transition the journal refuses, or one
        that failed ``max_save_failures`` times in a row, stops the saga in ``attention``."""
        record, kind = write.before, write.event.kind
        try:
            saved = await self._commit(
                lambda connection, later: self._write_in(connection, later, write)
            )
        except ValueError as exc:  # the journal refused the event: it always will
            return await self._refused(record, f"the journal refused its {kind} event: {exc}")
        except Exception as exc:
            failures = self._save_failures.get(record.saga_id, 0) + 1
            self._save_failures[record.saga_id] = failures
            if failures < self.max_save_failures:
                raise
            reason = f"its {kind} event was not saved {failures} times: {type(exc).__name__}"
            return await self._refused(record, scrub(f"{reason}: {exc}"))
        self._save_failures.pop(record.saga_id, None)
        if saved is None:
            _log.warning(
                "saga %s: lease lost before saving %s", write.before.saga_id, write.event.body
            )
            return write.before
        return saved

    async def _refused(self, record: SagaRecord, reason: str) -> SagaRecord:
        """Stop ``record`` in ``attention`` at its step (a retry runs the step again), with
        an event that holds none of what the journal refused: the saga id, the saga's own
        ids only if they hold no card-like digit run, the step and the reason."""
        reason = reason[:_ERROR_LIMIT]
        data = {**record.data, "resume": record.phase.value}
        after = dataclasses.replace(record, phase=Phase.ATTENTION, data=data, last_error=reason)
        safe = {
            name: value
            for name, value in (("end_to_end_id", record.end_to_end_id), ("uetr", record.uetr))
            if value is not None and not contains_clear_pan(value)
        }
        body = {"saga": record.definition, "step": record.step, "attention": reason}
        status = record.data.get("status")
        if isinstance(status, str):
            body["status"] = status
        event = Event(
            EventKind.SAGA_ATTENTION,
            record.tenant,
            TransactionIds(record.saga_id, **safe),
            self.store.now(),
            body,
        )
        _log.error("saga %s needs attention: %s", record.saga_id, reason)
        saved = await asyncio.to_thread(self.store.save, record, after, [event], lease=self.lease)
        self._save_failures.pop(record.saga_id, None)
        if saved is None:
            _log.warning("saga %s: lease lost before stopping it for attention", record.saga_id)
            return record
        return saved

    # -- personal data --------------------------------------------------------------------

    def _remember(self, saga_id: str, personal: Mapping[str, Any]) -> None:
        if len(self._personal) >= _PERSONAL_CACHE:
            self._personal.pop(next(iter(self._personal)))
        self._personal[saga_id] = personal

    async def _personal_of(self, saga_id: str) -> Mapping[str, Any] | None:
        cached = self._personal.get(saga_id)
        if cached is not None:
            return cached
        personal = await asyncio.to_thread(self.store.personal, saga_id)
        if personal is not None:
            self._remember(saga_id, personal)
        return personal
