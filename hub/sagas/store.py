"""Where sagas live: a row per saga in the journal's database, every transition a journal event.

The row (``journal_sagas``, :mod:`journal.schema`) says where a saga stands: its step and
phase (:class:`Phase`), the attempts of the step, when it is next due (``next_at``) and,
in a wait step, its deadline; its non-personal data as JSON; and the lease of the hub
process working on it. Every change of the row happens in one database transaction with
the journal event that records it (:meth:`SagaStore.save`), so the journal holds the
saga's whole history (``isobridge trace <saga id>``) and the row never runs ahead of it.
Personal data (accounts, names) is never in the row: it is the encrypted personal part of
the ``saga_started`` event (:meth:`SagaStore.personal`).

Several hub processes on one database
    A process works on a saga only while it holds its lease. :meth:`SagaStore.claim` takes
    it with one conditional ``UPDATE ... WHERE version = :seen AND (no lease or an expired
    one)``: of two processes that saw the same due saga one updates a row, the other none.
    Every later change is conditional on the version and the owner too, so a process whose
    lease ran out (it hung, it was killed) cannot overwrite what the next one did; the next
    one runs the interrupted step again, which is safe because steps are idempotent.

Signals
    An answer for a saga (:meth:`SagaStore.add_signal`) is stored under a deduplication key
    (the answer's message id and transaction): a repeated answer adds nothing. Storing it
    makes the saga due at once; the process that claims it hands the signal to the waiting
    step. A signal that arrives before the saga waits for it (a pacs.002 faster than the
    recording of the pacs.008's sending) stays pending until it does.

Several changes in one transaction
    Each writing method has a ``..._in`` form that works inside the caller's transaction
    (:meth:`SagaStore.create_in`, :meth:`~SagaStore.save_in`, :meth:`~SagaStore.add_signal_in`,
    :meth:`~SagaStore.claim_due_in`): the runner starts a saga and leases it to itself in one
    transaction, stores an answer and claims the saga it wakes in one, and commits the
    transitions of many sagas together (:meth:`SagaStore.in_one_transaction`, one journal
    append for all their events). Each change keeps its own conditions (version, lease), so
    a change that finds its saga changed writes nothing and the others are not affected.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar

from sqlalchemy import bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from journal import Event, EventKind, Journal, StoredEvent, TransactionIds
from journal.reading import READ_ONLY, read_events
from journal.schema import SAGA_SIGNALS, SAGAS

__all__ = [
    "LIVE_PHASES",
    "NewSaga",
    "Phase",
    "SagaError",
    "SagaRecord",
    "SagaStore",
    "Signal",
    "SignalState",
]

_TEXT_LIMIT: Final = 200

_T = TypeVar("_T")


class Phase(StrEnum):
    """Where a saga is in its life."""

    ACTIVE = "active"
    """Its step is an action to run (when ``next_at`` has come)."""
    WAITING = "waiting"
    """Its step waits for a signal until its deadline."""
    COMPENSATING = "compensating"
    """It runs the compensations of what it did, newest first."""
    DONE = "done"
    """Finished with its outcome (nothing more happens)."""
    ATTENTION = "attention"
    """A step failed ``max_attempts`` times: stopped until an operator retries it."""


LIVE_PHASES: Final = (Phase.ACTIVE, Phase.WAITING, Phase.COMPENSATING)
"""The phases in which the runner works on a saga."""


class SignalState(StrEnum):
    """What became of a signal."""

    PENDING = "pending"
    CONSUMED = "consumed"
    IGNORED = "ignored"


class SagaError(Exception):
    """A saga operation that cannot be done (unknown saga, nothing to retry)."""


@dataclass(frozen=True, slots=True)
class SagaRecord:
    """A saga's row. ``data`` is the runner's JSON object: ``values`` (the saga's own data),
    ``done`` (action steps done, oldest first), ``undo`` (compensations still to run),
    ``finish`` (the outcome to end with after compensating), ``tries`` (attempts per step,
    over the whole saga), ``status`` (the transaction's current status), ``resume`` (the
    phase to go back to after ``attention``)."""

    saga_id: str
    tenant: str
    definition: str
    step: str
    phase: Phase
    outcome: str | None
    attempts: int
    next_at: dt.datetime
    deadline: dt.datetime | None
    lease_owner: str | None
    lease_until: dt.datetime | None
    version: int
    data: Mapping[str, Any]
    last_error: str | None
    end_to_end_id: str | None
    uetr: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def values(self) -> Mapping[str, Any]:
        """The saga's own data (amounts, references, reason codes: never personal data)."""
        values = self.data.get("values", {})
        return values if isinstance(values, Mapping) else {}


@dataclass(frozen=True, slots=True)
class NewSaga:
    """What :meth:`SagaStore.create` needs to start a saga."""

    saga_id: str
    tenant: str
    definition: str
    first_step: str
    phase: Phase
    values: Mapping[str, Any]
    end_to_end_id: str | None = None
    uetr: str | None = None
    status: str | None = None
    deadline: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """A stored signal (an answer for a saga)."""

    key: str
    saga_id: str
    signal: str
    body: Mapping[str, Any]
    received_at: dt.datetime
    state: SignalState


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _record(row: Row[Any]) -> SagaRecord:
    values = row._asdict()
    for name in ("next_at", "deadline", "lease_until", "created_at", "updated_at"):
        values[name] = _aware(values[name])
    values["phase"] = Phase(values["phase"])
    values["data"] = json.loads(values["data"])
    return SagaRecord(**values)


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _param(name: str, column: Any) -> Any:
    return bindparam(f"p_{name}", type_=column.type)


_LIVE: Final = [phase.value for phase in LIVE_PHASES]

# The statements of the hot path, built once: building and hashing a statement per call
# costs more CPU than running it (bench/RESULTS.md, "Payment sagas").
_SAVED_COLUMNS: Final = (
    SAGAS.c.step,
    SAGAS.c.phase,
    SAGAS.c.outcome,
    SAGAS.c.attempts,
    SAGAS.c.next_at,
    SAGAS.c.deadline,
    SAGAS.c.version,
    SAGAS.c.data,
    SAGAS.c.last_error,
    SAGAS.c.updated_at,
)


def _save_statement(*, let_go: bool) -> Any:
    """The conditional update of a save; ``let_go``: it gives the lease back as well."""
    lease: dict[Any, Any] = (
        {SAGAS.c.lease_owner: None, SAGAS.c.lease_until: None}
        if let_go
        else {SAGAS.c.lease_until: _param("lease_until", SAGAS.c.lease_until)}
    )
    return (
        update(SAGAS)
        .where(
            SAGAS.c.saga_id == _param("saga_id", SAGAS.c.saga_id),
            SAGAS.c.version == _param("seen", SAGAS.c.version),
            SAGAS.c.lease_owner == _param("owner", SAGAS.c.lease_owner),
        )
        .values({column: _param(column.name, column) for column in _SAVED_COLUMNS} | lease)
    )


_SAVE: Final = _save_statement(let_go=False)
_SAVE_SETTLED: Final = _save_statement(let_go=True)
_TAKE_BACK: Final = (
    update(SAGAS)
    .where(SAGAS.c.saga_id == _param("saga_id", SAGAS.c.saga_id))
    .values(
        lease_owner=_param("owner", SAGAS.c.lease_owner),
        lease_until=_param("lease_until", SAGAS.c.lease_until),
        next_at=_param("next_at", SAGAS.c.next_at),
        version=_param("version", SAGAS.c.version),
    )
)
_SIGNAL_STATE: Final = (
    update(SAGA_SIGNALS)
    .where(SAGA_SIGNALS.c.signal_key == _param("key", SAGA_SIGNALS.c.signal_key))
    .values(state=_param("state", SAGA_SIGNALS.c.state))
)
_PENDING: Final = (
    select(SAGA_SIGNALS.c.signal_key)
    .where(
        SAGA_SIGNALS.c.saga_id == _param("saga_id", SAGA_SIGNALS.c.saga_id),
        SAGA_SIGNALS.c.state == SignalState.PENDING.value,
    )
    .limit(1)
)
_DUE_IF_WAITING: Final = (
    update(SAGAS)
    .where(SAGAS.c.saga_id == _param("saga_id", SAGAS.c.saga_id))
    .values(
        next_at=case(
            (SAGAS.c.phase == Phase.WAITING.value, _param("now", SAGAS.c.next_at)),
            else_=SAGAS.c.next_at,
        )
    )
)
_CLAIM_WAITING: Final = (
    update(SAGAS)
    .where(
        SAGAS.c.saga_id == _param("saga_id", SAGAS.c.saga_id),
        SAGAS.c.phase == Phase.WAITING.value,
        or_(SAGAS.c.lease_owner.is_(None), SAGAS.c.lease_until < _param("now", SAGAS.c.next_at)),
    )
    .values(
        lease_owner=_param("owner", SAGAS.c.lease_owner),
        lease_until=_param("until", SAGAS.c.lease_until),
        version=SAGAS.c.version + 1,
    )
    .returning(*SAGAS.c)
)
_FIND: Final = tuple(
    select(SAGAS)
    .where(column == _param("value", column))
    .order_by(SAGAS.c.created_at.desc())
    .limit(1)
    for column in (SAGAS.c.saga_id, SAGAS.c.uetr, SAGAS.c.end_to_end_id)
)
_SIGNALS: Final = (
    select(SAGA_SIGNALS)
    .where(SAGA_SIGNALS.c.saga_id == _param("saga_id", SAGA_SIGNALS.c.saga_id))
    .order_by(SAGA_SIGNALS.c.received_at, SAGA_SIGNALS.c.signal_key)
)
_PENDING_SIGNALS: Final = _SIGNALS.where(SAGA_SIGNALS.c.state == SignalState.PENDING.value)
_INSERTS: dict[tuple[str, str], Any] = {}


def _insert_ignoring_duplicates(
    connection: Connection, table: Any, values: Mapping[str, Any]
) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING``: whether the row is new (the
    ``rowcount`` of such an insert is not to be trusted: ARCHITECTURE.md, field notes)."""
    name = connection.dialect.name
    statement = _INSERTS.get((table.name, name))
    if statement is None:
        key = next(iter(table.primary_key.columns))
        if name == "postgresql":
            statement = postgresql.insert(table).on_conflict_do_nothing().returning(key)
        elif name == "sqlite":
            statement = sqlite.insert(table).on_conflict_do_nothing().returning(key)
        else:  # pragma: no cover - the journal runs on SQLite and PostgreSQL only
            statement = insert(table).returning(key)
        _INSERTS[(table.name, name)] = statement
    return connection.execute(statement, dict(values)).first() is not None


class SagaStore:
    """The sagas of one journal (see the module docstring)."""

    def __init__(self, journal: Journal, *, now: Callable[[], dt.datetime] | None = None) -> None:
        self.journal = journal
        self.engine = journal.engine
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        """The store's clock (UTC)."""
        return self._now()

    # -- writing ------------------------------------------------------------------------

    def create(self, saga: NewSaga, event: Event) -> bool:
        """Store a new saga and its ``saga_started`` ``event``; ``False`` (and nothing
        written) if a saga with that id exists already."""
        with self.engine.begin() as connection:
            return self.create_in(connection, saga, event) is not None

    def create_in(
        self,
        connection: Connection,
        saga: NewSaga,
        event: Event,
        *,
        owner: str | None = None,
        lease: float = 30.0,
        journal_later: list[Event] | None = None,
    ) -> SagaRecord | None:
        """:meth:`create` inside the caller's transaction; with ``owner``, the new saga is
        leased to it at once (the process that starts a saga goes on with it without a
        claim of its own). The row as written, ``None`` if the saga exists already.

        With ``journal_later``, the event is put there for the caller to append later in
        the same transaction (:meth:`in_one_transaction`) instead of being appended now."""
        now = self._now()
        data: dict[str, Any] = {
            "values": dict(saga.values),
            "done": [],
            "undo": [],
            "finish": None,
            "tries": {},
            "status": saga.status,
            "resume": None,
        }
        values: dict[str, Any] = {
            "saga_id": saga.saga_id,
            "tenant": saga.tenant,
            "definition": saga.definition,
            "step": saga.first_step,
            "phase": saga.phase.value,
            "outcome": None,
            "attempts": 0,
            "next_at": now,
            "deadline": saga.deadline,
            "lease_owner": owner,
            "lease_until": None if owner is None else now + dt.timedelta(seconds=lease),
            "version": 1,
            "data": _json(data),
            "last_error": None,
            "end_to_end_id": saga.end_to_end_id,
            "uetr": saga.uetr,
            "created_at": now,
            "updated_at": now,
        }
        if not _insert_ignoring_duplicates(connection, SAGAS, values):
            return None
        self._journal(connection, [event], journal_later)
        values["phase"] = saga.phase
        values["data"] = data
        return SagaRecord(**values)

    def due(self, limit: int = 32) -> list[tuple[str, int]]:
        """(saga id, version) of live sagas that are due and not leased, oldest due first."""
        now = self._now()
        query = (
            select(SAGAS.c.saga_id, SAGAS.c.version)
            .where(
                SAGAS.c.phase.in_([phase.value for phase in LIVE_PHASES]),
                SAGAS.c.next_at <= now,
                or_(SAGAS.c.lease_owner.is_(None), SAGAS.c.lease_until < now),
            )
            .order_by(SAGAS.c.next_at)
            .limit(limit)
        )
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return [(row.saga_id, row.version) for row in connection.execute(query)]

    def claim(self, saga_id: str, version: int, owner: str, lease: float) -> SagaRecord | None:
        """Take the lease of a due saga last seen at ``version``; ``None`` if another
        process took it first (or it changed since)."""
        now = self._now()
        with self.engine.begin() as connection:
            claimed = connection.execute(
                update(SAGAS)
                .where(
                    SAGAS.c.saga_id == saga_id,
                    SAGAS.c.version == version,
                    SAGAS.c.phase.in_([phase.value for phase in LIVE_PHASES]),
                    or_(SAGAS.c.lease_owner.is_(None), SAGAS.c.lease_until < now),
                )
                .values(
                    lease_owner=owner,
                    lease_until=now + dt.timedelta(seconds=lease),
                    version=SAGAS.c.version + 1,
                )
            ).rowcount
            if claimed != 1:
                return None
            row = connection.execute(select(SAGAS).where(SAGAS.c.saga_id == saga_id)).one()
            return _record(row)

    def claim_due(
        self,
        owner: str,
        lease: float,
        limit: int = 32,
        definitions: Sequence[str] | None = None,
    ) -> list[SagaRecord]:
        """:meth:`claim_due_in` in a transaction of its own."""
        with self.engine.begin() as connection:
            return self.claim_due_in(connection, owner, lease, limit, definitions)

    def claim_due_in(
        self,
        connection: Connection,
        owner: str,
        lease: float,
        limit: int = 32,
        definitions: Sequence[str] | None = None,
    ) -> list[SagaRecord]:
        """Take the lease of up to ``limit`` due sagas in one statement (:meth:`due` and
        :meth:`claim` together): ``UPDATE ... WHERE <due and not leased> RETURNING``. The
        condition is checked again on each row as it is updated, so of two processes that
        go for the same saga one gets it (on PostgreSQL the candidates are picked with
        ``FOR UPDATE SKIP LOCKED``: a row another process is claiming is left to it).
        ``definitions``: only sagas of these (a runner leaves the others to the runners
        that know them)."""
        now = self._now()
        live = [phase.value for phase in LIVE_PHASES]
        free = or_(SAGAS.c.lease_owner.is_(None), SAGAS.c.lease_until < now)
        candidates = (
            select(SAGAS.c.saga_id)
            .where(SAGAS.c.phase.in_(live), SAGAS.c.next_at <= now, free)
            .order_by(SAGAS.c.next_at)
            .limit(limit)
        )
        if definitions is not None:
            candidates = candidates.where(SAGAS.c.definition.in_(list(definitions)))
        if connection.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        rows = connection.execute(
            update(SAGAS)
            .where(SAGAS.c.saga_id.in_(candidates.scalar_subquery()), SAGAS.c.phase.in_(live), free)
            .values(
                lease_owner=owner,
                lease_until=now + dt.timedelta(seconds=lease),
                version=SAGAS.c.version + 1,
            )
            .returning(*SAGAS.c)
        ).all()
        return sorted((_record(row) for row in rows), key=lambda record: record.next_at)

    def save(
        self,
        before: SagaRecord,
        after: SagaRecord,
        events: Sequence[Event],
        *,
        lease: float,
        signals: Mapping[str, SignalState] | None = None,
    ) -> SagaRecord | None:
        """:meth:`save_in` in a transaction of its own."""
        with self.engine.begin() as connection:
            return self.save_in(connection, before, after, events, lease=lease, signals=signals)

    def save_in(
        self,
        connection: Connection,
        before: SagaRecord,
        after: SagaRecord,
        events: Sequence[Event],
        *,
        lease: float,
        signals: Mapping[str, SignalState] | None = None,
        journal_later: list[Event] | None = None,
    ) -> SagaRecord | None:
        """Write ``after`` over ``before`` with the ``events`` that record the change (or put
        them on ``journal_later``, as :meth:`create_in` does), inside the caller's
        transaction, if ``before`` is still what the database holds and this process still
        holds the lease; the row as written, else ``None`` (nothing written).

        When there is nothing more to do now (finished, stopped for attention, or waiting
        with no signal pending) the lease is given back in the same transaction, as
        :meth:`release` would: the row returned then has no ``lease_owner``.
        """
        now = self._now()
        owner = before.lease_owner
        version = before.version + 1
        until = now + dt.timedelta(seconds=lease)
        # A finished, stopped or waiting saga gives its lease back in this very update (a
        # waiting one is due at its deadline); a waiting one is taken back right after if a
        # signal is pending (looked at after the update, whose row lock orders it with
        # add_signal's: see release).
        settled = after.phase in (Phase.DONE, Phase.ATTENTION)
        waiting = after.phase is Phase.WAITING
        let_go = settled or waiting
        next_at = (after.deadline or after.next_at) if waiting else after.next_at
        changed = connection.execute(
            _SAVE_SETTLED if let_go else _SAVE,
            {
                "p_saga_id": before.saga_id,
                "p_seen": before.version,
                "p_owner": owner,
                "p_step": after.step,
                "p_phase": after.phase.value,
                "p_outcome": after.outcome,
                "p_attempts": after.attempts,
                "p_next_at": next_at,
                "p_deadline": after.deadline,
                "p_lease_until": until,
                "p_version": version,
                "p_data": _json(after.data),
                "p_last_error": None
                if after.last_error is None
                else after.last_error[:_TEXT_LIMIT],
                "p_updated_at": now,
            },
        ).rowcount
        if changed != 1:
            return None  # nothing was written
        for key, state in (signals or {}).items():
            connection.execute(_SIGNAL_STATE, {"p_key": key, "p_state": state.value})
        self._journal(connection, events, journal_later)
        if not let_go:
            return dataclasses.replace(
                after, lease_owner=owner, lease_until=until, version=version, updated_at=now
            )
        if waiting and self._pending(connection, after.saga_id):
            connection.execute(
                _TAKE_BACK,
                {
                    "p_saga_id": after.saga_id,
                    "p_owner": owner,
                    "p_lease_until": until,
                    "p_next_at": after.next_at,
                    "p_version": version + 1,
                },
            )
            return dataclasses.replace(
                after,
                lease_owner=owner,
                lease_until=until,
                version=version + 1,
                updated_at=now,
            )
        return dataclasses.replace(
            after,
            next_at=next_at,
            lease_owner=None,
            lease_until=None,
            version=version,
            updated_at=now,
        )

    def release(self, record: SagaRecord) -> None:
        """Give the lease back; the saga is due again at its ``next_at`` (a waiting one at
        its deadline), or at once if a signal is pending for it (one may have come while it
        was held). Nothing happens if ``record`` is not what the database holds."""
        now = self._now()
        with self.engine.begin() as connection:
            # The row lock of this update orders it with add_signal's: a signal either is
            # seen by the count below or makes the saga due after this commits.
            released = connection.execute(
                update(SAGAS)
                .where(
                    SAGAS.c.saga_id == record.saga_id,
                    SAGAS.c.version == record.version,
                    SAGAS.c.lease_owner == record.lease_owner,
                )
                .values(
                    lease_owner=None,
                    lease_until=None,
                    version=record.version + 1,
                    next_at=record.deadline
                    if record.phase is Phase.WAITING and record.deadline is not None
                    else record.next_at,
                )
            ).rowcount
            if released != 1 or record.phase is not Phase.WAITING:
                return
            if self._pending(connection, record.saga_id):
                connection.execute(
                    update(SAGAS).where(SAGAS.c.saga_id == record.saga_id).values(next_at=now)
                )

    @staticmethod
    def _pending(connection: Connection, saga_id: str) -> bool:
        """Whether a signal is pending for ``saga_id`` (in the caller's transaction, after
        it updated the saga's row: see :meth:`release`)."""
        return connection.execute(_PENDING, {"p_saga_id": saga_id}).first() is not None

    def add_signal(self, saga_id: str, key: str, signal: str, body: Mapping[str, Any]) -> bool:
        """Store a signal for ``saga_id`` under the deduplication ``key`` and make the saga
        due now; ``False`` (nothing changed) for a key seen before."""
        with self.engine.begin() as connection:
            new, _ = self.add_signal_in(connection, saga_id, key, signal, body)
            return new

    def add_signal_in(
        self,
        connection: Connection,
        saga_id: str,
        key: str,
        signal: str,
        body: Mapping[str, Any],
        *,
        owner: str | None = None,
        lease: float = 30.0,
    ) -> tuple[bool, SagaRecord | None]:
        """:meth:`add_signal` inside the caller's transaction: whether the signal is new and,
        with ``owner``, the saga leased to ``owner`` when it was waiting and free (the
        process that stores the answer goes on with it at once), else ``None``."""
        now = self._now()
        new = _insert_ignoring_duplicates(
            connection,
            SAGA_SIGNALS,
            {
                "signal_key": key[:128],
                "saga_id": saga_id,
                "signal": signal,
                "body": _json(body),
                "received_at": now,
                "state": SignalState.PENDING.value,
            },
        )
        if not new:
            return False, None
        if owner is not None:
            claimed = connection.execute(
                _CLAIM_WAITING,
                {
                    "p_saga_id": saga_id,
                    "p_now": now,
                    "p_owner": owner,
                    "p_until": now + dt.timedelta(seconds=lease),
                },
            ).first()
            if claimed is not None:
                return True, _record(claimed)
        # Whatever its phase, the row is locked here: a save or release of this saga that
        # runs at the same time either sees this signal pending or comes before this update.
        connection.execute(_DUE_IF_WAITING, {"p_saga_id": saga_id, "p_now": now})
        return True, None

    def in_one_transaction(
        self, work: Sequence[Callable[[Connection, list[Event]], _T]]
    ) -> list[_T]:
        """Run each of ``work`` (``create_in``, ``save_in``... bound to their arguments), in
        order, in one database transaction, then append the journal events they put on the
        list each is given, in that order, with one append: their results, once it is
        committed (group commit: one commit for the transitions of many sagas). An
        exception rolls back all of it."""
        events: list[Event] = []
        with self.engine.begin() as connection:
            results = [item(connection, events) for item in work]
            self.journal.append(connection, events)
        return results

    def _journal(
        self, connection: Connection, events: Sequence[Event], later: list[Event] | None
    ) -> None:
        if later is None:
            self.journal.append(connection, events)
        else:
            later.extend(events)

    def retry(self, saga_id: str, *, by: str) -> SagaRecord:
        """Re-arm a saga (``isobridge sagas retry``): one in ``attention`` runs its step
        again with fresh attempts; one that waits acts on its timeout now. The
        ``saga_retried`` event names who asked (``by``)."""
        now = self._now()
        record = self.get(saga_id)
        if record is None:
            raise SagaError(f"no saga {saga_id!r}")
        if record.phase is Phase.DONE:
            raise SagaError(f"saga {saga_id} is finished ({record.outcome}): nothing to retry")
        if record.lease_owner is not None and record.lease_until and record.lease_until > now:
            raise SagaError(
                f"saga {saga_id} is being worked on by {record.lease_owner} until "
                f"{record.lease_until:%H:%M:%S}: try again then"
            )
        data = dict(record.data)
        phase: Phase = record.phase
        deadline = record.deadline
        if phase is Phase.ATTENTION:
            phase = Phase(data.get("resume") or Phase.ACTIVE.value)
            tries = dict(data.get("tries", {}))
            tries[record.step] = 0
            data["tries"] = tries
            data["resume"] = None
        elif phase is Phase.WAITING:
            deadline = now
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(SAGAS)
                .where(SAGAS.c.saga_id == saga_id, SAGAS.c.version == record.version)
                .values(
                    phase=phase.value,
                    attempts=0 if record.phase is Phase.ATTENTION else record.attempts,
                    next_at=now,
                    deadline=deadline,
                    lease_owner=None,
                    lease_until=None,
                    version=record.version + 1,
                    data=_json(data),
                    last_error=None,
                    updated_at=now,
                )
            ).rowcount
            if changed != 1:
                raise SagaError(f"saga {saga_id} changed meanwhile: look again and retry")
            after = dataclasses.replace(
                record,
                phase=phase,
                attempts=0 if record.phase is Phase.ATTENTION else record.attempts,
                next_at=now,
                deadline=deadline,
                lease_owner=None,
                lease_until=None,
                version=record.version + 1,
                data=data,
                last_error=None,
                updated_at=now,
            )
            body: dict[str, Any] = {
                "saga": record.definition,
                "step": record.step,
                "from": record.phase.value,
                "by": by[:64],
            }
            status = data.get("status")
            if isinstance(status, str):
                body["status"] = status
            ids = TransactionIds(saga_id, end_to_end_id=record.end_to_end_id, uetr=record.uetr)
            event = Event(EventKind.SAGA_RETRIED, record.tenant, ids, now, body)
            self.journal.append(connection, [event])
        return after

    # -- reading ------------------------------------------------------------------------

    def get(self, saga_id: str) -> SagaRecord | None:
        """The saga ``saga_id``."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            row = connection.execute(select(SAGAS).where(SAGAS.c.saga_id == saga_id)).first()
        return None if row is None else _record(row)

    def find(
        self,
        *,
        saga_id: str | None = None,
        uetr: str | None = None,
        end_to_end_id: str | None = None,
    ) -> SagaRecord | None:
        """The saga named by its id, else by its UETR, else by its end-to-end id (the
        newest, if several share one)."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return self.find_in(connection, saga_id=saga_id, uetr=uetr, end_to_end_id=end_to_end_id)

    @staticmethod
    def find_in(
        connection: Connection,
        *,
        saga_id: str | None = None,
        uetr: str | None = None,
        end_to_end_id: str | None = None,
    ) -> SagaRecord | None:
        """:meth:`find` inside the caller's transaction."""
        for statement, value in zip(_FIND, (saga_id, uetr, end_to_end_id), strict=True):
            if not value:
                continue
            row = connection.execute(statement, {"p_value": value}).first()
            if row is not None:
                return _record(row)
        return None

    def sagas(self, *, phases: Sequence[Phase] | None = None, limit: int = 100) -> list[SagaRecord]:
        """Sagas (of ``phases``, if given), the most recently changed first."""
        query = select(SAGAS).order_by(SAGAS.c.updated_at.desc(), SAGAS.c.saga_id).limit(limit)
        if phases:
            query = query.where(SAGAS.c.phase.in_([phase.value for phase in phases]))
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return [_record(row) for row in connection.execute(query)]

    def counts(self) -> dict[str, int]:
        """How many sagas are in each phase."""
        query = select(SAGAS.c.phase, func.count()).group_by(SAGAS.c.phase)
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return {str(phase): int(count) for phase, count in connection.execute(query)}

    def signals(self, saga_id: str, *, pending_only: bool = False) -> list[Signal]:
        """The signals of ``saga_id``, oldest first."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return self.signals_in(connection, saga_id, pending_only=pending_only)

    @staticmethod
    def signals_in(
        connection: Connection, saga_id: str, *, pending_only: bool = False
    ) -> list[Signal]:
        """:meth:`signals` inside the caller's transaction."""
        rows = connection.execute(
            _PENDING_SIGNALS if pending_only else _SIGNALS, {"p_saga_id": saga_id}
        ).all()
        return [
            Signal(
                row.signal_key,
                row.saga_id,
                row.signal,
                json.loads(row.body),
                _aware(row.received_at) or row.received_at,
                SignalState(row.state),
            )
            for row in rows
        ]

    def history(self, saga_id: str) -> list[StoredEvent]:
        """The saga's journal events, oldest first, personal parts decrypted."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return read_events(
                connection, self.journal.keyring, transaction_ids=[saga_id], limit=10_000
            )

    def personal(self, saga_id: str) -> Mapping[str, Any] | None:
        """The personal part of the saga's ``saga_started`` event (``None`` if it has none
        or it was erased)."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            for event in read_events(
                connection, self.journal.keyring, transaction_ids=[saga_id], limit=10_000
            ):
                if event.kind is EventKind.SAGA_STARTED:
                    personal = event.personal
                    return personal if isinstance(personal, Mapping) else None
        return None
