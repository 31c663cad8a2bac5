"""Alembic migrations of the hub's own tables (:mod:`hub.store`)."""
