"""The open-banking gateway's tables: its state, shared by every gateway process.

====================================  ==========================================================
table                                 holds
====================================  ==========================================================
``gateway_consents``                  one row per consent (:mod:`gateway.consents`): kind,
                                      tenant, status, the TPP's ``Data`` and ``Risk`` (JSON),
                                      the PSU and the accounts bound to it, the payment that
                                      used it
``gateway_idempotency``               one row per (tenant, endpoint, ``x-idempotency-key``)
                                      (:mod:`gateway.idempotency`): the body's SHA-256, the
                                      process holding it while the first request runs, then
                                      the stored answer; purged after 24 hours
``gateway_payments``                  one row per domestic payment (:mod:`gateway.payments`):
                                      tenant, consent, debtor IBAN, UETR and the initiation
                                      (JSON); its status is the journal's read model
``gateway_authorization_codes``       the built-in authorization server's codes
                                      (:mod:`gateway.security.authserver`), by SHA-256 of the
                                      code, deleted when redeemed
``gateway_signing_keys``              the built-in authorization server's signing keys
                                      (PKCS#8 PEM), newest first, so that every process signs
                                      with keys every other process publishes; when each
                                      starts to sign and how many tokens it signed
``gateway_dpop_proofs``               the DPoP proofs accepted within their window
                                      (:mod:`gateway.security.replays`), by SHA-256 of key
                                      thumbprint and ``jti``: a replay to any process fails
``gateway_sca_enrolments``            one row per PSU enrolled for strong customer
                                      authentication (:mod:`gateway.security.sca`): the
                                      TOTP secret (AES-256-GCM under the master keys), its
                                      parameters, and the newest time step accepted
``gateway_sca_failures``              the PSUs' failed second-factor attempts within the
                                      lockout window
====================================  ==========================================================

One database holds them for every gateway process (``isobridge run --workers N --gateway``
or several ``isobridge gateway``): SQLite for one machine (``<home>/gateway.db`` by default;
WAL, every transaction ``BEGIN IMMEDIATE``: :func:`routing.store.create_engine`; and, as for
the journal and the vault, ``synchronous = NORMAL``: a commit does not wait for the disk, a
crashed process loses nothing, a power loss may undo the last commits but never corrupts)
or PostgreSQL. What must happen once across processes is one statement: a unique key with
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (:func:`insert_or_ignore`: a claimed
idempotency key, a recorded payment) or a conditional ``UPDATE`` / ``DELETE ... RETURNING``
(a consent used, a code redeemed), never a read followed by a write.

The tables are created by the Alembic migrations in :mod:`gateway.migrations`
(:func:`upgrade`), with their own version table, ``gateway_alembic_version``, so they may
share a database with the hub, the vault, the journal and routing.

>>> engine = create_engine("sqlite://")
>>> upgrade(engine)
>>> from sqlalchemy import inspect
>>> for name in sorted(t for t in inspect(engine).get_table_names() if t.startswith("gateway_")):
...     print(name)
gateway_alembic_version
gateway_authorization_codes
gateway_consents
gateway_dpop_proofs
gateway_idempotency
gateway_payments
gateway_sca_enrolments
gateway_sca_failures
gateway_signing_keys
>>> current_revision(engine) == HEAD
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from weakref import WeakKeyDictionary

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Select

from routing import store as routing_store

__all__ = [
    "HEAD",
    "VERSION_TABLE",
    "RowReader",
    "authorization_codes_table",
    "consents_table",
    "create_engine",
    "current_revision",
    "downgrade",
    "dpop_proofs_table",
    "idempotency_table",
    "insert_or_ignore",
    "metadata",
    "payments_table",
    "sca_enrolments_table",
    "sca_failures_table",
    "signing_keys_table",
    "transaction",
    "upgrade",
    "utc",
]

HEAD: Final = "0003"
"""The newest revision this code knows."""

VERSION_TABLE: Final = "gateway_alembic_version"

metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "pk": "pk_%(table_name)s"})

consents_table = Table(
    "gateway_consents",
    metadata,
    Column("consent_id", String(40), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("status", String(4), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status_updated_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("data", JSON, nullable=False),
    Column("risk", JSON, nullable=False),
    Column("psu", String(128), nullable=True),
    Column("account_ids", JSON, nullable=False),
    Column("consumed_by", String(40), nullable=True),
)

idempotency_table = Table(
    "gateway_idempotency",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("endpoint", String(64), primary_key=True),
    Column("key", String(40), primary_key=True),
    Column("body_digest", String(64), nullable=False),
    Column("holder", String(32), nullable=True),
    Column("status", Integer, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("headers", JSON, nullable=True),
    Column("stored_at", Float, nullable=False),
    Index("ix_gateway_idempotency_stored_at", "stored_at"),
)

payments_table = Table(
    "gateway_payments",
    metadata,
    Column("payment_id", String(40), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("consent_id", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("debtor_iban", String(34), nullable=False),
    Column("uetr", String(36), nullable=False),
    Column("initiation", JSON, nullable=False),
    Index("ix_gateway_payments_debtor_iban", "debtor_iban"),
    Index("ix_gateway_payments_uetr", "uetr"),
)

authorization_codes_table = Table(
    "gateway_authorization_codes",
    metadata,
    Column("code_sha256", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("challenge", String(64), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("consent_id", String(40), nullable=False),
    Column("psu", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_gateway_authorization_codes_expires_at", "expires_at"),
)

signing_keys_table = Table(
    "gateway_signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(8), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("activates_at", Float, nullable=True),
    Column("uses", BigInteger, nullable=False, server_default="0"),
)

dpop_proofs_table = Table(
    "gateway_dpop_proofs",
    metadata,
    Column("proof_sha256", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False),
    Index("ix_gateway_dpop_proofs_seen_at", "seen_at"),
)

sca_enrolments_table = Table(
    "gateway_sca_enrolments",
    metadata,
    Column("psu", String(128), primary_key=True),
    Column("secret", LargeBinary, nullable=False),
    Column("master_version", Integer, nullable=False),
    Column("algorithm", String(8), nullable=False),
    Column("digits", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("enrolled_at", Float, nullable=False),
    Column("last_step", BigInteger, nullable=True),
)

sca_failures_table = Table(
    "gateway_sca_failures",
    metadata,
    Column("failure_id", Integer, primary_key=True, autoincrement=True),
    Column("psu", String(128), nullable=False),
    Column("failed_at", Float, nullable=False),
    Index("ix_gateway_sca_failures_psu", "psu", "failed_at"),
)

_LOCATION = Path(__file__).resolve().parent / "migrations"


def create_engine(url: str, **options: Any) -> Engine:
    """An engine for the gateway's database at ``url`` (module docstring); ``options`` go
    to :func:`routing.store.create_engine`."""
    engine = routing_store.create_engine(url, **options)
    if url.startswith("sqlite"):
        _sqlite_turns[engine] = threading.Lock()
    if url.startswith("sqlite") and url not in ("sqlite://", "sqlite:///:memory:"):

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

    return engine


_sqlite_turns: WeakKeyDictionary[Engine, threading.Lock] = WeakKeyDictionary()


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()``; on an SQLite engine of :func:`create_engine`, one transaction at
    a time in this process.

    Every SQLite transaction here takes the write lock (``BEGIN IMMEDIATE``). Threads of
    one process that collide on it would wait in SQLite's busy handler, which sleeps 1, 2,
    5, 10... ms between tries (measured: two writes took 4.9 ms with 6 threads against
    1.6 ms one after the other); a lock in the process hands the turn on at once. Other
    processes still meet the busy handler.
    """
    turn = _sqlite_turns.get(engine)
    with turn or contextlib.nullcontext(), engine.begin() as connection:
        yield connection


