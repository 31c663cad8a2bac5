"""Alembic environment: runs on the connection that :func:`journal.migrate.upgrade` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from journal.schema import METADATA

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the journal's migrations through journal.migrate.upgrade(engine)")
context.configure(
    connection=connection,
    target_metadata=METADATA,
    version_table="journal_alembic_version",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
