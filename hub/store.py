"""The hub's own tables: reversals stored and forwarded until the core acknowledges them.

==========================  ===================================================================
table                       holds
==========================  ===================================================================
``hub_pending_reversals``   one row per posting whose outcome is unknown (the core was asked
                            and did not answer): the reversal to send (canonical JSON: card
                            tokens only), attempts, when to try next, the last error, and
                            the claim of the forwarder that holds it
==========================  ===================================================================

This is ISO 8583 store-and-forward (0420 semantics): the row is written when the outcome is
lost, before the acquirer is answered ``91``, so it survives a hub restart; the
:class:`ReversalForwarder` sends it until the mainframe answers ``00`` (reversed) or ``25``
(no such posting: nothing to reverse), then deletes it. Every other answer, a timeout or a
dead core is retried with exponential backoff (``1 s`` doubling to ``5 min``). Reversals are
idempotent by their own posting reference, so a reversal sent twice is applied once.

The database is ``<home>/hub.db`` (SQLite) by default, or the one ``ISOBRIDGE_STORE_URL``
names (``[hub] store_url``): with several hub instances, the PostgreSQL database they share.
Any number of forwarders may then work on one table. A forwarder *claims* a due reversal
before sending it (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's write lock
otherwise): the row gets the claim's token and its ``next_attempt_at`` moves a lease ahead,
so no other forwarder takes it while it is being sent; if its instance dies, the lease runs
out and another instance forwards it. The acknowledgement deletes the row: only the forwarder
whose delete removed it reports it (:attr:`ReversalForwarder.on_acknowledged`), so a reversal
is acknowledged once even when a lease ran out under a slow send and it went out twice.
Storing a reversal waits (up to :attr:`ReversalStore.unreachable_wait` seconds) for a
database that is restarting: the acquirer is answered ``91`` only once it is stored.

The tables are created by the Alembic migrations in :mod:`hub.migrations` (:func:`upgrade`),
with their own version table, ``hub_alembic_version``, so they may share a database with the
vault, the routing inbox and outbox.

>>> engine = create_engine("sqlite://")
>>> upgrade(engine)
>>> from sqlalchemy import inspect
>>> sorted(t for t in inspect(engine).get_table_names() if t.startswith("hub_"))
['hub_alembic_version', 'hub_pending_reversals']
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from canonical_model.json_form import from_json, to_json
from canonical_model.messages import CanonicalMessage
from routing.store import create_engine

__all__ = [
    "HEAD",
    "VERSION_TABLE",
    "PendingReversal",
    "ReversalForwarder",
    "ReversalSender",
    "ReversalStore",
    "create_engine",
    "current_revision",
    "metadata",
    "pending_reversals_table",
    "store_reversal_while_unreachable",
    "upgrade",
]

_log = logging.getLogger("isobridge.reversals")

HEAD: Final = "0002"
"""The newest revision this code knows."""

VERSION_TABLE: Final = "hub_alembic_version"

DONE_CODES: Final = frozenset({"00", "25"})
"""Core answers that end a reversal: reversed, or no such posting (nothing to reverse)."""

metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "pk": "pk_%(table_name)s"})

pending_reversals_table = Table(
    "hub_pending_reversals",
    metadata,
    Column("posting_ref", String(24), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("reversal", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("claim", String(32), nullable=True),
    Index("ix_hub_pending_reversals_next_attempt_at", "next_attempt_at"),
)

_LOCATION = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK: Final = 0x1B_0A_57_0E
"""The PostgreSQL advisory lock held while the hub's tables are migrated."""

