"""Alembic environment: runs on the connection that :func:`vault.migrate.upgrade` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from vault.schema import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the vault's migrations through vault.migrate.upgrade(engine)")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table="vault_alembic_version",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