class RowReader:
    """One read of one row, on a DB-API connection of its own: a few microseconds on SQLite,
    where a statement through SQLAlchemy's execution costs 60 to 100 (measured). For the
    checks made on every request (a consent's status: :mod:`gateway.consents`).

    The statement is compiled once for the engine's dialect. The connection is taken from
    the engine's pool and detached from it, in autocommit (SQLite: as
    :func:`create_engine` sets every connection; PostgreSQL: psycopg's ``autocommit``), so
    each read sees what was committed before it and leaves no transaction open; it is
    shared by the threads of the process one read at a time with one cursor, replaced
    after an error, and closed when the engine is disposed. An engine of one connection
    (in-memory SQLite, ``StaticPool``) has none to spare: the read goes through SQLAlchemy
    there.
    """

    def __init__(self, engine: Engine, statement: Select[Any]) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.engine = engine
        self._statement = statement
        self._single = isinstance(engine.pool, StaticPool)
        self._sql = str(compiled)
        self._order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self._connection: DBAPIConnection | None = None
        self._cursor: Any = None
        self._errors: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._turn = threading.Lock()
        event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def first(self, **values: Any) -> tuple[Any, ...] | None:
        """The first row for the statement's parameters ``values``, or None."""
        if self._single:
            with self.engine.connect() as shared:
                found = shared.execute(self._statement, values).first()
            return None if found is None else tuple(found)
        parameters: Any = (
            values if self._order is None else tuple(values[name] for name in self._order)
        )
        with self._turn:
            for attempt in (1, 2):
                cursor = self._cursor
                if cursor is None:
                    cursor = self._cursor = (self._connection or self._open()).cursor()
                try:
                    cursor.execute(self._sql, parameters)
                    row = cursor.fetchone()
                except self._errors:
                    self._close_connection()
                    if attempt == 2:
                        raise
                    continue
                return None if row is None else tuple(row)
        raise RuntimeError("internal error: unreachable")

    def close(self) -> None:
        """Close the connection (a later read opens another)."""
        with self._turn:
            self._close_connection()

    def _open(self) -> DBAPIConnection:
        pooled = self.engine.raw_connection()
        connection = pooled.dbapi_connection
        if connection is None:
            raise RuntimeError("internal error: the pool gave no connection")
        pooled.detach()
        if self.engine.dialect.name == "postgresql":
            connection.autocommit = True
        self._connection = connection
        return connection

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            with contextlib.suppress(Exception):
                cursor.close()
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_LOCATION))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the gateway's tables on ``engine`` up to ``revision`` (default: the newest)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the gateway's tables down to ``revision`` (``"base"``: none left)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision of the gateway's tables on ``engine``; ``None`` if never created there."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def insert_or_ignore(
    connection: Connection,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
) -> bool:
    """Insert one row unless one with the same ``keys`` exists: whether it was inserted.

    ``ON CONFLICT DO NOTHING RETURNING``: the row that comes back says so, where ``rowcount``
    would not (psycopg 3 reports -1; ARCHITECTURE.md, field notes).
    """
    dialect = connection.dialect.name
    shape = (dialect, table.name, tuple(keys))
    statement = _insert_or_ignore.get(shape)
    if statement is None:
        if dialect not in ("postgresql", "sqlite"):
            raise NotImplementedError(
                f"the gateway's state is in SQLite or PostgreSQL, not {dialect}"
            )
        insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        statement = insert.on_conflict_do_nothing(index_elements=list(keys)).returning(
            table.c[keys[0]]
        )
        _insert_or_ignore[shape] = statement
    return connection.execute(statement, dict(values)).first() is not None


# One statement per table and dialect, the values as parameters: SQLAlchemy then finds it
# compiled in its cache instead of building and compiling a statement per row.
_insert_or_ignore: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` with its UTC offset (SQLite hands time stamps back without one)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
