"""The simulator's ledger: accounts, double-entry postings, holds and stored replies, in SQL.

SQLAlchemy Core over SQLite by default (``sqlite:///path``; ``sqlite://`` is in memory) or
PostgreSQL (``postgresql+psycopg://...``). Tables:

``mf_accounts``
    One row per account: the number (IBAN-like for customers, ``GL-CLEARING-EUR`` for the
    general-ledger clearing account of each currency), name, currency, kind (``customer`` or
    ``gl``), status (``open`` / ``closed``), overdraft limit, and two running figures kept in
    the same transaction as the rows they sum: ``ledger_balance`` (all entries) and ``held``
    (active holds). Available balance = ledger balance - held.
``mf_postings``
    One row per posting, keyed by its posting reference (unique): tran code, booking time and
    date, value date, narrative, and the reversal links (``reverses`` / ``reversed_by``).
``mf_entries``
    The legs of each posting: account and signed amount in minor units (negative = debit).
    Every posting's entries sum to zero, so the whole ledger sums to zero per currency: that
    is the invariant :meth:`Ledger.check` verifies.
``mf_holds``
    Holds by their posting reference: account, amount, status (``active``, ``released``,
    ``consumed``) and the reference that ended them.
``mf_replies``
    The reply given to each state-changing request, by posting reference, with a digest of
    the request: a repeated request is answered from here and never applied twice.

Money is an ``int`` of minor units everywhere in this module (cents: every seeded currency has
two decimals); the record layer converts from and to the copybooks' ``Decimal`` amounts.

Writes go through :meth:`Ledger.transaction`: one lock per ledger object (so threads of one
process queue up behind it; the TCP server batches many requests into one transaction, see
:mod:`mainframe_sim.transactions`) and ``SELECT ... FOR UPDATE`` on account rows, which
PostgreSQL honours when several processes share a database. The statements of the request
path are compiled once per dialect and run on the DBAPI cursor (:class:`_Statement`); the
rest goes through SQLAlchemy.

A SQLite ledger in a file (WAL mode) is checkpointed by a thread of its own
(:class:`_Checkpointer`, every :data:`CHECKPOINT_INTERVAL` seconds, a passive checkpoint that
never blocks a writer): left to SQLite, the commit that fills the log past 1000 pages copies
it into the database and syncs it itself, a 5-15 ms stall for every request in flight on the
simulator's event loop about every half second at 500 postings/s (p99 6.5-7.2 ms against
1.2-2.0 without, measured at 500/s on 8 connections).

>>> ledger = Ledger.open("sqlite://")
>>> with ledger.transaction() as book:
...     book.add_account("DE00TEST", "Test", "EUR", overdraft_limit=0)
...     book.add_posting("REF1", "CRDT", [("DE00TEST", 1250), ("GL-CLEARING-EUR", -1250)],
...                      booked_at=dt.datetime(2026, 11, 29, 8, tzinfo=dt.UTC))
>>> ledger.balances("DE00TEST")
Balances(ledger=1250, available=1250, currency='EUR')
>>> ledger.check().balanced
True
>>> ledger.close()
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ClauseElement

__all__ = [
    "Account",
    "Balances",
    "Book",
    "Entry",
    "Hold",
    "Ledger",
    "LedgerCheck",
    "Posting",
    "StoredReply",
    "clearing_account",
    "timestamp",
]

metadata: Final = MetaData()

accounts: Final = Table(
    "mf_accounts",
    metadata,
    Column("number", String(34), primary_key=True),
    Column("name", String(35), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("status", String(8), nullable=False),
    Column("overdraft_limit", BigInteger, nullable=False),
    Column("ledger_balance", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
)

postings: Final = Table(
    "mf_postings",
    metadata,
    Column("reference", String(24), primary_key=True),
    Column("tran_code", String(4), nullable=False),
    Column("booked_at", String(14), nullable=False),  # YYYYMMDDHHMMSS UTC
    Column("booking_date", Integer, nullable=False),  # YYYYMMDD
    Column("value_date", Integer, nullable=False),
    Column("narrative", String(35), nullable=False),
    Column("reverses", String(24), nullable=True),
    Column("reversed_by", String(24), nullable=True),
)

entries: Final = Table(
    "mf_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("posting_ref", String(24), ForeignKey("mf_postings.reference"), nullable=False),
    Column("account", String(34), ForeignKey("mf_accounts.number"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("booking_date", Integer, nullable=False),
    Index("mf_entries_by_account_date", "account", "booking_date"),
    Index("mf_entries_by_posting", "posting_ref"),
)

holds: Final = Table(
    "mf_holds",
    metadata,
    Column("reference", String(24), primary_key=True),
    Column("account", String(34), ForeignKey("mf_accounts.number"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(8), nullable=False),
    Column("ended_by", String(24), nullable=True),
)

replies: Final = Table(
    "mf_replies",
    metadata,
    Column("posting_ref", String(24), primary_key=True),
    Column("request_digest", String(64), nullable=False),
    Column("reply", Text, nullable=False),
)


class _Statement:
    """A statement of the hot path: built once with SQLAlchemy Core, compiled once per dialect
    (:class:`_Compiled`) and run on the transaction's DBAPI cursor.

    SQLAlchemy's work per execution (execution context, parameter processing, result
    wrapper, cache lookup) costs several times SQLite's own for these one-row statements, and
    none of it is needed: every parameter is a ``str``, ``int`` or None and every row a plain
    tuple. ``names`` are the bound parameters in the order :meth:`Book._run` takes them.
    """

    __slots__ = ("names", "statement")

    def __init__(self, statement: ClauseElement, *names: str) -> None:
        self.statement = statement
        self.names = names


class _Compiled:
    """A :class:`_Statement`'s SQL for one dialect, and how to pass it its parameters."""

    __slots__ = ("_named", "_order", "names", "sql")

    def __init__(self, statement: _Statement, dialect: Dialect) -> None:
        # An insert names the columns it fills; other statements their bind parameters.
        columns = list(statement.names) if isinstance(statement.statement, Insert) else None
        compiled = statement.statement.compile(dialect=dialect, column_keys=columns)
        if not isinstance(compiled, SQLCompiler):
            raise RuntimeError("internal error: expected isinstance(compiled, SQLCompiler)")
        for bind in compiled.binds.values():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise TypeError(f"{bind.key} needs a conversion: execute it through SQLAlchemy")
        self.sql = str(compiled)
        self.names = statement.names
        self._named = not compiled.positional
        positions = [statement.names.index(name) for name in compiled.positiontup or ()]
        self._order = None if positions == list(range(len(positions))) else positions

    def parameters(self, values: Sequence[Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` (in the order of ``names``) as the DBAPI takes them."""
        if self._named:
            return dict(zip(self.names, values, strict=True))
        if self._order is None:
            return values
        return [values[position] for position in self._order]

    def parameter_rows(
        self, rows: Iterable[Sequence[Any]]
    ) -> list[Sequence[Any]] | list[dict[str, Any]]:
        """:meth:`parameters` of each row, for ``executemany``."""
        if self._named:
            return [dict(zip(self.names, values, strict=True)) for values in rows]
        if self._order is None:
            return list(rows)
        ordered: list[Sequence[Any]] = [[values[p] for p in self._order] for values in rows]
        return ordered


_ACCOUNT_ROW: Final = select(accounts).where(accounts.c.number == bindparam("number"))
_ACCOUNT: Final = _Statement(_ACCOUNT_ROW, "number")
_ACCOUNT_FOR_UPDATE: Final = _Statement(_ACCOUNT_ROW.with_for_update(), "number")
_ADD_TO_BALANCE: Final = _Statement(
    update(accounts)
    .where(accounts.c.number == bindparam("number"))
    .values(ledger_balance=accounts.c.ledger_balance + bindparam("delta", type_=BigInteger)),
    "number", "delta",
)  # fmt: skip
_ADD_TO_HELD: Final = _Statement(
    update(accounts)
    .where(accounts.c.number == bindparam("number"))
    .values(held=accounts.c.held + bindparam("delta", type_=BigInteger)),
    "number", "delta",
)  # fmt: skip
_POSTING: Final = _Statement(
    select(postings).where(postings.c.reference == bindparam("reference")), "reference"
)
_MARK_REVERSED: Final = _Statement(
    update(postings)
    .where(postings.c.reference == bindparam("reference"))
    .values(reversed_by=bindparam("by")),
    "reference", "by",
)  # fmt: skip
_ENTRIES_OF: Final = _Statement(
    select(entries.c.account, entries.c.amount)
    .where(entries.c.posting_ref == bindparam("reference"))
    .order_by(entries.c.id),
    "reference",
)
_HOLD: Final = _Statement(
    select(holds).where(holds.c.reference == bindparam("reference")), "reference"
)
_END_HOLD: Final = _Statement(
    update(holds)
    .where(holds.c.reference == bindparam("reference"))
    .values(status=bindparam("status"), ended_by=bindparam("by")),
    "reference", "status", "by",
)  # fmt: skip
_STORED_REPLY: Final = _Statement(
    select(replies.c.request_digest, replies.c.reply).where(
        replies.c.posting_ref == bindparam("reference")
    ),
    "reference",
)
# Inserts name their columns; ``inline``: no RETURNING of the generated entry id.
_INSERT_POSTING: Final = _Statement(insert(postings), *postings.c.keys())
_INSERT_ENTRY: Final = _Statement(
    insert(entries).inline(), "posting_ref", "account", "amount", "booking_date"
)
_INSERT_HOLD: Final = _Statement(insert(holds), *holds.c.keys())
_INSERT_REPLY: Final = _Statement(insert(replies), *replies.c.keys())
_HOT_PATH: Final = (
    _ACCOUNT, _ACCOUNT_FOR_UPDATE, _ADD_TO_BALANCE, _ADD_TO_HELD, _POSTING, _MARK_REVERSED,
    _ENTRIES_OF, _HOLD, _END_HOLD, _STORED_REPLY, _INSERT_POSTING, _INSERT_ENTRY, _INSERT_HOLD,
    _INSERT_REPLY,
)  # fmt: skip


def clearing_account(currency: str) -> str:
    """The general-ledger clearing account of ``currency``: the other leg of DEBT and CRDT.

    >>> clearing_account("EUR")
    'GL-CLEARING-EUR'
    """
    return f"GL-CLEARING-{currency}"


class Account(NamedTuple):
    """An account row; amounts in minor units."""

    number: str
    name: str
    currency: str
    kind: str
    status: str
    overdraft_limit: int
    ledger_balance: int
    held: int

    @property
    def available(self) -> int:
        """Ledger balance less active holds (the overdraft limit not included)."""
        return self.ledger_balance - self.held


class Balances(NamedTuple):
    """An account's ledger and available balance, in minor units of ``currency``."""

    ledger: int
    available: int
    currency: str


class Posting(NamedTuple):
    """A posting row."""

    reference: str
    tran_code: str
    booked_at: str
    booking_date: int
    value_date: int
    narrative: str
    reverses: str | None
    reversed_by: str | None


class Entry(NamedTuple):
    """One leg of a posting: ``amount`` < 0 debits ``account``, > 0 credits it."""

    account: str
    amount: int


class Hold(NamedTuple):
    """A hold row."""

    reference: str
    account: str
    amount: int
    status: str
    ended_by: str | None


class StoredReply(NamedTuple):
    """The reply given to a posting reference, and the digest of the request it answered."""

    request_digest: str
    reply: str


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """The result of :meth:`Ledger.check`.

    ``totals``: the sum of all entries per currency (all zero when balanced);
    ``drifted``: accounts whose running ``ledger_balance`` or ``held`` differs from the sum
    of their entries or active holds.
    """

    totals: dict[str, int]
    drifted: tuple[str, ...]
    postings: int
    entries: int

    @property
    def balanced(self) -> bool:
        """True when every currency sums to zero and no account's running figures drifted."""
        return not self.drifted and all(total == 0 for total in self.totals.values())


@functools.lru_cache(maxsize=4)
def timestamp(moment: dt.datetime) -> str:
    """``moment`` in UTC as YYYYMMDDHHMMSS: a posting's ``booked_at`` and CB-RP-POSTED-AT.

    Cached: every request of a batch is booked at the batch's one moment.

    >>> timestamp(dt.datetime(2026, 11, 29, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    '20261129083000'
    """
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")


class Book:
    """The ledger inside one open transaction (from :meth:`Ledger.transaction`).

    Reads see the transaction's own earlier writes; nothing is durable until the
    ``with`` block ends without an exception. The reads and writes of the request path run
    on the connection's DBAPI cursor (see :class:`_Statement`); the rest through SQLAlchemy.
    """

    def __init__(
        self, connection: Connection, cursor: DBAPICursor, compiled: Mapping[_Statement, _Compiled]
    ) -> None:
        self._connection = connection
        self._cursor = cursor
        self._compiled = compiled

    def _run(self, statement: _Statement, *values: Any) -> DBAPICursor:
        compiled = self._compiled[statement]
        self._cursor.execute(compiled.sql, compiled.parameters(values))
        return self._cursor

    def _run_many(self, statement: _Statement, rows: Iterable[Sequence[Any]]) -> None:
        compiled = self._compiled[statement]
        self._cursor.executemany(compiled.sql, compiled.parameter_rows(rows))

    def account(self, number: str, *, lock: bool = False) -> Account | None:
        """The account ``number``, or None; ``lock`` takes a row lock (PostgreSQL)."""
        row = self._run(_ACCOUNT_FOR_UPDATE if lock else _ACCOUNT, number).fetchone()
        return None if row is None else Account(*row)

    def add_account(
        self,
        number: str,
        name: str,
        currency: str,
        *,
        overdraft_limit: int = 0,
        status: str = "open",
        kind: str = "customer",
    ) -> None:
        """Open an account (and the clearing account of its currency if missing)."""
        if kind == "customer" and self.account(clearing_account(currency)) is None:
            self.add_account(clearing_account(currency), f"CLEARING {currency}", currency,
                             kind="gl")  # fmt: skip
        self._connection.execute(
            insert(accounts).values(
                number=number, name=name, currency=currency, kind=kind, status=status,
                overdraft_limit=overdraft_limit, ledger_balance=0, held=0,
            )
        )  # fmt: skip

    def set_status(self, number: str, status: str) -> None:
        """Open or close an account (``status``: ``open`` or ``closed``)."""
        self._connection.execute(
            update(accounts).where(accounts.c.number == number).values(status=status)
        )

    def posting(self, reference: str) -> Posting | None:
        """The posting ``reference``, or None."""
        row = self._run(_POSTING, reference).fetchone()
        return None if row is None else Posting(*row)

    def entries(self, reference: str) -> list[Entry]:
        """The legs of posting ``reference``, in the order they were written."""
        return [Entry(*row) for row in self._run(_ENTRIES_OF, reference).fetchall()]

    def add_posting(
        self,
        reference: str,
        tran_code: str,
        legs: Sequence[tuple[str, int]],
        *,
        booked_at: dt.datetime,
        value_date: int = 0,
        narrative: str = "",
        reverses: str | None = None,
    ) -> None:
        """Book a posting; its ``legs`` must sum to zero (ValueError otherwise)."""
        if sum(amount for _, amount in legs) != 0:
            raise ValueError(f"posting {reference}: legs do not balance")
        stamp = timestamp(booked_at)
        booking_date = int(stamp[:8])
        self._run(_INSERT_POSTING, reference, tran_code, stamp, booking_date,
                  value_date or booking_date, narrative, reverses, None)  # fmt: skip
        self._run_many(
            _INSERT_ENTRY, [(reference, account, amount, booking_date) for account, amount in legs]
        )
        self._run_many(_ADD_TO_BALANCE, legs)
        if reverses is not None:
            self._run(_MARK_REVERSED, reverses, reference)

    def hold(self, reference: str) -> Hold | None:
        """The hold ``reference``, or None."""
        row = self._run(_HOLD, reference).fetchone()
        return None if row is None else Hold(*row)

    def add_hold(self, reference: str, account: str, amount: int) -> None:
        """Place an active hold of ``amount`` on ``account``."""
        self._run(_INSERT_HOLD, reference, account, amount, "active", None)
        self._run(_ADD_TO_HELD, account, amount)

    def end_hold(self, reference: str, status: str, ended_by: str) -> None:
        """Release or consume the active hold ``reference`` (``status``: its new state)."""
        hold = self.hold(reference)
        if hold is None or hold.status != "active":
            raise ValueError(f"hold {reference} is not active")
        self._run(_END_HOLD, reference, status, ended_by)
        self._run(_ADD_TO_HELD, hold.account, -hold.amount)

    def stored_reply(self, posting_ref: str) -> StoredReply | None:
        """The reply stored for ``posting_ref``, or None."""
        row = self._run(_STORED_REPLY, posting_ref).fetchone()
        return None if row is None else StoredReply(*row)

    def store_reply(self, posting_ref: str, request_digest: str, reply: str) -> None:
        """Keep the reply to ``posting_ref`` (a second one for the same reference fails)."""
        self._run(_INSERT_REPLY, posting_ref, request_digest, reply)


_log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL: Final = 0.25
"""Seconds between two checkpoints of a SQLite ledger's write-ahead log (a log of about 600
pages at 500 postings/s)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_pragmas_no_autocheckpoint(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's thread does it
    finally:
        cursor.close()


class _Checkpointer:
    """A thread that checkpoints the SQLite database at ``path`` every ``interval`` seconds
    (``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of its own: it copies what is
    committed and waits for no writer). SQLite runs the checkpoint without Python's global
    lock, so the simulator's event loop goes on meanwhile."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy or failing now: the next one tries again
                    _log.warning("ledger checkpoint of %s failed: %s", self.path, exc)
        finally:
            connection.close()

    def stop(self) -> None:
        """End the thread (after a checkpoint under way)."""
        self._stop.set()
        self._thread.join()


class Ledger:
    """The simulator's ledger on one database (see the module documentation).

    ``clock`` gives the booking time of new postings (UTC now by default; tests and the
    statement extract set business dates through it).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        checkpointer: _Checkpointer | None = None,
    ) -> None:
        self._engine = engine
        self._checkpointer = checkpointer
        self._compiled = {
            statement: _Compiled(statement, engine.dialect) for statement in _HOT_PATH
        }
        self._lock = threading.Lock()
        self._idle: Connection | None = None  # transactions' connection between them
        self.clock: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def open(
        cls, url: str, *, clock: Callable[[], dt.datetime] | None = None, **engine_options: Any
    ) -> Ledger:
        """Connect to ``url`` and create the tables if missing; ``engine_options`` go to
        :func:`sqlalchemy.create_engine` (not for SQLite)."""
        checkpointer = None
        if url.startswith("sqlite"):
            in_memory = url in {"sqlite://", "sqlite:///:memory:"}
            engine = create_engine(
                url,
                poolclass=StaticPool if in_memory else None,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            path = engine.url.database
            in_file = not in_memory and bool(path) and not engine.url.query
            event.listen(
                engine, "connect", _sqlite_pragmas_no_autocheckpoint if in_file else _sqlite_pragmas
            )
            metadata.create_all(engine)
            if in_file and path is not None:
                checkpointer = _Checkpointer(path)
        else:
            engine = create_engine(url, pool_pre_ping=True, **engine_options)
            metadata.create_all(engine)
        return cls(engine, clock=clock, checkpointer=checkpointer)

    @property
    def embedded(self) -> bool:
        """True when the database runs inside this process (SQLite): a statement is a function
        call, and a commit does not wait for the disk (WAL, ``synchronous=NORMAL``)."""
        return self._engine.dialect.name == "sqlite"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for the statement extract and tests)."""
        return self._engine

    def close(self) -> None:
        """Release the database connections (and stop the checkpoints: SQLite checkpoints
        the log itself as its last connection closes)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._lock:
            if self._idle is not None:
                self._idle.close()
                self._idle = None
        self._engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Book]:
        """A :class:`Book` in one database transaction, committed when the block ends.

        Transactions of one :class:`Ledger` run one at a time (a lock), so a batch of
        requests sees a consistent ledger and the running balances cannot race. They keep one
        connection from one to the next (a pool check-out and check-in cost more than a small
        batch's statements); after a failed transaction it goes back to the pool, and the next
        one checks out a connection the pool has verified.
        """
        with self._lock:
            connection, self._idle = self._idle or self._engine.connect(), None
            try:
                with connection.begin(), self._book(connection) as book:
                    yield book
            except BaseException:
                connection.close()
                raise
            self._idle = connection

    @contextmanager
    def _book(self, connection: Connection) -> Iterator[Book]:
        cursor = connection.connection.cursor()
        try:
            yield Book(connection, cursor, self._compiled)
        finally:
            cursor.close()

    def is_empty(self) -> bool:
        """True when no account exists yet."""
        with self._engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(accounts)).scalar_one() == 0

    def account(self, number: str) -> Account | None:
        """The account ``number``, or None."""
        with self._engine.connect() as connection, self._book(connection) as book:
            return book.account(number)

    def accounts(self, *, kind: str | None = "customer") -> list[Account]:
        """All accounts of ``kind`` (every kind for None), by number."""
        query = select(accounts).order_by(accounts.c.number)
        if kind is not None:
            query = query.where(accounts.c.kind == kind)
        with self._engine.connect() as connection:
            return [Account(*row) for row in connection.execute(query)]

    def balances(self, number: str) -> Balances | None:
        """Ledger and available balance of ``number``, or None for an unknown account."""
        account = self.account(number)
        if account is None:
            return None
        return Balances(account.ledger_balance, account.available, account.currency)

    def check(self) -> LedgerCheck:
        """Verify double entry: every currency's entries sum to zero, and each account's
        running balance and held amount equal the sum of its entries and active holds."""
        with self._engine.connect() as connection:
            totals = {
                currency: int(total)
                for currency, total in connection.execute(
                    select(accounts.c.currency, func.coalesce(func.sum(entries.c.amount), 0))
                    .select_from(entries.join(accounts, entries.c.account == accounts.c.number))
                    .group_by(accounts.c.currency)
                )
            }
            sums = dict(
                connection.execute(
                    select(entries.c.account, func.sum(entries.c.amount)).group_by(
                        entries.c.account
                    )
                ).all()
            )
            held = dict(
                connection.execute(
                    select(holds.c.account, func.sum(holds.c.amount))
                    .where(holds.c.status == "active")
                    .group_by(holds.c.account)
                ).all()
            )
            drifted = tuple(
                number
                for number, balance, on_hold in connection.execute(
                    select(accounts.c.number, accounts.c.ledger_balance, accounts.c.held)
                )
                if balance != int(sums.get(number, 0)) or on_hold != int(held.get(number, 0))
            )
            posting_count = connection.execute(
                select(func.count()).select_from(postings)
            ).scalar_one()
            entry_count = connection.execute(select(func.count()).select_from(entries)).scalar_one()
        return LedgerCheck(totals, drifted, int(posting_count), int(entry_count))
