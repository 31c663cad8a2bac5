"""routing's tables (the inbox and the outbox), their migrations, and a suitable engine.

============================  ==============================================================
table                         holds
============================  ==============================================================
``routing_inbox``             one row per (consumer, message id) already applied, with the
                              time it was received: what makes a consumer idempotent
``routing_outbox``            one row per message to publish: destination, routing key,
                              headers (JSON), body; ``sent_at`` set once the broker confirmed
============================  ==============================================================

The tables live in the application's own database (SQLite or PostgreSQL), beside the effects
they guard, so a claim or an outbox row commits or rolls back with the effect. They are
created and upgraded by the Alembic migrations in :mod:`routing.migrations`
(:func:`upgrade`), which keep their own version table, ``routing_alembic_version``, so they
share a database with the vault and others without touching their revisions.

>>> engine = create_engine("sqlite://")
>>> upgrade(engine)
>>> from sqlalchemy import inspect
>>> sorted(t for t in inspect(engine).get_table_names() if t.startswith("routing_"))
['routing_alembic_version', 'routing_inbox', 'routing_outbox']
>>> current_revision(engine) == HEAD
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

__all__ = [
    "HEAD",
    "VERSION_TABLE",
    "create_engine",
    "current_revision",
    "downgrade",
    "inbox_table",
    "metadata",
    "outbox_table",
    "upgrade",
]

HEAD: Final = "0001"
"""The newest revision this code knows."""

VERSION_TABLE: Final = "routing_alembic_version"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s",
        "pk": "pk_%(table_name)s",
    }
)

inbox_table = Table(
    "routing_inbox",
    metadata,
    Column("consumer", String(128), primary_key=True),
    Column("message_id", String(255), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_routing_inbox_received_at", "received_at"),
)

outbox_table = Table(
    "routing_outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("message_id", String(255), nullable=False),
    Column("destination", String(255), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("headers", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("message_id", "destination"),
    Index("ix_routing_outbox_sent_at_id", "sent_at", "id"),
)

_LOCATION = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_LOCATION))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring routing's tables on ``engine`` up to ``revision`` (default: the newest)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take routing's tables down to ``revision`` (``"base"``: none left)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision of routing's tables on ``engine``; ``None`` if never created there."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def create_engine(url: str, **options: Any) -> Engine:
    """An engine for ``url``; for SQLite, every transaction starts with ``BEGIN IMMEDIATE``.

    SQLite has one writer at a time. Taking the write lock at the start of the transaction
    makes a second relay or consumer wait for the first (``busy_timeout``) instead of failing
    with "database is locked" when it upgrades from reading to writing. ``options`` go to
    :func:`sqlalchemy.create_engine`.
    """
    if not url.startswith("sqlite"):
        options.setdefault("pool_pre_ping", True)
        return sqlalchemy.create_engine(url, **options)
    if url in ("sqlite://", "sqlite:///:memory:"):
        options.setdefault("poolclass", StaticPool)
        options.setdefault("connect_args", {"check_same_thread": False})
    else:
        options.setdefault("connect_args", {"timeout": 30})
    engine = sqlalchemy.create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: object) -> None:
        # The driver's own transaction handling is off, so that "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if url not in ("sqlite://", "sqlite:///:memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
