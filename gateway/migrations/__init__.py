"""Alembic migrations of the gateway's tables (:mod:`gateway.store`)."""
