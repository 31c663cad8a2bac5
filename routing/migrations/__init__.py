"""Alembic migrations of routing's tables (:mod:`routing.store`), run by its ``upgrade``."""
