"""Alembic environment: runs on the connection that :func:`gateway.store.upgrade` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from gateway.store import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the gateway's migrations through gateway.store.upgrade(engine)")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