T = TypeVar("T")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the hub's tables on ``engine`` up to ``revision`` (default: the newest).

    On PostgreSQL, instances starting at once migrate one after the other (an advisory lock
    for the transaction); the others then find the tables up to date."""
    config = Config()
    config.set_main_option("script_location", str(_LOCATION))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision of the hub's tables on ``engine``; ``None`` if never created there."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


@dataclass(frozen=True, slots=True)
class PendingReversal:
    """One stored reversal."""

    posting_ref: str
    reversal: CanonicalMessage
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    claim: str | None = None
    """The token of the claim that holds it (:meth:`ReversalStore.claim`), if any."""


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _pending(row: Any) -> PendingReversal:
    return PendingReversal(
        row.posting_ref,
        from_json(row.reversal),
        row.attempts,
        _utc(row.next_attempt_at),
        row.last_error,
        row.claim,
    )


class ReversalStore:
    """The table of pending reversals (see the module docstring)."""

    unreachable_wait: float = 60.0
    """Seconds :meth:`store` keeps trying a database it cannot reach before it raises."""

    def __init__(
        self,
        engine: Engine,
        *,
        posting_reference: Callable[[CanonicalMessage], str],
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.engine = engine
        self._reference = posting_reference
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    def store(self, reversal: CanonicalMessage) -> None:
        """Keep ``reversal`` until it is acknowledged; storing it again changes nothing.
        Waits for a database that cannot be reached (restarting) up to
        :attr:`unreachable_wait` seconds."""
        reference = self._reference(reversal)
        self._while_unreachable(lambda: self._insert(reference, reversal), reference)
        _log.info("reversal of posting %s stored for forwarding", reference)

    def _insert(self, reference: str, reversal: CanonicalMessage) -> None:
        now = self._now()
        table = pending_reversals_table
        try:
            with self.engine.begin() as connection:
                exists = connection.execute(
                    select(table.c.posting_ref).where(table.c.posting_ref == reference)
                ).first()
                if exists is None:
                    connection.execute(
                        table.insert().values(
                            posting_ref=reference,
                            tenant=reversal.tenant,
                            reversal=to_json(reversal),
                            attempts=0,
                            created_at=now,
                            next_attempt_at=now,
                            last_error=None,
                            claim=None,
                        )
                    )
        except IntegrityError:  # another instance stored it meanwhile
            pass

    def _while_unreachable(self, action: Callable[[], T], reference: str) -> T:
        return store_reversal_while_unreachable(action, reference, self.unreachable_wait)

    def due(self, limit: int = 100) -> list[PendingReversal]:
        """The reversals whose next attempt is due, oldest first (a look: nothing claimed)."""
        table = pending_reversals_table
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table)
                .where(table.c.next_attempt_at <= self._now())
                .order_by(table.c.next_attempt_at)
                .limit(limit)
            ).all()
        return [_pending(row) for row in rows]

    def now(self) -> dt.datetime:
        """The store's clock."""
        return self._now()

    def claim(
        self,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        limit: int = 1,
        due_by: dt.datetime | None = None,
    ) -> list[PendingReversal]:
        """Take up to ``limit`` reversals due by ``due_by`` (default: now), oldest first,
        for ``lease``: no other claim gets them until it runs out (or :meth:`failed`
        reschedules them). Rows another forwarder is claiming at this moment are skipped,
        not waited for."""
        table = pending_reversals_table
        token = secrets.token_hex(16)
        now = self._now()
        with self.engine.begin() as connection:
            references = (
                connection.execute(
                    select(table.c.posting_ref)
                    .where(table.c.next_attempt_at <= (due_by or now))
                    .order_by(table.c.next_attempt_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not references:
                return []
            connection.execute(
                table.update()
                .where(table.c.posting_ref.in_(references))
                .values(claim=token, next_attempt_at=now + lease)
            )
            rows = connection.execute(
                select(table)
                .where(table.c.posting_ref.in_(references))
                .order_by(table.c.created_at)
            ).all()
        return [_pending(row) for row in rows]

    def pending(self) -> list[PendingReversal]:
        """Every stored reversal (for status pages and tests)."""
        table = pending_reversals_table
        with self.engine.connect() as connection:
            rows = connection.execute(select(table).order_by(table.c.created_at)).all()
        return [_pending(row) for row in rows]

    def acknowledged(self, posting_ref: str) -> bool:
        """The core acknowledged the reversal: forget it. Whether this call removed it
        (``False``: another forwarder's acknowledgement came first)."""
        table = pending_reversals_table
        with self.engine.begin() as connection:
            result = connection.execute(table.delete().where(table.c.posting_ref == posting_ref))
        return result.rowcount == 1

    def failed(
        self,
        posting_ref: str,
        error: str,
        retry_after: dt.timedelta,
        claim: str | None = None,
    ) -> None:
        """An attempt that did not end the reversal: count it and schedule the next. With
        ``claim``, only while that claim still holds it (a lease that ran out and was
        claimed again belongs to the new claim)."""
        table = pending_reversals_table
        condition = table.c.posting_ref == posting_ref
        if claim is not None:
            condition = condition & (table.c.claim == claim)
        with self.engine.begin() as connection:
            connection.execute(
                table.update()
                .where(condition)
                .values(
                    attempts=table.c.attempts + 1,
                    next_attempt_at=self._now() + retry_after,
                    last_error=error[:500],
                    claim=None,
                )
            )


class ReversalSender(Protocol):
    """Sends one reversal to the core; the core's ISO 8583 style result code, or ``None``
    when there was no answer (:meth:`hub.core.CoreBanking.reverse`)."""

    async def reverse(self, reversal: CanonicalMessage) -> str | None: ...


class ReversalForwarder:
    """Forwards the due reversals of a :class:`ReversalStore` (see the module docstring).

    ``lease``: how long a claimed reversal is this forwarder's; longer than one send may take
    (the core's timeout), or a slow send is taken over and sent again (harmless: reversals
    are idempotent, and acknowledged once)."""

    def __init__(
        self,
        store: ReversalStore,
        sender: ReversalSender,
        *,
        first_delay: float = 1.0,
        max_delay: float = 300.0,
        lease: float = 60.0,
        pass_limit: int = 100,
        on_acknowledged: Callable[[CanonicalMessage, str], None] | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.on_acknowledged = on_acknowledged
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.lease = dt.timedelta(seconds=lease)
        self.pass_limit = pass_limit
        self.forwarded = 0

    async def forward_due(self) -> int:
        """One pass: claim and send the reversals due when it starts, one at a time, each
        once (at most ``pass_limit``); how many this forwarder saw acknowledged."""
        done = 0
        started = self.store.now()
        for _ in range(self.pass_limit):
            claimed = await asyncio.to_thread(self.store.claim, self.lease, 1, started)
            if not claimed:
                break
            pending = claimed[0]
            code = await self.sender.reverse(pending.reversal)
            if code in DONE_CODES and code is not None:
                removed = await asyncio.to_thread(self.store.acknowledged, pending.posting_ref)
                if removed:
                    if self.on_acknowledged is not None:
                        self.on_acknowledged(pending.reversal, code)
                    done += 1
                _log.info("reversal %s acknowledged (%s)", pending.posting_ref, code)
                continue
            delay = min(self.first_delay * 2**pending.attempts, self.max_delay)
            reason = "no answer" if code is None else f"core answered {code}"
            await asyncio.to_thread(
                self.store.failed,
                pending.posting_ref,
                reason,
                dt.timedelta(seconds=delay),
                pending.claim,
            )
        self.forwarded += done
        return done

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Forward until ``stop`` is set, a pass every ``interval`` seconds."""
        while not stop.is_set():
            try:
                await self.forward_due()
            except (OperationalError, InterfaceError) as exc:
                # The database restarting: the next pass tries again, and a reversal
                # claimed meanwhile is taken again when its lease runs out.
                _log.warning("reversal store unreachable (%s); trying again", type(exc).__name__)
            except Exception:
                _log.exception("reversal forwarding pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def store_reversal_while_unreachable(action: Callable[[], T], reference: str, wait: float) -> T:
    """``action()`` (storing the reversal of posting ``reference``), tried again with backoff
    while its database cannot be reached (a restarting PostgreSQL) for up to ``wait``
    seconds; then the error is logged naming the posting (to reverse by hand) and raised."""
    deadline = time.monotonic() + wait
    delay = 0.1
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                _log.error(
                    "reversal of posting %s NOT stored: the database was unreachable for"
                    " %.0f s; if the posting was applied, it must be reversed by hand",
                    reference,
                    wait,
                )
                raise
            _log.warning(
                "reversal store unreachable (%s); storing %s again in %.1f s",
                type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
                reference,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
